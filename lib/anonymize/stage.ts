/**
 * The anonymize stage: de-identifies the DICOM files of `file` records into an output tree (or in
 * place), de-identifies `patient` and `plan` records (they are PHI too), and passes every other
 * record through. The command line, a script and the web UI all run this one function, so the
 * PHI rules, the ledger rows and the outcome of every file are the same whoever runs it.
 */
import { statSync } from "node:fs";
import { resolve, sep } from "node:path";
import { dicomRecordFields } from "../dicom/file_record.ts";
import { readDicomFile } from "../dicom/reader.ts";
import { sha256File } from "../fs/hash.ts";
import { scanFile } from "../fs/scan.ts";
import type { Ledger, LedgerEntry } from "../ledger/ledger.ts";
import { type FileRecord, isDicomFileRecord, isFileRecord, type RtRecord } from "../records/types.ts";
import { type StageOptions, StageReport, untilAborted, withTotal } from "../stage/stage.ts";
import { type AnonymizeContext, type AnonymizeOptions, createAnonymizeContext } from "./anonymize.ts";
import { type AnonymizeFileResult, type AnonymizeFilesOptions, anonymizeStream, claimOutput, expectedOutput, type FileInput } from "./files.ts";
import { writePatientMap } from "./patient_map.ts";
import { replacementLines, ReplacementTally } from "./report.ts";

/** Options of the anonymize stage: what to remove (PS3.15 profile and options), where results go, and the stage's own. */
export interface AnonymizeRecordsOptions extends AnonymizeOptions, AnonymizeFilesOptions, StageOptions {
  /** Accepted for callers of the pipelined writer; files are written one at a time. */
  concurrency?: number;
  /**
   * The paths the inputs were found under (those given to `pathRecords`). With
   * `layout: "mirror"` a file keeps its path relative to the first of them that holds it; a file
   * that is one of them itself, or under none of them, keeps only its name.
   */
  roots?: readonly string[];
  /** Write the mapping used (old id, new id, new name) to this CSV file when the stage ends (PHI: store it safely). */
  writeMap?: string;
  /**
   * Anonymize every file again, even those the ledger says an earlier run wrote. Without it, a
   * file whose output is still where the ledger says, with the size and SHA-256 it recorded (and
   * where this run's key and layout would put it), is skipped as already done.
   */
  force?: boolean;
  /**
   * The mappings (UIDs, patients) to use and extend, shared with other work of the same run; by
   * default a new context from these options. When given, its options decide the profile.
   */
  context?: AnonymizeContext;
}

/** What the stage does with one input record. */
type Item =
  | { kind: "file"; record: FileRecord; input: FileInput }
  | { kind: "already"; record: FileRecord; output: FileRecord }
  | { kind: "failed"; record: FileRecord; reason: string }
  | { kind: "not-dicom"; record: FileRecord; reason: string }
  | { kind: "other"; record: RtRecord };

/** An output this run wrote, by its (new) SOP Instance UID: a byte-identical second input of it is the same object. */
interface Written {
  source: string;
  record: FileRecord;
}

/**
 * The anonymize stage: every DICOM `file` record's file is de-identified (PS3.15 Annex E, keyed
 * UIDs and pseudonyms) and written atomically under `out` (or over the input with `inPlace`), and
 * comes out as a new `file` record describing the copy, with `anonymized: {from}`. `patient` and
 * `plan` records come out with the new identity and only what the options keep; a file that is
 * not DICOM (a PDF, a plan file, by its record's category or by its bytes) is never written, since
 * it could carry anything: it is skipped (`not-dicom`) and counted. A DICOM file that is damaged
 * fails. A second input that is byte for byte an object this run already wrote (export-plan puts a
 * structure set two plans share under each plan) is the same object: in the `uid` layout it has
 * one output file, so it is skipped as `identical` and no second record comes out (with the
 * `mirror` layout each copy is written at its own path, with the same new UIDs). Other records
 * pass through unchanged, in order. Outcomes go to the ledger (kind `anonymize`, keyed by the
 * input's absolute path) and the event sink.
 *
 * @example
 * ```ts
 * const records = anonymizeRecords(pathRecords(["export/"]), { key: process.env.RTEXPORT_KEY!, out: "anon/" });
 * for await (const r of records) console.log(r.type, r.path ?? r.patientId);
 * ```
 */
