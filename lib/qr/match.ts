/**
 * Attribute matching for C-FIND (PS3.4 C.2.2.2): universal, single value, wildcard (`*`, `?`,
 * through the project's one linear-time matcher, lib/dicom/wildcard.ts), list of UIDs, and
 * date/time ranges. Sequence matching is not implemented here.
 */
import { hasWildcard, wildcardMatch } from "../dicom/wildcard.ts";

const DATE_TIME_VRS = new Set(["DA", "TM", "DT"]);
/** VRs where `*` and `?` are plain characters, not wildcards (PS3.4 C.2.2.2.4). */
const NO_WILDCARD_VRS = new Set(["UI", "DA", "TM", "DT", "SL", "SS", "UL", "US", "FL", "FD", "SV", "UV", "AT", "OB", "OW", "OF", "OD", "OL", "OV", "UN"]);

/** Strips padding the way values are stored in the index (trailing spaces/NULs, leading spaces). */
export function normalizeQueryValue(value: string, vr: string): string {
  const v = value.replace(/[\0 ]+$/, "");
  return vr === "UI" || vr === "LT" || vr === "ST" || vr === "UT" ? v : v.replace(/^ +/, "");
}

/** Comparable form of a DA/TM/DT value: DA as YYYYMMDD, TM as HHMMSS.ffffff padded (with `fill` for the missing tail). */
function comparable(value: string, vr: string, fill: "low" | "high"): string {
  const v = value.trim();
  if (vr === "DA") {
    const d = v.replace(/\./g, ""); // ACR-NEMA style YYYY.MM.DD
    return d;
  }
  if (vr === "TM") {
    const [whole, frac = ""] = v.replace(/:/g, "").split(".");
    const pad = fill === "low" ? "000000" : "235959";
    const w = whole + pad.slice(whole.length);
    const f = (frac + (fill === "low" ? "000000" : "999999").slice(frac.length)).slice(0, 6);
    return `${w}.${f}`;
  }
  // DT: YYYYMMDDHHMMSS.ffffff&ZZXX; offsets are ignored (compared as written).
  const core = v.replace(/[+-]\d{4}$/, "");
  const [whole, frac = ""] = core.split(".");
  const pad = fill === "low" ? "00000101000000" : "99991231235959";
  const w = whole + pad.slice(whole.length);
  const f = (frac + (fill === "low" ? "000000" : "999999").slice(frac.length)).slice(0, 6);
  return `${w}.${f}`;
}

function matchRange(query: string, candidate: string, vr: string): boolean {
  const dash = vr === "DT" ? query.search(/-(?=\d{4}|$)/) : query.indexOf("-");
  if (dash < 0) {
    // Single value: for TM/DT, a shorter value matches the period it names (e.g. "10" = 10:xx).
    if (vr === "DA") return comparable(query, vr, "low") === comparable(candidate, vr, "low");
    const c = comparable(candidate, vr, "low");
    return c >= comparable(query, vr, "low") && c <= comparable(query, vr, "high");
  }
  const lo = query.slice(0, dash).trim();
  const hi = query.slice(dash + 1).trim();
  const c = comparable(candidate, vr, "low");
  if (lo && c < comparable(lo, vr, "low")) return false;
  if (hi && c > comparable(hi, vr, "high")) return false;
  return true;
}

/**
 * Does `candidate` (a stored value, possibly multi-valued with `\`) match the query value?
 * An empty query value matches everything (universal matching); a missing candidate matches
 * only universal matching or a lone `*`.
 *
 * Person names match case-insensitively (as Orthanc does; PS3.4 leaves it to the SCP).
 */
export function matchValue(vr: string, query: string, candidate: string | null | undefined): boolean {
  const q = normalizeQueryValue(query, vr);
  if (q === "") return true;
  const isWildcardVr = !NO_WILDCARD_VRS.has(vr);
  if (isWildcardVr && /^\*+$/.test(q)) return true;
  if (candidate === null || candidate === undefined || candidate === "") return false;
  const candidates = candidate.split("\\");
  const queries = q.split("\\");
  if (vr === "UI") return candidates.some((c) => queries.includes(c));
  if (DATE_TIME_VRS.has(vr)) return queries.some((qv) => candidates.some((c) => matchRange(qv, c, vr)));
  const ci = vr === "PN";
  return queries.some((qv) => {
    if (hasWildcard(qv)) return candidates.some((c) => wildcardMatch(qv, c, ci));
    return candidates.some((c) => (ci ? c.toLowerCase() === qv.toLowerCase() : c === qv));
  });
}

/** True when a query value can be pushed down to SQL as an equality/IN filter. */
export function isExactKey(vr: string, query: string): boolean {
  const q = normalizeQueryValue(query, vr);
  if (q === "") return false;
  if (vr === "UI") return true;
  return !DATE_TIME_VRS.has(vr) && vr !== "PN" && !/[*?\\]/.test(q);
}

