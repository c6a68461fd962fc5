// Test helper: DICOM files written by DCMTK itself (dump2dcm, xml2dcm, dcmcrle) in every
// encoding the reader must handle, built from one dump text that exercises every VR, nested
// sequences of both length kinds, private blocks and sequences, multi-valued and empty values,
// a bulk value over the header-only threshold, and (small) pixel data.
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** One sample file and how DCMTK made it. */
export interface Sample {
  name: string;
  path: string;
  /** The dcmdump arguments that read it (`-f` for a bare data set …). */
  dumpArgs: string[];
  /** Transfer syntax name as dcmdump prints it on "# Used TransferSyntax:". */
  transferSyntax: string;
  /** Written without meta information (a bare data set). */
  bare: boolean;
}

const BIG_OB_LENGTH = 6000;

/** The dump2dcm text every sample is made from (ASCII only; character sets have their own test). */
export function sampleDump(): string {
  const big = Array.from({ length: BIG_OB_LENGTH }, (_, i) => (i * 7 % 256).toString(16).padStart(2, "0")).join("\\");
  const pixels = Array.from({ length: 16 }, (_, i) => ((i * 97 + 3) & 0xfff).toString(16).padStart(4, "0")).join("\\");
  return `(0008,0005) CS [ISO_IR 100]
(0008,0008) CS [ORIGINAL\\PRIMARY\\AXIAL]
(0008,0016) UI 1.2.840.10008.5.1.4.1.1.2
(0008,0018) UI 1.2.826.0.1.3680043.10.1467.99.1
(0008,0020) DA [20240131]
(0008,0030) TM [101010.123]
(0008,0060) CS [CT]
(0008,0081) ST [Some street 1\\ backslash is text in ST]
(0008,0090) PN (no value available)
(0008,0119) UC [long code value]
(0008,1030) LO [A \\ B \\C]
(0008,1140) SQ (Sequence with undefined length)
  (fffe,e000) na (Item with undefined length)
    (0008,1150) UI 1.2.840.10008.5.1.4.1.1.2
    (0008,1155) UI 1.2.826.0.1.3680043.10.1467.99.2
    (0040,a170) SQ (Sequence with undefined length)
      (fffe,e000) na (Item with undefined length)
        (0008,0100) SH [121311]
        (0008,0102) SH [DCM]
        (0040,a043) SQ (Sequence with undefined length)
          (fffe,e000) na (Item with undefined length)
            (0008,0100) SH [deep]
          (fffe,e00d) na (ItemDelimitationItem)
        (fffe,e0dd) na (SequenceDelimitationItem)
      (fffe,e00d) na (ItemDelimitationItem)
    (fffe,e0dd) na (SequenceDelimitationItem)
  (fffe,e00d) na (ItemDelimitationItem)
  (fffe,e000) na (Item with undefined length)
    (0008,1150) UI 1.2.840.10008.5.1.4.1.1.2
  (fffe,e00d) na (ItemDelimitationItem)
  (fffe,e000) na (Item with undefined length)
  (fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
(0008,1150) UI 1.2.840.10008.5.1.4.1.1.481.5
(0008,1199) SQ (Sequence with undefined length)
(fffe,e0dd) na (SequenceDelimitationItem)
(0010,0010) PN [Doe^John^^Dr^]
(0010,0020) LO [ PID 1]
(0010,1010) AS [042Y]
(0010,4000) LT [comment with \\ backslash]
(0018,0050) DS [2.5]
(0018,1310) US 0\\512\\512\\0
(0018,1638) OF 1.5\\-2.25\\3e-8
(0018,6020) SL -2147483648
(0018,9219) SS -1
(0020,000d) UI 1.2.826.0.1.3680043.10.1467.99.3
(0020,000e) UI 1.2.826.0.1.3680043.10.1467.99.4
(0020,0013) IS [7]
(0020,0032) DS [-250\\-250\\12.5]
(0020,9165) AT (0020,0032)\\(7fe0,0010)
(0028,0002) US 1
(0028,0004) CS [MONOCHROME2]
(0028,0010) US 4
(0028,0011) US 4
(0028,0100) US 16
(0028,0101) US 16
(0028,0102) US 15
(0028,0103) US 1
(0028,0106) SS -1000
(0028,0107) SS 2000
(0028,1050) DS [40\\400]
(0029,0010) LO [ACME RT 1.0]
(0029,0011) LO [OTHER VENDOR]
(0029,1001) LT [private text]
(0029,1002) US 42\\43
(0029,1003) SQ (Sequence with undefined length)
  (fffe,e000) na (Item with undefined length)
    (0029,0010) LO [ACME RT 1.0]
    (0029,1004) FD 3.141592653589793
  (fffe,e00d) na (ItemDelimitationItem)
(fffe,e0dd) na (SequenceDelimitationItem)
(0029,1005) OB ${big}
(0029,1101) SH [other block]
(0040,a132) UL 1\\4294967295
(0066,0022) OD 0.125\\-1e300
(0066,0040) OL 1\\2\\3
(0072,0076) FL 0.1\\-3.5
(0072,0074) FD 1e-5\\123456.789
(0072,0082) SV -5\\9007199254740993
(0072,0083) UV 18446744073709551615
(300a,0080) IS [3]
(3006,0050) DS [1\\2\\3\\4.5\\5\\6]
(7fe0,0010) OW ${pixels}
`;
}

