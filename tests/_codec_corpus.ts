// Test and bench helper: compressed DICOM files that other tools wrote, each with the native
// pixels GDCM decodes from it (`gdcmconv --raw`), the reference our decoders must equal bit for bit.
// Sources: the synthetic clinic (lib/fixtures) and Debian python3-pydicom's test files; encoders:
// GDCM (gdcmconv --jpeg/--jpegls/--j2k/--rle, lossless by default) and DCMTK (dcmcjpeg with every
// selection value, dcmcjpls with each interleave mode, dcmcrle; small fragments, empty offset
// tables); plus the compressed files pydicom and jpeg-lossless-decoder-js ship as they are.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { parseDicom, readDicomFile } from "../lib/dicom/reader.ts";
import { encodeFile } from "../lib/dicom/writer.ts";

export const PYDICOM = "/usr/lib/python3/dist-packages/pydicom/data/test_files";
export const JLD = new URL("../node_modules/jpeg-lossless-decoder-js/tests/data/", import.meta.url).pathname;

/** One compressed file and how it was made. */
export interface CodecSample {
  name: string;
  path: string;
  transferSyntaxUid: string;
  /** Who wrote it: `gdcmconv --jpegls`, `dcmcjpeg +el +sv4`, `pydicom` … */
  encoder: string;
  /** What the pixels are, for messages: `16-bit signed`, `8-bit RGB, 2 frames` … */
  pixels: string;
  /** `gdcmconv --raw` of it: the reference. Absent when GDCM cannot decode it. */
  reference?: string;
  /** DCMTK's decoding of it (dcmdjpeg, dcmdjpls, dcmdrle): the second opinion. Absent for JPEG 2000 (no DCMTK decoder) and when DCMTK fails. */
  dcmtkReference?: string;
}

/** A compressed file that must be refused, and a pattern of the reason. */
export interface RefusedSample {
  name: string;
  path: string;
  reason: RegExp;
}

function run(cmd: string, args: string[]): { ok: boolean; stderr: string } {
  const r = spawnSync(cmd, args, { timeout: 60_000, encoding: "utf8", env: { ...process.env, TCP_NODELAY: "1" } });
  if (r.error) throw new Error(`Cannot run ${cmd}: ${r.error.message}`);
  return { ok: r.status === 0, stderr: String(r.stderr ?? "").trim() };
}

function must(cmd: string, args: string[]): void {
  const r = run(cmd, args);
  if (!r.ok) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
}

function describe(path: string): string {
  const ds = readDicomFile(path).dataset;
  const bits = ds.number(0x00280100), stored = ds.number(0x00280101), signed = ds.number(0x00280103) === 1;
  const spp = ds.number(0x00280002) ?? 1, frames = Number(ds.string(0x00280008) ?? 1);
  const color = spp === 1 ? "" : ` ${ds.string(0x00280004)}`;
  return `${bits}/${stored}-bit ${signed ? "signed" : "unsigned"}${color}${frames > 1 ? `, ${frames} frames` : ""}`;
}

/**
 * A native source described differently, written by our writer from the clinic's bytes: a
 * 16-bit multi-frame grayscale image (the clinic's 32-bit dose grid's bytes as 16-bit samples,
 * twice the columns) and a 12-bit signed MR. Their compressed forms and references still come
 * from GDCM and DCMTK.
 */
function derive(source: string, out: string, change: Record<number, [string, string | number]>): void {
  const file = parseDicom(readFileSync(source), { full: true });
  for (const [tag, [vr, value]] of Object.entries(change)) {
    const t = Number(tag);
    let bytes: Uint8Array;
    if (vr === "US") {
      bytes = new Uint8Array(2);
      new DataView(bytes.buffer).setUint16(0, Number(value), file.dataset.littleEndian);
    } else {
      const text = String(value);
      bytes = new TextEncoder().encode(text.length % 2 ? text + " " : text);
    }
    file.dataset.set({ tag: t, vr, value: bytes, offset: 0, length: bytes.length });
  }
  writeFileSync(out, encodeFile(file.dataset, { transferSyntaxUid: "1.2.840.10008.1.2.1" }));
}