export async function* anonymizeRecords(input: AsyncIterable<RtRecord> | Iterable<RtRecord>, options: AnonymizeRecordsOptions): AsyncGenerator<RtRecord> {
  const report = new StageReport("anonymize", options);
  const tally = new ReplacementTally();
  let ctx: AnonymizeContext | undefined;
  try {
    if (!options.inPlace && !options.out) throw new Error("Cannot anonymize: an output folder (out) or inPlace is required");
    ctx = options.context ?? createAnonymizeContext(options);
    const files: AnonymizeFilesOptions = { out: options.out, inPlace: options.inPlace === true, layout: options.layout };
    const roots = (options.roots ?? []).map((r) => ({ given: r, path: resolve(r) }));
    // Records are small: read ahead, they tell the total for the progress line as soon as the input ends.
    let total = 0;
    const counted = withTotal(untilAborted(input, options.signal), (r) => {
      if (isFileRecord(r)) total++;
    }, () => report.progress({ items: total }));
    const resume = options.ledger && !options.force ? { ledger: options.ledger, ctx, files } : undefined;
    const items = classify(untilAborted(counted, options.signal), roots, resume);
    const fileOf = (item: Item) => (item.kind === "file" ? item.input : undefined);
    const written = new Map<string, Written>();
    for await (const { item, result } of anonymizeStream(items, fileOf, ctx, files, options.concurrency ?? 4)) {
      if (item.kind === "other") {
        yield anonymizeRecord(item.record, ctx);
      } else if (item.kind === "already") {
        const o = item.output;
        report.skipped(itemName(item.record.path), "already-done", `anonymized by an earlier run into "${o.path}"`, {
          bytes: o.bytes, patientId: o.patientId, planKey: typeof o.planUid === "string" ? o.planUid : undefined,
        });
        yield o;
      } else if (item.kind === "failed") {
        const name = itemName(item.record.path);
        report.failed(name, item.reason);
        await options.ledger?.queue(ledgerEntry(item.record.path, "failed", { error: item.reason }));
      } else if (item.kind === "not-dicom") {
        report.skipped(itemName(item.record.path), "not-dicom", item.reason);
        await options.ledger?.queue(ledgerEntry(item.record.path, "skipped", { error: item.reason }));
      } else {
        const out = await outcome(item.record.path, result!, report, options, { ctx, written });
        if (result?.ok) {
          // What was scrubbed from free text (or emptied) beyond the profile: named with -v, counted at the end.
          tally.add(result.ids.replacements);
          for (const line of replacementLines(result.ids.replacements, item.record.path)) report.message("debug", line, itemName(item.record.path));
        }
        if (out) yield out;
      }
    }
  } finally {
    for (const line of tally.lines()) report.message("info", line);
    if (ctx && options.writeMap) {
      try {
        writePatientMap(options.writeMap, ctx.patients);
      } catch (e) {
        report.failed(`patient map "${options.writeMap}"`, `Cannot write patient map "${options.writeMap}": ${(e as { code?: string }).code ?? (e as Error).message}`);
      }
    }
    report.finish();
  }
}

/** How events name a file: its path, quoted (the messages of lib/anonymize/files.ts name it so). */
function itemName(path: string): string {
  return `"${path}"`;
}

/** Sorts the input into files to anonymize, files an earlier run did, files that fail as they are, and other records. */
async function* classify(
  input: AsyncIterable<RtRecord>, roots: { given: string; path: string }[],
  resume: { ledger: Ledger; ctx: AnonymizeContext; files: AnonymizeFilesOptions } | undefined,
): AsyncGenerator<Item> {
  for await (const record of input) {
    if (!isFileRecord(record)) {
      yield { kind: "other", record };
    } else if (!isDicomFileRecord(record)) {
      yield { kind: "not-dicom", record, reason: `a ${String(record.category)} file is not DICOM: left out of the anonymized output` };
    } else if (typeof record.error === "string" && isDirectory(record.path)) {
      // A folder that could not be listed. A file that could not be read is read below, so that
      // it is named the way every unreadable DICOM file is.
      yield { kind: "failed", record, reason: record.error };
    } else {
      const input: FileInput = { path: record.path, root: rootOf(record.path, roots), record };
      const output = resume ? await doneBefore(input, resume) : undefined;
      yield output ? { kind: "already", record, output } : { kind: "file", record, input };
    }
  }
}

