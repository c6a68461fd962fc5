/**
 * The one sanitizer: every name that becomes a path component (patient and plan folders, file
 * names, UIDs in the series layout) goes through `sanitizeName`.
 */
import { createHash } from "node:crypto";
import { join } from "node:path";

const WINDOWS_RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;
// Characters no common file system accepts in a name, plus controls.
// deno-lint-ignore no-control-regex
const FORBIDDEN = /[<>:"/\\|?*\x00-\x1f\x7f]/g;

export interface SanitizeOptions {
  /** Longest name kept, in UTF-8 bytes (default 64; every OS allows 255). */
  maxBytes?: number;
  /** Replace non-ASCII letters by their base letters and drop what remains (default false: keep Unicode, NFC). */
  ascii?: boolean;
}

function shortHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 8);
}

function utf8Length(s: string): number {
  return new TextEncoder().encode(s).length;
}

/** The character rules of every name: what no file system accepts, reserved device names, trailing dots. */
function cleanName(name: string, ascii: boolean | undefined): string {
  let s = name.normalize("NFC");
  if (ascii) s = s.normalize("NFD").replace(/[\u0300-\u036f]/g, "").replace(/[^\x20-\x7e]/g, "_");
  s = s.replace(FORBIDDEN, "_").replace(/\s+/g, " ").trim();
  s = s.replace(/[. ]+$/, ""); // Windows drops trailing dots and spaces
  if (s === "" || /^\.+$/.test(s)) s = "_";
  if (WINDOWS_RESERVED.test(s)) s = `_${s}`;
  return s;
}

/** `s` cut to at most `maxBytes` UTF-8 bytes with `suffix` appended (whole characters, no trailing dot). */
function cutWithSuffix(s: string, suffix: string, maxBytes: number): string {
  let cut = s;
  while (utf8Length(cut) + suffix.length > maxBytes) cut = [...cut].slice(0, -1).join("");
  return cut.replace(/[. ]+$/, "") + suffix;
}

/**
 * Makes one path component safe on Linux, macOS and Windows: no separators or traversal, no
 * characters Windows forbids, no reserved device names (CON, NUL, COM1…), no trailing dots or
 * spaces, bounded length. A name that had to be shortened keeps a hash of the original so two
 * long names that share a prefix stay apart.
 */
export function sanitizeName(name: string, opts: SanitizeOptions = {}): string {
  const maxBytes = opts.maxBytes ?? 64;
  const s = cleanName(name, opts.ascii);
  return utf8Length(s) > maxBytes ? cutWithSuffix(s, `~${shortHash(name)}`, maxBytes) : s;
}

/**
 * `sanitizeName` made one-to-one, for names built from identifiers (patient IDs and UIDs of
 * received or anonymized objects): a value kept as it is stays as it is; a value the rules had to
 * change or shorten gets 16 hex digits of its SHA-256 (64 bits), so `1.2.3/4` and `1.2.3_4` never
 * share a folder. An empty or missing value becomes `fallback`.
 */
export function uniqueName(value: string | undefined, fallback: string, opts: SanitizeOptions = {}): string {
  if (value === undefined || value.trim() === "") return fallback;
  const maxBytes = opts.maxBytes ?? 64;
  const s = cleanName(value, opts.ascii);
  if (s === value && utf8Length(s) <= maxBytes) return s;
  return cutWithSuffix(s, `~${createHash("sha256").update(value).digest("hex").slice(0, 16)}`, maxBytes);
}

/**
 * Where `serve` and `retrieve` put a received object:
 * `<root>/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`, every
 * component through `uniqueName`, so two objects share a file only if they carry the same IDs.
 */
export function storagePath(root: string, ids: { patientId?: string; studyUid?: string; seriesUid?: string; sopInstanceUid: string }): string {
  return join(
    root,
    uniqueName(ids.patientId, "NO_PATIENT_ID"),
    uniqueName(ids.studyUid, "NO_STUDY_UID"),
    uniqueName(ids.seriesUid, "NO_SERIES_UID"),
    `${uniqueName(ids.sopInstanceUid, "NO_SOP_UID")}.dcm`,
  );
}

/** A DICOM person name (Family^Given^Middle^Prefix^Suffix, alphabetic group) split into parts. */
export function personNameParts(pn: string | undefined): { family: string; given: string } {
  const alphabetic = (pn ?? "").split("=")[0];
  const [family = "", given = ""] = alphabetic.split("^");
  return { family: family.trim(), given: given.trim() };
}

/**
 * The patient folder of the export tree: `Last_First_MRN` (seed 000 §1.1), sanitized;
 * `NO_PATIENT_ID` when there is neither a name nor an ID (as in the series layout).
 */
export function patientFolderName(p: { family?: string; given?: string; patientId: string }, opts?: SanitizeOptions): string {
  const parts = [p.family, p.given, p.patientId].map((x) => (x ?? "").trim()).filter((x) => x !== "");
  if (parts.length === 0) return "NO_PATIENT_ID";
  return sanitizeName(parts.join("_").replace(/ /g, "_"), { maxBytes: 96, ...opts });
}

/**
 * Assigns folder names so that two different keys never share one: the first key keeps the plain
 * name, a later key whose name collides (case-insensitively, as on Windows and macOS) gets a
 * suffix derived from its key. Pass `known` assignments (from the ledger) to keep earlier runs'.
 */
export class FolderAssigner {
  private readonly byKey = new Map<string, string>();
  private readonly taken = new Map<string, string>(); // lower-case folder → key

  constructor(known: Iterable<[key: string, folder: string]> = []) {
    for (const [key, folder] of known) this.remember(key, folder);
  }

  private remember(key: string, folder: string): void {
    this.byKey.set(key, folder);
    this.taken.set(folder.toLowerCase(), key);
  }

  assign(key: string, wanted: string): string {
    const existing = this.byKey.get(key);
    if (existing) return existing;
    let folder = wanted;
    for (const candidate of folderCandidates(key, wanted)) {
      const owner = this.taken.get(candidate.toLowerCase());
      folder = candidate;
      if (owner === undefined || owner === key) break;
    }
    this.remember(key, folder);
    return folder;
  }
}

/**
 * The names a folder for `key` may take, in order: the wanted name, then `wanted~<hash of key>`,
 * then `wanted~<hash>-2`, … (the first one no other key has is the folder). Shared by
 * FolderAssigner and the ledger's atomic assignment, so both name folders alike.
 */
export function* folderCandidates(key: string, wanted: string): Generator<string> {
  yield wanted;
  yield `${wanted}~${shortHash(key)}`;
  for (let n = 2;; n++) yield `${wanted}~${shortHash(key)}-${n}`;
}