/**
 * GDCM's lossless encoders (Debian libgdcm-tools): `gdcmconv --jpeg` writes JPEG Lossless
 * Process 14 SV1, `--j2k` reversible JPEG 2000; all four are lossless unless told otherwise.
 */
export const GDCM_LOSSLESS: readonly (readonly [tag: string, flags: readonly string[]])[] = [
  ["jpeg", ["--jpeg"]], ["jpegls", ["--jpegls"]], ["j2k", ["--j2k"]], ["rle", ["--rle"]],
];

/** `gdcmconv <flags> src out`; false when GDCM refuses the combination (JPEG and JPEG-LS above 16 bits, RLE of odd RGB sizes). */
export function gdcmEncode(flags: readonly string[], src: string, out: string): boolean {
  return run("gdcmconv", [...flags, src, out]).ok && existsSync(out) && statSync(out).size > 0;
}

/** `gdcmconv --raw -X` of `path` into `out`, the reference decoding; false when GDCM cannot decode it. */
export function gdcmReference(path: string, out: string): boolean {
  return run("gdcmconv", ["--raw", "-X", path, out]).ok && existsSync(out);
}

/**
 * The native sources the codec corpus compresses: the synthetic clinic's CT, MR, RT image and
 * 32-bit multi-frame dose (generated into `dir/clinic`), pydicom's CT, MR, odd-sized RGB and
 * dose, native copies of pydicom's deflated and RLE files, and two derived descriptions.
 */
export async function codecSources(dir: string): Promise<Record<string, string>> {
  const clinic = join(dir, "clinic");
  if (!existsSync(join(clinic, "RTX0001"))) await generateClinic({ out: clinic, patients: 1, slices: 4, size: 64, seed: 16 });
  return sources(dir, clinic);
}

/** Native sources: name → path (made in `dir`). */
function sources(dir: string, clinic: string): Record<string, string> {
  const src = join(dir, "src");
  mkdirSync(src, { recursive: true });
  const p = join(clinic, "RTX0001");
  const out: Record<string, string> = {
    ct16u: join(p, "CT", "CT0001.dcm"),
    mr12u: join(p, "MR", "MR0001.dcm"),
    rtimage: join(p, "RTIMAGE", "RI1.dcm"),
    dose32mf: join(p, "RTDOSE", "RD1_PLAN.dcm"),
    pyMR16s: join(PYDICOM, "MR_small.dcm"),
    pyCT16s: join(PYDICOM, "CT_small.dcm"),
    pyRGB8odd: join(PYDICOM, "SC_rgb_small_odd.dcm"),
    pyDose32mf: join(PYDICOM, "rtdose.dcm"),
  };
  // Native copies of pydicom's deflated (GDCM) and RLE (DCMTK: GDCM 3.0.21 fails on the 16-bit one) files, to re-encode.
  for (const [name, file, cmd, args] of [
    ["py8mono", "image_dfl.dcm", "gdcmconv", ["--raw", "-X"]],
    ["pyRGB8mf", "SC_rgb_rle_2frame.dcm", "dcmdrle", ["-q"]],
    ["pyRGB16mf", "SC_rgb_rle_16bit_2frame.dcm", "dcmdrle", ["-q"]],
  ] as const) {
    const path = join(src, `${name}.dcm`);
    must(cmd, [...args, join(PYDICOM, file), path]);
    out[name] = path;
  }
  const mf16 = join(src, "mf16u.dcm");
  const dose = readDicomFile(out.dose32mf).dataset;
  derive(out.dose32mf, mf16, {
    0x00280011: ["US", 2 * dose.number(0x00280011)!], 0x00280100: ["US", 16], 0x00280101: ["US", 16], 0x00280102: ["US", 15],
  });
  out.mf16u = mf16;
  const mr12s = join(src, "mr12s.dcm");
  derive(out.mr12u, mr12s, { 0x00280103: ["US", 1] });
  out.mr12s = mr12s;
  return out;
}

