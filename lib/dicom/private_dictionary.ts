/**
 * Private data elements of the vendors rtexport meets in radiotherapy exports, with their names
 * and VRs, so that implicit VR files read them with the right VR (not UN), `show`/`search` can
 * name them and de-identification can tell a number from free text.
 *
 * Source: the vendors' DICOM conformance statements. Accuray iDMS / Precision TPS 2.x–3.0.x
 * (document 1066787 Rev. A, section 23.2, "Data Dictionary of Private Attributes", and the module
 * tables 13.3–13.5): TOMO_HA_01, TOMO_DD_01, the Varian VISION blocks 3243/3249/3275 it writes for
 * the Varian OIS interface, and the GE/Philips PET and iCAD blocks it reads.
 *
 * A private element is found by its private creator (the value of (gggg,00bb)), its group and
 * the low byte of its element number: the block byte `bb` is chosen by the writer and differs
 * from file to file (PS3.5 7.8.1).
 */
import { elementOf, groupOf, type Tag } from "./tag.ts";

/** One private data element. */
export interface PrivateDictionaryEntry {
  /** The private creator, as the vendor writes it. */
  creator: string;
  group: number;
  /** Low byte of the element number (the block byte varies). */
  element: number;
  vr: string;
  vm: string;
  name: string;
  /** Where the entry was read, when the source says something that needs a note. */
  note?: string;
}

type Row = readonly [element: number, vr: string, vm: string, name: string, note?: string];

function block(creator: string, group: number, rows: readonly Row[]): PrivateDictionaryEntry[] {
  return rows.map(([element, vr, vm, name, note]) => ({ creator, group, element, vr, vm, name, ...(note ? { note } : {}) }));
}

/** Every private element rtexport knows (see the module comment for the sources). */
export const PRIVATE_DICTIONARY: readonly PrivateDictionaryEntry[] = [
  // Accuray TomoTherapy / Radixact (ring gantry) plan and treatment record attributes.
  ...block("TOMO_HA_01", 0x300d, [
    [0x10, "CS", "1", "Tomo Structure Blocking"],
    [0x12, "IS", "1", "Tomo Overlap Precedence"],
    [0x14, "DS", "1", "Tomo Modulation Factor"],
    [0x16, "IS", "1", "Tomo Target Minimum Dose Penalty"],
    [0x17, "IS", "1", "Tomo Target Maximum Dose Penalty"],
    [0x18, "IS", "1", "Tomo Organ At Risk Maximum Dose Penalty"],
    [0x19, "IS", "1", "Tomo Organ At Risk Full Volume Dose Penalty"],
    [0x1b, "CS", "1", "Tomo Primary Prescription Type"],
    [0x40, "DS", "1", "Tomo Gantry Period"],
    [0x50, "UI", "1", "Tomo Machine UID"],
    [0x60, "DS", "1", "Tomo Treatment Pitch"],
    [0x80, "DS", "1", "Tomo Couch Speed"],
    [0xa4, "CS", "1", "Tomo Plan Geometry"],
    [0xa7, "DS", "64", "Tomo Projection Sinogram Data"],
    [0xa9, "DS", "3", "Tomo Reference Isocenter"],
    [0xb0, "DS", "3", "Tomo Registration Translations"],
    [0xb1, "DS", "3", "Tomo Registration Rotations"],
    [0xb5, "DS", "1", "Tomo Delivered Secondary Meterset"],
    [0xc0, "SQ", "1", "Tomo Plan IVDT Sequence"],
    [0xc1, "DS", "1", "Tomo IVDT HU Entry"],
    [0xc2, "DS", "1", "Tomo IVDT Density Entry"],
  ]),
  // Accuray TomoTherapy / Radixact detector (raw data) attributes; the creator sits at (300D,0020).
  ...block("TOMO_DD_01", 0x300d, [
    [0x10, "SH", "1", "Procedure Number"],
    [0x11, "CS", "1", "Procedure Type"],
    [0x12, "CS", "1", "Procedure Purpose"],
    [0x20, "IS", "1", "Detector Channel Count"],
    [0x21, "IS", "1", "Dataset Length"],
    [0x22, "DS", "1", "Detector Data Scaling Factor"],
    [0x24, "CS", "1", "Compression Type"],
    [0x25, "IS", "1", "Compression Factor"],
    [0x26, "SQ", "1", "Active Projection Beam Sequence"],
    [0x30, "CS", "1", "Detector Unit Of Measure"],
    [0x31, "DS", "1", "Detector Element Width"],
    [0x32, "DS", "1", "Curvature Radius"],
    [0x33, "DS", "1", "Surface To Axis Distance"],
    [0x34, "DS", "1", "Surface To Center Distance"],
    [0x35, "IS", "2", "Channel Range"],
    [0x36, "IS", "1", "Dose Chamber Start Channel", "in module table 13.5 but not in the data dictionary 23.2.2: VR assumed IS (a zero-based channel index, like Channel Range)"],
  ]),
  // Varian OIS interface attributes written by Accuray (and by Varian systems).
  ...block("Varian Medical Systems VISION 3243", 0x3243, [
    [0x09, "SH", "1", "Beam Secondary Name"],
  ]),
  ...block("Varian Medical Systems VISION 3249", 0x3249, [
    [0x00, "DS", "1", "Maximum Treatment Time"],
    [0x10, "UI", "1", "Referenced Primary Dose Reference UID"],
  ]),
  ...block("Varian Medical Systems VISION 3275", 0x3275, [
    [0x00, "LO", "1", "Registration Sub Type", "the data dictionary 23.2.5 says DS, but the value is 'Online3D' and the Spatial Registration module table says LO: LO"],
  ]),
  // PET and MR attributes the Precision TPS reads (same conformance statement, 23.2.3, 23.2.4, 23.2.6).
  ...block("GEMS_PETD_01", 0x0009, [
    [0x0d, "DT", "1", "Scan DateTime"],
    [0x38, "FL", "1", "Tracer Activity"],
    [0x39, "DT", "1", "Measured DateTime"],
    [0x3b, "DT", "1", "Administered DateTime"],
    [0x3c, "FL", "1", "Post Injection Activity"],
    [0x3d, "DT", "1", "Post Injection DateTime"],
    [0x3f, "FL", "1", "Half Life"],
  ]),
  ...block("Philips PET Private Group", 0x7053, [
    [0x00, "DS", "1", "SUV Factor"],
    [0x09, "DS", "1", "Activity Concentration Scale Factor", "not in the Accuray statement; from PS3.15 Table E.3.10-1"],
  ]),
  ...block("iCAD PK", 0x3335, [
    [0x70, "LO", "1", "PERM CAP Value"],
  ]),
];

/** A creator as a lookup key: trimmed (values are space padded) and upper case. */
export function creatorKey(creator: string): string {
  return creator.replace(/[\0 ]+$/, "").trim().toUpperCase();
}

let byKey: Map<string, PrivateDictionaryEntry> | undefined;

/** Looks up a private element by its creator, group and element (any block). */
export function lookupPrivate(creator: string, tag: Tag): PrivateDictionaryEntry | undefined {
  if (!byKey) {
    byKey = new Map();
    for (const e of PRIVATE_DICTIONARY) byKey.set(`${creatorKey(e.creator)}|${e.group}|${e.element}`, e);
  }
  return byKey.get(`${creatorKey(creator)}|${groupOf(tag)}|${elementOf(tag) & 0xff}`);
}

/** The VR of a private element from the dictionary, or undefined when it is not listed. */
export function privateVr(creator: string, tag: Tag): string | undefined {
  return lookupPrivate(creator, tag)?.vr;
}
