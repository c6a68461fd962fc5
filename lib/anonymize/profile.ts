/**
 * PS3.15 Annex E Table E.1-1 as a rule table: which action applies to which attribute, given the
 * options the user chose, plus a user profile CSV that adds or overrides rows.
 */
import { resolveTag } from "../dicom/dictionary.ts";
import { parseTag, type Tag } from "../dicom/tag.ts";
import { readTextFile } from "../fs/text.ts";
import { OPTION_COLUMNS, PROFILE_ROWS } from "./_profile_data.ts";

/**
 * An action of Table E.1-1: D dummy, Z zero length, X remove, K keep, C clean, U replace UIDs,
 * and the combinations resolved per IOD (X/Z, X/D, Z/D, X/Z/D, X/Z/U*).
 */
export type Action = "D" | "Z" | "X" | "K" | "C" | "U" | "X/Z" | "X/D" | "Z/D" | "X/Z/D" | "X/Z/U*";

const ACTIONS: ReadonlySet<string> = new Set(["D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"]);

/** The options of Annex E (E.3.1–E.3.11) that this implementation supports. */
export interface ProfileOptions {
  /** E.3.10 Retain Safe Private Option. */
  retainSafePrivate?: boolean;
  /** E.3.9 Retain UIDs Option. */
  retainUids?: boolean;
  /** E.3.8 Retain Device Identity Option. */
  retainDeviceIdentity?: boolean;
  /** E.3.11 Retain Institution Identity Option. */
  retainInstitutionIdentity?: boolean;
  /** E.3.7 Retain Patient Characteristics Option. */
  retainPatientCharacteristics?: boolean;
  /** E.3.6 Retain Longitudinal Temporal Information: "full" dates, or "modified" (shifted) dates. */
  retainLongitudinal?: "full" | "modified";
  /** E.3.5 Clean Descriptors Option. */
  cleanDescriptors?: boolean;
  /** E.3.4 Clean Structured Content Option. */
  cleanStructuredContent?: boolean;
  /** E.3.3 Clean Graphics Option. */
  cleanGraphics?: boolean;
}

/** One row of a user profile: a tag (or private tag with its creator) and the action to use. */
export interface ProfileOverride {
  tag: Tag;
  action: Action;
  /** For private tags: the private creator that reserves the block; `tag` then has block 00 (gggg,00ee). */
  creator?: string;
}

/** The rule table after options and overrides: what happens to each standard attribute. */
export interface ResolvedProfile {
  /** Standard attributes with their action. */
  byTag: Map<Tag, Action>;
  /** Curves (50xx,xxxx), overlay data (60xx,3000) and overlay comments (60xx,4000). */
  curves: Action;
  overlayData: Action;
  overlayComments: Action;
  /** The odd-group private row: X, or C (keep the safe-private list) with the Retain Safe Private option. */
  privateDefault: Action;
  /** User rows for private attributes, keyed by `creator|group|element-low-byte`. */
  privateOverrides: Map<string, Action>;
}

/** Key for private attributes: creator (trimmed), group, and the element's low byte. */
export function privateKey(creator: string, group: number, elementLow: number): string {
  return `${creator.trim().toUpperCase()}|${group}|${elementLow}`;
}

// Option column → how a chosen option is looked up.
function chosenColumns(o: ProfileOptions): Set<string> {
  const s = new Set<string>();
  if (o.retainSafePrivate) s.add("rtnSafePrivOpt");
  if (o.retainUids) s.add("rtnUIDsOpt");
  if (o.retainDeviceIdentity) s.add("rtnDevIdOpt");
  if (o.retainInstitutionIdentity) s.add("rtnInstIdOpt");
  if (o.retainPatientCharacteristics) s.add("rtnPatCharsOpt");
  if (o.retainLongitudinal === "full") s.add("rtnLongFullDatesOpt");
  if (o.retainLongitudinal === "modified") s.add("rtnLongModifDatesOpt");
  if (o.cleanDescriptors) s.add("cleanDescOpt");
  if (o.cleanStructuredContent) s.add("cleanStructContOpt");
  if (o.cleanGraphics) s.add("cleanGraphOpt");
  return s;
}

/**
 * The action for one row: with several chosen options naming the row, K (keep) wins over C
 * (clean), which wins over the basic profile action; otherwise the basic profile action.
 */
function rowAction(basic: string, options: readonly string[], chosen: Set<string>): Action {
  let best = basic;
  for (let i = 0; i < OPTION_COLUMNS.length; i++) {
    const a = options[i];
    if (!a || !chosen.has(OPTION_COLUMNS[i])) continue;
    if (a === "K") return "K";
    if (a === "C") best = "C";
  }
  return best as Action;
}

/**
 * Rows rtexport adds to Table E.1-1 (edition 2024b), for identifying attributes the table does
 * not list: without them they would be kept in every mode.
 */
