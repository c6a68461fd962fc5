/**
 * Removing identifiers that were copied into kept free text (ROI names, plan labels, comments,
 * text values): a safety net behind Table E.1-1, which cannot know what a user typed.
 *
 * Identifiers are matched as whole tokens, never inside a word: a token is a run of letters,
 * digits and `_`, so for patient `Lee^Ann` the ROI `Esophagus_Lee` and the label `Annotated plan`
 * stay as they are while `Lee Ann PTV` loses both names. What is collected, from the whole data
 * set (sequences included) before anything is changed:
 * - name components (family, given, middle; each word of 2+ letters) of every Person Name;
 * - identifiers (exact tokens): patient IDs (also inside Other Patient IDs Sequence), accession
 *   numbers (also in Request Attributes Sequence), Study ID, requested procedure, scheduled and
 *   performed procedure step IDs, order numbers, admission ID, medical record locator, clinical
 *   trial subject IDs, birth date (also written `YYYY-MM-DD` and `DD.MM.YYYY`), telephone numbers;
 *   purely numeric ones from 5 digits, others from 3 characters, so `7` or `123` never match a
 *   dose or a count;
 * - phrases: patient address, institution name/address/department (unless institution identity
 *   is retained), station name and device serial number (unless device identity is retained);
 * - UID-shaped tokens (`1.2.840.113619.2.55…`: 4+ numeric components, 9–64 characters), which are
 *   replaced by their keyed UID so a text reference still points at the remapped object.
 * A name matches case-insensitively, except that a token written all in lower case (`max dose`,
 * `lee side`) is taken for an ordinary word when the name itself is capitalized. Replacements:
 * `ANON` for identifiers of 4+ characters, `X`s of the same length for shorter ones (so the value
 * never grows past its VR's limit); remapped UIDs for UIDs.
 */
import type { DataSet } from "../dicom/dataset.ts";
import type { Tag } from "../dicom/tag.ts";

/** What a replacement removed (never the value itself: that is PHI). */
export type ReplacementKind = "name" | "id" | "uid";

/** The counts of one scrubbed value. */
export type ReplacementCounts = Partial<Record<ReplacementKind, number>>;

// Identifiers matched as exact tokens wherever they appear in the data set.
const ID_TAGS: ReadonlySet<Tag> = new Set([
  0x00100020, // Patient ID (top level, Other Patient IDs Sequence, …)
  0x00101000, // Other Patient IDs
  0x00080050, // Accession Number (top level and Request Attributes Sequence)
  0x00200010, // Study ID
  0x00401001, // Requested Procedure ID
  0x00400009, // Scheduled Procedure Step ID
  0x00400253, // Performed Procedure Step ID
  0x00402016, // Placer Order Number / Imaging Service Request
  0x00402017, // Filler Order Number / Imaging Service Request
  0x00380010, // Admission ID
  0x00101090, // Medical Record Locator
  0x00120040, // Clinical Trial Subject ID
  0x00120042, // Clinical Trial Subject Reading ID
  0x00102154, // Patient's Telephone Numbers
  0x00100030, // Patient's Birth Date (also written as YYYY-MM-DD and DD.MM.YYYY)
]);

const PHRASE_TAGS: ReadonlyMap<Tag, "always" | "institution" | "device"> = new Map([
  [0x00101040, "always"], // Patient's Address
  [0x00080080, "institution"], [0x00080081, "institution"], [0x00081040, "institution"],
  [0x00081010, "device"], [0x00181000, "device"],
]);

const WORD = "[\\p{L}\\p{N}_]";
const UID_TOKEN = /(?<![\d.])[0-2](?:\.\d+){3,}(?!\.?\d)/g;

/** Scrubs text; built once per data set from the identifiers found in it. */
export class Scrubber {
  readonly #pattern: RegExp | undefined;
  readonly #kinds: Map<string, ReplacementKind>;
  readonly #lowercaseNames: Set<string>;
  readonly #uid: ((uid: string) => string) | undefined;

  constructor(pattern: RegExp | undefined, kinds: Map<string, ReplacementKind>, lowercaseNames: Set<string>, uid?: (uid: string) => string) {
    this.#pattern = pattern;
    this.#kinds = kinds;
    this.#lowercaseNames = lowercaseNames;
    this.#uid = uid;
  }

