// Test helper for the de-identification audit (issue 15): plants identifiers in the places
// de-identification tools miss into pydicom's test objects (Debian python3-pydicom), then has
// DCMTK's dcmconv write each one in Implicit and in Explicit VR Little Endian, with Latin-1
// (ISO_IR 100) or UTF-8 (ISO_IR 192) text. The scans at the end check outputs byte by byte and
// token by token.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { characterSet } from "../lib/dicom/charset.ts";
import { DataSet, padValue } from "../lib/dicom/dataset.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { CHARSET_VRS } from "../lib/dicom/vr.ts";
import { encodeFile } from "../lib/dicom/writer.ts";

export const PYDICOM = "/usr/lib/python3/dist-packages/pydicom/data/test_files";

/** The input kinds and the pydicom object each is planted into. */
export const KINDS: Readonly<Record<string, string>> = {
  CT: "CT_small.dcm",
  MR: "MR_small.dcm",
  RTPLAN: "rtplan.dcm",
  RTSTRUCT: "rtstruct.dcm",
  RTDOSE: "rtdose.dcm",
  US: "ExplVR_BigEnd.dcm",
  SR: "reportsi.dcm",
  ECG: "waveform_ecg.dcm",
  SC: "SC_rgb_small_odd.dcm",
};

// The patient is Lee^Ann, the referring physician Jo^Max: names that are also parts of ordinary
// words (Annotated, maximum, Joint) and of the ROI Esophagus_Lee.
export const PATIENT = "Lee^Ann";
export const PHYSICIAN = "Jo^Max";
export const SHORT_NAMES = ["Lee", "Ann", "Jo", "Max"];
/** Another patient, named only inside a Content Sequence (non-ASCII, so both encodings are tested). */
export const OTHER_PATIENT = "Müller^Jörg";

/** Identifiers that must not appear in any output byte (as UTF-8 or Latin-1). */
export const MARKERS = {
  patientId: "MRN4471902",
  accession: "ACC998877",
  otherPatientId: "OTHER-55123", // Other Patient IDs Sequence > Patient ID
  requestedProcedureId: "RPID-77031", // Request Attributes Sequence > Requested Procedure ID
  requestAccession: "ACC-REQ-6612", // Request Attributes Sequence > Accession Number
  scheduledStepId: "SPS-88120", // Request Attributes Sequence > Scheduled Procedure Step ID
  issuerEntity: "UEID-HOSP-9931", // Issuer of Patient ID Qualifiers Sequence > Universal Entity ID
  otherPatientMrn: "OTH-PAT-5512309", // Content Sequence > Text Value (non-SR objects)
  textUid: "1.2.826.0.1.3680043.99.7.1.2.3", // a UID copied into Position Reference Indicator, Image Comments
  textUid2: "1.2.826.0.1.3680043.99.7.1.2.4", // … and into Protocol Name
  otherFamily: "Müller",
  otherGiven: "Jörg",
  privatePath: "Lee_Ann_MRN", // a Varian Beam Secondary Name (a path) in a private slot
};

/** Dates planted (and how the modified-dates option must treat them). */
export const DATES = {
  study: "20190429",
  legacySeries: "2019.04.29", // ACR-NEMA style DA in Series Date
  partialAcquisition: "201904", // a partial date in Acquisition Date
  invalidContent: "20190431", // April 31st: not a date, must be emptied
  calibration: "20190415", // Date of Last Calibration (device identity keeps it)
  calibrationDateTime: "20190415093000", // DateTime of Last Calibration
  beamHold: "20190416101500.25+0200", // Beam Hold Transition DateTime
};

export type Encoding = "implicit" | "explicit";
export type Charset = "latin1" | "utf8";

/** One planted input file. */
export interface Planted {
  kind: string;
  encoding: Encoding;
  charset: Charset;
  path: string;
}

function put(ds: DataSet, tag: number, vr: string, text: string): void {
  const bytes = CHARSET_VRS.has(vr) ? ds.charset.encode(text, vr === "PN") : new TextEncoder().encode(text);
  const value = padValue(bytes, vr);
  ds.set({ tag, vr, value, offset: 0, length: value.length });
}

