/**
 * DICOM wild card matching (PS3.4 C.2.2.2.4), the one matcher of the project: `search` and the
 * Q/R SCP (`serve`) both use it.
 */

/**
 * Does `value` match `pattern`, where `*` matches any run of characters (the empty one included)
 * and `?` exactly one, everything else itself? Case-sensitive unless `ignoreCase`.
 *
 * Greedy two-pointer matching with one remembered star: on a mismatch only the last star is
 * extended, never an earlier one (an earlier star's extension is covered by the later one), so
 * the work is at most pattern length × value length, O(n·m), whatever the pattern. A translation
 * to a regular expression backtracks instead: `*a*a*a*a*a*a*a*a*b` against 64 `a` took serve's
 * event loop 88 s (issue 13).
 *
 * Characters are Unicode code points, so `?` matches one character of a name in any script.
 *
 * @example
 * ```ts
 * wildcardMatch("RP*.dcm", "RP1.2.3.dcm"); // true
 * wildcardMatch("TRUEBEAM?", "TrueBeam1"); // false (case-sensitive)
 * wildcardMatch("*a*a*a*a*a*a*a*a*b", "a".repeat(64)); // false, after at most 19 × 64 steps
 * ```
 */
export function wildcardMatch(pattern: string, value: string, ignoreCase = false): boolean {
  const p = Array.from(ignoreCase ? pattern.toLowerCase() : pattern);
  const v = Array.from(ignoreCase ? value.toLowerCase() : value);
  let pi = 0, vi = 0, star = -1, mark = 0;
  while (vi < v.length) {
    if (pi < p.length && p[pi] === "*") {
      star = pi++;
      mark = vi;
    } else if (pi < p.length && (p[pi] === "?" || p[pi] === v[vi])) {
      pi++;
      vi++;
    } else if (star >= 0) {
      pi = star + 1;
      vi = ++mark;
    } else return false;
  }
  while (pi < p.length && p[pi] === "*") pi++;
  return pi === p.length;
}

/** True when the value holds a wild card character. */
export function hasWildcard(pattern: string): boolean {
  return pattern.includes("*") || pattern.includes("?");
}