/**
 * The output an earlier run wrote for this input, when the ledger says so and it is still there
 * as recorded: at the path this run would write (same key, layout and folder), with the size and
 * SHA-256 the ledger has. Anything else (no row, a failure, a missing or changed output, another
 * key) and the file is anonymized again.
 */
async function doneBefore(
  input: FileInput, { ledger, ctx, files }: { ledger: Ledger; ctx: AnonymizeContext; files: AnonymizeFilesOptions },
): Promise<FileRecord | undefined> {
  const row = await ledger.get("anonymize", resolve(input.path));
  if (row?.status !== "done" || !row.dest || !row.sha256) return undefined;
  try {
    const st = statSync(row.dest);
    if (!st.isFile() || st.size !== Number(row.bytes)) return undefined;
    const expected = expectedOutput(input, readDicomFile(input.path), ctx, files); // also notes the patient for --write-map
    if (expected === undefined || resolve(expected) !== resolve(row.dest)) return undefined;
    if (sha256File(row.dest) !== row.sha256) return undefined;
    if (!claimOutput(ctx, row.dest, input.path)) return undefined; // a second input for one output: reported when written
    const out = readDicomFile(row.dest);
    const record: FileRecord = { type: "file", path: row.dest, bytes: st.size, sha256: row.sha256, ...dicomRecordFields(out) };
    const category = input.record?.category;
    if (category === "image" || category === "rt-object") record.category = category;
    const sopClass = record.sopClassUid;
    const planUid = sopClass === "1.2.840.10008.5.1.4.1.1.481.5" || sopClass === "1.2.840.10008.5.1.4.1.1.481.8"
      ? record.sopInstanceUid
      : typeof input.record?.planUid === "string" ? (ctx.options.retainUids ? input.record.planUid : ctx.uid(input.record.planUid)) : undefined;
    if (planUid) record.planUid = planUid;
    record.anonymized = { from: input.path };
    return record;
  } catch {
    return undefined; // unreadable input or output: anonymize it again, which names the problem
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The folder a file was found under, for the mirror layout: the first root that holds it (the
 * one `pathRecords` found it under) or is it (a file named itself: it keeps its name).
 */
function rootOf(path: string, roots: { given: string; path: string }[]): string | undefined {
  const full = resolve(path);
  return roots.find((r) => r.path === full || full.startsWith(r.path.endsWith(sep) ? r.path : r.path + sep))?.given;
}

/** Reports one file's result, writes its ledger row, and returns the record to yield (none when nothing was written). */
async function outcome(
  path: string, result: AnonymizeFileResult, report: StageReport, options: AnonymizeRecordsOptions,
  run: { ctx: AnonymizeContext; written: Map<string, Written> },
): Promise<FileRecord | undefined> {
  const name = itemName(path);
  if (result.ok) {
    const r = result.record;
    const planKey = typeof r.planUid === "string" ? r.planUid : undefined;
    report.done(name, { bytes: r.bytes, patientId: r.patientId, planKey });
    // Without the UIDs: they are the identifiers this stage replaces.
    if (result.metaDisagreed) report.message("warn", `${name}: its meta header names another SOP class or instance than its data set; the copy's meta header follows the data set`, path);
    await options.ledger?.queue(ledgerEntry(path, "done", { dest: r.path, bytes: r.bytes, sha256: r.sha256, patientId: r.patientId, planKey }));
    if (typeof r.sopInstanceUid === "string" && !run.written.has(r.sopInstanceUid)) run.written.set(r.sopInstanceUid, { source: path, record: r });
    return r;
  }
  if (result.reason === "unreadable" && scanFile(path).notDicom) {
    // Not DICOM at all by its bytes (a record that did not say what the file is: a path given).
    const reason = "not a DICOM file: left out of the anonymized output";
    report.skipped(name, "not-dicom", reason);
    await options.ledger?.queue(ledgerEntry(path, "skipped", { error: reason }));
    return undefined;
  }
  const same = result.reason === "write" ? sameObjectWritten(path, run) : undefined;
  if (same) {
    const r = same.record;
    const planKey = typeof r.planUid === "string" ? r.planUid : undefined;
    report.skipped(name, "identical", `the same object as "${same.source}" (byte for byte), written once as "${r.path}"`, { patientId: r.patientId, planKey });
    // Its anonymized output is in place: a rerun with this ledger finds it done.
    await options.ledger?.queue(ledgerEntry(path, "done", { dest: r.path, bytes: r.bytes, sha256: r.sha256, patientId: r.patientId, planKey }));
    return undefined;
  }
  if (result.reason === "skipped") {
    const prefix = `Skipped ${name}: `;
    const reason = result.message.startsWith(prefix) ? result.message.slice(prefix.length) : result.message;
    report.skipped(name, "other", reason);
    await options.ledger?.queue(ledgerEntry(path, "skipped", { error: reason }));
    return undefined;
  }
  report.failed(name, result.message);
  await options.ledger?.queue(ledgerEntry(path, "failed", { error: result.message }));
  return undefined;
}

/**
 * The output this run already wrote for the object in `path`, when `path` is a byte-identical
 * copy of that output's input (the same SOP instance, shared by two exported plans); undefined
 * for anything else (another object under the same UID stays a failure).
 */
function sameObjectWritten(path: string, run: { ctx: AnonymizeContext; written: Map<string, Written> }): Written | undefined {
  try {
    const file = readDicomFile(path);
    const sop = file.dataset.string(0x00080018) ?? file.meta.string(0x00020003);
    if (!sop) return undefined;
    const earlier = run.written.get(run.ctx.options.retainUids ? sop : run.ctx.uid(sop));
    if (!earlier || resolve(earlier.source) === resolve(path)) return undefined;
    if (statSync(earlier.source).size !== file.size) return undefined;
    return sha256File(earlier.source) === sha256File(path) ? earlier : undefined;
  } catch {
    return undefined;
  }
}

function ledgerEntry(path: string, status: LedgerEntry["status"], fields: Partial<LedgerEntry>): LedgerEntry {
  const entry: LedgerEntry = { kind: "anonymize", key: resolve(path), status, source: path };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) (entry as unknown as Record<string, unknown>)[k] = v;
  return entry;
}

/**
 * Patient and plan records are PHI too: they leave with the new identity and only what the
 * options keep (sex with retainPatientCharacteristics, labels with cleanDescriptors, machines
 * with retainDeviceIdentity, the plan UID with retainUids), or not at all. Other records pass.
 */
function anonymizeRecord(record: RtRecord, ctx: AnonymizeContext): RtRecord {
  const o = ctx.options;
  if (record.type === "patient" && typeof record.patientId === "string") {
    const p = ctx.patient(record.patientId);
    const out: RtRecord = { type: "patient", patientId: p.id, name: { family: p.name ?? p.id } };
    if (o.retainPatientCharacteristics && typeof record.sex === "string") out.sex = record.sex;
    return out;
  }
  if (record.type === "plan" && typeof record.patientId === "string") {
    const out: RtRecord = { type: "plan", patientId: ctx.patient(record.patientId).id };
    if (typeof record.planUid === "string") out.planUid = o.retainUids ? record.planUid : ctx.uid(record.planUid);
    if (o.cleanDescriptors) {
      if (typeof record.label === "string") out.label = record.label;
      if (typeof record.name === "string") out.name = record.name;
    }
    if (record.status !== undefined) out.status = record.status;
    if (record.approval !== undefined) out.approval = record.approval;
    if (o.retainDeviceIdentity && Array.isArray(record.machines)) out.machines = record.machines;
    return out;
  }
  return record;
}
