// The file walker and the header scan: order, patterns, links, and bad files as per-file errors.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataSet } from "../lib/dicom/dataset.ts";
import { encodeFile } from "../lib/dicom/writer.ts";
import { scanDicom, scanDicomSync } from "../lib/fs/scan.ts";
import { globMatcher, walkEntriesSync, walkFiles } from "../lib/fs/walk.ts";

let root: string;

function element(ds: DataSet, tag: number, vr: string, text: string): void {
  let s = text;
  if (s.length % 2) s += vr === "UI" ? "\0" : " ";
  const value = new TextEncoder().encode(s);
  ds.set({ tag, vr, value, offset: 0, length: value.length });
}

function tinyDicom(sopInstanceUid: string): Uint8Array {
  const ds = new DataSet();
  element(ds, 0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2");
  element(ds, 0x00080018, "UI", sopInstanceUid);
  element(ds, 0x00080060, "CS", "CT");
  element(ds, 0x00100020, "LO", "WALK1");
  return encodeFile(ds);
}

before(() => {
  root = mkdtempSync(join(tmpdir(), "rtexport-walk-"));
  mkdirSync(join(root, "a", "sub"), { recursive: true });
  mkdirSync(join(root, "b"));
  writeFileSync(join(root, "a", "CT2.dcm"), tinyDicom("1.2.3.2"));
  writeFileSync(join(root, "a", "CT10.DCM"), tinyDicom("1.2.3.10"));
  writeFileSync(join(root, "a", "notes.txt"), "not DICOM at all\n");
  writeFileSync(join(root, "a", "sub", "RP1.dcm"), tinyDicom("1.2.3.99"));
  writeFileSync(join(root, "b", "Z.dcm"), tinyDicom("1.2.3.100"));
  const good = tinyDicom("1.2.3.101");
  writeFileSync(join(root, "b", "truncated.dcm"), good.subarray(0, good.length - 7));
  writeFileSync(join(root, "b", "empty.dcm"), new Uint8Array(0));
  symlinkSync(join(root, "a"), join(root, "b", "loop")); // b/loop → a: walked once, not twice
  symlinkSync(root, join(root, "a", "sub", "up")); // a loop back to the root
  symlinkSync(join(root, "nowhere"), join(root, "b", "dangling"));
});

after(() => {
  rmSync(root, { recursive: true, force: true });
});

describe("walkEntriesSync", () => {
  test("walks depth first in code-unit order, follows links once, reports dangling links", () => {
    const entries = [...walkEntriesSync([root])].map((e) => ({
      path: e.path.slice(root.length + 1),
      ...(e.error ? { error: e.error.replace(root + "/", "") } : {}),
    }));
    assert.deepEqual(entries, [
      { path: "a/CT10.DCM" },
      { path: "a/CT2.dcm" },
      { path: "a/notes.txt" },
      { path: "a/sub/RP1.dcm" },
      { path: "b/Z.dcm" },
      { path: "b/dangling", error: 'Cannot read "b/dangling": no such file or directory' },
      { path: "b/empty.dcm" },
      { path: "b/truncated.dcm" },
    ]);
  });

  test("a pattern filters names case-insensitively; named files are always taken", () => {
    const names = (pattern: string, paths = [root]) =>
      [...walkEntriesSync(paths, { pattern })].filter((e) => !e.error).map((e) => e.path.slice(root.length + 1));
    assert.deepEqual(names("*.dcm"), ["a/CT10.DCM", "a/CT2.dcm", "a/sub/RP1.dcm", "b/Z.dcm", "b/empty.dcm", "b/truncated.dcm"]);
    assert.deepEqual(names("CT?.dcm"), ["a/CT2.dcm"]);
    assert.deepEqual(names("a/**/*.dcm"), ["a/CT10.DCM", "a/CT2.dcm", "a/sub/RP1.dcm"]);
    assert.deepEqual(names("*.txt", [join(root, "b", "Z.dcm")]), ["b/Z.dcm"]);
  });

  test("a missing path is one error entry, and the walk goes on", () => {
    const entries = [...walkEntriesSync([join(root, "missing"), join(root, "b", "Z.dcm")])];
    assert.equal(entries.length, 2);
    assert.match(entries[0].error!, /^Cannot read ".*missing": no such file or directory$/);
    assert.equal(entries[1].error, undefined);
  });
});

describe("globMatcher", () => {
  const cases: [string, string, boolean][] = [
    ["*.dcm", "CT1.dcm", true],
    ["*.dcm", "CT1.DCM", true],
    ["*.dcm", "CT1.dcm.bak", false],
    ["RP*.dcm", "RP1.2.3.dcm", true],
    ["RP*.dcm", "RD1.dcm", false],
    ["CT?.dcm", "CT12.dcm", false],
    ["[RC]*", "RP1", true],
    ["[!RC]*", "RP1", false],
    ["*.{dcm,ima}", "x.IMA", true],
    ["*", ".hidden", true],
    ["a.b", "aXb", false],
  ];
  for (const [pattern, name, expected] of cases) {
    test(`${pattern} ${expected ? "matches" : "does not match"} ${name}`, () => {
      assert.equal(globMatcher(pattern)(name, name), expected);
    });
  }
});

describe("walkFiles", () => {
  test("yields paths and hands errors to onError", async () => {
    const errors: string[] = [];
    const paths: string[] = [];
    for await (const p of walkFiles([join(root, "b")], { onError: (_p, m) => errors.push(m) })) paths.push(p);
    // b/loop/sub/up leads back to the root, whose a/ and b/ were already walked: no loop, no repeats.
    assert.deepEqual(paths.map((p) => p.slice(root.length + 1)), [
      "b/Z.dcm", "b/empty.dcm", "b/loop/CT10.DCM", "b/loop/CT2.dcm", "b/loop/notes.txt", "b/loop/sub/RP1.dcm",
      "b/truncated.dcm",
    ]);
    assert.deepEqual(errors.map((m) => m.replace(root + "/", "")), ['Cannot read "b/dangling": no such file or directory']);
  });
});

describe("scanDicom", () => {
  test("every file gives a header or a one-line error naming it; the scan goes on", () => {
    const results = [...scanDicomSync([root], { pattern: "*.{dcm,txt}" })];
    const summary: { path: string; error?: string; sop?: string }[] = results.map((r) => ({
      path: r.path.slice(root.length + 1),
      ...(r.error !== undefined ? { error: r.error.replace(root + "/", "") } : { sop: r.file.dataset.string("SOPInstanceUID") }),
    }));
    assert.deepEqual(summary, [
      { path: "a/CT10.DCM", sop: "1.2.3.10" },
      { path: "a/CT2.dcm", sop: "1.2.3.2" },
      {
        path: "a/notes.txt",
        error: 'Cannot read DICOM file "a/notes.txt": not a DICOM file: no preamble, no meta information, and no recognisable first element',
      },
      { path: "a/sub/RP1.dcm", sop: "1.2.3.99" },
      { path: "b/Z.dcm", sop: "1.2.3.100" },
      { path: "b/dangling", error: 'Cannot read "b/dangling": no such file or directory' },
      { path: "b/empty.dcm", error: 'Cannot read DICOM file "b/empty.dcm": not a DICOM file: too short' },
      { path: "b/truncated.dcm", error: summary[7].error },
    ]);
    assert.match(summary[7].error!, /^Cannot read DICOM file "b\/truncated\.dcm": .*(end|beyond)/);
  });

  test("takes file records and async inputs", async () => {
    async function* records() {
      yield { path: join(root, "b", "Z.dcm") };
      yield join(root, "a", "CT2.dcm");
    }
    const got: string[] = [];
    for await (const r of scanDicom(records())) got.push(r.file!.dataset.string("SOPInstanceUID")!);
    assert.deepEqual(got, ["1.2.3.100", "1.2.3.2"]);
    assert.ok(readFileSync(join(root, "b", "Z.dcm")).length > 132);
  });
});
