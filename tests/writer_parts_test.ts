// Deferred reads (large values left in the file) and encoding in parts (bytes and ranges of the
// source), which anonymize uses to copy pixel data without holding it: on files DCMTK wrote in
// every transfer syntax and on pydicom's compressed and multi-frame objects, writing the parts
// (ranges copied from the file) gives exactly the bytes of a full read encoded at once.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { closeSync, fstatSync, mkdtempSync, openSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readDicomFd, readDicomFile } from "../lib/dicom/reader.ts";
import { transferSyntaxEncoding } from "../lib/dicom/uids.ts";
import { encodeDataSet, encodeDataSetParts } from "../lib/dicom/writer.ts";
import { type Sample, writeSamples } from "./_dicom_samples.ts";

const PYDICOM = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
const PYDICOM_FILES = [
  "JPEG2000.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_small_odd_jpeg.dcm", "MR_small_RLE.dcm",
  "rtdose.dcm", "CT_small.dcm", "waveform_ecg.dcm", "liver_1frame.dcm", "JPEG-lossy.dcm",
];

let dir: string;
let samples: Sample[];

before(() => {
  dir = mkdtempSync(join(tmpdir(), "rtexport-parts-"));
  samples = writeSamples(dir);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Writes parts to memory, reading the ranges from the open file the way anonymize does. */
function assemble(fd: number, parts: ReturnType<typeof encodeDataSetParts>): Buffer {
  const out: Buffer[] = [];
  for (const p of parts) {
    if (p instanceof Uint8Array) out.push(Buffer.from(p));
    else {
      const b = Buffer.alloc(p.length);
      let got = 0;
      while (got < p.length) got += readSync(fd, b, got, p.length - got, p.offset + got);
      out.push(b);
    }
  }
  return Buffer.concat(out);
}

describe("deferred reads and encoding in parts", () => {
  it("give the bytes of a full read for every DCMTK sample and pydicom's compressed, multi-frame and waveform objects", () => {
    const paths = [
      ...samples.filter((s) => !s.bare && !/_td_|_tb_/.test(s.name)).map((s) => s.path),
      ...PYDICOM_FILES.map((f) => join(PYDICOM, f)),
    ];
    let deferred = 0;
    for (const path of paths) {
      for (const threshold of [16, 4096]) {
        const full = readDicomFile(path, { full: true });
        const expected = Buffer.from(encodeDataSet(full.dataset, full.transferSyntaxUid));
        const fd = openSync(path, "r");
        try {
          const f = readDicomFd(fd, fstatSync(fd).size, { full: true, deferBulk: true, bulkThreshold: threshold }, path);
          assert.equal(transferSyntaxEncoding(f.transferSyntaxUid).deflated, false);
          const parts = encodeDataSetParts(f.dataset, f.transferSyntaxUid);
          deferred += parts.filter((p) => !(p instanceof Uint8Array)).length;
          const got = assemble(fd, parts);
          assert.ok(got.equals(expected), `${path} (threshold ${threshold}): ${got.length} bytes, expected ${expected.length}`);
        } finally {
          closeSync(fd);
        }
      }
    }
    assert.ok(paths.length >= 15, `${paths.length} files`);
    assert.ok(deferred >= 20, `only ${deferred} values were left in the files`);
  });

  it("leaves encapsulated pixel data in the file as fragment ranges, and odd fragments padded on writing", () => {
    const path = join(PYDICOM, "SC_rgb_rle_2frame.dcm");
    const fd = openSync(path, "r");
    try {
      const f = readDicomFd(fd, fstatSync(fd).size, { full: true, deferBulk: true, bulkThreshold: 64 }, path);
      const pixel = f.dataset.get(0x7fe00010)!;
      assert.equal(pixel.skipped, true);
      assert.equal(pixel.value, undefined);
      assert.equal(pixel.fragments, undefined);
      assert.equal(pixel.fragmentRanges!.length, 3); // offset table + one fragment per frame
    } finally {
      closeSync(fd);
    }
    // A full read keeps refusing to write what it did not read.
    const header = readDicomFile(path);
    assert.throws(() => encodeDataSet(header.dataset, header.transferSyntaxUid), /its value was not read/);
  });
});
