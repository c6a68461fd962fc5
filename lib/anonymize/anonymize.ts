/**
 * De-identification of one data set per DICOM PS3.15 Annex E (Basic Application Level
 * Confidentiality Profile and its options), keeping RT objects usable: every UID is remapped with
 * the same keyed function, so references between plans, structure sets, doses and images still
 * resolve after anonymization.
 */
import { DataSet, type DicomElement, padValue } from "../dicom/dataset.ts";
import { dictionaryVr } from "../dicom/dictionary.ts";
import type { Tag } from "../dicom/tag.ts";
import { CHARSET_VRS, STRING_VRS } from "../dicom/vr.ts";
import { resolveCombined } from "./iod_types.ts";
import { keyBytes, keyedDateShiftDays, keyedPseudonym, keyedUid, shiftDate } from "./keyed.ts";
import { type Action, privateKey, type ProfileOptions, type ProfileOverride, type ResolvedProfile, resolveProfile } from "./profile.ts";
import { SAFE_PRIVATE_KEYS } from "./safe_private.ts";

/** A new identity for a patient. */
export interface PatientIdentity {
  id: string;
  /** DICOM PN text, e.g. `Research^Subject 7`. Defaults to the id. */
  name?: string;
}

/** Everything that decides what anonymization does. */
export interface AnonymizeOptions extends ProfileOptions {
  /** The secret for UIDs, pseudonyms and date shifts (text or bytes, at least 16 bytes). */
  key: string | Uint8Array;
  /** User profile rows (from a profile CSV) that add to or override Table E.1-1. */
  profile?: readonly ProfileOverride[];
  /** Old patient ID → new identity. Checked first. */
  patientMap?: ReadonlyMap<string, PatientIdentity>;
  /** The new Patient ID for every patient not in `patientMap`. */
  newPatientId?: string;
  /** The new Patient's Name for every patient not in `patientMap`. */
  newPatientName?: string;
  /** Anonymize objects that may have identifying text burned into their pixels (default: refuse them). */
  allowBurnedIn?: boolean;
  /**
   * Also remove the patient's, staff's and institution's identifying values where they were
   * copied into kept free text (ROI names, plan labels, comments). Default true.
   */
  scrubIdentifiers?: boolean;
}

/** An object refused because its pixels may show identifying text. */
export class BurnedInAnnotationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BurnedInAnnotationError";
  }
}

/** What anonymization produced for one data set: the values a `file` record needs. */
export interface AnonymizedIds {
  sopClassUid?: string;
  sopInstanceUid?: string;
  studyUid?: string;
  seriesUid?: string;
  modality?: string;
  patientId: string;
  patientName: string;
  /** The patient ID before anonymization (PHI: never log it). */
  originalPatientId: string;
}

/**
 * State shared by every data set of one anonymization run: the resolved rule table, the key, a
 * UID cache and the patient mapping actually used (for `--write-map`).
 */
export class AnonymizeContext {
  readonly options: AnonymizeOptions;
  readonly profile: ResolvedProfile;
  readonly key: Uint8Array;
  /** Old patient ID → identity used, for every patient seen. */
  readonly patients: Map<string, PatientIdentity> = new Map();
  /** Output path → input path, for every file written in this run (two inputs must not land on one output). */
  readonly outputs: Map<string, string> = new Map();
  private readonly uids = new Map<string, string>();

  constructor(options: AnonymizeOptions) {
    this.options = options;
    this.key = keyBytes(options.key);
    this.profile = resolveProfile(options, options.profile ?? []);
  }

  /** The keyed replacement of one UID (well-known standard UIDs stay as they are). */
  uid(value: string): string {
    if (value === "" || value.startsWith("1.2.840.10008.")) return value;
    let out = this.uids.get(value);
    if (out === undefined) {
      if (this.uids.size > 200_000) this.uids.clear(); // bounded: a long migration must not grow memory
      out = keyedUid(this.key, value);
      this.uids.set(value, out);
    }
    return out;
  }

  /** The new identity of a patient: from the map, the fixed new id/name, or a keyed pseudonym. */
  patient(originalId: string): PatientIdentity {
    let p = this.patients.get(originalId);
    if (p) return p;
    const o = this.options;
    const mapped = o.patientMap?.get(originalId);
    if (mapped) p = { id: mapped.id, name: mapped.name ?? mapped.id };
    else {
      const id = o.newPatientId ?? keyedPseudonym(this.key, originalId);
      p = { id, name: o.newPatientName ?? id };
    }
    this.patients.set(originalId, p);
    return p;
  }

