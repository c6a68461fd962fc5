import { SOP_CLASSES } from "./_sop_classes.ts";

/**
 * Implicit VR Little Endian, DICOM's default transfer syntax.
 *
 * @example
 * ```ts
 * const bytes = encodeDataSet(ds, IMPLICIT_VR_LITTLE_ENDIAN);
 * ```
 */
export const IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2";
/**
 * Explicit VR Little Endian.
 *
 * @example
 * ```ts
 * const meta = buildMeta(RT_SOP_CLASSES.RTPlan, "2.25.1", EXPLICIT_VR_LITTLE_ENDIAN);
 * ```
 */
export const EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1";
/**
 * Deflated Explicit VR Little Endian (the data set is compressed with deflate).
 *
 * @example
 * ```ts
 * const bytes = encodeFile(ds, { transferSyntaxUid: DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN });
 * ```
 */
export const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99";
/**
 * Explicit VR Big Endian (retired, still met in old archives).
 *
 * @example
 * ```ts
 * transferSyntaxEncoding(EXPLICIT_VR_BIG_ENDIAN).littleEndian; // false
 * ```
 */
export const EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2";

/** The uncompressed transfer syntaxes, between which transcoding is lossless and simple. */
export const NATIVE_TRANSFER_SYNTAXES: readonly string[] = [
  EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN,
];

/**
 * How a transfer syntax encodes the data set (everything not listed is explicit VR little endian).
 *
 * @example
 * ```ts
 * transferSyntaxEncoding(IMPLICIT_VR_LITTLE_ENDIAN); // { littleEndian: true, explicitVR: false, deflated: false }
 * ```
 */
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

/**
 * Transfer syntax UID → name, for the native syntaxes and the common compressed ones.
 *
 * @example
 * ```ts
 * TRANSFER_SYNTAX_NAMES[readDicomFile("a.dcm").transferSyntaxUid] ?? "unknown";
 * ```
 */
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

/**
 * The Verification SOP class (C-ECHO).
 *
 * @example
 * ```ts
 * const contexts = [{ abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] }];
 * ```
 */
export const VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1";

/**
 * SOP class UID → name, for every storage class of the standard.
 *
 * @example
 * ```ts
 * SOP_CLASS_NAMES.get(RT_SOP_CLASSES.RTPlan); // "RT Plan Storage"
 * ```
 */
export const SOP_CLASS_NAMES: ReadonlyMap<string, string> = new Map(SOP_CLASSES.map((s) => [s.uid, s.name]));

/**
 * Storage SOP classes (all of the standard's, RT ones included), as proposed for C-STORE and C-GET.
 *
 * @example
 * ```ts
 * STORAGE_SOP_CLASSES.includes(RT_SOP_CLASSES.RTDose); // true
 * ```
 */
export const STORAGE_SOP_CLASSES: readonly string[] = SOP_CLASSES.map((s) => s.uid);

/**
 * The radiotherapy SOP class UIDs by name (RT Plan, Structure Set, Dose, Image, treatment records,
 * ion plans, registrations).
 *
 * @example
 * ```ts
 * readDicomFile("RP1.dcm").dataset.string("SOPClassUID") === RT_SOP_CLASSES.RTPlan;
 * ```
 */
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
