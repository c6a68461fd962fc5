/**
 * The safe-private list used by the Retain Safe Private Option (PS3.15 E.3.10): private
 * attributes known to carry no identifying information, keyed by private creator, group and the
 * element's low byte (the block byte varies from file to file). The entries are a subset of
 * Table E.3.10-1 of PS3.15 (diffusion and PET quantitation values); the list is deliberately short: a private attribute not listed is
 * removed even with the option. Sites add their own with a profile CSV row
 * `(gggg,xxee),K,CREATOR` (see docs/anonymize.md).
 */
import { privateKey } from "./profile.ts";

/** [private creator, group, element low byte, what it holds]. */
export const SAFE_PRIVATE_ATTRIBUTES: readonly (readonly [string, number, number, string])[] = [
  ["SIEMENS MR HEADER", 0x0019, 0x0c, "B value"],
  ["SIEMENS MR HEADER", 0x0019, 0x0d, "diffusion directionality"],
  ["SIEMENS MR HEADER", 0x0019, 0x0e, "diffusion gradient direction"],
  ["SIEMENS MR HEADER", 0x0019, 0x27, "B matrix"],
  ["GEMS_PARM_01", 0x0043, 0x39, "slop_int_6... (b value)"],
  ["GEMS_ACQU_01", 0x0019, 0xbb, "user data (diffusion)"],
  ["GEMS_ACQU_01", 0x0019, 0xbc, "user data (diffusion)"],
  ["GEMS_ACQU_01", 0x0019, 0xbd, "user data (diffusion)"],
  ["Philips Imaging DD 001", 0x2001, 0x03, "diffusion B-factor"],
  ["Philips Imaging DD 001", 0x2001, 0x04, "diffusion direction"],
  ["Philips MR Imaging DD 001", 0x2005, 0xb0, "diffusion direction RL"],
  ["Philips MR Imaging DD 001", 0x2005, 0xb1, "diffusion direction AP"],
  ["Philips MR Imaging DD 001", 0x2005, 0xb2, "diffusion direction FH"],
  ["Philips PET Private Group", 0x7053, 0x00, "SUV factor"],
  ["Philips PET Private Group", 0x7053, 0x09, "activity concentration scale factor"],
];

/** Keys of `SAFE_PRIVATE_ATTRIBUTES` for lookup with `privateKey`. */
export const SAFE_PRIVATE_KEYS: ReadonlySet<string> = new Set(
  SAFE_PRIVATE_ATTRIBUTES.map(([creator, group, low]) => privateKey(creator, group, low)),
);
