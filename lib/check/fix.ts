/**
 * The fixes `check --fix` may apply, each one the user chose and each change reported:
 * `charset` re-encodes every text value in ISO_IR 100 (values Latin-1 can hold unchanged,
 * others transliterated; ideographic and phonetic person-name groups that cannot be written are
 * dropped), `machines` maps treatment machine names (`--map-machine OLD=NEW`). Anything else a
 * target refuses has no lossless fix and is refused with the reason.
 */
import { characterSet } from "../dicom/charset.ts";
import type { DataSet, DicomElement } from "../dicom/dataset.ts";
import { lookupTag } from "../dicom/dictionary.ts";
import { CHARSET_VRS } from "../dicom/vr.ts";
import { rewriteMachines } from "../push/machines.ts";
import type { FixKind, Violation } from "./rules.ts";
import { latin1Bytes, toLatin1 } from "./transliterate.ts";

/** One value a fix changed. */
export interface Change {
  fix: FixKind;
  /** `(gggg,eeee)`, with the path of sequences above it (`(300A,00B0)[1]/(300A,00B2)`). */
  tag: string;
  keyword?: string;
  from: string;
  to: string;
}

/** Why a violation has no fix here (what the user can do instead). */
export function whyNotFixable(v: Violation, chosen: readonly FixKind[]): string {
  if (v.fix && !chosen.includes(v.fix)) return `fixable with --fix ${v.fix}`;
  switch (v.rule) {
    case "patient-id":
      return "a Patient ID is the patient's identity, not a lossless fix: correct it at the source (or give a new one with anonymize --new-patient-id)";
    case "matrix":
      return "resampling an image is not lossless";
    case "gantry-tilt":
      return "a tilted acquisition cannot be straightened losslessly";
    case "samples-per-pixel":
    case "photometric":
      return "converting colour or inverted images rewrites their pixel data";
    case "sop-class":
      return "the target does not store objects of this class";
    case "required":
      return "a missing identifier cannot be made up";
    case "empty-beams":
      return "a plan without beams cannot be made importable";
    case "structure-set-images":
    case "plan-structure-set":
      return "send the referenced objects too, or store them at the target first";
    case "machine-name":
      return "map the machine with --map-machine OLD=NEW (and --fix machines)";
    case "character-set":
      return "the text cannot be written in ISO_IR 100";
  }
}

function tagText(tag: number): string {
  return `(${(tag >>> 16).toString(16).toUpperCase().padStart(4, "0")},${(tag & 0xffff).toString(16).toUpperCase().padStart(4, "0")})`;
}

const SPECIFIC_CHARACTER_SET = 0x00080005;

/** A person name in ISO_IR 100: each `=` group transliterated; groups that cannot be (ideographic, phonetic) dropped. */
function personNameToLatin1(value: string): { text: string; unmapped: string[] } {
  const groups = value.split("=");
  const first = toLatin1(groups[0]);
  if (first.unmapped.length) return first;
  const kept = [first.text];
  for (const g of groups.slice(1)) {
    const t = toLatin1(g);
    if (t.unmapped.length === 0 && t.text !== "") kept.push(t.text);
    else break; // a later group (ideographic, phonetic) Latin-1 cannot hold goes, and the ones after it
  }
  return { text: kept.join("="), unmapped: [] };
}

/**
 * Re-encodes every text value of `ds` (and its sequence items) in ISO_IR 100 and sets Specific
 * Character Set to it. Returns the changed values, or the reason it cannot (a value with
 * characters ISO 8859-1 has no look-alike for). `ds` is changed only when it can.
 */
export function fixCharacterSet(ds: DataSet): { changes: Change[] } | { refused: string } {
  const changes: Change[] = [];
  const writes: { item: DataSet; el: DicomElement; bytes: Uint8Array }[] = [];
  const items: DataSet[] = [];
  const problems: string[] = [];
  const visit = (item: DataSet, path: string) => {
    items.push(item);
    for (const el of item.sorted()) {
      if (el.items) {
        el.items.forEach((sub, i) => visit(sub, `${path}${tagText(el.tag)}[${i + 1}]/`));
        continue;
      }
      if (!CHARSET_VRS.has(el.vr) || !el.value || el.value.length === 0) continue;
      const text = item.charset.decode(el.value, el.vr === "PN");
      const t = el.vr === "PN" ? text.split("\\").map(personNameToLatin1) : [toLatin1(text)];
      const unmapped = t.flatMap((x) => x.unmapped);
      const keyword = lookupTag(el.tag)?.keyword;
      const where = `${path}${tagText(el.tag)}${keyword ? ` ${keyword}` : ""}`;
      if (unmapped.length) {
        problems.push(`${where} has characters ISO_IR 100 cannot hold: ${[...new Set(unmapped)].map((c) => JSON.stringify(c)).join(", ")}`);
        continue;
      }
      const out = t.map((x) => x.text).join("\\");
      let bytes = latin1Bytes(out);
      if (bytes.length % 2) bytes = Uint8Array.from([...bytes, 0x20]);
      writes.push({ item, el, bytes });
      if (out.replace(/ +$/, "") !== text.replace(/ +$/, "")) {
        const c: Change = { fix: "charset", tag: `${path}${tagText(el.tag)}`, from: text.replace(/ +$/, ""), to: out.replace(/ +$/, "") };
        if (keyword) c.keyword = keyword;
        changes.push(c);
      }
    }
  };
  visit(ds, "");
  if (problems.length) return { refused: problems.slice(0, 3).join("; ") + (problems.length > 3 ? ` (and ${problems.length - 3} more values)` : "") };
  for (const w of writes) w.item.set({ ...w.el, value: w.bytes, length: w.bytes.length, offset: 0 });
  const latin1 = characterSet(["ISO_IR 100"]);
  for (const item of items) {
    item.delete(SPECIFIC_CHARACTER_SET);
    item.charset = latin1;
  }
  const value = latin1Bytes("ISO_IR 100");
  ds.set({ tag: SPECIFIC_CHARACTER_SET, vr: "CS", value, offset: 0, length: value.length });
  return { changes };
}

/** Maps treatment machine names (`OLD` → `NEW`); returns the changes. */
export function fixMachines(ds: DataSet, sopClassUid: string, map: Record<string, string>): Change[] {
  return rewriteMachines(ds, sopClassUid, map, {}).map((pair) => {
    const i = pair.indexOf("=");
    return { fix: "machines" as const, tag: "(300A,00B2)", keyword: "TreatmentMachineName", from: pair.slice(0, i), to: pair.slice(i + 1) };
  });
}
