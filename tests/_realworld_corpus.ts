// Test helper: a corpus of DICOM files no one here wrote, plus the files that reproduce each
// real-world case of issue 12. Sources: Debian python3-pydicom's test and character set files
// (implicit/explicit/big endian, deflate, RLE, JPEG, JPEG 2000, RT objects whose meta header
// disagrees with the data set); DCMTK-written variants of the RT objects (dcmconv to implicit,
// big endian and deflate; dump2dcm from dcmdump's text); GDCM's lossless compressions with the
// reference decoding (`gdcmconv --raw`, through tests/_codec_corpus.ts's helpers); and files written here for what none of those has (an
// implicit VR RT image with curves and private elements, a truncated encapsulated file, one SOP
// Instance UID in two patients).
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DataSet } from "../lib/dicom/dataset.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { encodeFile } from "../lib/dicom/writer.ts";
import { codecSources, GDCM_LOSSLESS, gdcmEncode, gdcmReference } from "./_codec_corpus.ts";

export const PYDICOM_DATA = "/usr/lib/python3/dist-packages/pydicom/data";

/** One file of the corpus. */
export interface CorpusFile {
  /** Short name for messages. */
  name: string;
  path: string;
  /** Who wrote it: `pydicom`, `dcmconv +ti`, `dump2dcm`, `gdcmconv --jpegls`, `written here` … */
  origin: string;
  /** The data set's SOP Instance UID, when it has one. */
  sopInstanceUid?: string;
  transferSyntaxUid: string;
}

/** A compressed file with the reference decoding of its pixels. */
export interface CompressedFile extends CorpusFile {
  /** `gdcmconv --raw` of it. */
  reference: string;
}

export interface RealWorldCorpus {
  /** Every readable file: pydicom's, the DCMTK variants, and the implicit VR file with curves. */
  files: CorpusFile[];
  /** Implicit VR RT image with curves (50xx), retired overlay elements, GE private elements private.dic knows, and a private block no dictionary knows. */
  curves: string;
  /** A JPEG Lossless file cut before its sequence delimiter, and one cut inside its last fragment. */
  truncated: string[];
  /** rtplan.dcm and a copy of another patient with the same SOP Instance UID and other content. */
  sameUidTwoPatients: [string, string];
  /** GDCM's lossless compressions (JPEG Lossless, JPEG-LS, JPEG 2000, RLE) with their references. */
  compressed: CompressedFile[];
  /** Lossy compressed files as pydicom ships them. */
  lossy: CorpusFile[];
}

function run(cmd: string, args: string[], input?: string): { ok: boolean; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { timeout: 60_000, encoding: "latin1", input, maxBuffer: 1 << 28, env: { ...process.env, TCP_NODELAY: "1" } });
  if (r.error) throw new Error(`Cannot run ${cmd}: ${r.error.message}`);
  return { ok: r.status === 0, stdout: String(r.stdout ?? ""), stderr: String(r.stderr ?? "").trim() };
}

function must(cmd: string, args: string[]): void {
  const r = run(cmd, args);
  if (!r.ok) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
}

function describe(name: string, path: string, origin: string): CorpusFile {
  const f = readDicomFile(path);
  const uid = f.dataset.string(0x00080018);
  return { name, path, origin, transferSyntaxUid: f.transferSyntaxUid, ...(uid ? { sopInstanceUid: uid } : {}) };
}

function text(value: string): Uint8Array {
  return new TextEncoder().encode(value.length % 2 ? value + " " : value);
}

function uid(value: string): Uint8Array {
  const b = new TextEncoder().encode(value);
  return b.length % 2 ? Uint8Array.from([...b, 0]) : b;
}

function binary(kind: "US" | "SL" | "OW", values: number[]): Uint8Array {
  const width = kind === "SL" ? 4 : 2;
  const out = new Uint8Array(values.length * width);
  const dv = new DataView(out.buffer);
  values.forEach((v, i) => (kind === "SL" ? dv.setInt32(4 * i, v, true) : dv.setUint16(2 * i, v, true)));
  return out;
}

/**
 * An RT image as a portal dosimetry system writes it in implicit VR: curve group 5000 (retired),
 * a retired overlay element, GE's private block (private.dic knows its elements' VRs) and a
 * private block no dictionary knows (its elements can only be UN once converted to explicit VR).
 */
