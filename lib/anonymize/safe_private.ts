/**
 * The safe-private list used by the Retain Safe Private Option (PS3.15 E.3.10): private
 * attributes known to carry no identifying information, keyed by private creator, group and the
 * element's low byte (the block byte varies from file to file).
 *
 * Reviewed entry by entry (issue 15): what each holds, its VR, and why it cannot identify anyone.
 * Sources: PS3.15 Table E.3.10-1 (diffusion and PET quantitation values) and, for radiotherapy,
 * the Accuray iDMS / Precision conformance statement (TOMO_HA_01, TOMO_DD_01, Varian VISION
 * 3249; see lib/dicom/private_dictionary.ts).
 *
 * Rule: a listed attribute is kept only when its value is numeric (IS, DS, US, SS, UL, SL, FL,
 * FD, SV, UV, OF, OD, OL, OV) — the VR the file states, or the listed VR when an implicit VR file
 * leaves it UN. Text VRs are never kept by this list, even in a listed slot: a vendor's slot can
 * hold free text in another software version, or be reused. Two kinds of non-numeric entries are
 * allowed, marked in the list: sequences (kept so that their listed numeric items can stay; every
 * item is judged by the same rules) and UIDs (kept remapped like every other UID, so a reference
 * still resolves). Coded strings (CS) of Table E.3.10-1 (e.g. Siemens diffusion directionality)
 * are not kept; a site that wants them adds a profile row `(0019,xx0d),K,SIEMENS MR HEADER`.
 */
import { privateKey } from "./profile.ts";

