/**
 * De-identification of one data set per DICOM PS3.15 Annex E (Basic Application Level
 * Confidentiality Profile and its options), keeping RT objects usable: every UID is remapped with
 * the same keyed function, so references between plans, structure sets, doses and images still
 * resolve after anonymization.
 */
import { DataSet, type DicomElement, padValue } from "../dicom/dataset.ts";
import { dictionaryVr, lookupTag } from "../dicom/dictionary.ts";
import { privateVr } from "../dicom/private_dictionary.ts";
import { formatTag, type Tag } from "../dicom/tag.ts";
import { CHARSET_VRS, STRING_VRS } from "../dicom/vr.ts";
import { attributeType, isStructuredReport, resolveCombined } from "./iod_types.ts";
import { keyBytes, keyedDateShiftDays, keyedPseudonym, keyedUid, shiftDateValue } from "./keyed.ts";
import { type Action, privateKey, type ProfileOptions, type ProfileOverride, type ResolvedProfile, resolveProfile } from "./profile.ts";
import { SAFE_PRIVATE_VRS, safePrivateKeeps } from "./safe_private.ts";
import { buildScrubber, type ReplacementKind, type Scrubber } from "./scrub.ts";

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

/**
 * One change made beyond the table's actions, for the user to review (`-v`): identifiers removed
 * from kept free text, or a date value emptied because it could not be shifted. Says where and
 * what kind, never the value (that is PHI).
 */