export const SUPPLEMENT_ROWS: readonly (readonly [Tag, Action, string])[] = [
  // The issuer of the MRN (hospital's universal entity ID, assigning facility): Issuer of Patient
  // ID (0010,0021) is X, its structured form is missing from the table.
  [0x00100024, "X", "Issuer of Patient ID Qualifiers Sequence"],
  // The same for the accession number's issuer (Accession Number is Z).
  [0x00080051, "X", "Issuer of Accession Number Sequence"],
];

/** Builds the rule table for a set of options (every row of Table E.1-1) plus user overrides. */
export function resolveProfile(options: ProfileOptions, overrides: readonly ProfileOverride[] = []): ResolvedProfile {
  const chosen = chosenColumns(options);
  const byTag = new Map<Tag, Action>();
  const p: ResolvedProfile = {
    byTag, curves: "X", overlayData: "X", overlayComments: "X", privateDefault: "X", privateOverrides: new Map(),
  };
  for (const row of PROFILE_ROWS) {
    const [tagText, , basic] = row;
    const action = rowAction(basic, row.slice(3), chosen);
    if (tagText === "(50XX,XXXX)") p.curves = action;
    else if (tagText === "(60XX,3000)") p.overlayData = action;
    else if (tagText === "(60XX,4000)") p.overlayComments = action;
    else if (tagText.startsWith("(GGGG,EEEE)")) p.privateDefault = action;
    else {
      const tag = parseTag(tagText);
      if (tag === undefined) throw new Error(`Profile row "${tagText}" is not a tag`);
      byTag.set(tag, action);
    }
  }
  for (const [tag, action] of SUPPLEMENT_ROWS) byTag.set(tag, action);
  for (const o of overrides) {
    if (o.creator !== undefined) p.privateOverrides.set(privateKey(o.creator, o.tag >>> 16, o.tag & 0xff), o.action);
    else byTag.set(o.tag, o.action);
  }
  return p;
}

/** A user profile CSV could not be read; the message names the file and line. */
export class ProfileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProfileError";
  }
}

/**
 * Parses a profile CSV: one `tag,action[,creator]` per line. The tag is `(gggg,eeee)`,
 * `gggg,eeee`-style without the comma (`ggggeeee`) or a keyword (`PatientName`); for a private
 * attribute give `(gggg,xxee)` or `(gggg,00ee)` and the private creator as the third field.
 * Blank lines and lines starting with `#` are ignored; a first line `tag,action` is a header.
 */
export function parseProfileCsv(text: string, name = "profile"): ProfileOverride[] {
  const out: ProfileOverride[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i].trim();
    if (raw === "" || raw.startsWith("#")) continue;
    const fields = splitCsvLine(raw);
    if (i === 0 && fields[0]?.toLowerCase() === "tag") continue;
    const where = `Cannot read profile "${name}": line ${i + 1}`;
    // A tag written as (gggg,eeee) contains a comma; rejoin it.
    if (fields.length >= 2 && /^\(\s*[0-9A-Fa-fxX]{4}$/.test(fields[0]) && /^[0-9A-Fa-fxX]{4}\s*\)$/.test(fields[1])) {
      fields.splice(0, 2, `${fields[0]},${fields[1]}`);
    }
    if (fields.length < 2 || fields.length > 3) throw new ProfileError(`${where}: expected "tag,action" or "tag,action,creator", got "${raw}"`);
    const [tagText, actionText, creator] = fields.map((f) => f.trim());
    const action = actionText.toUpperCase();
    if (!ACTIONS.has(action)) throw new ProfileError(`${where}: unknown action "${actionText}" (use D, Z, X, K, C, U, X/Z, X/D, Z/D, X/Z/D)`);
    const tag = parseTag(tagText.replace(/xx/i, "00")) ?? resolveTag(tagText);
    if (tag === undefined) throw new ProfileError(`${where}: "${tagText}" is not a tag or keyword`);
    const group = tag >>> 16;
    if (creator !== undefined && creator !== "") {
      if ((group & 1) === 0) throw new ProfileError(`${where}: a private creator was given for the standard tag "${tagText}"`);
      out.push({ tag: ((group << 16) | (tag & 0xff)) >>> 0, action: action as Action, creator });
    } else {
      out.push({ tag, action: action as Action });
    }
  }
  return out;
}

/** One CSV line split into trimmed fields (double quotes, "" for a quote inside). */
export function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; }
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { out.push(cur); cur = ""; }
    else cur += c;
  }
  out.push(cur);
  return out.map((f) => f.trim());
}

/** Reads and parses a profile CSV file. */
export function readProfileCsv(path: string): ProfileOverride[] {
  let text: string;
  try {
    text = readTextFile(path);
  } catch (e) {
    throw new ProfileError(`Cannot read profile "${path}": ${(e as { code?: string }).code ?? (e as Error).message}`);
  }
  return parseProfileCsv(text, path);
}