function item(parent: DataSet, fill: (i: DataSet) => void): DataSet {
  const i = new DataSet({ littleEndian: parent.littleEndian, explicitVR: parent.explicitVR }, parent.charset);
  fill(i);
  return i;
}

function seq(ds: DataSet, tag: number, items: DataSet[]): void {
  ds.set({ tag, vr: "SQ", items, offset: 0, length: 0 });
}

function binary(ds: DataSet, tag: number, vr: string, bytes: Uint8Array): void {
  ds.set({ tag, vr, value: bytes, offset: 0, length: bytes.length });
}

/** Plants every case of the audit into one data set (mutates it). */
export function plant(ds: DataSet, kind: string, charset: Charset): void {
  const terms = charset === "latin1" ? ["ISO_IR 100"] : ["ISO_IR 192"];
  put(ds, 0x00080005, "CS", terms[0]);
  ds.charset = characterSet(terms);
  const m = MARKERS;
  put(ds, 0x00100010, "PN", PATIENT);
  put(ds, 0x00100020, "LO", m.patientId);
  put(ds, 0x00100030, "DA", "19820210");
  put(ds, 0x00080050, "SH", m.accession);
  put(ds, 0x00080090, "PN", PHYSICIAN);
  // point 3: identifiers inside sequences, copied into free text
  seq(ds, 0x00101002, [item(ds, (i) => {
    put(i, 0x00100020, "LO", m.otherPatientId);
    put(i, 0x00100022, "CS", "TEXT");
  })]);
  seq(ds, 0x00400275, [item(ds, (i) => {
    put(i, 0x00080050, "SH", m.requestAccession);
    put(i, 0x00401001, "SH", m.requestedProcedureId);
    put(i, 0x00400009, "SH", m.scheduledStepId);
  })]);
  // point 8: the issuer of the MRN
  seq(ds, 0x00100024, [item(ds, (i) => {
    put(i, 0x00400032, "UT", m.issuerEntity);
    put(i, 0x00400033, "CS", "ISO");
  })]);
  put(ds, 0x00281055, "LO", `${m.patientId} ${m.otherPatientId} Lee`); // Window Center & Width Explanation: not in Table E.1-1
  // point 7: UIDs and IDs in text
  put(ds, 0x00201040, "LO", m.textUid); // Position Reference Indicator: not listed
  put(ds, 0x00204000, "LT", `Jo reviewed Lee Ann ${m.requestAccession}, see ${m.textUid}; max dose ok`); // Image Comments: X, C
  put(ds, 0x00181030, "LO", `${m.scheduledStepId} ${m.textUid2}`); // Protocol Name: X/D, C
  // points 1 and 2: dates
  put(ds, 0x00080020, "DA", DATES.study);
  put(ds, 0x00080021, "DA", DATES.legacySeries);
  put(ds, 0x00080022, "DA", DATES.partialAcquisition);
  put(ds, 0x00080023, "DA", DATES.invalidContent);
  put(ds, 0x00181200, "DA", DATES.calibration);
  put(ds, 0x00181202, "DT", DATES.calibrationDateTime);
  put(ds, 0x300c0127, "DT", DATES.beamHold);
  // point 6: curves and overlay comments (read as UN from Implicit VR files before the dictionary knew them)
  put(ds, 0x50000022, "LO", `Lee ${m.patientId}`);
  put(ds, 0x50002500, "LO", `Ann ${m.accession}`);
  binary(ds, 0x50000005, "US", Uint8Array.of(1, 0));
  put(ds, 0x60004000, "LT", `Jo ${m.otherPatientId}`);
  binary(ds, 0x60000010, "US", Uint8Array.of(8, 0));
  binary(ds, 0x60000011, "US", Uint8Array.of(8, 0));
  put(ds, 0x60000040, "CS", "G");
  binary(ds, 0x60000050, "SS", Uint8Array.of(1, 0, 1, 0));
  binary(ds, 0x60000100, "US", Uint8Array.of(1, 0));
  binary(ds, 0x60000102, "US", Uint8Array.of(0, 0));
  binary(ds, 0x60003000, "OW", new Uint8Array(8));
  // point 10: a safe-private slot holding text; numeric and path values of the seed-002 vendors
  put(ds, 0x00190011, "LO", "SIEMENS MR HEADER");
  put(ds, 0x0019110c, "LO", `Lee Ann ${m.patientId}`); // B value slot with text
  binary(ds, 0x0019110e, "FD", new Uint8Array(new Float64Array([0.5, 0.25, 0.125]).buffer));
  put(ds, 0x300d0010, "LO", "TOMO_HA_01");
  put(ds, 0x300d1040, "DS", "12.5"); // gantry period: numeric, on the safe list
  put(ds, 0x300d10a4, "CS", "HELICAL"); // plan geometry: coded, kept only by the rt-research preset's row
  put(ds, 0x32430010, "LO", "Varian Medical Systems VISION 3243");
  put(ds, 0x32431009, "SH", m.privatePath); // Beam Secondary Name: a path, never safe
  // point 4: a Content Sequence in an object that is not an SR document
  if (kind !== "SR") {
    seq(ds, 0x0040a730, [item(ds, (i) => {
      put(i, 0x0040a010, "CS", "CONTAINS");
      put(i, 0x0040a040, "CS", "TEXT");
      put(i, 0x0040a160, "UT", `Other patient ${OTHER_PATIENT.replace("^", " ")} ${m.otherPatientMrn}`);
      put(i, 0x0040a123, "PN", OTHER_PATIENT);
    })]);
  } else {
    // The SR's own content: its text values name the patient.
    for (const top of ds.items(0x0040a730)) {
      if (top.has(0x0040a160)) put(top, 0x0040a160, "UT", `Reported for Lee Ann ${m.patientId}`);
    }
  }
  // point 9: Referenced Study Sequence, Type 3 in General Study
  seq(ds, 0x00081110, [item(ds, (i) => {
    put(i, 0x00081150, "UI", "1.2.840.10008.3.1.2.3.1");
    put(i, 0x00081155, "UI", "1.2.826.0.1.3680043.99.7.9.9");
  })]);
  // point 5: descriptors that contain the names only as parts of words, or as words
  if (kind === "RTSTRUCT") {
    const rois = ds.items(0x30060020);
    const names = ["Esophagus_Lee", "PTV_planned", "Lee Ann max dose ring"];
    rois.forEach((r, n) => put(r, 0x30060026, "LO", names[n % names.length]));
  }
  if (kind === "RTPLAN") {
    put(ds, 0x300a0002, "SH", "Annotated plan");
    put(ds, 0x300a0004, "ST", `${m.requestedProcedureId} Lee`);
    const beam = ds.items(0x300a00b0)[0];
    if (beam) put(beam, 0x300a00c3, "ST", `for ${m.scheduledStepId} Ann`);
  }
  if (kind === "RTDOSE") put(ds, 0x30040006, "LO", `${m.requestedProcedureId} for Lee`);
}