/** Every encoding of every source, written into `dir` (about 200 files, a few seconds). */
export async function buildCodecCorpus(dir: string): Promise<{ samples: CodecSample[]; refused: RefusedSample[] }> {
  mkdirSync(dir, { recursive: true });
  const src = await codecSources(dir);
  const samples: CodecSample[] = [];
  const add = (name: string, path: string, encoder: string) => {
    const ts = readDicomFile(path).transferSyntaxUid;
    const reference = join(dir, "raw", `${name}.dcm`);
    mkdirSync(join(dir, "raw"), { recursive: true });
    const decoded = gdcmReference(path, reference);
    const decoder = ts === "1.2.840.10008.1.2.5" ? "dcmdrle" : ts === "1.2.840.10008.1.2.4.80" ? "dcmdjpls" : ts.startsWith("1.2.840.10008.1.2.4.5") || ts.startsWith("1.2.840.10008.1.2.4.7") ? "dcmdjpeg" : undefined;
    let dcmtkReference: string | undefined = join(dir, "raw", `${name}.dcmtk.dcm`);
    if (!decoder || !run(decoder, ["-q", path, dcmtkReference]).ok || !existsSync(dcmtkReference)) dcmtkReference = undefined;
    samples.push({
      name, path, transferSyntaxUid: ts, encoder, pixels: describe(path), reference: decoded ? reference : undefined, dcmtkReference,
    });
  };
  return { samples, refused: encodeAll(dir, src, add) };
}

