import { REPEATING, STANDARD } from "./_dictionary_data.ts";
import { PRIVATE } from "./_dictionary_private.ts";
import { RETIRED, RETIRED_REPEATING } from "./_dictionary_retired.ts";
import { elementOf, groupOf, isPrivateCreator, parseTag, type Tag } from "./tag.ts";

/** One data dictionary entry (PS3.6). `vr` may list alternatives ("US|SS", "OB|OW"). */
export interface DictionaryEntry {
  tag: Tag;
  vr: string;
  keyword: string;
  vm: string;
  /** Retired from the standard (PS3.6 keeps listing it; old systems still write it). */
  retired?: boolean;
}

let byTag: Map<Tag, DictionaryEntry> | undefined;
let byKeyword: Map<string, DictionaryEntry> | undefined;
let repeating: { group: number; groupMask: number; element: number; elementMask: number; parity: string; entry: DictionaryEntry }[] | undefined;

function load(): void {
  byTag = new Map();
  byKeyword = new Map();
  for (const line of STANDARD.split("\n")) {
    const [hex, vr, keyword, vm] = line.split("\t");
    const entry: DictionaryEntry = { tag: parseInt(hex, 16) >>> 0, vr, keyword, vm };
    byTag.set(entry.tag, entry);
    byKeyword.set(keyword, entry);
  }
  for (const line of RETIRED.split("\n")) {
    const [hex, vr, keyword, vm] = line.split("\t");
    const entry: DictionaryEntry = { tag: parseInt(hex, 16) >>> 0, vr, keyword, vm, retired: true };
    if (!byTag.has(entry.tag)) byTag.set(entry.tag, entry);
    if (!byKeyword.has(keyword)) byKeyword.set(keyword, entry);
  }
  repeating = [];
  // Current entries first: a retired mask never shadows a current one.
  const masks = [...REPEATING.split("\n").map((l) => [l, false] as const), ...RETIRED_REPEATING.split("\n").map((l) => [l, true] as const)];
  for (const [line, retired] of masks) {
    const [mask, vr, keyword, vm, parity] = line.split("\t");
    const g = mask.slice(0, 4), e = mask.slice(4);
    const entry: DictionaryEntry = { tag: parseInt(mask.replace(/x/g, "0"), 16) >>> 0, vr, keyword, vm };
    if (retired) entry.retired = true;
    repeating.push({
      group: parseInt(g.replace(/x/g, "0"), 16),
      groupMask: g.includes("x") ? 0xff00 : 0xffff,
      element: parseInt(e.replace(/x/g, "0"), 16),
      elementMask: e.includes("x") ? 0xff00 : 0xffff,
      parity,
      entry,
    });
    if (!retired || !byKeyword.has(keyword)) byKeyword.set(keyword, entry);
  }
}

/** Private entries by `group|creator|element` (element: the block offset `xx`, or a whole `eeee`). */
let privateEntries: Map<string, DictionaryEntry> | undefined;

function loadPrivate(): Map<string, DictionaryEntry> {
  const map = new Map<string, DictionaryEntry>();
  for (const line of PRIVATE.split("\n")) {
    const [group, creator, element, vr, keyword, vm] = line.split("\t");
    const tag = ((parseInt(group.replace(/x/g, "0"), 16) << 16) | parseInt(element, 16)) >>> 0;
    map.set(`${group}|${creator}|${element}`, { tag, vr, keyword, vm });
  }
  return map;
}

function hex(n: number, digits: number): string {
  return n.toString(16).toUpperCase().padStart(digits, "0");
}

/**
 * Looks up a private element in DCMTK's private dictionary, given the value of its private
 * creator element (the creator of the element's block, PS3.5 7.8.1).
 *
 * @example
 * ```ts
 * lookupPrivateTag(0x00091001, "GEMS_IDEN_01")?.vr; // "LO"
 * ```
 */
export function lookupPrivateTag(tag: Tag, creator: string): DictionaryEntry | undefined {
  const g = groupOf(tag), e = elementOf(tag);
  if ((g & 1) === 0 || e < 0x1000) return undefined;
  privateEntries ??= loadPrivate();
  const name = creator.replace(/^ +| +$/g, "");
  for (const group of [hex(g, 4), `${hex(g >> 8, 2)}xx`]) {
    const found = privateEntries.get(`${group}|${name}|${hex(e, 4)}`) ?? privateEntries.get(`${group}|${name}|${hex(e & 0xff, 2)}`);
    if (found) return { ...found, tag };
  }
  return undefined;
}

