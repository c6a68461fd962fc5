/**
 * The push engine: C-STORE `file` records to a peer in dependency order (per patient: images,
 * other objects, RTSTRUCT, RTPLAN, RTDOSE/RTIMAGE, treatment records), over N associations,
 * skipping what a status file says the peer already acknowledged, optionally rewriting
 * treatment machine names. Each file record comes back with `push: {status, peer, …}`.
 */
import { closeSync, existsSync, openSync, readFileSync, writeSync } from "node:fs";
import type { DataSet } from "../dicom/dataset.ts";
import { dicomRecordFields } from "../dicom/file_record.ts";
import { type DicomFile, readDicomFile } from "../dicom/reader.ts";
import { PLAN_SOP_CLASSES, RECORD_SOP_CLASSES } from "../dicom/rt.ts";
import { RT_SOP_CLASSES } from "../dicom/uids.ts";
import { isDicomFileRecord, type RtRecord } from "../records/types.ts";
import { type Association, connect } from "../net/association.ts";
import { formatStatus, statusCategory, statusText } from "../net/dimse.ts";
import { DicomNetError } from "../net/errors.ts";
import type { ConnectOptions } from "../net/association.ts";
import { connectOptions, peerLabel, type PeerSettings } from "../net/peer.ts";
import { storageContexts, store, type StoreSource } from "../net/scu.ts";
import type { LedgerEntry } from "../ledger/ledger.ts";
import { FatalStageError, type StageOptions, StageReport, untilAborted, withTotal } from "../stage/stage.ts";

/** The `push` field added to each file record. */
export interface PushOutcome {
  status: "stored" | "skipped" | "failed";
  peer: string;
  /** The C-STORE response status, hex ("0x0000", "0xA700"), when the peer answered. */
  dimseStatus?: string;
  /** Why it failed or was skipped. */
  error?: string;
  /** For stored objects: how the data set went out. */
  mode?: "streamed" | "transcoded" | "encoded";
  /** Machine names rewritten in this object, `OLD=NEW`. */
  machines?: string[];
}

/** Options of the push stage. */
export interface PushOptions extends StageOptions {
  peer: PeerSettings;
  /** Associations in parallel (default 1). */
  parallel?: number;
  /** NDJSON file of acknowledged objects; those are skipped on a rerun; appended as objects are stored. */
  statusFile?: string;
  /** OLD → NEW treatment machine names (RTPLAN, RT Ion Plan, treatment records). */
  mapMachine?: Record<string, string>;
  /** MODEL → NAME: fills empty/missing TreatmentMachineName where ManufacturerModelName (or Modality) is MODEL ("*" = any). */
  defaultMachine?: Record<string, string>;
}

const TREATMENT_MACHINE_NAME = 0x300a00b2;
const BEAM_SEQUENCE = 0x300a00b0;
const ION_BEAM_SEQUENCE = 0x300a03a2;
const TREATMENT_MACHINE_SEQUENCE = 0x300a0206;
const MANUFACTURER_MODEL_NAME = 0x00081090;
const MODALITY = 0x00080060;

const MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10";

/**
 * Dependency rank inside a patient: 0 images, 1 other non-RT objects (registrations, …),
 * 2 RTSTRUCT, 3 RTPLAN / RT Ion Plan, 4 RTDOSE and RTIMAGE (they reference the plan),
 * 5 treatment records.
 */
export function pushRank(sopClassUid: string, hasPixelData: boolean): number {
  if (sopClassUid === RT_SOP_CLASSES.RTStructureSet) return 2;
  if (PLAN_SOP_CLASSES.has(sopClassUid) || sopClassUid === "1.2.840.10008.5.1.4.1.1.481.10" || sopClassUid === "1.2.840.10008.5.1.4.1.1.481.11") return 3;
  if (sopClassUid === RT_SOP_CLASSES.RTDose || sopClassUid === RT_SOP_CLASSES.RTImage) return 4;
  if (RECORD_SOP_CLASSES.has(sopClassUid)) return 5;
  return hasPixelData ? 0 : 1;
}

function encodeSh(text: string): Uint8Array {
  const b = new TextEncoder().encode(text);
  if (b.length % 2 === 0) return b;
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  out[b.length] = 0x20;
  return out;
}