  /** Days this patient's dates move back with the modified-dates option. */
  dateShift(originalId: string): number {
    return keyedDateShiftDays(this.key, originalId);
  }
}

/**
 * Creates the shared state of a run (UID map, date shifts, patient map); pass it to every
 * `anonymizeDataSet` call of the run, so references between objects stay consistent.
 *
 * @example
 * ```ts
 * const ctx = createAnonymizeContext({ key: "0123456789abcdef0123456789abcdef" });
 * anonymizeDataSet(readDicomFile("RP1.dcm", { full: true }).dataset, ctx.options, ctx);
 * ```
 */
export function createAnonymizeContext(options: AnonymizeOptions): AnonymizeContext {
  return new AnonymizeContext(options);
}

const PATIENT_NAME = 0x00100010;
const PATIENT_ID = 0x00100020;
const SOP_CLASS_UID = 0x00080016;
const BURNED_IN_ANNOTATION = 0x00280301;
const PATIENT_IDENTITY_REMOVED = 0x00120062;
const DEIDENTIFICATION_METHOD = 0x00120063;
const DEIDENTIFICATION_METHOD_CODE_SEQUENCE = 0x00120064;
const LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED = 0x00280303;

const SECONDARY_CAPTURE_CLASSES = new Set([
  "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.7.1", "1.2.840.10008.5.1.4.1.1.7.2",
  "1.2.840.10008.5.1.4.1.1.7.3", "1.2.840.10008.5.1.4.1.1.7.4",
]);

/**
 * UI attributes that name a class, a transfer syntax or a coding scheme rather than an instance:
 * they stay as they are even when their value is not under 1.2.840.10008 (e.g. a vendor's private
 * SOP class).
 */
const CLASS_UID_TAGS: ReadonlySet<Tag> = new Set([
  0x00020002, 0x00020010, 0x00020012, // media storage SOP class, transfer syntax, implementation class
  0x00041510, 0x00041512, 0x0004151a, // referenced SOP class / transfer syntax / related classes in file
  0x00080016, 0x00081150, 0x0008001a, 0x0008001b, // SOP class, referenced SOP class, related/original classes
  0x0008010c, 0x00080117, 0x00080118, 0x0008010d, // coding scheme UID, context UID, mapping resource UID, context group extension creator
]);

/** DCM codes of Table CID 7050 for the profile and each option. */
const METHOD_CODES: readonly [keyof ProfileOptions | "basic", string, string][] = [
  ["basic", "113100", "Basic Application Confidentiality Profile"],
  ["cleanGraphics", "113103", "Clean Graphics Option"],
  ["cleanStructuredContent", "113104", "Clean Structured Content Option"],
  ["cleanDescriptors", "113105", "Clean Descriptors Option"],
  ["retainLongitudinal", "113106", "Retain Longitudinal Temporal Information Full Dates Option"],
  ["retainLongitudinal", "113107", "Retain Longitudinal Temporal Information Modified Dates Option"],
  ["retainPatientCharacteristics", "113108", "Retain Patient Characteristics Option"],
  ["retainDeviceIdentity", "113109", "Retain Device Identity Option"],
  ["retainUids", "113110", "Retain UIDs Option"],
  ["retainSafePrivate", "113111", "Retain Safe Private Option"],
  ["retainInstitutionIdentity", "113112", "Retain Institution Identity Option"],
];

/** Options in effect, as their DCM codes. */
export function methodCodes(o: ProfileOptions): [string, string][] {
  const out: [string, string][] = [];
  for (const [opt, code, meaning] of METHOD_CODES) {
    if (opt === "basic") out.push([code, meaning]);
    else if (opt === "retainLongitudinal") {
      if ((code === "113106" && o.retainLongitudinal === "full") || (code === "113107" && o.retainLongitudinal === "modified")) {
        out.push([code, meaning]);
      }
    } else if (o[opt]) out.push([code, meaning]);
  }
  return out;
}

interface Job {
  ctx: AnonymizeContext;
  sopClassUid: string | undefined;
  shiftDays: number | undefined;
  scrub: RegExp | undefined;
  keepUids: boolean;
}