function writeCurvesFile(path: string): void {
  const ds = new DataSet({ littleEndian: true, explicitVR: false });
  const put = (tag: number, vr: string, value: Uint8Array) => ds.set({ tag, vr, value, offset: 0, length: value.length });
  put(0x00080016, "UI", uid("1.2.840.10008.5.1.4.1.1.481.1"));
  put(0x00080018, "UI", uid("1.2.826.0.1.3680043.10.1467.12.1"));
  put(0x00080060, "CS", text("RTIMAGE"));
  put(0x00100010, "PN", text("RW^Curves"));
  put(0x00100020, "LO", text("RW-CURVES"));
  put(0x0020000d, "UI", uid("1.2.826.0.1.3680043.10.1467.12.2"));
  put(0x0020000e, "UI", uid("1.2.826.0.1.3680043.10.1467.12.3"));
  put(0x00280002, "US", binary("US", [1]));
  put(0x00280004, "CS", text("MONOCHROME2"));
  put(0x00280010, "US", binary("US", [4]));
  put(0x00280011, "US", binary("US", [4]));
  put(0x00280100, "US", binary("US", [16]));
  put(0x00280101, "US", binary("US", [16]));
  put(0x00280102, "US", binary("US", [15]));
  put(0x00280103, "US", binary("US", [0]));
  put(0x30020002, "SH", text("Portal 1"));
  // GE's block: LO, SH and SL by DCMTK's private.dic.
  put(0x00090010, "LO", text("GEMS_IDEN_01"));
  put(0x00091001, "LO", text("GE_GENESIS_FF"));
  put(0x00091002, "SH", text("CT01"));
  put(0x00091027, "SL", binary("SL", [862399669]));
  // A block no dictionary knows.
  put(0x00290010, "LO", text("ACME PORTAL 1.0"));
  put(0x00291001, "LT", text("calibrated against the EPID"));
  put(0x00291002, "OB", Uint8Array.of(1, 2, 3, 4, 5, 6));
  // Curve group 5000 (retired in 2004, still written by portal dosimetry software).
  put(0x50000005, "US", binary("US", [2]));
  put(0x50000010, "US", binary("US", [3]));
  put(0x50000020, "CS", text("POLY"));
  put(0x50000022, "LO", text("Profile along the central axis"));
  put(0x50000030, "SH", text("DPC\\DPC"));
  put(0x50000103, "US", binary("US", [0]));
  put(0x50003000, "OW", binary("OW", [0, 100, 1, 250, 2, 90]));
  // A retired overlay element beside a current one.
  put(0x60000010, "US", binary("US", [4]));
  put(0x60000060, "CS", text("NONE"));
  put(0x7fe00010, "OW", binary("OW", Array.from({ length: 16 }, (_, i) => i * 100)));
  writeFileSync(path, encodeFile(ds, { transferSyntaxUid: "1.2.840.10008.1.2" }));
}