/** dcmconv, so every planted input is a file DCMTK wrote. */
function dcmconv(src: string, dest: string, encoding: Encoding): void {
  const r = spawnSync("dcmconv", [encoding === "implicit" ? "+ti" : "+te", src, dest], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`dcmconv failed for ${src}: ${r.stderr}`);
}

/** Plants every kind in every encoding and character set into `dir`; returns the files. */
export function plantAll(dir: string): Planted[] {
  const out: Planted[] = [];
  for (const [kind, base] of Object.entries(KINDS)) {
    for (const charset of ["latin1", "utf8"] as const) {
      const f = readDicomFile(join(PYDICOM, base), { full: true });
      plant(f.dataset, kind, charset);
      const staged = join(dir, `${kind}-${charset}.staged.dcm`);
      writeFileSync(staged, encodeFile(f.dataset, { transferSyntaxUid: "1.2.840.10008.1.2.1" }));
      for (const encoding of ["implicit", "explicit"] as const) {
        const path = join(dir, "in", `${kind}-${charset}-${encoding}.dcm`);
        dcmconv(staged, path, encoding);
        out.push({ kind, encoding, charset, path });
      }
    }
  }
  return out;
}

// UIDs that name a class or a scheme, not an instance: kept by design (a private context group, a
// vendor's SOP class, the implementation class of the writer).
const CLASS_TAGS = new Set([0x00020002, 0x00020010, 0x00020012, 0x00080016, 0x00081150, 0x0008010c, 0x00080117, 0x00080118, 0x0008010d]);