/**
 * Anonymizes a data set in place and returns its new identifiers. Throws
 * `BurnedInAnnotationError` for objects that may show identifying text in their pixels (unless
 * `allowBurnedIn`). Pixel data and every other bulk value are left as bytes, never decoded.
 *
 * @example
 * ```ts
 * const ctx = createAnonymizeContext({ key: "a secret of 16+ bytes", cleanDescriptors: true });
 * const file = readDicomFile("plan.dcm", { full: true });
 * const ids = anonymizeDataSet(file.dataset, ctx.options, ctx);
 * ```
 */
export function anonymizeDataSet(ds: DataSet, options: AnonymizeOptions, context?: AnonymizeContext): AnonymizedIds {
  const ctx = context ?? new AnonymizeContext(options);
  const sopClassUid = ds.string(SOP_CLASS_UID);
  if (!ctx.options.allowBurnedIn) {
    const burnedIn = ds.string(BURNED_IN_ANNOTATION)?.toUpperCase();
    if (burnedIn === "YES") {
      throw new BurnedInAnnotationError("Burned In Annotation is YES: the pixels may show identifying text (use --allow-burned-in to anonymize the header anyway)");
    }
    if (sopClassUid !== undefined && SECONDARY_CAPTURE_CLASSES.has(sopClassUid) && burnedIn !== "NO") {
      throw new BurnedInAnnotationError("a secondary capture (screenshot) without Burned In Annotation = NO: its pixels may show identifying text (use --allow-burned-in to anonymize the header anyway)");
    }
  }
  const originalPatientId = ds.string(PATIENT_ID) ?? "";
  const identity = ctx.patient(originalPatientId);
  const o = ctx.options;
  const job: Job = {
    ctx,
    sopClassUid,
    shiftDays: o.retainLongitudinal === "modified" ? ctx.dateShift(originalPatientId) : undefined,
    scrub: o.scrubIdentifiers === false ? undefined : scrubPattern(ds, o),
    keepUids: !!o.retainUids,
  };
  processDataSet(ds, job);

  // Identity: replaced, not emptied, so the pseudonym links a patient's objects.
  const p = ctx.profile.byTag;
  if (p.get(PATIENT_ID) !== "K") setString(ds, PATIENT_ID, "LO", identity.id);
  if (p.get(PATIENT_NAME) !== "K") setString(ds, PATIENT_NAME, "PN", identity.name ?? identity.id);

  setString(ds, PATIENT_IDENTITY_REMOVED, "CS", "YES");
  const codes = methodCodes(o);
  setString(ds, DEIDENTIFICATION_METHOD, "LO", codes.map((c) => c[1]).join("\\"));
  const items = codes.map(([code, meaning]) => {
    const item = new DataSet({ littleEndian: ds.littleEndian, explicitVR: ds.explicitVR }, ds.charset);
    setString(item, 0x00080100, "SH", code);
    setString(item, 0x00080102, "SH", "DCM");
    setString(item, 0x00080104, "LO", meaning);
    return item;
  });
  ds.set({ tag: DEIDENTIFICATION_METHOD_CODE_SEQUENCE, vr: "SQ", items, offset: 0, length: 0 });
  if (o.retainLongitudinal === "modified") setString(ds, LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED, "CS", "MODIFIED");
  else if (o.retainLongitudinal === "full") setString(ds, LONGITUDINAL_TEMPORAL_INFORMATION_MODIFIED, "CS", "UNMODIFIED");

  return {
    sopClassUid,
    sopInstanceUid: ds.string(0x00080018),
    studyUid: ds.string(0x0020000d),
    seriesUid: ds.string(0x0020000e),
    modality: ds.string(0x00080060),
    patientId: identity.id,
    patientName: identity.name ?? identity.id,
    originalPatientId,
  };
}