/**
 * Looks up a tag in the standard dictionary, repeating groups included: overlays (60xx), and the
 * retired curves (50xx), overlay comments (60xx,4000) and variable pixel data (7Fxx).
 *
 * @example
 * ```ts
 * lookupTag(0x00100020)?.keyword; // "PatientID"
 * ```
 */
export function lookupTag(tag: Tag): DictionaryEntry | undefined {
  if (!byTag) load();
  const found = byTag!.get(tag);
  if (found) return found;
  const g = groupOf(tag), e = elementOf(tag);
  if (isPrivateCreator(tag)) return { tag, vr: "LO", keyword: "PrivateCreator", vm: "1" };
  if (e === 0 ) return { tag, vr: "UL", keyword: "GenericGroupLength", vm: "1" };
  for (const r of repeating!) {
    if ((g & r.groupMask) !== r.group || (e & r.elementMask) !== r.element) continue;
    // A range's parity (DCMTK: even unless marked) applies to the part that ranges.
    const ranged = r.groupMask !== 0xffff ? g : e;
    if (r.parity === "e" && (ranged & 1) === 1) continue;
    if (r.parity === "o" && (ranged & 1) === 0) continue;
    return { ...r.entry, tag };
  }
  return undefined;
}

/**
 * Looks up a keyword (`PatientID`) in the standard dictionary.
 *
 * @example
 * ```ts
 * lookupKeyword("PatientID")?.tag; // 0x00100020
 * ```
 */
export function lookupKeyword(keyword: string): DictionaryEntry | undefined {
  if (!byKeyword) load();
  return byKeyword!.get(keyword);
}

/**
 * The VR to use for a tag met in an implicit VR data set (`UN` when the dictionary does not know it).
 *
 * @example
 * ```ts
 * dictionaryVr(0x00100010); // "PN"
 * ```
 */
export function dictionaryVr(tag: Tag): string {
  return implicitVr(lookupTag(tag)?.vr, tag);
}

/**
 * The VR to use for a private element met in an implicit VR data set, from DCMTK's private
 * dictionary and the element's private creator (`UN` when neither knows it).
 *
 * @example
 * ```ts
 * privateDictionaryVr(0x00091001, "GEMS_IDEN_01"); // "LO"
 * ```
 */
export function privateDictionaryVr(tag: Tag, creator: string): string {
  return implicitVr(lookupPrivateTag(tag, creator)?.vr, tag);
}

/** Elements of VR OB|OW that are words in implicit VR: pixel, overlay and waveform data (PS3.5 A.1, 8.2, 8.3). */
function isWordData(tag: Tag): boolean {
  return tag === 0x7fe00010 || tag === 0x54001010 || ((tag & 0xff00ffff) >>> 0) === 0x60003000;
}

function implicitVr(vr: string | undefined, tag: Tag): string {
  if (!vr) return "UN";
  if (vr.length === 2) return vr;
  // Implicit VR leaves a choice open. Pixel, overlay and waveform data are words (PS3.5 A.1);
  // the other OB|OW elements (curve and audio data, channel and padding values, counts) are
  // bytes, as DCMTK reads them and writes them once converted; OW|LT is OW; US|SS is read as US.
  if (vr === "OB|OW") return isWordData(tag) ? "OW" : "OB";
  if (vr === "OW|LT") return "OW";
  return vr.slice(0, 2);
}

/** True for elements the dictionary gives as US or SS (resolved by Pixel Representation). */
export function isUsOrSs(tag: Tag): boolean {
  return lookupTag(tag)?.vr === "US|SS";
}

/**
 * Resolves `(gggg,eeee)`, `gggg,eeee`, `ggggeeee` or a keyword to a tag; undefined when it is none of them.
 *
 * @example
 * ```ts
 * resolveTag("(300A,00B0)") === resolveTag("BeamSequence"); // true
 * ```
 */
export function resolveTag(text: string): Tag | undefined {
  return parseTag(text) ?? lookupKeyword(text.trim())?.tag;
}
