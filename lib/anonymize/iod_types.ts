/**
 * Which attributes with a combined action of Table E.1-1 (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) are
 * Type 1 or Type 2 in the IODs rtexport handles, so the combination resolves to what keeps the
 * object conformant: Type 1 → D (dummy), Type 2 → Z (empty), otherwise X (remove).
 *
 * The table is per IOD and per tag, wherever the attribute occurs in that IOD (top level or
 * nested): when an attribute has different types in different places of one IOD, the strictest
 * is listed. Types follow PS3.3 (2024b); 2C counts as 2 and 1C as 1. Attributes of an IOD not
 * listed here are Type 3 in it (or absent). SR documents (every SOP class under
 * 1.2.840.10008.5.1.4.1.1.88) and waveforms (…1.1.9) share one table each, as their IODs share the
 * modules that matter. For SOP classes not in this table see `resolveCombined`.
 */
import type { Tag } from "../dicom/tag.ts";
import { RT_SOP_CLASSES } from "../dicom/uids.ts";
import type { Action } from "./profile.ts";

type Types = ReadonlyMap<Tag, 1 | 2>;

const t = (entries: [number, 1 | 2][]): Types => new Map(entries);

// General Image: Content Date/Time 2C (image is temporally related). Contrast/Bolus: Agent 2.
const IMAGE: [number, 1 | 2][] = [[0x00080023, 2], [0x00080033, 2], [0x00180010, 2]];
// RT Series: Operators' Name 2.
const RT_SERIES: [number, 1 | 2][] = [[0x00081070, 2]];

const CT_MR = t([...IMAGE]);
// RT Structure Set: Approval module Reviewer Name 2C.
const RTSTRUCT = t([...RT_SERIES, [0x300e0008, 2]]);
// RT General Plan: RT Plan Date/Time 2; RT Beams: Treatment Machine Name 2; Approval: Reviewer Name 2C.
const RTPLAN = t([...RT_SERIES, [0x300a0006, 2], [0x300a0007, 2], [0x300a00b2, 2], [0x300e0008, 2]]);
// RT Dose includes General Image when it has pixel data.
const RTDOSE = t([...RT_SERIES, [0x00080023, 2], [0x00080033, 2]]);
// RT Image: RT Series Operators' Name 2; General Image content date/time 2C; Approval Reviewer
// Name 2C. (Its machine is Radiation Machine Name (3002,0020), which Table E.1-1 does not list.)
const RTIMAGE = t([...RT_SERIES, [0x00080023, 2], [0x00080033, 2], [0x300e0008, 2]]);
// RT General Treatment Record: Treatment Date/Time 2; Treatment Machine Sequence: Treatment
// Machine Name 2, Institution Name 2, Device Serial Number 2; RT Series Operators' Name 2.
const RTRECORD = t([
  ...RT_SERIES, [0x30080250, 2], [0x30080251, 2], [0x300a00b2, 2], [0x00080080, 2], [0x00181000, 2],
]);
// Spatial Registration: Content Date/Time 1; Enhanced General Equipment: Device Serial Number 1;
// Content Identification: Content Creator's Name 2; Registration Sequence > Referenced Image Sequence 1C.
const REG = t([[0x00080023, 1], [0x00080033, 1], [0x00181000, 1], [0x00700084, 2], [0x00081140, 1]]);
// Secondary Capture: General Image content date/time (2C).
const SC = t([[0x00080023, 2], [0x00080033, 2]]);
// US Image, US Multi-frame Image: General Image content date/time 2C, Contrast/Bolus Agent 2.
const US = t([...IMAGE]);
// SR documents and Key Object Selection: SR Document General / Key Object Document Content
// Date/Time 1; SR Document Series / Key Object Document Series Referenced Performed Procedure
// Step Sequence 2; Observation DateTime of content items 1C (kept as a dummy rather than removed).
const SR = t([[0x00080023, 1], [0x00080033, 1], [0x00081111, 2], [0x0040a032, 1]]);
// Waveforms (ECG, hemodynamic, audio, respiratory, …): Waveform Identification Content Date/Time
// and Acquisition DateTime 1; Acquisition Context Sequence 2.
const WAVEFORM = t([[0x00080023, 1], [0x00080033, 1], [0x0008002a, 1], [0x00400555, 2]]);