function processDataSet(ds: DataSet, job: Job): void {
  const profile = job.ctx.profile;
  let removedOverlayGroups: Set<number> | undefined;
  let privateKept: Set<number> | undefined; // creator tags still in use
  const creators: DicomElement[] = [];
  for (const el of [...ds.elements.values()]) {
    const tag = el.tag;
    const group = tag >>> 16;
    const elem = tag & 0xffff;
    if (elem === 0x0000 && group !== 0x0002) { // group lengths would be wrong after removals
      ds.elements.delete(tag);
      continue;
    }
    let action: Action | undefined;
    if ((group & 1) === 1) {
      if (elem >= 0x0010 && elem <= 0x00ff) { creators.push(el); continue; }
      action = privateAction(ds, tag, profile);
      if (action !== "X") (privateKept ??= new Set()).add(((group << 16) | (elem >>> 8)) >>> 0);
    } else if (group >= 0x5000 && group <= 0x501e) {
      action = profile.curves;
    } else if (group >= 0x6000 && group <= 0x601e) {
      if (elem === 0x3000) action = profile.overlayData;
      else if (elem === 0x4000) action = profile.overlayComments;
      if (profile.overlayData === "X") {
        // An overlay without its data is invalid (Overlay Data is Type 1): remove the whole plane.
        (removedOverlayGroups ??= new Set()).add(group);
        action = "X";
      }
    } else {
      action = profile.byTag.get(tag);
    }
    applyAction(ds, el, action, job);
  }
  if (removedOverlayGroups) {
    for (const tag of [...ds.elements.keys()]) if (removedOverlayGroups.has(tag >>> 16)) ds.elements.delete(tag);
  }
  for (const c of creators) {
    if (!privateKept?.has(c.tag)) ds.elements.delete(c.tag);
  }
}

function privateAction(ds: DataSet, tag: Tag, profile: ResolvedProfile): Action {
  const group = tag >>> 16;
  const elem = tag & 0xffff;
  const block = elem >>> 8;
  const creator = block >= 0x10 ? ds.string(((group << 16) | block) >>> 0) : undefined;
  if (creator !== undefined) {
    const key = privateKey(creator, group, elem & 0xff);
    const user = profile.privateOverrides.get(key);
    if (user) return user;
    if (profile.privateDefault === "C") return SAFE_PRIVATE_KEYS.has(key) ? "K" : "X";
  }
  return profile.privateDefault === "C" ? "X" : profile.privateDefault;
}

function applyAction(ds: DataSet, el: DicomElement, action: Action | undefined, job: Job): void {
  let a: Action | undefined = action;
  if (a !== undefined && a.includes("/")) a = resolveCombined(a, el.tag, job.sopClassUid);
  switch (a) {
    case "X":
      ds.elements.delete(el.tag);
      return;
    case "Z":
      if (el.items) el.items = [];
      else setValue(el, new Uint8Array(0));
      el.fragments = undefined;
      return;
    case "D":
      if (el.items) { for (const item of el.items) processDataSet(item, job); return; }
      setDummy(el, job);
      return;
    case "K":
      if (el.items) for (const item of el.items) processDataSet(item, job);
      return;
    case "U":
      if (el.items) { for (const item of el.items) processDataSet(item, job); return; }
      if (!job.keepUids) remapUids(el, job);
      return;
    case "C":
    case undefined:
      // Clean, or an attribute Table E.1-1 does not list: kept, with UIDs remapped, dates shifted
      // (modified-dates option) and copied identifying values removed from its text.
      if (el.items) { for (const item of el.items) processDataSet(item, job); return; }
      cleanValue(ds, el, job);
      return;
  }
}

function effectiveVr(el: DicomElement): string {
  if (el.vr !== "UN") return el.vr;
  return (el.tag >>> 16) & 1 ? "UN" : dictionaryVr(el.tag);
}

function cleanValue(ds: DataSet, el: DicomElement, job: Job): void {
  if (!el.value || el.value.length === 0) return;
  const vr = effectiveVr(el);
  if (vr === "UI") {
    if (!job.keepUids && !CLASS_UID_TAGS.has(el.tag)) remapUids(el, job);
    return;
  }
  if ((vr === "DA" || vr === "DT") && job.shiftDays !== undefined) {
    const shifted = latin1(el.value).split("\\").map((v) => shiftDate(v.trim(), job.shiftDays!)).join("\\");
    setValue(el, ascii(shifted, vr));
    return;
  }
  if (job.scrub && CHARSET_VRS.has(vr) && el.value.length >= 3) {
    const text = ds.charset.decode(el.value, vr === "PN");
    job.scrub.lastIndex = 0;
    if (!job.scrub.test(text)) return;
    job.scrub.lastIndex = 0;
    const cleaned = text.replace(/[\0 ]+$/, "").replace(job.scrub, (m) => m.length >= 4 ? "ANON" : "X".repeat(m.length));
    setValue(el, padValue(ds.charset.encode(cleaned, vr === "PN"), vr));
  }
}