/** The sample's value > 4 KiB that a header-only read skips: (0029,1005) OB. */
export const BIG_OB_TAG = 0x00291005;
export function bigObBytes(): Uint8Array {
  return Uint8Array.from({ length: BIG_OB_LENGTH }, (_, i) => i * 7 % 256);
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { timeout: 60_000 });
  if (r.error) throw new Error(`Cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${String(r.stderr).trim()}`);
}

const TS = {
  "+te": "Little Endian Explicit",
  "+ti": "Little Endian Implicit",
  "+tb": "Big Endian Explicit",
  "+td": "Deflated Explicit VR Little Endian",
} as const;

/** Writes every sample into `dir` and returns them. Needs dump2dcm, dcm2xml, xml2dcm, dcmcrle. */
export function writeSamples(dir: string): Sample[] {
  const dumpPath = join(dir, "sample.dump");
  writeFileSync(dumpPath, sampleDump());
  const samples: Sample[] = [];
  for (const [flag, tsName] of Object.entries(TS)) {
    for (const lengths of ["+e", "-e"]) {
      const name = `dump2dcm_${flag.slice(1)}_${lengths === "+e" ? "deflen" : "undeflen"}`;
      const path = join(dir, `${name}.dcm`);
      run("dump2dcm", ["-q", "+l", "65536", flag, lengths, dumpPath, path]);
      samples.push({ name, path, dumpArgs: [], transferSyntax: tsName, bare: false });
      if (flag !== "+td") {
        // The same data set without preamble and meta information (dump2dcm -F).
        const bare = join(dir, `${name}_bare.dcm`);
        run("dump2dcm", ["-q", "+l", "65536", "-F", flag, lengths, dumpPath, bare]);
        const readAs = flag === "+ti" ? "-ti" : flag === "+tb" ? "-tb" : "-te";
        samples.push({ name: `${name}_bare`, path: bare, dumpArgs: ["-f", readAs], transferSyntax: tsName, bare: true });
      }
    }
  }
  // Meta information without the 128-byte preamble (and with, and without, "DICM"): made by
  // cutting the preamble off a DCMTK file; dcmdump reads the original for comparison.
  const withMeta = join(dir, "dump2dcm_te_deflen.dcm");
  const bytes = readFileSync(withMeta);
  writeFileSync(join(dir, "no_preamble_dicm.dcm"), bytes.subarray(128));
  writeFileSync(join(dir, "no_preamble_no_dicm.dcm"), bytes.subarray(132));
  samples.push({ name: "no_preamble_dicm", path: join(dir, "no_preamble_dicm.dcm"), dumpArgs: [], transferSyntax: TS["+te"], bare: false });
  samples.push({ name: "no_preamble_no_dicm", path: join(dir, "no_preamble_no_dicm.dcm"), dumpArgs: [], transferSyntax: TS["+te"], bare: false });
  // xml2dcm from DCMTK's own XML of the sample.
  const xml = join(dir, "sample.xml");
  const x = spawnSync("dcm2xml", ["-q", "+Wb", withMeta], { timeout: 60_000, maxBuffer: 1 << 28 });
  if (x.status !== 0) throw new Error(`dcm2xml failed: ${String(x.stderr)}`);
  writeFileSync(xml, x.stdout);
  for (const flag of ["+te", "+tb", "+ti"] as const) {
    const path = join(dir, `xml2dcm_${flag.slice(1)}.dcm`);
    run("xml2dcm", ["-q", flag, xml, path]);
    samples.push({ name: `xml2dcm_${flag.slice(1)}`, path, dumpArgs: [], transferSyntax: TS[flag], bare: false });
  }
  // Encapsulated pixel data: RLE Lossless by dcmcrle (basic offset table and fragments).
  const rle = join(dir, "dcmcrle_rle.dcm");
  run("dcmcrle", ["-q", withMeta, rle]);
  samples.push({ name: "dcmcrle_rle", path: rle, dumpArgs: [], transferSyntax: "RLE Lossless", bare: false });
  return samples;
}
