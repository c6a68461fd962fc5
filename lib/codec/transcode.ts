/**
 * The transcode stage: each DICOM `file` record's file is rewritten in another transfer syntax
 * (decoded from JPEG Lossless, JPEG-LS, JPEG 2000 lossless or RLE; RLE-encoded; or re-encoded
 * between native syntaxes), written atomically, and described by a new `file` record. Lossy
 * objects are refused with the reason. Other records pass through unchanged, in order.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename, isAbsolute, join, normalize, resolve } from "node:path";
import { writeFileAtomic } from "../anonymize/files.ts";
import { metaHeaderWarning } from "../dicom/file_record.ts";
import { type DicomFile, parseDicom } from "../dicom/reader.ts";
import { scanFile } from "../fs/scan.ts";
import { type FileRecord, isDicomFileRecord, isFileRecord, type RtRecord } from "../records/types.ts";
import { StageReport, type StageOptions, untilAborted } from "../stage/stage.ts";
import { transcodeFile } from "./decode.ts";
import { syntaxName } from "./syntaxes.ts";
import { fsReason } from "../fs/errors.ts";

/** Options of {@linkcode transcodeFiles}: the stage contract's (signal, event sink; no ledger rows yet) and these. */
export interface TranscodeOptions extends StageOptions {
  /** Target transfer syntax UID (native syntaxes or RLE Lossless). */
  to: string;
  /** Output directory; each file goes to its record's `dest` (a relative tree path) under it, else to its name. */
  out?: string;
  /** Overwrite each input instead (atomically). */
  inPlace?: boolean;
}

/** What a transcoded file's record carries about it. */
export interface TranscodeResult {
  /** `transcoded`, or `unchanged` when the file already was in the target syntax. */
  status: "transcoded" | "unchanged";
  /** The input file. */
  from: string;
  fromTransferSyntaxUid: string;
}

/** Where a file goes under `out`: its record's tree path (`dest`, when relative and inside), or its name. */
function destination(record: FileRecord, out: string): string {
  const dest = typeof record.dest === "string" ? record.dest : "";
  const rel = normalize(dest);
  if (dest !== "" && !isAbsolute(rel) && !rel.startsWith("..") && rel !== ".") return join(out, rel);
  return join(out, basename(record.path));
}

/**
 * Transcodes the DICOM files of `file` records to `options.to` and yields a `file` record for
 * each file written (path, bytes, sha256, the new transferSyntaxUid, `transcode: {status, from,
 * fromTransferSyntaxUid}`). A file that cannot be transcoded (lossy, damaged, unreadable, an
 * unsupported syntax) yields nothing: a `failed` event says why. The stage writes no ledger rows
 * (transcoding is idempotent and cheap to repeat). Records of other types, and
 * file records of non-DICOM files, pass through unchanged.
 *
 * @example
 * ```ts
 * const input = [{ type: "file", path: "ct_jpegls.dcm" }];
 * for await (const r of transcodeFiles(input, { to: EXPLICIT_VR_LITTLE_ENDIAN, out: "raw/", onEvent: console.error })) {
 *   console.log(r.path);
 * }
 * ```
 */
export async function* transcodeFiles(input: AsyncIterable<RtRecord> | Iterable<RtRecord>, options: TranscodeOptions): AsyncGenerator<RtRecord> {
  if (!options.inPlace && !options.out) throw new Error("An output directory or in-place writing is required");
  const report = new StageReport("transcode", options);
  // Output path → input path, so two inputs never land on one output in a run.
  const written = new Map<string, string>();
  try {
    for await (const record of untilAborted(input, options.signal)) {
      if (!isFileRecord(record)) {
        yield record;
        continue;
      }
      const item = `file "${record.path}"`;
      const fields = { patientId: typeof record.patientId === "string" ? record.patientId : undefined };
      if (typeof record.error === "string") {
        report.failed(item, record.error, fields);
        continue;
      }
      if (!isDicomFileRecord(record)) {
        report.skipped(item, "not-dicom", `a ${String(record.category)} file is not DICOM`, fields);
        yield record;
        continue;
      }
      const outcome = await transcodeOne(record, options, written);
      if (!outcome.ok) {
        // A file whose bytes are not DICOM at all (a path given): the one policy, a counted skip.
        if (scanFile(record.path).notDicom) {
          report.skipped(item, "not-dicom", "not a DICOM file", fields);
          yield record;
          continue;
        }
        report.failed(item, outcome.reason, fields);
        continue;
      }
      if (outcome.warning) report.message("warn", outcome.warning, record.path);
      report.done(item, { bytes: outcome.record.bytes, patientId: outcome.record.patientId });
      yield outcome.record;
    }
  } finally {
    report.finish();
  }
}

type Outcome = { ok: true; record: FileRecord; warning?: string } | { ok: false; reason: string };

async function transcodeOne(record: FileRecord, options: TranscodeOptions, written: Map<string, string>): Promise<Outcome> {
  const src = record.path;
  let file: DicomFile;
  let data: Uint8Array;
  try {
    data = readFileSync(src);
    file = parseDicom(data, { full: true });
    file.path = src;
  } catch (e) {
    return { ok: false, reason: `Cannot read DICOM file "${src}": ${fsReason(e)}` };
  }
  const from = file.transferSyntaxUid;
  const dest = options.inPlace ? src : destination(record, options.out!);
  if (!options.inPlace && resolve(dest) === resolve(src)) {
    return { ok: false, reason: `Cannot write "${dest}": it is the input file; use --in-place to overwrite inputs` };
  }
  const earlier = written.get(resolve(dest));
  if (earlier !== undefined && earlier !== resolve(src)) {
    return { ok: false, reason: `Cannot write "${dest}": "${src}" would be written to the same path as "${earlier}", written there in this run` };
  }
  let bytes: Uint8Array;
  const unchanged = from === options.to;
  if (unchanged) {
    bytes = data;
  } else {
    try {
      bytes = await transcodeFile(file, options.to);
    } catch (e) {
      return { ok: false, reason: `Cannot transcode "${src}" from ${syntaxName(from)} to ${syntaxName(options.to)}: ${fsReason(e)}` };
    }
  }
  if (!(unchanged && options.inPlace)) {
    try {
      writeFileAtomic(dest, bytes);
    } catch (e) {
      return { ok: false, reason: `Cannot write "${dest}": ${fsReason(e)}` };
    }
    written.set(resolve(dest), resolve(src));
  }
  const ds = file.dataset;
  const out: FileRecord = {
    ...record,
    path: dest,
    bytes: bytes.length,
    sha256: createHash("sha256").update(bytes).digest("hex"),
    sopClassUid: ds.string(0x00080016) ?? record.sopClassUid,
    sopInstanceUid: ds.string(0x00080018) ?? record.sopInstanceUid,
    modality: ds.string(0x00080060) ?? record.modality,
    patientId: ds.string(0x00100020) ?? record.patientId,
    studyUid: ds.string(0x0020000d) ?? record.studyUid,
    seriesUid: ds.string(0x0020000e) ?? record.seriesUid,
    transferSyntaxUid: options.to,
    transcode: { status: unchanged ? "unchanged" : "transcoded", from: src, fromTransferSyntaxUid: from } satisfies TranscodeResult,
  };
  if (out.category === undefined) out.category = "dicom";
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  const warning = unchanged ? undefined : metaHeaderWarning(file, src, `corrected in "${dest}"`);
  return { ok: true, record: out, ...(warning ? { warning } : {}) };
}
