// The one DICOM wildcard matcher (lib/dicom/wildcard.ts): a table, agreement with an independent
// reference on random patterns (fast-check), linear work on the patterns that made the old
// RegExp translation backtrack for minutes, and no second copy in the code base.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { wildcardMatch } from "../lib/dicom/wildcard.ts";
import { matchValue as qrMatch } from "../lib/qr/match.ts";
import { matchValue as searchMatch } from "../lib/search/match.ts";
import { root } from "./_run.ts";

/**
 * Reference: dynamic programming over (pattern prefix, value prefix), written independently of
 * the matcher (which is greedy with one remembered star).
 */
function reference(pattern: string, value: string, ignoreCase = false): boolean {
  const p = Array.from(ignoreCase ? pattern.toLowerCase() : pattern);
  const v = Array.from(ignoreCase ? value.toLowerCase() : value);
  // ok[j]: p[0..i) matches v[0..j)
  let ok = new Array<boolean>(v.length + 1).fill(false);
  ok[0] = true;
  for (const c of p) {
    const next = new Array<boolean>(v.length + 1).fill(false);
    if (c === "*") {
      let any = false;
      for (let j = 0; j <= v.length; j++) next[j] = any = any || ok[j];
    } else {
      for (let j = 1; j <= v.length; j++) next[j] = ok[j - 1] && (c === "?" || c === v[j - 1]);
    }
    ok = next;
  }
  return ok[v.length];
}

describe("wildcardMatch", () => {
  const table: [string, string, boolean, boolean?][] = [
    ["", "", true],
    ["", "a", false],
    ["*", "", true],
    ["*", "anything", true],
    ["?", "", false],
    ["?", "x", true],
    ["a*", "abc", true],
    ["*c", "abc", true],
    ["a?c", "abc", true],
    ["a?c", "ac", false],
    ["*a*b", "aaaab", true],
    ["*a*b", "aaaa", false],
    ["**", "", true],
    ["a**b", "ab", true],
    ["*", "*", true],
    ["a*", "*", false],
    ["\\*", "\\x", true], // backslash is an ordinary character here (value lists are split before)
    ["SMITH^J*", "SMITH^JOHN", true],
    ["smith^j*", "SMITH^JOHN", false],
    ["smith^j*", "SMITH^JOHN", true, true],
    ["Mü?ler", "Müller", true],
    ["?", "😀", true], // one code point, two UTF-16 units
    ["山田^?郎", "山田^太郎", true],
  ];
  for (const [pattern, value, want, ci] of table) {
    test(`${JSON.stringify(pattern)} ${want ? "matches" : "does not match"} ${JSON.stringify(value)}${ci ? " (ignoring case)" : ""}`, () => {
      assert.equal(wildcardMatch(pattern, value, ci === true), want);
    });
  }

  test("agrees with the reference on random patterns and values (fast-check, 20,000 cases)", () => {
    const alphabet = fc.constantFrom("a", "b", "A", "é", "😀");
    const pattern = fc.array(fc.oneof(alphabet, fc.constant("*"), fc.constant("?")), { maxLength: 12 }).map((a) => a.join(""));
    const value = fc.array(alphabet, { maxLength: 16 }).map((a) => a.join(""));
    fc.assert(
      fc.property(pattern, value, fc.boolean(), (p, v, ci) => wildcardMatch(p, v, ci) === reference(p, v, ci)),
      { numRuns: 20000, seed: 13 },
    );
  });

  test("values made from the pattern always match it (fast-check)", () => {
    // Replace each * by a random run and each ? by one character: the result must match.
    const piece = fc.oneof(
      fc.string({ maxLength: 3 }).filter((s) => !/[*?]/.test(s)).map((s) => ({ p: s, v: s })),
      fc.string({ maxLength: 4 }).filter((s) => !/[*?]/.test(s)).map((s) => ({ p: "*", v: s })),
      fc.string({ minLength: 1, maxLength: 1 }).filter((s) => !/[*?]/.test(s)).map((s) => ({ p: "?", v: s })),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 10 }), (parts) => wildcardMatch(parts.map((x) => x.p).join(""), parts.map((x) => x.v).join(""))),
      { numRuns: 5000, seed: 13 },
    );
  });

  test("the patterns that froze serve (issue 13) take linear time: 10 stars against 64 a, and 100 stars against 100,000 characters", () => {
    let t = performance.now();
    assert.equal(wildcardMatch("*a*a*a*a*a*a*a*a*b", "a".repeat(64)), false);
    assert.equal(wildcardMatch("*a*a*a*a*a*a*a*a*a*a*b", "a".repeat(64)), false);
    assert.ok(performance.now() - t < 50, `${performance.now() - t} ms`);
    t = performance.now();
    assert.equal(wildcardMatch("*a".repeat(100) + "b", "a".repeat(100_000)), false);
    assert.ok(performance.now() - t < 2000, `${(performance.now() - t).toFixed(0)} ms for 100 × 100,000 steps`);
  });

  test("Q/R matching and search both use it (PN case-insensitive, wildcards not in UIDs)", () => {
    assert.equal(qrMatch("PN", "*a*a*a*a*a*a*a*a*b", "a".repeat(64)), false);
    assert.equal(qrMatch("PN", "SMITH*", "smith^john"), true);
    assert.equal(qrMatch("LO", "SMITH*", "smith^john"), false);
    assert.equal(qrMatch("UI", "1.2.*", "1.2.3"), false);
    assert.equal(searchMatch("*a*a*a*a*a*a*a*a*b", "a".repeat(64), "PN"), false);
    assert.equal(searchMatch("RP*.dcm", "RP1.2.3.dcm", "LO"), true);
  });

  test("there is no second matcher: lib/qr and lib/search import lib/dicom/wildcard.ts and build no RegExp", () => {
    for (const f of ["lib/qr/match.ts", "lib/search/match.ts"]) {
      const src = readFileSync(join(root, f), "utf8");
      assert.match(src, /from "\.\.\/dicom\/wildcard\.ts"/, f);
      assert.doesNotMatch(src, /new RegExp|\[\\s\\S\]\*/, f);
    }
  });
});