/** Builds the corpus in `dir` (a few seconds: dcmconv, dump2dcm and gdcmconv runs). */
export async function buildRealWorldCorpus(dir: string): Promise<RealWorldCorpus> {
  mkdirSync(dir, { recursive: true });
  const files: CorpusFile[] = [];
  // pydicom's files, those DCMTK reads (the rest are damaged on purpose: truncated, no DICOM).
  const pydicom: string[] = [];
  for (const sub of ["test_files", "charset_files"]) {
    const list = run("find", [join(PYDICOM_DATA, sub), "-maxdepth", "1", "-name", "*.dcm"]).stdout.split("\n").filter(Boolean).sort();
    pydicom.push(...list);
  }
  for (const path of pydicom) {
    if (!run("dcmdump", ["-q", path]).ok) continue;
    try {
      files.push(describe(`pydicom ${path.slice(path.lastIndexOf("/") + 1)}`, path, "pydicom"));
    } catch { /* not readable here either: the reader tests cover those */ }
  }
  // DCMTK's own writing of the RT objects: dcmconv in each native syntax, dump2dcm from dcmdump's text.
  const dcmtk = join(dir, "dcmtk");
  mkdirSync(dcmtk, { recursive: true });
  for (const base of ["rtplan", "rtstruct", "rtdose_1frame"]) {
    const src = join(PYDICOM_DATA, "test_files", `${base}.dcm`);
    for (const [flag, tag] of [["+ti", "implicit"], ["+tb", "bigendian"], ["+td", "deflated"]]) {
      const out = join(dcmtk, `${base}_${tag}.dcm`);
      must("dcmconv", ["-q", flag, src, out]);
      files.push(describe(`dcmconv ${flag} ${base}`, out, `dcmconv ${flag}`));
    }
    const dump = join(dcmtk, `${base}.txt`);
    writeFileSync(dump, run("dcmdump", ["+L", "-q", src]).stdout, "latin1");
    const out = join(dcmtk, `${base}_dump2dcm.dcm`);
    must("dump2dcm", ["-q", "+ti", dump, out]);
    files.push(describe(`dump2dcm +ti ${base}`, out, "dump2dcm +ti"));
  }
  const written = join(dir, "written");
  mkdirSync(written, { recursive: true });
  const curves = join(written, "rtimage_curves_implicit.dcm");
  writeCurvesFile(curves);
  files.push(describe("implicit VR RT image with curves and private blocks", curves, "written here"));

  // JPEG Lossless (what iDMS stores) cut short: before the sequence delimiter, and inside the last fragment.
  const jpeg = join(written, "ct_jpeg.dcm");
  must("gdcmconv", ["--jpeg", join(PYDICOM_DATA, "test_files", "CT_small.dcm"), jpeg]);
  const pixel = readDicomFile(jpeg, { checkEnd: true }).dataset.get(0x7fe00010)!;
  const afterDelimiter = pixel.offset + pixel.length;
  const truncated = [join(written, "ct_jpeg_no_delimiter.dcm"), join(written, "ct_jpeg_cut_fragment.dcm")];
  copyFileSync(jpeg, truncated[0]);
  truncateSync(truncated[0], afterDelimiter - 8);
  copyFileSync(jpeg, truncated[1]);
  truncateSync(truncated[1], afterDelimiter - 200);

  // One SOP Instance UID in two patients, with different content.
  const other = join(written, "rtplan_other_patient.dcm");
  copyFileSync(join(PYDICOM_DATA, "test_files", "rtplan.dcm"), other);
  must("dcmodify", ["-q", "-nb", "-nmu", "-m", "(0010,0020)=RW-OTHER", "-m", "(0010,0010)=Other^Patient", "-m", "(300A,0002)=OtherPlan", other]);

  // GDCM's lossless compressions of the codec corpus's explicit VR sources (the synthetic clinic's
  // CT, MR, RT image and 32-bit dose; pydicom's CT, MR and odd-sized RGB) and of pydicom's big
  // endian dose, each with GDCM's decoding of it (the reference). Not implicit VR sources: GDCM
  // converts those with every element UN (pydicom's rtdose_rle.dcm is such a file), and no peer
  // can read their SOP Class UID.
  const compressed: CompressedFile[] = [];
  const gdcm = join(dir, "gdcm");
  mkdirSync(join(gdcm, "raw"), { recursive: true });
  const codec = await codecSources(join(dir, "codec"));
  const sources: Record<string, string> = {
    ct16u: codec.ct16u, mr12u: codec.mr12u, rtimage: codec.rtimage, dose32mf: codec.dose32mf,
    pyCT16s: codec.pyCT16s, pyMR16s: codec.pyMR16s, pyRGB8odd: codec.pyRGB8odd,
    pyDose32mfBE: join(PYDICOM_DATA, "test_files", "rtdose_expb.dcm"),
  };
  for (const [name, src] of Object.entries(sources)) {
    for (const [tag, flags] of GDCM_LOSSLESS) {
      const label = `${name}_${tag}`;
      const out = join(gdcm, `${label}.dcm`);
      const reference = join(gdcm, "raw", `${label}.dcm`);
      if (!gdcmEncode(flags, src, out) || !gdcmReference(out, reference)) continue;
      compressed.push({ ...describe(`gdcmconv ${flags.join(" ")} ${name}`, out, `gdcmconv ${flags.join(" ")}`), reference });
    }
  }
  const lossy = ["JPEG-lossy.dcm", "SC_rgb_jpeg_dcmtk.dcm", "JPEG2000.dcm"].map((f) => describe(`pydicom ${f}`, join(PYDICOM_DATA, "test_files", f), "pydicom"));
  return { files, curves, truncated, sameUidTwoPatients: [join(PYDICOM_DATA, "test_files", "rtplan.dcm"), other], compressed, lossy };
}

/** Splits files into batches in which no SOP Instance UID occurs twice (peers keep one object per UID). */
export function uniqueUidBatches<T extends { sopInstanceUid?: string }>(files: T[]): T[][] {
  const batches: { uids: Set<string>; files: T[] }[] = [];
  for (const f of files) {
    const key = f.sopInstanceUid ?? "";
    let b = batches.find((x) => !x.uids.has(key));
    if (!b) batches.push(b = { uids: new Set(), files: [] });
    b.uids.add(key);
    b.files.push(f);
  }
  return batches.map((b) => b.files);
}

/** The native pixel bytes of a file (read in full). */
export function pixelBytes(path: string): Uint8Array {
  const v = readDicomFile(path, { full: true }).dataset.get(0x7fe00010)?.value;
  if (!v) throw new Error(`"${path}" has no native Pixel Data`);
  return v;
}

/** Bytes of a file, for equality checks. */
export function bytesOf(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}
