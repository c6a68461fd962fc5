// The writer against DCMTK: a file read in full and written back with encodeFile, in each
// native transfer syntax (and deflated), dumps exactly as the same file converted by DCMTK's
// dcmconv to that transfer syntax. Byte order conversion, implicit VR (private VRs become UN,
// as they do for DCMTK), sequences, private blocks and pixel data included.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataSet } from "../lib/dicom/dataset.ts";
import { parseDicom, readDicomFile } from "../lib/dicom/reader.ts";
import { PIXEL_DATA } from "../lib/dicom/tag.ts";
import {
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
} from "../lib/dicom/uids.ts";
import { buildMeta, encodeDataSet, encodeFile } from "../lib/dicom/writer.ts";
import { compareRows, diffFiles, type Dump, rowsOf, runDcmdump, runDcmdumpMany } from "./_dcmdump.ts";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { type Sample, writeSamples } from "./_dicom_samples.ts";

let dir = "";
let samples: Sample[] = [];
before(() => {
  dir = mkdtempSync(join(tmpdir(), "rtexport-writer-"));
  samples = writeSamples(dir);
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const TARGETS: [string, string][] = [
  [EXPLICIT_VR_LITTLE_ENDIAN, "+te"],
  [IMPLICIT_VR_LITTLE_ENDIAN, "+ti"],
  [EXPLICIT_VR_BIG_ENDIAN, "+tb"],
  [DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, "+td"],
];
const SOURCES = ["dump2dcm_te_undeflen", "dump2dcm_ti_deflen", "dump2dcm_tb_undeflen", "dump2dcm_td_deflen", "dump2dcm_te_deflen_bare"];

describe("writer vs dcmconv", () => {
  // Written in before(), dumped with one dcmdump per side; each case then compares its pair.
  const cases = SOURCES.flatMap((source) => TARGETS.map(([ts, flag]) => ({ source, ts, flag })));
  const dumps = new Map<string, Dump>();
  const path = (side: string, c: { source: string; flag: string }) => join(dir, `${side}_${c.source}${c.flag}.dcm`);
  before(() => {
    for (const c of cases) {
      const s = samples.find((x) => x.name === c.source)!;
      const read = readDicomFile(s.path, { full: true });
      writeFileSync(path("ours", c), encodeFile(read.dataset, { transferSyntaxUid: c.ts }));
      // The writer keeps each sequence's length kind; tell dcmconv to write the source's kind
      // (it matters in implicit VR, where a private sequence is only recognisable by its
      // undefined length).
      const lengths = c.source.includes("undeflen") ? "-e" : "+e";
      const r = spawnSync("dcmconv", ["-q", ...(s.bare ? ["-f", s.dumpArgs[1]] : []), c.flag, lengths, s.path, path("dcmconv", c)], { timeout: 60_000 });
      if (r.status !== 0) throw new Error(`dcmconv failed: ${String(r.stderr)}`);
    }
    for (const side of ["ours", "dcmconv"]) {
      for (const [p, d] of runDcmdumpMany(cases.map((c) => path(side, c)))) dumps.set(p, d);
    }
  });

  for (const c of cases) {
    it(`${c.source} → ${c.flag}: encodeFile dumps as dcmconv ${c.flag} does`, () => {
      const ours = path("ours", c);
      const ourDump = dumps.get(ours)!;
      const theirDump = dumps.get(path("dcmconv", c))!;
      assert.equal(ourDump.transferSyntax, theirDump.transferSyntax);
      assert.deepEqual(compareRows(ourDump.dataset, theirDump.dataset), []);
      // And reading back what we wrote gives the rows dcmdump prints for it.
      assert.deepEqual(compareRows(rowsOf(readDicomFile(ours, { full: true }).dataset), ourDump.dataset), []);
      const meta = readDicomFile(ours).meta;
      assert.equal(meta.string("TransferSyntaxUID"), c.ts);
      const source = readDicomFile(samples.find((x) => x.name === c.source)!.path).dataset;
      assert.equal(meta.string("MediaStorageSOPInstanceUID"), source.string("SOPInstanceUID"));
    });
  }

  it("dcmcrle_rle: encapsulated pixel data is written back fragment by fragment in its own transfer syntax", () => {
    const s = samples.find((x) => x.name === "dcmcrle_rle")!;
    const read = readDicomFile(s.path, { full: true });
    const ours = join(dir, "ours_rle.dcm");
    writeFileSync(ours, encodeFile(read.dataset, { meta: read.meta }));
    assert.deepEqual(diffFiles(ours, s.path), []);
    // diffFiles can fail: a changed value shows up.
    read.dataset.delete("PatientID");
    writeFileSync(ours, encodeFile(read.dataset, { meta: read.meta }));
    assert.deepEqual(diffFiles(ours, s.path), [`(0010,0020): only in "${s.path}" (LO [ PID 1])`]);
  });

  it("refuses to write encapsulated pixel data in a native transfer syntax", () => {
    const read = readDicomFile(samples.find((x) => x.name === "dcmcrle_rle")!.path, { full: true });
    assert.throws(() => encodeDataSet(read.dataset, EXPLICIT_VR_LITTLE_ENDIAN), /Cannot write encapsulated \(7FE0,0010\) in transfer syntax 1\.2\.840\.10008\.1\.2\.1/);
  });

  it("refuses to write a value a header-only read skipped", () => {
    const read = readDicomFile(samples.find((x) => x.name === "dump2dcm_te_deflen")!.path);
    assert.throws(() => encodeFile(read.dataset), /Cannot write \(0029,1005\): its value was not read/);
  });
});

describe("writer details", () => {
  it("pads odd-length values: UI with NUL, text with a space, OB with NUL", () => {
    const ds = new DataSet();
    const put = (tag: number, vr: string, text: string) => {
      const value = new TextEncoder().encode(text);
      ds.set({ tag, vr, value, offset: 0, length: value.length });
    };
    put(0x00080016, "UI", "1.2.3");
    put(0x00100020, "LO", "ABC");
    ds.set({ tag: 0x00291010, vr: "OB", value: Uint8Array.of(1, 2, 3), offset: 0, length: 3 });
    const bytes = encodeDataSet(ds);
    const back = parseDicom(bytes, { full: true }).dataset;
    assert.deepEqual([...back.get(0x00080016)!.value!], [...new TextEncoder().encode("1.2.3"), 0]);
    assert.deepEqual([...back.get(0x00100020)!.value!], [...new TextEncoder().encode("ABC"), 0x20]);
    assert.deepEqual([...back.get(0x00291010)!.value!], [1, 2, 3, 0]);
  });

  it("builds meta information with a correct group length that dcmdump accepts", () => {
    const meta = buildMeta("1.2.840.10008.5.1.4.1.1.481.5", "1.2.3.4", EXPLICIT_VR_LITTLE_ENDIAN, "RTEXPORT");
    const ds = new DataSet();
    const value = new TextEncoder().encode("RTPLAN");
    ds.set({ tag: 0x00080060, vr: "CS", value, offset: 0, length: value.length });
    const path = join(dir, "meta.dcm");
    writeFileSync(path, encodeFile(ds, { meta }));
    const dump = runDcmdump(path);
    assert.equal(dump.stderr, "");
    const rows = new Map(dump.meta.map((r) => [r.path, r.value]));
    assert.equal(rows.get("(0002,0002)"), "[1.2.840.10008.5.1.4.1.1.481.5]");
    assert.equal(rows.get("(0002,0016)"), "[RTEXPORT]");
    assert.equal(dump.dataset.find((r) => r.path === "(0008,0060)")?.value, "[RTPLAN]");
  });

  it("converts pixel data byte order with the data set (16-bit words)", () => {
    const s = samples.find((x) => x.name === "dump2dcm_te_deflen")!;
    const le = readDicomFile(s.path, { full: true }).dataset;
    const be = parseDicom(encodeDataSet(le, EXPLICIT_VR_BIG_ENDIAN), { full: true });
    assert.deepEqual(be.dataset.values(PIXEL_DATA), le.values(PIXEL_DATA));
    assert.notDeepEqual(be.dataset.get(PIXEL_DATA)!.value, le.get(PIXEL_DATA)!.value);
  });
});

describe("writer round trip on every file of the synthetic clinic", () => {
  let files: string[] = [];
  before(async () => {
    const clinic = join(dir, "clinic");
    await generateClinic({ out: clinic, patients: 5, seed: 1 });
    files = (readdirSync(clinic, { recursive: true }) as string[]).filter((f) => f.endsWith(".dcm")).sort().map((f) => join(clinic, f));
  });

  it("read in full → encodeFile in the same, and in the other explicit byte order: dcmdump identical", () => {
    const originals = runDcmdumpMany(files);
    const diffs: string[] = [];
    for (const [label, target] of [["same", undefined], ["swapped", "swap"]] as const) {
      const out = join(dir, `clinic_${label}`);
      mkdirSync(out, { recursive: true });
      const written: string[] = [];
      for (const [i, path] of files.entries()) {
        const read = readDicomFile(path, { full: true });
        let ts = read.transferSyntaxUid;
        if (target === "swap") ts = ts === EXPLICIT_VR_BIG_ENDIAN ? EXPLICIT_VR_LITTLE_ENDIAN : EXPLICIT_VR_BIG_ENDIAN;
        // Implicit sources stay implicit for the byte-order swap: their private VRs are unknown.
        if (target === "swap" && read.transferSyntaxUid === IMPLICIT_VR_LITTLE_ENDIAN) ts = IMPLICIT_VR_LITTLE_ENDIAN;
        const p = join(out, `${i}.dcm`);
        writeFileSync(p, encodeFile(read.dataset, { meta: read.meta, transferSyntaxUid: ts }));
        written.push(p);
      }
      const dumps = runDcmdumpMany(written);
      files.forEach((path, i) => {
        for (const d of compareRows(dumps.get(written[i])!.dataset, originals.get(path)!.dataset)) diffs.push(`${path} (${label}): ${d}`);
      });
    }
    assert.deepEqual(diffs, []);
  });

  it("one file per patient and modality → implicit VR, one per modality → explicit LE and BE: dumps as dcmconv's conversion", () => {
    const perModality = new Map<string, string>();
    const perPatientModality = new Map<string, string>();
    for (const path of files) {
      const ds = readDicomFile(path).dataset;
      perModality.set(ds.string("Modality") ?? "", path);
      // Same patient and modality: same structure and character set, other values.
      perPatientModality.set(`${ds.string("PatientID")}|${ds.string("Modality")}`, path);
    }
    const chosen = new Set(perModality.values());
    const ours: string[] = [], theirs: string[] = [];
    for (const [index, path] of files.entries()) {
      if (!chosen.has(path) && ![...perPatientModality.values()].includes(path)) continue;
      const read = readDicomFile(path, { full: true });
      // Implicit VR is where a writer can lose most (VRs, private sequences).
      const targets = chosen.has(path) ? TARGETS.slice(0, 3) : TARGETS.slice(1, 2);
      for (const [ts, flag] of targets) {
        const o = join(dir, `clinic_${index}_ours${flag}.dcm`);
        writeFileSync(o, encodeFile(read.dataset, { meta: read.meta, transferSyntaxUid: ts }));
        const t = join(dir, `clinic_${index}_dcmconv${flag}.dcm`);
        // -e: undefined lengths, as the clinic's private sequences have (see above).
        const r = spawnSync("dcmconv", ["-q", flag, "-e", path, t], { timeout: 60_000 });
        assert.equal(r.status, 0, String(r.stderr));
        ours.push(o);
        theirs.push(t);
      }
    }
    const a = runDcmdumpMany(ours), b = runDcmdumpMany(theirs);
    const diffs: string[] = [];
    ours.forEach((o, i) => {
      for (const d of compareRows(a.get(o)!.dataset, b.get(theirs[i])!.dataset)) diffs.push(`${o}: ${d}`);
    });
    assert.ok(perModality.size >= 8, [...perModality.keys()].join(","));
    assert.ok(perPatientModality.size >= 40, String(perPatientModality.size));
    assert.deepEqual(diffs, []);
  });
});