export interface Replacement {
  /** The attribute, with the sequence items above it: `(3006,0020)[2]/(3006,0026) ROIName`. */
  where: string;
  kind: ReplacementKind | "date";
  /** How many identifiers were replaced in the value (1 for an emptied date). */
  count: number;
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
  /** Identifiers removed from kept free text and dates emptied, in data set order. */
  replacements: Replacement[];
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
  /** An SR document: its Content Sequence is the document (Type 1); elsewhere it is Type 3. */
  structured: boolean;
  shiftDays: number | undefined;
  scrub: Scrubber | undefined;
  keepUids: boolean;
  /** Inside a sequence whose action is D: free text is replaced by a dummy, not scrubbed. */
  dummyText: boolean;
  /** Sequence items above the current data set, for reports: `(3006,0020)[2]`. */
  path: string[];
  replacements: Replacement[];
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
  const keepUids = !!o.retainUids;
  const job: Job = {
    ctx,
    sopClassUid,
    shiftDays: o.retainLongitudinal === "modified" ? ctx.dateShift(originalPatientId) : undefined,
    structured: isStructuredReport(sopClassUid),
    // Collected from the whole data set before anything changes: an ID in a sequence that is
    // removed (Other Patient IDs Sequence) must still be found where it was copied.
    scrub: o.scrubIdentifiers === false ? undefined : buildScrubber(ds, o, keepUids ? undefined : (u) => ctx.uid(u)),
    keepUids,
    dummyText: false,
    path: [],
    replacements: [],
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
    replacements: job.replacements,
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
      action = privateAction(ds, el, profile);
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

function creatorOf(ds: DataSet, tag: Tag): string | undefined {
  const block = (tag & 0xffff) >>> 8;
  return block >= 0x10 ? ds.string((((tag >>> 16) << 16) | block) >>> 0) : undefined;
}

function privateAction(ds: DataSet, el: DicomElement, profile: ResolvedProfile): Action {
  const tag = el.tag;
  const creator = creatorOf(ds, tag);
  if (creator !== undefined) {
    const key = privateKey(creator, tag >>> 16, tag & 0xff);
    const user = profile.privateOverrides.get(key);
    if (user) return user;
    if (profile.privateDefault === "C") {
      // Safe private: listed, and holding a number (a listed slot holding text is removed).
      const listed = SAFE_PRIVATE_VRS.get(key);
      if (listed === undefined || !safePrivateKeeps(listed, el.vr)) return "X";
      const vr = el.vr === "UN" ? listed : el.vr;
      if (el.value && !looksLike(vr, el.value)) return "X";
      return vr === "UI" ? "U" : "K";
    }
  }
  return profile.privateDefault === "C" ? "X" : profile.privateDefault;
}

/** A number or UID written as text holds only what its VR allows (a listed slot reused for text does not). */
function looksLike(vr: string, value: Uint8Array): boolean {
  const allowed = vr === "IS" || vr === "DS" ? /^[0-9+\-.eE \\\0]*$/ : vr === "UI" ? /^[0-9.\\\0 ]*$/ : undefined;
  return allowed === undefined || allowed.test(latin1(value));
}

const CONTENT_SEQUENCE = 0x0040a730;

function applyAction(ds: DataSet, el: DicomElement, action: Action | undefined, job: Job): void {
  let a: Action | undefined = action;
  if (a !== undefined && a.includes("/")) a = resolveCombined(a, el.tag, job.sopClassUid);
  // Outside an SR document the Content Sequence is Type 3 and nobody's report: removed whatever
  // the options (Clean Structured Content is about documents), not kept with another patient's
  // name and MRN in its text values.
  if (el.tag === CONTENT_SEQUENCE && !job.structured && a !== "K") a = "X";
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
      if (el.items) {
        processItems(el, job, true);
        return;
      }
      setDummy(ds, el, job);
      return;
    case "K":
      if (el.items) { processItems(el, job, job.dummyText); return; }
      // Kept by an option (device identity keeps calibration dates, …): under modified dates a
      // date is still shifted, or the unshifted one would give the patient's offset away.
      if (job.shiftDays !== undefined && isDateVr(effectiveVr(ds, el))) shiftDates(ds, el, job);
      return;
    case "U":
      if (el.items) { processItems(el, job, job.dummyText); return; }
      if (!job.keepUids) remapUids(ds, el, job);
      return;
    case "C":
    case undefined:
      // Clean, or an attribute Table E.1-1 does not list: kept, with UIDs remapped, dates shifted
      // (modified-dates option) and copied identifying values removed from its text.
      if (el.items) { processItems(el, job, job.dummyText); return; }
      cleanValue(ds, el, job);
      return;
  }
}

function processItems(el: DicomElement, job: Job, dummyText: boolean): void {
  const outer = job.dummyText;
  job.dummyText = dummyText;
  const items = el.items!;
  for (let i = 0; i < items.length; i++) {
    job.path.push(`${formatTag(el.tag)}[${i}]`);
    processDataSet(items[i], job);
    job.path.pop();
  }
  job.dummyText = outer;
}

function isDateVr(vr: string): boolean {
  return vr === "DA" || vr === "DT";
}

function note(job: Job, tag: Tag, kind: Replacement["kind"], count: number): void {
  const keyword = lookupTag(tag)?.keyword;
  job.replacements.push({ where: [...job.path, formatTag(tag) + (keyword ? ` ${keyword}` : "")].join("/"), kind, count });
}

function effectiveVr(ds: DataSet, el: DicomElement): string {
  if (el.vr !== "UN") return el.vr;
  if (((el.tag >>> 16) & 1) === 0) return dictionaryVr(el.tag);
  const creator = creatorOf(ds, el.tag);
  return (creator !== undefined ? privateVr(creator, el.tag) : undefined) ?? "UN";
}

// The Code Sequence Macro: coded concepts stay as they are inside a dummied sequence.
const CODE_TAGS: ReadonlySet<Tag> = new Set([
  0x00080100, 0x00080102, 0x00080103, 0x00080104, 0x00080105, 0x00080106, 0x00080107, 0x0008010b, 0x0008010f,
  0x00080117, 0x00080118, 0x00080119, 0x00080120, 0x00080121, 0x00080122,
]);
const FREE_TEXT_VRS: ReadonlySet<string> = new Set(["SH", "LO", "ST", "LT", "PN", "UC", "UT"]);

function cleanValue(ds: DataSet, el: DicomElement, job: Job): void {
  if (!el.value || el.value.length === 0) return;
  const vr = effectiveVr(ds, el);
  if (vr === "UI") {
    if (!job.keepUids && !CLASS_UID_TAGS.has(el.tag)) remapUids(ds, el, job);
    return;
  }
  if (isDateVr(vr) && job.shiftDays !== undefined) {
    shiftDates(ds, el, job);
    return;
  }
  if (job.dummyText && FREE_TEXT_VRS.has(vr) && !CODE_TAGS.has(el.tag)) {
    setValue(el, ascii(DUMMY_TEXT[vr] ?? "ANONYMIZED", vr));
    if (el.vr === "UN") el.vr = vr;
    return;
  }
  if (job.scrub && CHARSET_VRS.has(vr) && el.value.length >= 2) {
    const text = ds.charset.decode(el.value, vr === "PN");
    const r = job.scrub.scrub(text.replace(/[\0 ]+$/, ""));
    if (!r) return;
    setValue(el, padValue(ds.charset.encode(r.text, vr === "PN"), vr));
    for (const [kind, count] of Object.entries(r.counts) as [ReplacementKind, number][]) note(job, el.tag, kind, count);
  }
}

/** Shifts every value of a DA/DT element; a value that is not a date empties the element. */
function shiftDates(ds: DataSet, el: DicomElement, job: Job): void {
  if (!el.value || el.value.length === 0) return;
  const vr = effectiveVr(ds, el);
  const values = latin1(el.value).replace(/[\0 ]+$/, "").split("\\");
  const shifted = values.map((v) => shiftDateValue(v, vr, job.shiftDays!));
  if (shifted.some((v) => v === undefined)) {
    // Kept unshifted it would give the offset away (or be a real date): emptied, never kept; a
    // dummy where the IOD requires a value (an SR's Content Date is Type 1).
    const required = job.path.length === 0 && attributeType(el.tag, job.sopClassUid) === 1;
    setValue(el, required ? ascii(DUMMY_TEXT[vr], vr) : new Uint8Array(0));
    note(job, el.tag, "date", 1);
    return;
  }
  setValue(el, ascii(shifted.join("\\"), vr));
}

function remapUids(ds: DataSet, el: DicomElement, job: Job): void {
  if (!el.value || el.value.length === 0) return;
  if (effectiveVr(ds, el) !== "UI") return;
  const parts = latin1(el.value).replace(/[\0 ]+$/, "").split("\\");
  const out = parts.map((u) => job.ctx.uid(u.trim())).join("\\");
  setValue(el, ascii(out, "UI"));
}

const DUMMY_TEXT: Readonly<Record<string, string>> = {
  AE: "ANONYMIZED", AS: "000Y", CS: "ANONYMIZED", DA: "19000101", DS: "0", DT: "19000101000000", IS: "0",
  LO: "ANONYMIZED", LT: "ANONYMIZED", PN: "ANONYMIZED", SH: "ANONYMIZED", ST: "ANONYMIZED", TM: "000000",
  UC: "ANONYMIZED", UR: "", UT: "ANONYMIZED",
};

function setDummy(ds: DataSet, el: DicomElement, job: Job): void {
  const vr = effectiveVr(ds, el);
  if (vr === "UI") { if (!job.keepUids) remapUids(ds, el, job); return; }
  if (STRING_VRS.has(vr)) {
    setValue(el, ascii(DUMMY_TEXT[vr] ?? "", vr));
    return;
  }
  // Binary values: zeros of the same length, so counts and VM stay valid.
  if (el.fragments) return;
  setValue(el, new Uint8Array(el.value?.length ?? el.length));
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