/** [private creator, group, element low byte, VR, what it holds]. */
export const SAFE_PRIVATE_ATTRIBUTES: readonly (readonly [string, number, number, string, string])[] = [
  // PS3.15 Table E.3.10-1
  ["SIEMENS MR HEADER", 0x0019, 0x0c, "IS", "B value"],
  ["SIEMENS MR HEADER", 0x0019, 0x0e, "FD", "diffusion gradient direction"],
  ["SIEMENS MR HEADER", 0x0019, 0x27, "FD", "B matrix"],
  ["GEMS_PARM_01", 0x0043, 0x39, "IS", "slop integers 6–9 (b value)"],
  ["GEMS_ACQU_01", 0x0019, 0xbb, "DS", "user data 20 (diffusion)"],
  ["GEMS_ACQU_01", 0x0019, 0xbc, "DS", "user data 21 (diffusion)"],
  ["GEMS_ACQU_01", 0x0019, 0xbd, "DS", "user data 22 (diffusion)"],
  ["Philips Imaging DD 001", 0x2001, 0x03, "FL", "diffusion B-factor"],
  ["Philips MR Imaging DD 001", 0x2005, 0xb0, "FL", "diffusion direction RL"],
  ["Philips MR Imaging DD 001", 0x2005, 0xb1, "FL", "diffusion direction AP"],
  ["Philips MR Imaging DD 001", 0x2005, 0xb2, "FL", "diffusion direction FH"],
  ["Philips PET Private Group", 0x7053, 0x00, "DS", "SUV factor"],
  ["Philips PET Private Group", 0x7053, 0x09, "DS", "activity concentration scale factor"],
  // Accuray TomoTherapy / Radixact plan and record parameters a TPS needs to reload a helical plan:
  // machine settings, optimisation weights, geometry and the delivered meterset. Numbers only.
  ["TOMO_HA_01", 0x300d, 0x12, "IS", "overlap precedence"],
  ["TOMO_HA_01", 0x300d, 0x14, "DS", "modulation factor"],
  ["TOMO_HA_01", 0x300d, 0x16, "IS", "target minimum dose penalty"],
  ["TOMO_HA_01", 0x300d, 0x17, "IS", "target maximum dose penalty"],
  ["TOMO_HA_01", 0x300d, 0x18, "IS", "organ at risk maximum dose penalty"],
  ["TOMO_HA_01", 0x300d, 0x19, "IS", "organ at risk full volume dose penalty"],
  ["TOMO_HA_01", 0x300d, 0x40, "DS", "gantry period"],
  ["TOMO_HA_01", 0x300d, 0x60, "DS", "treatment pitch"],
  ["TOMO_HA_01", 0x300d, 0x80, "DS", "couch speed"],
  ["TOMO_HA_01", 0x300d, 0xa7, "DS", "projection sinogram data"],
  ["TOMO_HA_01", 0x300d, 0xa9, "DS", "reference isocenter"],
  ["TOMO_HA_01", 0x300d, 0xb0, "DS", "registration translations"],
  ["TOMO_HA_01", 0x300d, 0xb1, "DS", "registration rotations"],
  ["TOMO_HA_01", 0x300d, 0xb5, "DS", "delivered secondary meterset"],
  ["TOMO_HA_01", 0x300d, 0xc0, "SQ", "plan IVDT sequence (its HU and density entries)"],
  ["TOMO_HA_01", 0x300d, 0xc1, "DS", "IVDT HU entry"],
  ["TOMO_HA_01", 0x300d, 0xc2, "DS", "IVDT density entry"],
  // Accuray detector (raw data) description: counts, scaling and detector geometry.
  ["TOMO_DD_01", 0x300d, 0x20, "IS", "detector channel count"],
  ["TOMO_DD_01", 0x300d, 0x21, "IS", "dataset length"],
  ["TOMO_DD_01", 0x300d, 0x22, "DS", "detector data scaling factor"],
  ["TOMO_DD_01", 0x300d, 0x25, "IS", "compression factor"],
  ["TOMO_DD_01", 0x300d, 0x26, "SQ", "active projection beam sequence (beam numbers, control point indices, trims)"],
  ["TOMO_DD_01", 0x300d, 0x31, "DS", "detector element width"],
  ["TOMO_DD_01", 0x300d, 0x32, "DS", "curvature radius"],
  ["TOMO_DD_01", 0x300d, 0x33, "DS", "surface to axis distance"],
  ["TOMO_DD_01", 0x300d, 0x34, "DS", "surface to center distance"],
  ["TOMO_DD_01", 0x300d, 0x35, "IS", "channel range"],
  ["TOMO_DD_01", 0x300d, 0x36, "IS", "dose chamber start channel"],
  // Varian OIS fraction scheme attributes (written by Accuray for ARIA).
  ["Varian Medical Systems VISION 3249", 0x3249, 0x00, "DS", "maximum treatment time"],
  ["Varian Medical Systems VISION 3249", 0x3249, 0x10, "UI", "referenced primary dose reference UID (remapped)"],
];

/** VRs whose values are numbers: the only values the safe-private list keeps (besides its sequences and UIDs). */
export const NUMERIC_VRS: ReadonlySet<string> = new Set(["IS", "DS", "US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "OF", "OD", "OL", "OV"]);

/** Listed VR of each safe-private key (`privateKey(creator, group, low)`). */
export const SAFE_PRIVATE_VRS: ReadonlyMap<string, string> = new Map(
  SAFE_PRIVATE_ATTRIBUTES.map(([creator, group, low, vr]) => [privateKey(creator, group, low), vr]),
);

/** Keys of `SAFE_PRIVATE_ATTRIBUTES` for lookup with `privateKey`. */
export const SAFE_PRIVATE_KEYS: ReadonlySet<string> = new Set(SAFE_PRIVATE_VRS.keys());

/**
 * Whether a listed attribute may stay with the VR it has: numbers, and the list's sequences and
 * UIDs when that is what it lists. `vr` is the element's VR (`UN` in an implicit VR file whose
 * private dictionary does not know it: the listed VR is assumed then).
 */
export function safePrivateKeeps(listedVr: string, vr: string): boolean {
  const actual = vr === "UN" ? listedVr : vr;
  if (NUMERIC_VRS.has(actual)) return true;
  return (actual === "SQ" || actual === "UI") && actual === listedVr;
}
