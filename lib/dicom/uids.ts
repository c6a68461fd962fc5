import { SOP_CLASSES } from "./_sop_classes.ts";

export const IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2";
export const EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1";
export const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99";
export const EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2";

/** The uncompressed transfer syntaxes, between which transcoding is lossless and simple. */
export const NATIVE_TRANSFER_SYNTAXES: readonly string[] = [
  EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN,
];

/** How a transfer syntax encodes the data set (everything not listed is explicit VR little endian). */
export function transferSyntaxEncoding(uid: string): { littleEndian: boolean; explicitVR: boolean; deflated: boolean } {
  switch (uid) {
    case IMPLICIT_VR_LITTLE_ENDIAN: return { littleEndian: true, explicitVR: false, deflated: false };
    case EXPLICIT_VR_BIG_ENDIAN: return { littleEndian: false, explicitVR: true, deflated: false };
    case DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
    case "1.2.840.10008.1.2.1.98": // Encapsulated Uncompressed... not deflated; kept for clarity below
      return { littleEndian: true, explicitVR: true, deflated: uid === DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN };
    default: return { littleEndian: true, explicitVR: true, deflated: false };
  }
}

export const TRANSFER_SYNTAX_NAMES: Readonly<Record<string, string>> = {
  [IMPLICIT_VR_LITTLE_ENDIAN]: "Implicit VR Little Endian",
  [EXPLICIT_VR_LITTLE_ENDIAN]: "Explicit VR Little Endian",
  [DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN]: "Deflated Explicit VR Little Endian",
  [EXPLICIT_VR_BIG_ENDIAN]: "Explicit VR Big Endian",
  "1.2.840.10008.1.2.4.50": "JPEG Baseline (Process 1)",
  "1.2.840.10008.1.2.4.51": "JPEG Extended (Process 2 & 4)",
  "1.2.840.10008.1.2.4.57": "JPEG Lossless, Non-Hierarchical (Process 14)",
  "1.2.840.10008.1.2.4.70": "JPEG Lossless, Non-Hierarchical, First-Order Prediction",
  "1.2.840.10008.1.2.4.80": "JPEG-LS Lossless",
  "1.2.840.10008.1.2.4.81": "JPEG-LS Lossy (Near-Lossless)",
  "1.2.840.10008.1.2.4.90": "JPEG 2000 (Lossless Only)",
  "1.2.840.10008.1.2.4.91": "JPEG 2000",
  "1.2.840.10008.1.2.5": "RLE Lossless",
};

export const VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1";

/** SOP class UID → name, for every storage class of the standard. */
export const SOP_CLASS_NAMES: ReadonlyMap<string, string> = new Map(SOP_CLASSES.map((s) => [s.uid, s.name]));

/** Storage SOP classes (all of the standard's, RT ones included). */
export const STORAGE_SOP_CLASSES: readonly string[] = SOP_CLASSES.map((s) => s.uid);

export const RT_SOP_CLASSES = {
  RTImage: "1.2.840.10008.5.1.4.1.1.481.1",
  RTDose: "1.2.840.10008.5.1.4.1.1.481.2",
  RTStructureSet: "1.2.840.10008.5.1.4.1.1.481.3",
  RTBeamsTreatmentRecord: "1.2.840.10008.5.1.4.1.1.481.4",
  RTPlan: "1.2.840.10008.5.1.4.1.1.481.5",
  RTBrachyTreatmentRecord: "1.2.840.10008.5.1.4.1.1.481.6",
  RTTreatmentSummaryRecord: "1.2.840.10008.5.1.4.1.1.481.7",
  RTIonPlan: "1.2.840.10008.5.1.4.1.1.481.8",
  RTIonBeamsTreatmentRecord: "1.2.840.10008.5.1.4.1.1.481.9",
  SpatialRegistration: "1.2.840.10008.5.1.4.1.1.66.1",
  DeformableSpatialRegistration: "1.2.840.10008.5.1.4.1.1.66.3",
  CTImage: "1.2.840.10008.5.1.4.1.1.2",
  MRImage: "1.2.840.10008.5.1.4.1.1.4",
  PETImage: "1.2.840.10008.5.1.4.1.1.128",
  SecondaryCapture: "1.2.840.10008.5.1.4.1.1.7",
} as const;
