// The reader against DCMTK: every file DCMTK writes from one sample (dump2dcm in explicit and
// implicit little endian, big endian and deflated, defined and undefined lengths, with and
// without meta information; xml2dcm; dcmcrle's encapsulated RLE) reads to exactly the rows
// dcmdump prints. Plus header-only semantics, hand-made edge cases and bad input.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { DicomParseError, parseDicom, parseDicomHeader, readDicomFile, readSkippedValue } from "../lib/dicom/reader.ts";
import { PIXEL_DATA } from "../lib/dicom/tag.ts";
import { lookupKeyword, lookupTag } from "../lib/dicom/dictionary.ts";
import { characterSet } from "../lib/dicom/charset.ts";
import { encodeDataSet } from "../lib/dicom/writer.ts";
import { EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from "../lib/dicom/uids.ts";
import { compareRows, type Dump, rowsOf, runDcmdumpMany } from "./_dcmdump.ts";
import { type ClinicManifest, generateClinic } from "../lib/fixtures/mod.ts";
import { BIG_OB_TAG, bigObBytes, type Sample, writeSamples } from "./_dicom_samples.ts";

let dir = "";
let samples: Sample[] = [];
const reference = new Map<string, Dump>();

/** dcmdump of the sample (of the original for files dcmdump itself cannot read). */
function dumpOf(s: Sample, loadShort = false): Dump {
  const d = reference.get(`${s.name}:${loadShort}`);
  if (!d) throw new Error(`no dump of ${s.name}`);
  return d;
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), "rtexport-reader-"));
  samples = writeSamples(dir);
  // One dcmdump process per argument set and mode, not one per file.
  const dumpPath = (s: Sample) => s.name.startsWith("no_preamble") ? join(dir, "dump2dcm_te_deflen.dcm") : s.path;
  const groups = new Map<string, Sample[]>();
  for (const s of samples) {
    const key = s.dumpArgs.join(" ");
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  for (const group of groups.values()) {
    for (const loadShort of [false, true]) {
      const dumps = runDcmdumpMany([...new Set(group.map(dumpPath))], { args: group[0].dumpArgs, loadShort });
      for (const s of group) reference.set(`${s.name}:${loadShort}`, dumps.get(dumpPath(s))!);
    }
  }
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// The sample names are fixed; the files are made in before().
const SAMPLE_NAMES = [
  ...["te", "ti", "tb", "td"].flatMap((t) => ["deflen", "undeflen"].flatMap((l) => {
    const n = `dump2dcm_${t}_${l}`;
    return t === "td" ? [n] : [n, `${n}_bare`];
  })),
  "no_preamble_dicm", "no_preamble_no_dicm", "xml2dcm_te", "xml2dcm_tb", "xml2dcm_ti", "dcmcrle_rle",
];
const sample = (name: string) => {
  const s = samples.find((x) => x.name === name);
  if (!s) throw new Error(`no sample ${name}`);
  return s;
};

describe("reader vs dcmdump on files DCMTK wrote", () => {
  it("makes every sample", () => {
    assert.deepEqual(samples.map((s) => s.name).sort(), [...SAMPLE_NAMES].sort());
  });

  for (const name of SAMPLE_NAMES) {
    it(`${name}: full read gives dcmdump's rows, meta information included`, () => {
      const s = sample(name);
      const file = readDicomFile(s.path, { full: true });
      const dump = dumpOf(s);
      assert.deepEqual(compareRows(rowsOf(file.dataset), dump.dataset), []);
      if (!s.bare) assert.deepEqual(compareRows(rowsOf(file.meta), dump.meta), []);
      assert.equal(file.complete, true);
      assert.equal(file.preamble, !s.bare && !name.startsWith("no_preamble"));
      assert.equal(file.meta.size === 0, s.bare);
    });

    it(`${name}: header-only read agrees with dcmdump -M and stops at Pixel Data`, () => {
      const s = sample(name);
      const file = readDicomFile(s.path);
      const dump = dumpOf(s, true);
      // Our header-only rows: Pixel Data is "(not loaded)", everything before it as in full.
      assert.deepEqual(compareRows(rowsOf(file.dataset), dump.dataset, { ignoreLengths: false }), []);
      const px = file.dataset.get(PIXEL_DATA)!;
      const deflated = name.includes("_td_");
      if (deflated) {
        // A deflated data set is inflated whole: nothing is skipped.
        assert.equal(file.complete, true);
        assert.ok(px.value || px.fragments);
      } else {
        assert.equal(file.complete, false);
        assert.equal(px.skipped, true);
        assert.equal(px.value, undefined);
        assert.equal(px.fragments, undefined);
      }
    });
  }

  it("bare data sets are detected as the encoding they are in", () => {
    assert.equal(readDicomFile(sample("dump2dcm_te_deflen_bare").path).transferSyntaxUid, EXPLICIT_VR_LITTLE_ENDIAN);
    assert.equal(readDicomFile(sample("dump2dcm_ti_deflen_bare").path).transferSyntaxUid, IMPLICIT_VR_LITTLE_ENDIAN);
    assert.equal(readDicomFile(sample("dump2dcm_tb_undeflen_bare").path).transferSyntaxUid, EXPLICIT_VR_BIG_ENDIAN);
  });

  it("keeps private elements with their creators, and reads implicit VR private elements as UN", () => {
    const explicit = readDicomFile(sample("dump2dcm_te_deflen").path).dataset;
    assert.equal(explicit.string(0x00290010), "ACME RT 1.0");
    assert.equal(explicit.get(0x00291001)?.vr, "LT");
    assert.deepEqual(explicit.items(0x00291003)[0].values(0x00291004), [3.141592653589793]);
    const implicit = readDicomFile(sample("dump2dcm_ti_undeflen").path).dataset;
    assert.equal(implicit.get(0x00291001)?.vr, "UN");
    // UN with undefined length is a sequence in implicit VR little endian (CP-246).
    assert.equal(implicit.get(0x00291003)?.vr, "SQ");
    assert.equal(implicit.items(0x00291003)[0].string(0x00290010), "ACME RT 1.0");
  });

  it("resolves US|SS by Pixel Representation in implicit VR, as DCMTK does", () => {
    const ds = readDicomFile(sample("dump2dcm_ti_deflen").path).dataset;
    assert.equal(ds.get("SmallestImagePixelValue")?.vr, "SS");
    assert.deepEqual(ds.values("SmallestImagePixelValue"), [-1000]);
  });

  it("decodes every binary VR in every byte order", () => {
    for (const name of ["dump2dcm_te_deflen", "dump2dcm_tb_deflen", "dump2dcm_ti_deflen"]) {
      const ds = readDicomFile(sample(name).path).dataset;
      assert.deepEqual(ds.values(0x00181310), [0, 512, 512, 0], name);
      assert.deepEqual(ds.values(0x00186020), [-2147483648], name);
      assert.deepEqual(ds.values(0x00189219), [-1], name);
      assert.deepEqual(ds.values(0x0040a132), [1, 4294967295], name);
      assert.deepEqual(ds.values(0x00720082), [-5n, 9007199254740993n], name);
      assert.deepEqual(ds.values(0x00720083), [18446744073709551615n], name);
      assert.deepEqual(ds.values(0x00720074), [1e-5, 123456.789], name);
      assert.deepEqual(ds.values(0x00720076).map((v) => Math.fround(v as number)), [Math.fround(0.1), -3.5], name);
      assert.deepEqual(ds.values(0x00209165), ["(0020,0032)", "(7FE0,0010)"], name);
      assert.deepEqual(ds.values(0x00660040), [1, 2, 3], name);
      assert.deepEqual(ds.values(0x00660022), [0.125, -1e300], name);
      assert.deepEqual(ds.strings("ImageType"), ["ORIGINAL", "PRIMARY", "AXIAL"], name);
      assert.deepEqual(ds.strings("InstitutionAddress"), ["Some street 1\\ backslash is text in ST"], name);
      assert.deepEqual(ds.strings("StudyDescription"), ["A", "B", "C"], name);
    }
  });
});

describe("header-only reading", () => {
  it("skips a bulk value over the threshold and readSkippedValue returns exactly its bytes", () => {
    for (const name of ["dump2dcm_te_deflen", "dump2dcm_tb_undeflen", "dump2dcm_ti_deflen_bare", "no_preamble_no_dicm"]) {
      const s = sample(name);
      const el = readDicomFile(s.path).dataset.get(BIG_OB_TAG)!;
      assert.equal(el.skipped, true, name);
      assert.equal(el.value, undefined, name);
      assert.equal(el.length, 6000, name);
      assert.deepEqual(readSkippedValue(s.path, el), bigObBytes(), name);
      assert.deepEqual(readDicomFile(s.path, { full: true }).dataset.get(BIG_OB_TAG)!.value, bigObBytes(), name);
      // A higher threshold reads it.
      assert.deepEqual(readDicomFile(s.path, { bulkThreshold: 10_000 }).dataset.get(BIG_OB_TAG)!.value, bigObBytes(), name);
    }
  });

  it("records where skipped Pixel Data is: readSkippedValue returns the pixel bytes", () => {
    const s = sample("dump2dcm_te_deflen");
    const px = readDicomFile(s.path).dataset.get(PIXEL_DATA)!;
    assert.equal(px.length, 32);
    assert.deepEqual(readSkippedValue(s.path, px), readDicomFile(s.path, { full: true }).dataset.get(PIXEL_DATA)!.value);
  });

  it("parseDicomHeader: a prefix holding the header parses as readDicomFile does; every shorter one throws, never a shorter header", () => {
    const summary = (f: ReturnType<typeof readDicomFile>) =>
      [...f.dataset.elements.values()].map((e) => `${e.tag.toString(16)} ${e.vr} ${e.length} ${e.value ? Array.from(e.value).join(",") : `skipped@${e.offset}`}`);
    for (const name of ["dump2dcm_te_deflen", "dump2dcm_tb_undeflen", "dump2dcm_ti_deflen", "dump2dcm_td_deflen", "no_preamble_dicm", "no_preamble_no_dicm", "dcmcrle_rle"]) {
      const s = sample(name);
      const bytes = new Uint8Array(readFileSync(s.path));
      const fromFile = readDicomFile(s.path);
      const px = fromFile.dataset.get(PIXEL_DATA);
      // Everything the header-only read looks at: up to Pixel Data's value, or the whole file
      // (a deflated data set is inflated whole).
      const deflated = fromFile.transferSyntaxUid === "1.2.840.10008.1.2.1.99";
      const need = px && !deflated ? px.offset : bytes.length;
      const h = parseDicomHeader(bytes.slice(0, need), bytes.length, s.path);
      assert.deepEqual(summary(h), summary(fromFile), name);
      assert.equal(h.transferSyntaxUid, fromFile.transferSyntaxUid, name);
      assert.equal(h.complete, fromFile.complete, name);
      assert.equal(h.path, s.path, name);
      for (let cut = 0; cut < need; cut++) {
        assert.throws(() => parseDicomHeader(bytes.slice(0, cut), bytes.length), DicomParseError, `${name} cut at ${cut}`);
      }
    }
  });

  it("reads encapsulated pixel data as fragments in full mode only", () => {
    const s = sample("dcmcrle_rle");
    const full = readDicomFile(s.path, { full: true }).dataset.get(PIXEL_DATA)!;
    assert.equal(full.undefinedLength, true);
    assert.ok(full.fragments && full.fragments.length === 2); // basic offset table + one frame
    const header = readDicomFile(s.path).dataset.get(PIXEL_DATA)!;
    assert.equal(header.skipped, true);
    assert.equal(header.fragments, undefined);
    assert.equal(header.offset + header.length, readFileSync(s.path).length);
  });

  it("does not read the bytes of a 64 MiB Pixel Data value (bytes read counted by the kernel)", { skip: !existsSync("/proc/self/io") }, () => {
    // The sample's header, then a Pixel Data element of 64 MiB whose bytes are a sparse hole.
    const s = sample("dump2dcm_te_deflen");
    const original = readFileSync(s.path);
    const px = readDicomFile(s.path).dataset.get(PIXEL_DATA)!;
    const headerEnd = px.offset - 12; // explicit VR OW: tag, VR, 2 reserved, 4-byte length
    const big = 64 * 1024 * 1024;
    const path = join(dir, "sparse_pixels.dcm");
    const fd = openSync(path, "w");
    try {
      writeSync(fd, original, 0, headerEnd, 0);
      const h = new Uint8Array(12);
      const dv = new DataView(h.buffer);
      dv.setUint16(0, 0x7fe0, true); dv.setUint16(2, 0x0010, true);
      h[4] = 0x4f; h[5] = 0x57; // OW
      dv.setUint32(8, big, true);
      writeSync(fd, h, 0, 12, headerEnd);
      ftruncateSync(fd, headerEnd + 12 + big);
    } finally {
      closeSync(fd);
    }
    const rchar = () => Number(/rchar:\s*(\d+)/.exec(readFileSync("/proc/self/io", "latin1"))![1]);
    const before = rchar();
    const file = readDicomFile(path);
    const read = rchar() - before;
    assert.equal(file.dataset.get(PIXEL_DATA)!.length, big);
    assert.equal(file.dataset.get(PIXEL_DATA)!.offset, headerEnd + 12);
    assert.equal(file.complete, false);
    // The header is ~7 KB; allow the 16 KiB read window and the /proc reads themselves.
    assert.ok(read < 128 * 1024, `read ${read} bytes`);
  });
});

/** A bare explicit VR little endian data set from (tag, VR, value bytes) triples. */
function explicitLE(...els: [number, string, Uint8Array | string, number?][]): Uint8Array {
  const parts: number[] = [];
  for (const [tag, vr, v, forcedLen] of els) {
    const value = typeof v === "string" ? Uint8Array.from([...v].map((c) => c.charCodeAt(0))) : v;
    const len = forcedLen ?? value.length;
    const long = ["OB", "OW", "SQ", "UN", "UT", "UC", "UR", "OD", "OF", "OL", "OV", "SV", "UV"].includes(vr);
    parts.push(tag >>> 16 & 0xff, tag >>> 24, tag & 0xff, (tag >>> 8) & 0xff, vr.charCodeAt(0), vr.charCodeAt(1));
    if (long) parts.push(0, 0, len & 0xff, (len >>> 8) & 0xff, (len >>> 16) & 0xff, len >>> 24);
    else parts.push(len & 0xff, (len >>> 8) & 0xff);
    parts.push(...value);
  }
  return Uint8Array.from(parts);
}
const u32 = (n: number) => Uint8Array.of(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24);
const concat = (...xs: Uint8Array[]) => {
  const out = new Uint8Array(xs.reduce((n, x) => n + x.length, 0));
  let o = 0;
  for (const x of xs) { out.set(x, o); o += x.length; }
  return out;
};
const itemTag = (e: number) => Uint8Array.of(0xfe, 0xff, e & 0xff, e >>> 8);

describe("edge cases", () => {
  it("knows retired elements (old RT plans use them) without letting them shadow current keywords", () => {
    assert.deepEqual(lookupTag(0x300a0082), { tag: 0x300a0082, vr: "DS", keyword: "BeamDoseSpecificationPoint", vm: "3", retired: true });
    assert.equal(lookupKeyword("PatientID")?.tag, 0x00100020);
    // Read in implicit VR, a retired element decodes by its VR instead of staying UN.
    const implicit = concat(Uint8Array.of(0x08, 0, 0x60, 0), u32(2), new TextEncoder().encode("RT"),
      Uint8Array.of(0x0a, 0x30, 0x82, 0), u32(6), new TextEncoder().encode("1\\2\\3 "));
    const ds = parseDicom(implicit).dataset;
    assert.equal(ds.get(0x300a0082)?.vr, "DS");
    assert.deepEqual(ds.strings(0x300a0082), ["1", "2", "3"]);
  });

  it("reads odd-length values as they are", () => {
    const f = parseDicom(explicitLE([0x00080060, "CS", "CT"], [0x00100020, "LO", "ABC"], [0x00100030, "DA", "19700101"]));
    assert.equal(f.dataset.string("PatientID"), "ABC");
    assert.equal(f.dataset.string("PatientBirthDate"), "19700101");
  });

  it("string() answers from what the element holds now: a new value, VR or character set is decoded again", () => {
    const ds = parseDicom(explicitLE([0x00080005, "CS", "ISO_IR 100"], [0x00100010, "PN", "M\xfcller^J\xf6rg"], [0x00100020, "LO", "ABC"])).dataset;
    assert.equal(ds.string("PatientID"), "ABC");
    assert.equal(ds.string("PatientID"), "ABC"); // asked again: the same answer
    const el = ds.get("PatientID")!;
    el.value = new TextEncoder().encode("XYZ ");
    assert.equal(ds.string("PatientID"), "XYZ");
    ds.set({ ...el, value: new TextEncoder().encode("NEW") });
    assert.equal(ds.string("PatientID"), "NEW");
    // PN decoded by the data set's character set, then again once that changes.
    const pn = ds.get("PatientName")!;
    pn.value = Uint8Array.of(0x4d, 0xc3, 0xbc); // "Mü" in UTF-8
    assert.equal(ds.string("PatientName"), "M\u00c3\u00bc"); // read as ISO_IR 100
    ds.charset = characterSet(["ISO_IR 192"]);
    assert.equal(ds.string("PatientName"), "M\u00fc");
    // A VR corrected after reading (as anonymize does for UN): decoded by the new VR.
    const un = { tag: 0x00181000, vr: "UN", value: new TextEncoder().encode("SN1 "), offset: 0, length: 4 };
    ds.set(un);
    assert.equal(ds.string(0x00181000), "SN1"); // UN of a known LO tag decodes as LO
    un.vr = "OB";
    assert.equal(ds.string(0x00181000), undefined);
  });

  it("reads UN with undefined length in an explicit file as an implicit VR sequence (CP-246)", () => {
    const inner = concat(Uint8Array.of(0x08, 0x00, 0x00, 0x01), u32(4), new TextEncoder().encode("CODE"));
    const seq = concat(itemTag(0xe000), u32(0xffffffff), inner, itemTag(0xe00d), u32(0), itemTag(0xe0dd), u32(0));
    const bytes = concat(
      explicitLE([0x00080060, "CS", "RT"]),
      Uint8Array.of(0x29, 0x00, 0x03, 0x10, 0x55, 0x4e, 0, 0), u32(0xffffffff), seq,
      explicitLE([0x00100020, "LO", "AFTER "]),
    );
    const ds = parseDicom(bytes).dataset;
    const items = ds.items(0x00291003);
    assert.equal(items.length, 1);
    assert.equal(items[0].explicitVR, false);
    assert.equal(items[0].string("CodeValue"), "CODE");
    assert.equal(ds.string("PatientID"), "AFTER");
  });

  it("decodes an AT value whose length is not a multiple of 4 without reading past it", () => {
    const ds = parseDicom(explicitLE([0x00080060, "CS", "CT"], [0x00209165, "AT", Uint8Array.of(0x20, 0, 0x32, 0, 0x10, 0)])).dataset;
    assert.deepEqual(ds.values(0x00209165), ["(0020,0032)"]);
  });

  it("reads the items of a known sequence stored as UN with a defined length, and writes it as SQ from them", () => {
    const uid = new TextEncoder().encode("1.2.3.4\0");
    const item = concat(Uint8Array.of(0x08, 0, 0x55, 0x11), u32(uid.length), uid);
    const seq = concat(itemTag(0xe000), u32(item.length), item);
    const bytes = concat(
      explicitLE([0x00080060, "CS", "CT"]),
      Uint8Array.of(0x08, 0x00, 0x40, 0x11, 0x55, 0x4e, 0, 0), u32(seq.length), seq,
      explicitLE([0x00100020, "LO", "AFTER "]),
    );
    const ds = parseDicom(bytes).dataset;
    const el = ds.get("ReferencedImageSequence")!;
    assert.equal(el.vr, "UN");
    assert.deepEqual(el.value, seq);
    assert.equal(ds.items("ReferencedImageSequence")[0].string("ReferencedSOPInstanceUID"), "1.2.3.4");
    assert.equal(ds.string("PatientID"), "AFTER");
    // Written as SQ from the items, so edits to them are written (content otherwise unchanged).
    ds.items("ReferencedImageSequence")[0].delete("ReferencedSOPInstanceUID");
    const back = parseDicom(encodeDataSet(ds)).dataset;
    assert.equal(back.get("ReferencedImageSequence")!.vr, "SQ");
    assert.equal(back.items("ReferencedImageSequence").length, 1);
    assert.equal(back.items("ReferencedImageSequence")[0].has("ReferencedSOPInstanceUID"), false);
    assert.equal(back.string("PatientID"), "AFTER");
    // Not a sequence after all: the bytes stay, no items.
    const junk = concat(explicitLE([0x00080060, "CS", "CT"]), Uint8Array.of(0x08, 0x00, 0x40, 0x11, 0x55, 0x4e, 0, 0), u32(4), Uint8Array.of(1, 2, 3, 4));
    const j = parseDicom(junk).dataset.get("ReferencedImageSequence")!;
    assert.equal(j.items, undefined);
    assert.deepEqual(j.value, Uint8Array.of(1, 2, 3, 4));
  });

  it("decodes the values of a UN element of a known tag by the dictionary's VR", () => {
    const ds = parseDicom(explicitLE([0x00080060, "CS", "CT"], [0x00100020, "UN", "PID42 "])).dataset;
    assert.equal(ds.get("PatientID")?.vr, "UN");
    assert.equal(ds.string("PatientID"), "PID42");
  });

  it("reads a data set that the meta information calls explicit but is implicit, as DCMTK does", () => {
    const withMeta = readFileSync(sample("dump2dcm_te_deflen").path);
    const metaEnd = readDicomFile(sample("dump2dcm_te_deflen").path).datasetOffset;
    const implicitBody = readFileSync(sample("dump2dcm_ti_deflen_bare").path);
    const f = parseDicom(concat(withMeta.subarray(0, metaEnd), implicitBody), { full: true });
    assert.equal(f.dataset.explicitVR, false);
    assert.deepEqual(compareRows(rowsOf(f.dataset), dumpOf(sample("dump2dcm_ti_deflen_bare")).dataset), []);
  });

  it("keeps leading spaces of LT/ST/UT values and trims only trailing padding", () => {
    const ds = parseDicom(explicitLE([0x00080060, "CS", "CT"], [0x00104000, "LT", "  indented  "], [0x00100020, "LO", " PID "])).dataset;
    assert.equal(ds.string("PatientComments"), "  indented");
    assert.equal(ds.string("PatientID"), "PID");
  });

  it("round-trips a data set written in each native transfer syntax", () => {
    const ds = readDicomFile(sample("dump2dcm_te_deflen").path, { full: true }).dataset;
    for (const ts of [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN]) {
      const back = parseDicom(encodeDataSet(ds, ts), { full: true });
      assert.equal(back.transferSyntaxUid, ts);
      assert.equal(back.dataset.string("PatientID"), "PID 1");
    }
  });
});

describe("bad input", () => {
  const BAD: [string, Uint8Array, RegExp][] = [
    ["empty", new Uint8Array(0), /not a DICOM file/],
    ["text", new TextEncoder().encode("hello, this is not DICOM at all\n"), /not a DICOM file/],
    ["preamble without meta", concat(new Uint8Array(128), new TextEncoder().encode("DICM"), new Uint8Array(20)), /meta information missing/],
    ["value longer than the file", explicitLE([0x00080060, "CS", "CT"], [0x00100020, "LO", "ABC", 400]), /extends beyond/],
    ["huge length field", concat(explicitLE([0x00080060, "CS", "CT"]), Uint8Array.of(0x29, 0, 1, 0x10, 0x4f, 0x42, 0, 0), u32(0xfffffff0)), /extends beyond/],
    ["bad VR", concat(explicitLE([0x00080060, "CS", "CT"]), Uint8Array.of(0x10, 0, 0x20, 0, 0x01, 0x02, 2, 0, 0x41, 0x42)), /invalid VR/],
    ["truncated element header", concat(explicitLE([0x00080060, "CS", "CT"]), Uint8Array.of(0x10, 0, 0x20)), /unexpected end of data/],
    ["unterminated sequence", concat(explicitLE([0x00080060, "CS", "CT"]), Uint8Array.of(0x08, 0, 0x40, 0x11, 0x53, 0x51, 0, 0), u32(0xffffffff), itemTag(0xe000), u32(0xffffffff)), /unexpected end of data/],
    ["item of wrong length", concat(explicitLE([0x00080060, "CS", "CT"]), Uint8Array.of(0x08, 0, 0x40, 0x11, 0x53, 0x51, 0, 0), u32(16), itemTag(0xe000), u32(100), new Uint8Array(8)), /extends beyond/],
  ];
  for (const [what, bytes, message] of BAD) {
    it(`${what}: a DicomParseError saying so`, () => {
      assert.throws(() => parseDicom(bytes), (e: unknown) => e instanceof DicomParseError && message.test(e.message));
    });
  }

  it("sequences nested deeper than the limit: a DicomParseError, not a stack overflow", () => {
    let body = explicitLE([0x00080100, "SH", "LEAF"]);
    for (let i = 0; i < 10_000; i++) {
      body = concat(Uint8Array.of(0x08, 0, 0x40, 0x11, 0x53, 0x51, 0, 0), u32(0xffffffff), itemTag(0xe000), u32(0xffffffff), body,
        itemTag(0xe00d), u32(0), itemTag(0xe0dd), u32(0));
      if (body.length > 1_000_000) break;
    }
    assert.throws(() => parseDicom(concat(explicitLE([0x00080060, "CS", "CT"]), body)), (e: unknown) => e instanceof DicomParseError && /nested deeper/.test(e.message));
  });

  it("a corrupt deflated data set: a DicomParseError saying it cannot be inflated", () => {
    const s = sample("dump2dcm_td_deflen");
    const bytes = new Uint8Array(readFileSync(s.path));
    const at = readDicomFile(s.path).datasetOffset;
    bytes.fill(0xff, at, at + 16);
    assert.throws(() => parseDicom(bytes), (e: unknown) => e instanceof DicomParseError && /deflated data set cannot be inflated/.test(e.message));
  });

  it("a truncated file read from disk: a DicomParseError with the offset", () => {
    const s = sample("dump2dcm_te_deflen");
    const path = join(dir, "truncated.dcm");
    const fd = openSync(path, "w");
    writeSync(fd, readFileSync(s.path), 0, 1001, 0); // 1000 is an element boundary
    closeSync(fd);
    assert.throws(() => readDicomFile(path), (e: unknown) => e instanceof DicomParseError && /unexpected end of data at offset \d+|extends beyond/.test(e.message));
  });
});

describe("reader vs dcmdump on every file of the synthetic clinic", () => {
  let clinic = "";
  let manifest: ClinicManifest;
  let files: string[] = [];
  before(async () => {
    clinic = join(dir, "clinic");
    manifest = await generateClinic({ out: clinic, patients: 5, seed: 1 });
    files = (readdirSync(clinic, { recursive: true }) as string[])
      .filter((f) => f.endsWith(".dcm")).sort().map((f) => join(clinic, f));
  });

  it("full and header-only reads give dcmdump's rows for every file", () => {
    assert.equal(files.length, manifest.files);
    const dumps = runDcmdumpMany(files);
    const diffs: string[] = [];
    for (const path of files) {
      const dump = dumps.get(path)!;
      const full = readDicomFile(path, { full: true });
      for (const d of compareRows(rowsOf(full.dataset), dump.dataset)) diffs.push(`${path} full: ${d}`);
      for (const d of compareRows(rowsOf(full.meta), dump.meta)) diffs.push(`${path} meta: ${d}`);
      // Header-only: identical except values not loaded (Pixel Data) and what follows Pixel Data.
      const header = readDicomFile(path);
      for (const d of compareRows(rowsOf(header.dataset), dump.dataset)) diffs.push(`${path} header-only: ${d}`);
    }
    assert.deepEqual(diffs, []);
  });

  it("decodes every patient's name as dcmdump +U8 does, and as the standard's examples say", () => {
    const diffs: string[] = [];
    // One file per patient and modality; dcmdump's iconv cannot convert ISO 2022 IR 87 here,
    // so those patients' names are checked against the PS3.5 H.3.1 text the manifest carries.
    const chosen = new Map<string, string>();
    for (const path of files) chosen.set(path.slice(0, path.lastIndexOf("/")), path);
    const byIconv = [...chosen.values()].filter((p) => !readDicomFile(p).dataset.charset.terms.includes("ISO 2022 IR 87"));
    const dumps = runDcmdumpMany(byIconv, { utf8: true });
    for (const path of chosen.values()) {
      const ds = readDicomFile(path).dataset;
      const patient = manifest.patients.find((p) => p.patientId === ds.string("PatientID"))!;
      if (ds.string("PatientName") !== patient.name) diffs.push(`${path}: ${ds.string("PatientName")} vs manifest ${patient.name}`);
      const dump = dumps.get(path);
      if (dump) for (const d of compareRows(rowsOf(ds, { utf8: true }), dump.dataset, { ignoreLengths: true })) diffs.push(`${path}: ${d}`);
    }
    assert.ok(byIconv.length < chosen.size, "some names are ISO 2022 IR 87");
    assert.deepEqual(diffs, []);
  });
});

// Real-world oddities collected by pydicom (Debian python3-pydicom ships them): big endian
// without meta, JPEG/JPEG 2000/RLE fragments, a sequence delimiter inside JPEG 2000, private
// sequences, UN sequences, a bad VR, odd lengths, a missing Transfer Syntax UID, deflate, and
// dclunie's character set files (PS3.5 Annex H/I/J and more).
const PYDICOM_DATA = "/usr/lib/python3/dist-packages/pydicom/data";
// npm test installs python3-pydicom; a missing install is a failure here, not a skip.
describe("real-world files: pydicom's test data", () => {
  it("has the test data of Debian's python3-pydicom", () => {
    assert.ok(existsSync(PYDICOM_DATA), `${PYDICOM_DATA} is missing: install the Debian package python3-pydicom (npm test does)`);
  });
  const list = (sub: string) => readdirSync(join(PYDICOM_DATA, sub)).filter((f) => f.endsWith(".dcm")).sort().map((f) => join(PYDICOM_DATA, sub, f));

  it("every file dcmdump can read, we read to the same rows; the rest end in a DicomParseError or a result", () => {
    const diffs: string[] = [];
    let compared = 0;
    const paths = [...list("test_files"), ...list("charset_files")];
    // Files DCMTK cannot read either (truncated, garbage) have no dump: ours must fail cleanly or succeed.
    const dumps = runDcmdumpMany(paths, { allowFailures: true });
    for (const path of paths) {
      const dump = dumps.get(path);
      let file;
      try {
        file = readDicomFile(path, { full: true });
        readDicomFile(path);
      } catch (e) {
        if (!(e instanceof DicomParseError)) diffs.push(`${path}: ${(e as Error).message}`);
        else if (dump) diffs.push(`${path}: dcmdump reads it, we fail: ${e.message}`);
        continue;
      }
      if (!dump) continue;
      compared++;
      for (const d of compareRows(rowsOf(file.dataset), dump.dataset)) diffs.push(`${path}: ${d}`);
      for (const d of compareRows(rowsOf(file.meta), dump.meta)) diffs.push(`${path} meta: ${d}`);
    }
    assert.deepEqual(diffs, []);
    assert.ok(compared >= 80, `compared ${compared}`);
  });

  it("decodes the text of every character set file as pydicom does (ISO 2022 IR 87 included)", () => {
    const script = [
      "import json, os, sys",
      "from pydicom import dcmread",
      "out = {}",
      "for p in sys.argv[1:]:",
      "    ds = dcmread(p)",
      "    v = ds.get('PatientName')",
      "    out[p] = [] if v is None else [str(x) for x in (v if type(v).__name__ == 'MultiValue' else [v])]",
      "print(json.dumps(out, ensure_ascii=False))",
    ].join("\n");
    const files = list("charset_files");
    const r = spawnSync("/usr/bin/python3", ["-c", script, ...files], { encoding: "utf8", timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const theirs = JSON.parse(r.stdout) as Record<string, string[]>;
    const diffs: string[] = [];
    for (const path of files) {
      // pydicom drops empty trailing component groups ("…=王^小東=" → "…=王^小東"); the bytes have them.
      const ours = readDicomFile(path).dataset.strings("PatientName").map((v) => v.replace(/=+$/, ""));
      if (JSON.stringify(ours) !== JSON.stringify(theirs[path])) diffs.push(`${path}: ${JSON.stringify(ours)} vs pydicom ${JSON.stringify(theirs[path])}`);
    }
    assert.deepEqual(diffs, []);
    assert.ok(files.length >= 15);
  });
});
