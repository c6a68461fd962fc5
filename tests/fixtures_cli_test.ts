// scripts/make_fixtures.ts as a user runs it: flags, exit codes, the one-line messages.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";

const SCRIPT = new URL("../scripts/make_fixtures.ts", import.meta.url).pathname;
let root: string;

function run(...args: string[]) {
  const isDeno = "Deno" in globalThis;
  const argv = isDeno ? ["run", "-A", SCRIPT, ...args] : [SCRIPT, ...args];
  return spawnSync(process.execPath, argv, { encoding: "utf8", timeout: 60_000 });
}

before(() => {
  root = mkdtempSync(join(tmpdir(), "rtexport-fixtures-cli-"));
});
after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("make_fixtures", () => {
  it("generates a clinic, reports what it wrote on stderr and copies the manifest", () => {
    const out = join(root, "clinic");
    const manifestCopy = join(root, "m.json");
    const r = run("--out", out, "--patients", "2", "--slices", "3", "--size", "16", "--seed", "abc", "--manifest", manifestCopy);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^Generated \d+ files \([\d.]+ MB\) for 2 patients in [\d.]+ s: CT 6, MR 6, /);
    const manifest = JSON.parse(readFileSync(manifestCopy, "utf8"));
    assert.deepEqual(manifest, JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")));
    assert.equal(manifest.seed, "abc");
    assert.deepEqual(manifest.options, { patients: 2, slices: 3, size: 16 });
    assert.ok(existsSync(join(out, manifest.patients[1].plans[0].path)));
  });

  it("fails with one line naming the file it cannot write (exit 1)", () => {
    const out = join(root, "blocked");
    mkdirSync(join(out, "RTX0001", "CT", "CT0002.dcm", "in-the-way"), { recursive: true });
    writeFileSync(join(out, "manifest.json"), JSON.stringify({ patients: [] }));
    const r = run("--out", out, "--patients", "1", "--slices", "3", "--size", "8");
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^make_fixtures: Cannot write ".*CT0002\.dcm": EISDIR[^\n]*\n$/);
  });

  it("prints help", () => {
    const r = run("--help");
    assert.equal(r.status, 0);
    assert.match(r.stdout, /--patients N/);
  });

  const usage: [string[], RegExp][] = [
    [[], /^make_fixtures: Missing required option --out DIR\n/],
    [["--out", "x", "--patients", "0"], /^make_fixtures: Invalid value for --patients: "0" \(expected a positive integer\)\n/],
    [["--out", "x", "--slices", "many"], /^make_fixtures: Invalid value for --slices: "many"/],
    [["--out", "x", "--bogus"], /^make_fixtures: Unknown option '--bogus'/],
  ];
  for (const [args, message] of usage) {
    it(`rejects ${JSON.stringify(args)} as a usage error (exit 2)`, () => {
      const r = run(...args);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /); // no stack trace
    });
  }
});