function remapUids(el: DicomElement, job: Job): void {
  if (!el.value || el.value.length === 0) return;
  if (effectiveVr(el) !== "UI") return;
  const parts = latin1(el.value).replace(/[\0 ]+$/, "").split("\\");
  const out = parts.map((u) => job.ctx.uid(u.trim())).join("\\");
  setValue(el, ascii(out, "UI"));
}

const DUMMY_TEXT: Readonly<Record<string, string>> = {
  AE: "ANONYMIZED", AS: "000Y", CS: "ANONYMIZED", DA: "19000101", DS: "0", DT: "19000101000000", IS: "0",
  LO: "ANONYMIZED", LT: "ANONYMIZED", PN: "ANONYMIZED", SH: "ANONYMIZED", ST: "ANONYMIZED", TM: "000000",
  UC: "ANONYMIZED", UR: "", UT: "ANONYMIZED",
};

function setDummy(el: DicomElement, job: Job): void {
  const vr = effectiveVr(el);
  if (vr === "UI") { if (!job.keepUids) remapUids(el, job); return; }
  if (STRING_VRS.has(vr)) {
    setValue(el, ascii(DUMMY_TEXT[vr] ?? "", vr));
    return;
  }
  // Binary values: zeros of the same length, so counts and VM stay valid.
  if (el.fragments) return;
  setValue(el, new Uint8Array(el.value?.length ?? 0));
}

function setValue(el: DicomElement, bytes: Uint8Array): void {
  el.value = bytes;
  el.length = bytes.length;
  el.skipped = undefined;
}


function ascii(text: string, vr: string): Uint8Array {
  const b = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) b[i] = text.charCodeAt(i) & 0xff;
  return padValue(b, vr);
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
  return s;
}

/** Sets (creating when absent) a text element of the data set. */
function setString(ds: DataSet, tag: Tag, vr: string, text: string): void {
  const bytes = padValue(CHARSET_VRS.has(vr) ? ds.charset.encode(text, vr === "PN") : ascii(text, vr), vr);
  const el = ds.elements.get(tag);
  if (el && !el.items) {
    setValue(el, bytes);
    if (el.vr === "UN") el.vr = vr;
  } else {
    ds.set({ tag, vr, value: bytes, offset: 0, length: bytes.length });
  }
}

// Identifying values whose copies in kept free text are removed.
const IDENTIFYING_TAGS: readonly [Tag, "always" | "institution" | "device"][] = [
  [0x00100020, "always"], [0x00101000, "always"], [0x00080050, "always"], [0x00100030, "always"],
  [0x00101040, "always"], [0x00102154, "always"], [0x00380010, "always"], [0x00101090, "always"],
  [0x00200010, "always"],
  [0x00080080, "institution"], [0x00080081, "institution"], [0x00081040, "institution"],
  [0x00081010, "device"], [0x00181000, "device"],
];

function scrubPattern(ds: DataSet, o: AnonymizeOptions): RegExp | undefined {
  const words = new Set<string>();
  for (const [tag, kind] of IDENTIFYING_TAGS) {
    if (kind === "institution" && o.retainInstitutionIdentity) continue;
    if (kind === "device" && o.retainDeviceIdentity) continue;
    for (const v of ds.strings(tag)) if (v.trim().length >= 4) words.add(v.trim());
  }
  collectNames(ds, words, 0);
  if (words.size === 0) return undefined;
  const alternatives = [...words].sort((a, b) => b.length - a.length).map(escapeRegExp);
  return new RegExp(alternatives.join("|"), "gi");
}

function collectNames(ds: DataSet, words: Set<string>, depth: number): void {
  if (depth > 16) return;
  for (const el of ds.elements.values()) {
    if (el.items) { for (const item of el.items) collectNames(item, words, depth + 1); continue; }
    if (el.vr !== "PN" || !el.value || el.value.length === 0) continue;
    for (const value of ds.strings(el.tag)) {
      for (const group of value.split("=")) {
        const components = group.split("^");
        // family, given, middle names; prefixes and suffixes (Dr, MD) are not identifying
        for (const c of components.slice(0, 3)) if (c.trim().length >= 3) words.add(c.trim());
      }
    }
  }
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
