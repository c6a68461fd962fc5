/** VRs whose explicit-VR encoding has a reserved 2 bytes and a 32-bit length (PS3.5 7.1.2). */
export const LONG_LENGTH_VRS: ReadonlySet<string> = new Set([
  "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV",
]);
/** VRs that hold binary bulk data; header-only reads skip large values of these. */
export const BULK_VRS: ReadonlySet<string> = new Set(["OB", "OD", "OF", "OL", "OV", "OW", "UN"]);
/** Text VRs that Specific Character Set applies to. */
export const CHARSET_VRS: ReadonlySet<string> = new Set(["SH", "LO", "ST", "LT", "PN", "UC", "UT"]);
/** String VRs (values are text, multi-valued with a backslash except ST, LT, UT, UR). */
export const STRING_VRS: ReadonlySet<string> = new Set([
  "AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT",
]);
/** String VRs that hold a single value: backslash is an ordinary character there. */
export const SINGLE_VALUE_STRING_VRS: ReadonlySet<string> = new Set(["LT", "ST", "UT", "UR"]);
/** Byte width of one value of a binary VR, for byte swapping and value decoding. */
export const BINARY_WIDTH: Readonly<Record<string, number>> = {
  US: 2, SS: 2, UL: 4, SL: 4, FL: 4, FD: 8, AT: 2, OW: 2, OF: 4, OD: 8, OL: 4, OV: 8, SV: 8, UV: 8,
};
const KNOWN = new Set([...STRING_VRS, ...Object.keys(BINARY_WIDTH), "OB", "SQ", "UN"]);
export function isKnownVr(vr: string): boolean {
  return KNOWN.has(vr);
}