const SR_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.88.";
const WAVEFORM_CLASS_PREFIX = "1.2.840.10008.5.1.4.1.1.9.";

/** SR documents (Basic Text, Enhanced, Comprehensive, Key Object Selection, dose reports, CAD, …). */
export function isStructuredReport(sopClassUid: string | undefined): boolean {
  return sopClassUid !== undefined && sopClassUid.startsWith(SR_CLASS_PREFIX);
}

/**
 * Sequences that are Type 3 wherever a storage IOD has them (Referenced Study Sequence, in General
 * Study): for an IOD not in the table they are removed rather than emptied (dciodvfy rejects an
 * empty Type 3 sequence).
 */
const TYPE_3_SEQUENCES: ReadonlySet<Tag> = new Set([0x00081110]);

/** SOP class UID → types of the combined-action attributes in its IOD. */
export const IOD_TYPES: ReadonlyMap<string, Types> = new Map<string, Types>([
  [RT_SOP_CLASSES.CTImage, CT_MR],
  [RT_SOP_CLASSES.MRImage, CT_MR],
  [RT_SOP_CLASSES.RTStructureSet, RTSTRUCT],
  [RT_SOP_CLASSES.RTPlan, RTPLAN],
  [RT_SOP_CLASSES.RTIonPlan, RTPLAN],
  [RT_SOP_CLASSES.RTDose, RTDOSE],
  [RT_SOP_CLASSES.RTImage, RTIMAGE],
  [RT_SOP_CLASSES.RTBeamsTreatmentRecord, RTRECORD],
  [RT_SOP_CLASSES.RTIonBeamsTreatmentRecord, RTRECORD],
  [RT_SOP_CLASSES.SpatialRegistration, REG],
  [RT_SOP_CLASSES.DeformableSpatialRegistration, REG],
  [RT_SOP_CLASSES.SecondaryCapture, SC],
  ["1.2.840.10008.5.1.4.1.1.6.1", US], // US Image
  ["1.2.840.10008.5.1.4.1.1.3.1", US], // US Multi-frame Image
  ["1.2.840.10008.5.1.4.1.1.6", US], // US Image (retired)
  ["1.2.840.10008.5.1.4.1.1.3", US], // US Multi-frame Image (retired)
]);

function typesOf(sopClassUid: string | undefined): Types | undefined {
  if (sopClassUid === undefined) return undefined;
  const known = IOD_TYPES.get(sopClassUid);
  if (known) return known;
  if (sopClassUid.startsWith(SR_CLASS_PREFIX)) return SR;
  if (sopClassUid.startsWith(WAVEFORM_CLASS_PREFIX)) return WAVEFORM;
  return undefined;
}

/** The type (1 or 2) of an attribute in an IOD the table knows; undefined when Type 3 or unknown. */
export function attributeType(tag: Tag, sopClassUid: string | undefined): 1 | 2 | undefined {
  return typesOf(sopClassUid)?.get(tag);
}

/**
 * Resolves a combined action for one attribute of one IOD.
 *
 * Known IOD: Type 1 → D (or U for X/Z/U*: the sequence is kept, its UIDs replaced), Type 2 → Z,
 * otherwise X. Unknown IOD (SOP class not in `IOD_TYPES`): the choice that cannot break
 * conformance, in the order U, D, Z — a dummy or an empty value is never invalid where a removal
 * could be, and it carries no identifying information.
 */
export function resolveCombined(action: Action, tag: Tag, sopClassUid: string | undefined): "D" | "Z" | "X" | "U" {
  const parts = action.split("/");
  const allows = (a: string) => parts.includes(a) || (a === "U" && parts.includes("U*"));
  const table = typesOf(sopClassUid);
  if (!table) {
    if (allows("X") && TYPE_3_SEQUENCES.has(tag)) return "X";
    if (allows("U")) return "U";
    if (allows("D")) return "D";
    if (allows("Z")) return "Z";
    return "X";
  }
  const type = table.get(tag);
  if (type === 1) {
    if (allows("U")) return "U";
    if (allows("D")) return "D";
    return allows("Z") ? "Z" : "X";
  }
  if (type === 2) {
    if (allows("Z")) return "Z";
    if (allows("D")) return "D";
    return "X";
  }
  return allows("X") ? "X" : allows("Z") ? "Z" : "D";
}
