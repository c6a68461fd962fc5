/**
 * DICOM attribute matching (PS3.4 C.2.2.2) applied to values read from files. Wild cards go
 * through the project's one matcher, lib/dicom/wildcard.ts.
 */
import { hasWildcard as hasWildcardChar, wildcardMatch } from "../dicom/wildcard.ts";

export { wildcardMatch };

const NUMERIC_VRS: ReadonlySet<string> = new Set([
  "DS", "IS", "US", "SS", "UL", "SL", "FL", "FD", "SV", "UV",
]);

/**
 * Does a value read from a file match the value given in a search expression?
 *
 * - `*` and `?` are wild cards for every text VR; PN matches ignore case (the standard allows it and
 *   names are typed in every case), everything else is case-sensitive.
 * - UI with `\`: list of UID matching (any of the UIDs).
 * - DA and TM with `-`: range matching (`20240101-20241231`, `-20240101`, `20240101-`), inclusive.
 * - numeric VRs (DS, IS, US, FD, …) and UN: equal as numbers (`2.5` matches `2.50`) when both are numbers
 *   and no wild cards are used.
 * - an empty value matches a present but empty element.
 */
export function matchValue(pattern: string, value: string, vr: string): boolean {
  if (pattern === "") return value === "";
  if (vr === "UI" && pattern.includes("\\")) return pattern.split("\\").some((u) => u.trim() === value);
  const hasWildcard = hasWildcardChar(pattern);
  if ((vr === "DA" || vr === "TM") && !hasWildcard && pattern.includes("-")) {
    return rangeMatch(pattern, value, vr);
  }
  // UN: a private element of an implicit VR file, whose VR nobody knows; numbers still compare as numbers.
  if ((NUMERIC_VRS.has(vr) || vr === "UN") && !hasWildcard) {
    const a = Number(pattern.trim()), b = Number(value.trim());
    if (pattern.trim() !== "" && !Number.isNaN(a) && !Number.isNaN(b)) return a === b;
  }
  if (!hasWildcard) return vr === "PN" ? pattern.toLowerCase() === value.toLowerCase() : pattern === value;
  return wildcardMatch(pattern, value, vr === "PN");
}

function rangeMatch(pattern: string, value: string, vr: string): boolean {
  if (value === "") return false;
  const dash = pattern.indexOf("-");
  const lo = pattern.slice(0, dash).trim(), hi = pattern.slice(dash + 1).trim();
  const v = normalizeTime(value, vr);
  if (lo !== "" && v < normalizeTime(lo, vr)) return false;
  if (hi !== "" && v > normalizeTime(hi, vr, true)) return false;
  return true;
}

/** Makes TM values comparable as strings (`0930` vs `093000.5`); upper bounds cover the whole unit given. */
function normalizeTime(t: string, vr: string, upper = false): string {
  if (vr !== "TM") return t.replace(/[^0-9]/g, "");
  const [whole, frac = ""] = t.replace(/:/g, "").split(".");
  const pad = upper ? "9" : "0";
  return whole.padEnd(6, upper ? "59" : "0").slice(0, 6) + "." + frac.padEnd(6, pad);
}