function setString(ds: DataSet, tag: number, vr: string, text: string): void {
  const value = encodeSh(text);
  ds.set({ tag, vr, value, offset: 0, length: value.length });
}

/**
 * Rewrites TreatmentMachineName (300A,00B2) wherever it occurs in an RTPLAN / RT Ion Plan /
 * treatment record (beam sequences, treatment machine sequence). Returns the changes as
 * `OLD=NEW` (empty when nothing changed).
 */
export function rewriteMachines(ds: DataSet, sopClassUid: string, map: Record<string, string>, defaults: Record<string, string>): string[] {
  if (!PLAN_SOP_CLASSES.has(sopClassUid) && !RECORD_SOP_CLASSES.has(sopClassUid)) return [];
  const changes: string[] = [];
  const topModel = ds.string(MANUFACTURER_MODEL_NAME);
  const modality = ds.string(MODALITY);
  const defaultFor = (model: string | undefined): string | undefined => {
    for (const [k, v] of Object.entries(defaults)) {
      if (k === "*" || (model !== undefined && k === model) || (modality !== undefined && k === modality)) return v;
    }
    return undefined;
  };
  const visit = (item: DataSet, inMachineContainer: boolean): void => {
    const el = item.get(TREATMENT_MACHINE_NAME);
    const current = el ? item.string(TREATMENT_MACHINE_NAME) : undefined;
    if (current !== undefined && Object.hasOwn(map, current)) {
      setString(item, TREATMENT_MACHINE_NAME, "SH", map[current]);
      changes.push(`${current}=${map[current]}`);
    } else if (current === undefined && (el || inMachineContainer)) {
      const name = defaultFor(item.string(MANUFACTURER_MODEL_NAME) ?? topModel);
      if (name !== undefined) {
        setString(item, TREATMENT_MACHINE_NAME, "SH", name);
        changes.push(`=${name}`);
      }
    }
    for (const e of item.elements.values()) {
      if (!e.items) continue;
      const container = e.tag === BEAM_SEQUENCE || e.tag === ION_BEAM_SEQUENCE || e.tag === TREATMENT_MACHINE_SEQUENCE;
      for (const sub of e.items) visit(sub, container);
    }
  };
  visit(ds, false);
  return changes;
}

/** Acknowledged objects from a status file: keys `peer|sopInstanceUid`. Unparsable lines (a torn last write) are ignored. */
export function readStatusFile(path: string): Set<string> {
  const done = new Set<string>();
  if (!existsSync(path)) return done;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`Cannot read status file "${path}": ${fsReason(e)}`);
  }
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line);
      if (r.status === "stored" && typeof r.sopInstanceUid === "string" && typeof r.peer === "string") done.add(`${r.peer}|${r.sopInstanceUid}`);
    } catch { /* torn line from an interrupted run */ }
  }
  return done;
}

/** Appends one line per acknowledged object (single write with O_APPEND: lines never interleave). */
class StatusFile {
  private fd: number;
  constructor(path: string) {
    try {
      this.fd = openSync(path, "a");
      // A torn last line (killed mid-write) must not glue onto the next record.
      const text = readFileSync(path, "utf8");
      if (text.length > 0 && !text.endsWith("\n")) writeSync(this.fd, "\n");
    } catch (e) {
      throw new Error(`Cannot open status file "${path}": ${fsReason(e)}`);
    }
  }
  append(entry: Record<string, unknown>): void {
    writeSync(this.fd, JSON.stringify(entry) + "\n");
  }
  close(): void {
    closeSync(this.fd);
  }
}

interface Item {
  record: RtRecord;
  source: StoreSource;
  patient: string;
  rank: number;
  seq: number;
}

/** Hands out items so that, per patient, a rank starts only once every lower rank is acknowledged. */
class Scheduler {
  private readonly patients: { buckets: Item[][]; inflight: number }[] = [];
  private readonly byKey = new Map<string, { buckets: Item[][]; inflight: number }>();
  private waiting: (() => void)[] = [];
  remaining = 0;

  constructor(items: Item[]) {
    for (const it of items) {
      let p = this.byKey.get(it.patient);
      if (!p) {
        p = { buckets: [], inflight: 0 };
        this.byKey.set(it.patient, p);
        this.patients.push(p);
      }
      (p.buckets[it.rank] ??= []).push(it);
    }
    for (const p of this.patients) p.buckets = p.buckets.filter((b) => b && b.length > 0);
    this.remaining = items.length;
  }

