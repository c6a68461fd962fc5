/**
 * What a run changed beyond the profile's actions, in words for people: each identifier removed
 * from free text and each date emptied (one line per attribute, shown with `-v`), and the totals
 * (one line at the end of the run). Lines name the file and the attribute, never the value.
 */
import type { Replacement } from "./anonymize.ts";

const NOUNS: Record<Replacement["kind"], [string, string]> = {
  name: ["name", "names"],
  id: ["ID", "IDs"],
  uid: ["UID", "UIDs"],
  date: ["date", "dates"],
};

function count(n: number, kind: Replacement["kind"]): string {
  return `${n} ${NOUNS[kind][n === 1 ? 0 : 1]}`;
}

/**
 * One line per changed attribute of one file: `Replaced 2 names in (3006,0020)[2]/(3006,0026)
 * ROIName of "in/rs.dcm"`, `Emptied (0008,0023) ContentDate of "in/ct.dcm": not a date, so it
 * cannot be shifted`.
 */
export function replacementLines(replacements: readonly Replacement[], file: string): string[] {
  const byWhere = new Map<string, Map<Replacement["kind"], number>>();
  for (const r of replacements) {
    const m = byWhere.get(r.where) ?? new Map();
    m.set(r.kind, (m.get(r.kind) ?? 0) + r.count);
    byWhere.set(r.where, m);
  }
  const lines: string[] = [];
  for (const [where, kinds] of byWhere) {
    const scrubbed = [...kinds].filter(([k]) => k !== "date").map(([k, n]) => count(n, k));
    if (scrubbed.length > 0) lines.push(`Replaced ${scrubbed.join(" and ")} in ${where} of "${file}"`);
    if (kinds.has("date")) lines.push(`Emptied ${where} of "${file}": not a date, so it cannot be shifted`);
  }
  return lines;
}

/** Totals over a run, for its summary. */
export class ReplacementTally {
  #counts: Record<Replacement["kind"], number> = { name: 0, id: 0, uid: 0, date: 0 };
  #scrubbedFiles = 0;
  #dateFiles = 0;

  /** Adds one file's replacements. */
  add(replacements: readonly Replacement[]): void {
    let scrubbed = false, dated = false;
    for (const r of replacements) {
      this.#counts[r.kind] += r.count;
      if (r.kind === "date") dated = true;
      else scrubbed = true;
    }
    if (scrubbed) this.#scrubbedFiles++;
    if (dated) this.#dateFiles++;
  }

  /**
   * The summary lines: `Scrubbed 12 identifiers (7 names, 4 IDs, 1 UID) from free text in 5 files`
   * and `Emptied 2 dates that are not dates in 1 file`; none when nothing was changed.
   */
  lines(): string[] {
    const c = this.#counts;
    const out: string[] = [];
    const total = c.name + c.id + c.uid;
    const files = (n: number) => `${n} ${n === 1 ? "file" : "files"}`;
    if (total > 0) {
      out.push(`Scrubbed ${total} ${total === 1 ? "identifier" : "identifiers"} (${count(c.name, "name")}, ${count(c.id, "id")}, ${count(c.uid, "uid")}) from free text in ${files(this.#scrubbedFiles)}; -v names each`);
    }
    if (c.date > 0) out.push(`Emptied ${count(c.date, "date")} that could not be shifted (not dates) in ${files(this.#dateFiles)}; -v names each`);
    return out;
  }
}