function encodeAll(dir: string, src: Record<string, string>, add: (name: string, path: string, encoder: string) => void): RefusedSample[] {
  const enc = join(dir, "enc");
  mkdirSync(enc, { recursive: true });
  for (const [name, path] of Object.entries(src)) {
    for (const [tag, flags] of GDCM_LOSSLESS) {
      const out = join(enc, `${name}_gdcm_${tag}.dcm`);
      // GDCM refuses some combinations: no sample then.
      if (gdcmEncode(flags, path, out)) add(`${name}_gdcm_${tag}`, out, `gdcmconv ${flags.join(" ")}`);
    }
  }
  // GDCM splitting one frame into fragments of at most 200 bytes.
  for (const [tag, flags] of GDCM_LOSSLESS.slice(0, 3)) {
    const out = join(enc, `ct16u_gdcm_${tag}_split.dcm`);
    must("gdcmconv", ["--split", "200", join(enc, `ct16u_gdcm_${tag}.dcm`), out]);
    add(`ct16u_gdcm_${tag}_split`, out, `gdcmconv ${flags.join(" ")}, then --split 200`);
  }
  // DCMTK: JPEG Lossless SV1, JPEG-LS and RLE for many sources (with 1 KB fragments, with and
  // without a Basic Offset Table), and Process 14 with every selection value for some.
  const dcmtk: [string, string, string[]][] = [
    ["sv1", "dcmcjpeg", ["+e1"]], ["sv1_frag_nobot", "dcmcjpeg", ["+e1", "+fs", "1", "-ot"]],
    ["jpls", "dcmcjpls", []], ["jpls_frag", "dcmcjpls", ["+fs", "1"]], ["jpls_frag_nobot", "dcmcjpls", ["+fs", "1", "-ot"]],
    ["rle", "dcmcrle", []],
  ];
  const encodeWith = (name: string, [tag, cmd, flags]: [string, string, string[]]) => {
    const label = `${name}_dcmtk_${tag}`;
    const out = join(enc, `${label}.dcm`);
    if (run(cmd, ["-q", ...flags, src[name], out]).ok && existsSync(out)) add(label, out, `${cmd} ${flags.join(" ")}`.trim());
  };
  for (const name of ["ct16u", "mr12u", "pyMR16s", "mr12s", "py8mono", "mf16u", "pyRGB8mf", "pyRGB16mf", "dose32mf"]) {
    for (const d of dcmtk) encodeWith(name, d);
  }
  for (const name of ["ct16u", "pyMR16s", "mr12s", "py8mono", "pyRGB16mf"]) {
    for (let sv = 1; sv <= 7; sv++) encodeWith(name, [`el_sv${sv}`, "dcmcjpeg", ["+el", "+sv", String(sv)]]);
  }
  // JPEG-LS interleave modes on color (none = one scan per component).
  for (const [tag, flag] of [["ilv_none", "+in"], ["ilv_sample", "+is"], ["ilv_line", "+il"]]) {
    const out = join(enc, `pyRGB8mf_dcmtk_jpls_${tag}.dcm`);
    must("dcmcjpls", ["-q", flag, src.pyRGB8mf, out]);
    add(`pyRGB8mf_dcmtk_jpls_${tag}`, out, `dcmcjpls ${flag}`);
  }
  // Compressed files as pydicom and jpeg-lossless-decoder-js ship them.
  for (const f of [
    "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm",
    "SC_rgb_rle_16bit.dcm", "SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_rle_2frame.dcm", "SC_rgb_rle_32bit.dcm", "SC_rgb_rle_32bit_2frame.dcm",
    "rtdose_rle.dcm", "rtdose_rle_1frame.dcm", "GDCMJ2K_TextGBR.dcm", "J2K_pixelrep_mismatch.dcm",
  ]) {
    const copy = join(enc, `pydicom_${f}`);
    copyFileSync(join(PYDICOM, f), copy);
    add(`pydicom_${f.replace(/\.dcm$/, "")}`, copy, "pydicom test file");
  }
  for (const f of ["sel1", "sel2", "sel3", "sel4", "sel5", "sel6", "sel7", "sel1-8bit", "sel1-rgb"]) {
    const copy = join(enc, `jld_${f}.dcm`);
    copyFileSync(join(JLD, `jpeg_lossless_${f}.dcm`), copy);
    add(`jld_${f}`, copy, "jpeg-lossless-decoder-js test file");
  }
  // Lossy from DCMTK: JPEG-LS near-lossless, and Process 14 with a point transform (in the lossless syntax .57).
  const near = join(enc, "refused_jpls_near.dcm");
  must("dcmcjpls", ["-q", "+en", src.ct16u, near]);
  const pt = join(enc, "refused_jpeg_pt2.dcm");
  must("dcmcjpeg", ["-q", "+el", "+pt", "2", src.ct16u, pt]);
  return [
    { name: "dcmcjpls +en", path: near, reason: /JPEG-LS Lossy \(Near-Lossless\) \(1\.2\.840\.10008\.1\.2\.4\.81\) is lossy/ },
    { name: "dcmcjpeg +el +pt 2", path: pt, reason: /point transform 2.*lossy/ },
    { name: "JPEG-lossy.dcm", path: join(PYDICOM, "JPEG-lossy.dcm"), reason: /JPEG Extended.*lossy/ },
    { name: "JPGExtended.dcm", path: join(PYDICOM, "JPGExtended.dcm"), reason: /JPEG Extended.*lossy/ },
    { name: "SC_rgb_jpeg_dcmtk.dcm", path: join(PYDICOM, "SC_rgb_jpeg_dcmtk.dcm"), reason: /JPEG Baseline.*lossy/ },
    { name: "JPEG2000.dcm", path: join(PYDICOM, "JPEG2000.dcm"), reason: /JPEG 2000 \(1\.2\.840\.10008\.1\.2\.4\.91\) is lossy/ },
    { name: "693_J2KI.dcm", path: join(PYDICOM, "693_J2KI.dcm"), reason: /JPEG 2000 \(1\.2\.840\.10008\.1\.2\.4\.91\) is lossy/ },
  ];
}