/** Every instance UID of a file's UI elements (any depth); standard and class UIDs excepted. */
export function instanceUids(path: string): string[] {
  const out: string[] = [];
  const walk = (ds: DataSet) => {
    for (const el of ds.elements.values()) {
      if (el.items) { for (const i of el.items) walk(i); continue; }
      if (el.vr !== "UI" || CLASS_TAGS.has(el.tag)) continue;
      for (const u of ds.strings(el.tag)) if (u.length >= 9 && !u.startsWith("1.2.840.10008.")) out.push(u);
    }
  };
  walk(readDicomFile(path, { full: true }).dataset);
  walk(readDicomFile(path, { full: true }).meta);
  return out;
}

/** Byte forms of a marker: UTF-8 and Latin-1. */
export function byteForms(text: string): Buffer[] {
  const utf8 = Buffer.from(text, "utf8");
  const latin1 = Buffer.from(text, "latin1");
  return utf8.equals(latin1) ? [utf8] : [utf8, latin1];
}

/** Markers found in a file's bytes. */
export function markersIn(path: string, markers: readonly string[]): string[] {
  const bytes = readFileSync(path);
  return markers.filter((m) => byteForms(m).some((b) => bytes.includes(b)));
}

/**
 * Whole-token occurrences of the short names (as planted: capitalized or upper case) in every
 * value that is not bulk data, UN values read as text in both encodings; `where` names the tag.
 */
export function nameTokensIn(path: string, names: readonly string[]): string[] {
  const wanted = new Set(names.flatMap((n) => [n, n.toUpperCase()]));
  const hits: string[] = [];
  const scan = (text: string, where: string) => {
    for (const token of text.split(/[^\p{L}\p{N}_]+/u)) if (wanted.has(token)) hits.push(`${token} in ${where}`);
  };
  const walk = (ds: DataSet, where: string) => {
    for (const el of ds.elements.values()) {
      const at = `${where}(${el.tag.toString(16).padStart(8, "0")})`;
      if (el.items) { el.items.forEach((i, n) => walk(i, `${at}[${n}]/`)); continue; }
      if (!el.value || el.tag === 0x7fe00010 || ["OB", "OW", "OF", "OD", "OL", "OV", "FL", "FD", "SL", "SS", "UL", "US", "AT"].includes(el.vr)) continue;
      scan(Buffer.from(el.value).toString("latin1"), at);
      scan(Buffer.from(el.value).toString("utf8"), at);
    }
  };
  walk(readDicomFile(path, { full: true }).dataset, "");
  return hits;
}

/** Every DA/DT value (any depth) as [tag path, value]. */
export function dateValues(path: string): [string, string][] {
  const out: [string, string][] = [];
  const walk = (ds: DataSet, where: string) => {
    for (const el of ds.elements.values()) {
      const at = `${where}(${el.tag.toString(16).padStart(8, "0")})`;
      if (el.items) { el.items.forEach((i, n) => walk(i, `${at}[${n}]/`)); continue; }
      if (el.vr !== "DA" && el.vr !== "DT") continue;
      for (const v of ds.strings(el.tag)) out.push([at, v]);
    }
  };
  walk(readDicomFile(path, { full: true }).dataset, "");
  return out;
}

/** Days between two YYYYMMDD dates (a − b). */
export function daysBetween(a: string, b: string): number {
  const t = (d: string) => Date.UTC(+d.slice(0, 4), +d.slice(4, 6) - 1, +d.slice(6, 8));
  return (t(a) - t(b)) / 86_400_000;
}