  /** The scrubbed text and what was replaced, or undefined when nothing was. */
  scrub(text: string): { text: string; counts: ReplacementCounts } | undefined {
    let counts: ReplacementCounts | undefined;
    let out = text;
    const p = this.#pattern;
    if (p) {
      p.lastIndex = 0;
      if (p.test(out)) {
        p.lastIndex = 0;
        out = out.replace(p, (m) => {
          const key = m.toUpperCase();
          const kind = this.#kinds.get(key) ?? "id";
          // `max dose`, `lee side`: an all-lower-case word is an ordinary word, unless the name is written that way.
          if (kind === "name" && m === m.toLowerCase() && m !== key && !this.#lowercaseNames.has(key)) return m;
          (counts ??= {})[kind] = (counts[kind] ?? 0) + 1;
          return m.length >= 4 ? "ANON" : "X".repeat(m.length);
        });
      }
    }
    if (this.#uid) {
      UID_TOKEN.lastIndex = 0;
      if (UID_TOKEN.test(out)) {
        UID_TOKEN.lastIndex = 0;
        out = out.replace(UID_TOKEN, (m) => {
          if (m.length < 9 || m.length > 64) return m;
          const mapped = this.#uid!(m);
          if (mapped === m) return m;
          (counts ??= {}).uid = (counts.uid ?? 0) + 1;
          return mapped;
        });
      }
    }
    return counts ? { text: out, counts } : undefined;
  }
}

/** What the collection needs to know from the options. */
export interface ScrubOptions {
  retainInstitutionIdentity?: boolean;
  retainDeviceIdentity?: boolean;
}

// The last data set's pattern: the files of one series carry the same identifiers, and building
// the expression costs more than anonymizing a CT slice's header. `raw` is the undecoded bytes of
// the elements identifiers come from (and the character set): when they are the same as the last
// data set's, nothing needs decoding again.
let cache: { raw: string; key: string; pattern: RegExp | undefined; kinds: Map<string, ReplacementKind>; lower: Set<string> } | undefined;

/** The bytes of every element identifiers are collected from, with their tags and character sets, as one string. */
function rawKey(ds: DataSet, o: ScrubOptions): string {
  let key = `${o.retainInstitutionIdentity ? 1 : 0}${o.retainDeviceIdentity ? 1 : 0}`;
  const walk = (d: DataSet, depth: number) => {
    if (depth > 32) return;
    for (const el of d.elements.values()) {
      if (el.items) {
        key += `[${el.tag}:${el.items.length}`;
        for (const item of el.items) walk(item, depth + 1);
        key += "]";
        continue;
      }
      if (!el.value || (el.vr !== "PN" && !ID_TAGS.has(el.tag) && !PHRASE_TAGS.has(el.tag))) continue;
      key += `|${el.tag}:${d.charset.terms.join("\\")}:`;
      const v = el.value;
      for (let i = 0; i < v.length; i++) key += String.fromCharCode(v[i]);
    }
  };
  walk(ds, 0);
  return key;
}

/**
 * Collects the identifying values of a data set (every depth) and returns the scrubber for its
 * text. `uid` maps a UID-shaped token to its replacement (absent: UIDs are retained).
 */
export function buildScrubber(ds: DataSet, o: ScrubOptions, uid?: (uid: string) => string): Scrubber {
  const raw = rawKey(ds, o);
  if (cache?.raw === raw) return new Scrubber(cache.pattern, cache.kinds, cache.lower, uid);
  const found = new Map<string, ReplacementKind>();
  const lower = new Set<string>();
  collect(ds, o, found, lower, 0);
  // In collection order: the files of a series give the same order, so the cache hits without a sort.
  let key = "";
  for (const [k, v] of found) key += `${v}:${k}\u0000`;
  key += "\u0001";
  for (const k of lower) key += `${k}\u0000`;
  if (cache?.key !== key) {
    const alternatives = [...found.keys()].sort((a, b) => b.length - a.length || (a < b ? -1 : 1)).map(escapeRegExp);
    const pattern = alternatives.length === 0
      ? undefined
      : new RegExp(`(?<!${WORD})(?:${alternatives.join("|")})(?!${WORD})`, "giu");
    cache = { raw, key, pattern, kinds: found, lower };
  } else cache.raw = raw;
  return new Scrubber(cache.pattern, cache.kinds, cache.lower, uid);
}

function add(found: Map<string, ReplacementKind>, value: string, kind: ReplacementKind): void {
  const key = value.toUpperCase();
  // An identifier wins over a name of the same spelling: it is replaced whatever its case.
  if (kind === "id" || !found.has(key)) found.set(key, kind);
}

function addId(found: Map<string, ReplacementKind>, raw: string): void {
  const v = raw.trim();
  if (v.length < 3 || (/^\d+$/.test(v) && v.length < 5)) return;
  add(found, v, "id");
}

function collect(ds: DataSet, o: ScrubOptions, found: Map<string, ReplacementKind>, lower: Set<string>, depth: number): void {
  if (depth > 32) return;
  for (const el of ds.elements.values()) {
    if (el.items) {
      for (const item of el.items) collect(item, o, found, lower, depth + 1);
      continue;
    }
    if (!el.value || el.value.length === 0) continue;
    const tag = el.tag;
    if (el.vr === "PN") {
      for (const value of ds.strings(tag)) {
        for (const group of value.split("=")) {
          // family, given, middle; prefixes and suffixes (Dr, MD) are not identifying
          for (const component of group.split("^").slice(0, 3)) {
            for (const word of component.split(/[\s,.'"()-]+/u)) {
              if (word.length < 2 || !/\p{L}/u.test(word)) continue;
              add(found, word, "name");
              if (word === word.toLowerCase() && word !== word.toUpperCase()) lower.add(word.toUpperCase());
            }
          }
        }
      }
      continue;
    }
    if (ID_TAGS.has(tag)) {
      for (const v of ds.strings(tag)) {
        addId(found, v);
        const d = /^(\d{4})(\d{2})(\d{2})$/.exec(v.trim());
        if (tag === 0x00100030 && d) {
          addId(found, `${d[1]}-${d[2]}-${d[3]}`);
          addId(found, `${d[3]}.${d[2]}.${d[1]}`);
        }
      }
      continue;
    }
    const kind = PHRASE_TAGS.get(tag);
    if (kind === undefined) continue;
    if (kind === "institution" && o.retainInstitutionIdentity) continue;
    if (kind === "device" && o.retainDeviceIdentity) continue;
    for (const v of ds.strings(tag)) if (v.trim().length >= 4) add(found, v.trim(), "id");
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