  /** The next item that may go now; undefined when everything has been handed out. */
  async next(): Promise<Item | undefined> {
    for (;;) {
      if (this.remaining === 0) return undefined;
      for (const p of this.patients) {
        const bucket = p.buckets[0];
        if (bucket && bucket.length > 0) {
          p.inflight++;
          this.remaining--;
          return bucket.shift();
        }
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
  }

  done(item: Item): void {
    const p = this.byKey.get(item.patient)!;
    p.inflight--;
    if (p.inflight === 0 && p.buckets[0]?.length === 0) p.buckets.shift();
    for (const w of this.waiting.splice(0)) w();
  }

  /** Puts an item handed out back at the front (its worker could not send it). */
  requeue(item: Item): void {
    const p = this.byKey.get(item.patient)!;
    p.inflight--;
    p.buckets[0].unshift(item);
    this.remaining++;
    for (const w of this.waiting.splice(0)) w();
  }

  /** Drains everything not yet handed out. */
  drain(): Item[] {
    const out: Item[] = [];
    for (const p of this.patients) for (const b of p.buckets) out.push(...b.splice(0));
    this.remaining = 0;
    for (const w of this.waiting.splice(0)) w();
    return out;
  }
}

function errorText(e: unknown): string {
  return ((e as Error)?.message ?? String(e)).split("\n")[0];
}

function fsReason(e: unknown): string {
  const err = e as { code?: string; message?: string };
  switch (err.code) {
    case "ENOENT": return "no such file or directory";
    case "EACCES": case "EPERM": return "permission denied";
    case "EISDIR": return "is a directory";
    case "ENOTDIR": return "a parent is not a directory";
    case "ENOSPC": return "no space left on device";
  }
  return errorText(e);
}

function readFailure(path: string, e: unknown): string {
  return `Cannot read DICOM file "${path}": ${fsReason(e)}`;
}

/** Fills a file record's DICOM fields from a header read (keeps what the record already has). */
function describe(record: RtRecord, f: DicomFile): RtRecord {
  const fields: Record<string, string | number> = { bytes: f.size, ...dicomRecordFields(f) };
  for (const [k, v] of Object.entries(fields)) if (record[k] === undefined) record[k] = v;
  return record;
}

/** An async queue of results (workers push, the generator pulls). */
class Results {
  private items: RtRecord[] = [];
  private wake: (() => void) | undefined;
  closed = false;
  push(r: RtRecord): void {
    this.items.push(r);
    this.wake?.();
  }
  close(): void {
    this.closed = true;
    this.wake?.();
  }
  async *drain(): AsyncGenerator<RtRecord> {
    for (;;) {
      while (this.items.length) yield this.items.shift()!;
      if (this.closed) return;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}

/**
 * The push stage: sends every DICOM `file` record's object to the peer (see the module's summary)
 * and yields it with `push: {status, peer, …}`; other records pass through, first (the input is
 * read whole, to order it). Never throws for a per-object problem. What the ledger (or
 * the status file) lists as stored at this peer is skipped; outcomes go to the ledger and the
 * event sink.
 *
 * @example
 * ```ts
 * const peer = { host: "127.0.0.1", port: 4242, callingAet: "RTEXPORT", calledAet: "ORTHANC" };
 * for await (const r of pushRecords(pathRecords(["export/"]), { peer, parallel: 4 })) console.log(r.push);
 * ```
 */
export async function* pushRecords(input: AsyncIterable<RtRecord> | Iterable<RtRecord>, opts: PushOptions): AsyncGenerator<RtRecord> {
  const report = new StageReport("push", opts);
  const ledger = opts.ledger;
  try {
    const alreadyStored = ledger ? await ledger.keys("push", "done") : undefined;
    // The total (every file record gets an outcome) is known as soon as the input ends; until the
    // first outcome the line says how far the reading of the input has come.
    let total = 0;
    let read = 0;
    let outcomes = 0;
    let noted = 0;
    const counted = withTotal(untilAborted(input, opts.signal), (r) => {
      if (r.type === "file") total++;
    }, () => report.progress({ items: total }));
    const reading = async function* () {
      for await (const r of counted) {
        if (r.type === "file") read++;
        if (outcomes === 0 && Date.now() - noted > 250) {
          noted = Date.now();
          report.progress(undefined, `reading ${read} file${read === 1 ? "" : "s"}`);
        }
        yield r;
      }
    };
    for await (const r of pushObjects(reading(), opts, alreadyStored)) {
      const p = r.push as PushOutcome | undefined;
      if (r.type === "file" && (p || !isDicomFileRecord(r)) && outcomes++ === 0 && noted) report.progress(undefined, "");
      if (r.type === "file" && !p && !isDicomFileRecord(r)) {
        // A document, plan file or log from export-plan: not for a DICOM peer; counted, passed on.
        report.skipped(`"${r.path}"`, "not-dicom", `a ${String(r.category)} file is not DICOM`, { patientId: typeof r.patientId === "string" ? r.patientId : undefined });
      }
      if (r.type === "file" && p) {
        const item = `"${r.path}"`;
        const fields = {
          bytes: p.status === "stored" && typeof r.bytes === "number" ? r.bytes : undefined,
          patientId: typeof r.patientId === "string" ? r.patientId : undefined,
        };
        const already = p.status === "skipped" && p.error?.startsWith("already stored");
        if (p.status === "stored") {
          report.done(item, fields);
          if (p.error) report.message("warn", `${item} stored with a warning: ${p.dimseStatus} ${p.error}`, String(r.path));
        } else if (p.status === "skipped") {
          report.skipped(item, already ? "already-done" : p.error?.includes("not a DICOM file") ? "not-dicom" : "other", p.error ?? "skipped", fields);
        } else {
          const status = p.dimseStatus ? ` (status ${p.dimseStatus})` : "";
          report.failed(item, `Cannot store ${item} at ${p.peer}${status}: ${p.error}`, fields);
        }
        if (ledger && typeof r.sopInstanceUid === "string" && !already) {
          const entry: LedgerEntry = {
            kind: "push",
            key: `${p.peer}|${r.sopInstanceUid}`,
            status: p.status === "stored" ? "done" : p.status,
            source: String(r.path),
            dest: p.peer,
          };
          if (typeof r.patientId === "string") entry.patientId = r.patientId;
          if (typeof r.bytes === "number") entry.bytes = r.bytes;
          if (p.error) entry.error = p.dimseStatus ? `${p.dimseStatus} ${p.error}` : p.error;
          await ledger.queue(entry);
        }
      }
      yield r;
    }
  } finally {
    report.finish();
  }
}

/** What the push engine's parts share for one run. */
interface PushRun {
  opts: PushOptions;
  /** The peer as records name it (`AE@host:port`). */
  peer: string;
  /** `peer|sopInstanceUid` of the objects the peer already acknowledged (status file, ledger). */
  acknowledged: Set<string>;
  status?: StatusFile;
  mapMachine: Record<string, string>;
  defaultMachine: Record<string, string>;
  rewriting: boolean;
}

/** One worker's view of the sending: the shared queue, the results, and the peer's state. */
interface Sending {
  run: PushRun;
  sched: Scheduler;
  results: Results;
  connect: ConnectOptions;
  /** Associations open now. */
  connected: number;
  /** Set once the peer is taken to be unreachable: what is left fails with this reason, unsent. */
  peerDown?: string;
  /** Set when the consumer stopped reading: what is left is not sent. */
  stopped: boolean;
  /** Set once an association was established: from then on a connect failure fails objects, not the run. */
  everConnected?: boolean;
  /** Set when the first association could not be made at all: the run ends with it. */
  fatal?: FatalStageError;
}

/** The push engine under the stage: sends and yields each file record with its outcome. */
async function* pushObjects(input: AsyncIterable<RtRecord>, opts: PushOptions, alreadyStored: Set<string> | undefined): AsyncGenerator<RtRecord> {
  const acknowledged = opts.statusFile ? readStatusFile(opts.statusFile) : new Set<string>();
  for (const k of alreadyStored ?? []) acknowledged.add(k);
  const mapMachine = opts.mapMachine ?? {};
  const defaultMachine = opts.defaultMachine ?? {};
  const run: PushRun = {
    opts, peer: peerLabel(opts.peer), acknowledged, mapMachine, defaultMachine,
    rewriting: Object.keys(mapMachine).length > 0 || Object.keys(defaultMachine).length > 0,
    // Opened first, so a wrong path fails before any file is read.
    status: opts.statusFile ? new StatusFile(opts.statusFile) : undefined,
  };
  try {
    // The whole input is read first: the dependency order needs every object's rank.
    const items: Item[] = [];
    for await (const record of input) {
      const t = triage(run, record, items.length);
      if ("item" in t) items.push(t.item);
      else yield t.now;
    }
    if (items.length > 0) yield* sendAll(run, items);
  } finally {
    run.status?.close();
  }
}

/** A record with its outcome. */
function withPush(record: RtRecord, push: PushOutcome): RtRecord {
  return { ...record, push };
}

/**
 * What to do with one input record: an object to send (`item`), or a record to yield now
 * (passed through, skipped, or failed before anything was sent).
 */
function triage(run: PushRun, record: RtRecord, seq: number): { item: Item } | { now: RtRecord } {
  const peer = run.peer;
  // Not a file, or not DICOM (documents, plan files…): not for a DICOM peer.
  if (record.type !== "file" || typeof record.path !== "string" || !isDicomFileRecord(record)) return { now: record };
  const path = record.path;
  if (typeof record.error === "string") return { now: withPush(record, { status: "failed", peer, error: record.error }) };
  let file: DicomFile;
  try {
    file = readDicomFile(path);
  } catch (e) {
    const notDicom = (e as Error).name === "DicomParseError" && /^not a DICOM file/.test((e as Error).message);
    return { now: withPush(record, { status: notDicom ? "skipped" : "failed", peer, error: readFailure(path, e) }) };
  }
  const rec = describe({ ...record }, file);
  const sopClassUid = rec.sopClassUid as string | undefined;
  const sopInstanceUid = rec.sopInstanceUid as string | undefined;
  if (!sopClassUid || !sopInstanceUid) {
    return { now: withPush(rec, { status: "failed", peer, error: `Cannot push "${path}": it has no SOP Class UID or SOP Instance UID` }) };
  }
  if (sopClassUid === MEDIA_STORAGE_DIRECTORY) {
    return { now: withPush(rec, { status: "skipped", peer, error: `"${path}" is a DICOMDIR, not an object to store` }) };
  }
  if (run.acknowledged.has(`${peer}|${sopInstanceUid}`)) {
    return { now: withPush(rec, { status: "skipped", peer, error: "already stored (status file or ledger)" }) };
  }
  const hasPixelData = !file.complete || file.dataset.has(0x7fe00010);
  return {
    item: {
      record: rec,
      source: { sopClassUid, sopInstanceUid, transferSyntaxUid: file.transferSyntaxUid, path, datasetOffset: file.datasetOffset, size: file.size },
      patient: String(rec.patientId ?? ""),
      rank: pushRank(sopClassUid, hasPixelData),
      seq,
    },
  };
}

/** Sends the items over up to `parallel` associations, in dependency order; yields each record with its outcome as it is known. */
async function* sendAll(run: PushRun, items: Item[]): AsyncGenerator<RtRecord> {
  const contexts = storageContexts(items.map((i) => i.source));
  if (contexts.length > 128) {
    for (const it of items) {
      yield withPush(it.record, { status: "failed", peer: run.peer, error: `Too many SOP class / transfer syntax combinations (${contexts.length}) for one association (at most 128); push in smaller batches` });
    }
    return;
  }
  const sending: Sending = {
    run, sched: new Scheduler(items), results: new Results(), connect: connectOptions(run.opts.peer, contexts), connected: 0, stopped: false,
  };
  const n = Math.max(1, Math.min(run.opts.parallel ?? 1, items.length));
  const all = Promise.all(Array.from({ length: n }, () => worker(sending))).then(() => {
    if (sending.fatal) return;
    // Items a worker handed back when no other worker was left to take them.
    for (const it of sending.sched.drain()) {
      sending.results.push(withPush(it.record, { status: "failed", peer: run.peer, error: "not sent: the peer accepted no further association" }));
    }
  }).finally(() => sending.results.close());
  try {
    yield* sending.results.drain();
    if (sending.fatal) throw sending.fatal;
  } finally {
    // A consumer that stops reading stops the sending: objects in flight finish (their
    // associations are released, the status file gets their lines), the rest stay unsent.
    sending.stopped = true;
    await all;
  }
}

/** Records an item's outcome: the status file for what was stored, the scheduler, and the results. */
function finish(s: Sending, it: Item, push: PushOutcome): void {
  if (push.status === "stored" && s.run.status) {
    s.run.status.append({ status: "stored", peer: s.run.peer, sopInstanceUid: it.source.sopInstanceUid, path: it.source.path, at: new Date().toISOString() });
  }
  s.sched.done(it);
  s.results.push(withPush(it.record, push));
}

/** The data set to send: the file as it is, or (plans and records, with machine names to rewrite) re-encoded with the new names. */
function prepare(run: PushRun, it: Item): { source: StoreSource; machines?: string[] } {
  const sop = it.source.sopClassUid;
  if (!run.rewriting || (!PLAN_SOP_CLASSES.has(sop) && !RECORD_SOP_CLASSES.has(sop))) return { source: it.source };
  const full = readDicomFile(it.source.path!, { full: true });
  const machines = rewriteMachines(full.dataset, sop, run.mapMachine, run.defaultMachine);
  if (machines.length === 0) return { source: it.source };
  return { source: { ...it.source, dataset: full.dataset }, machines };
}

/** The outcome of a C-STORE response. */
function storedOutcome(peer: string, r: Awaited<ReturnType<typeof store>>, machines: string[] | undefined): PushOutcome {
  const cat = statusCategory(r.status);
  const push: PushOutcome = { status: cat === "success" || cat === "warning" ? "stored" : "failed", peer, dimseStatus: formatStatus(r.status), mode: r.mode };
  if (push.status === "failed" || cat === "warning") push.error = `${statusText(r.status)}${r.errorComment ? `: ${r.errorComment}` : ""}`;
  if (machines) push.machines = machines;
  return push;
}

/**
 * One association's worth of sending: takes items from the scheduler until none is left, on an
 * association of its own (opened when first needed, opened again after a break, at most three
 * times in a row). When it cannot connect while others are connected (the peer takes fewer
 * associations than asked), it hands its item back and stops.
 */
async function worker(s: Sending): Promise<void> {
  const peer = s.run.peer;
  let assoc: Association | undefined;
  let reconnects = 0;
  try {
    for (;;) {
      const it = await s.sched.next();
      if (!it) break;
      if (s.run.opts.signal?.aborted || s.stopped) {
        // Stopped (Ctrl-C, a reader gone): what is left is not sent and not a failure; the rerun sends it.
        s.sched.done(it);
        continue;
      }
      if (s.peerDown !== undefined) {
        finish(s, it, { status: "failed", peer, error: `not sent: ${s.peerDown}` });
        continue;
      }
      let prepared: { source: StoreSource; machines?: string[] };
      try {
        prepared = prepare(s.run, it);
      } catch (e) {
        finish(s, it, { status: "failed", peer, error: readFailure(it.source.path!, e) });
        continue;
      }
      if (!assoc?.established) {
        try {
          assoc = await connect(s.connect);
          s.connected++;
          s.everConnected = true;
        } catch (e) {
          if (s.connected > 0) {
            // Others are connected (the peer takes fewer associations than --parallel): leave it to them.
            s.sched.requeue(it);
            return;
          }
          if (!s.everConnected) {
            // Unreachable or refusing from the start: one message for the run, not one per object.
            s.fatal ??= new FatalStageError(`${errorText(e)}; nothing was sent`, { cause: e });
            s.sched.requeue(it);
            s.sched.drain();
            return;
          }
          s.peerDown = errorText(e);
          finish(s, it, { status: "failed", peer, error: s.peerDown });
          continue;
        }
      }
      try {
        finish(s, it, storedOutcome(peer, await store(assoc, prepared.source), prepared.machines));
        reconnects = 0;
      } catch (e) {
        if (e instanceof DicomNetError && e.code === "NO_CONTEXT") {
          finish(s, it, { status: "failed", peer, error: e.message });
          continue;
        }
        // The association broke while this object was in flight: it was not acknowledged.
        finish(s, it, { status: "failed", peer, error: errorText(e) });
        assoc?.abort();
        assoc = undefined;
        s.connected--;
        if (++reconnects > 3) s.peerDown = `gave up after repeated connection failures: ${errorText(e)}`;
      }
    }
  } finally {
    if (assoc) {
      s.connected--;
      await assoc.release();
    }
  }
}
