/**
 * The push engine: C-STORE `file` records to a peer in dependency order as they arrive (per
 * patient: images, other objects, RTSTRUCT, RTPLAN, RTDOSE/RTIMAGE, treatment records; and an
 * object after the objects it references), over N associations, skipping what a status file or
 * the ledger says the peer already acknowledged, optionally rewriting treatment machine names.
 * Optionally: a pre-flight check against the target's import rules (what it would refuse is held
 * back), retries of transient failures with back-off, time windows and rate limits, and Storage
 * Commitment for what was stored. Each file record comes back with `push: {status, peer, …}`.
 */
import { closeSync, existsSync, openSync, readFileSync, writeSync } from "node:fs";
import type { DataSet } from "../dicom/dataset.ts";
import { dicomRecordFields, metaHeaderWarning } from "../dicom/file_record.ts";
import { type DicomFile, readDicomFile } from "../dicom/reader.ts";
import { PLAN_SOP_CLASSES, RECORD_SOP_CLASSES } from "../dicom/rt.ts";
import { RT_SOP_CLASSES } from "../dicom/uids.ts";
import { isDicomFileRecord, type RtRecord } from "../records/types.ts";
import { type Association, connect } from "../net/association.ts";
import type { CommitListen } from "../net/commitment_scu.ts";
import { formatStatus, statusCategory, statusText } from "../net/dimse.ts";
import { DicomNetError } from "../net/errors.ts";
import { connectOptions, peerLabel, type PeerSettings } from "../net/peer.ts";
import { backoffDelay, classifyError, classifyStatus, type RetryPolicy, retryText } from "../net/retry.ts";
import { storageContexts, store, type StoreSource } from "../net/scu.ts";
import type { Checker, Reference, Violation } from "../check/rules.ts";
import type { Profile } from "../check/profile.ts";
import type { LedgerEntry } from "../ledger/ledger.ts";
import { type Pacer, pauseText } from "../stage/pace.ts";
import { FatalStageError, type StageOptions, StageReport, untilAborted } from "../stage/stage.ts";
import { rewriteMachines } from "./machines.ts";
import { DependencyScheduler, type SchedItem } from "./schedule.ts";
import { fsReason } from "../fs/errors.ts";

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
  /** Retries it took (transient failures tried again). */
  retries?: number;
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
  /** Check each object against the target's import rules first; what it would refuse is held back (a failed item, not sent). */
  check?: { target: string | Profile; machines?: string[] };
  /** Ask the peer to commit what was stored (Storage Commitment), and record the answer per object. */
  commit?: {
    /** Listen for reports the peer sends on an association it opens (its configuration must name us there). */
    listen?: CommitListen;
    /** How long to wait for a report, ms (default 60 s). */
    timeoutMs?: number;
    /** Objects per request (default 500). */
    batch?: number;
  };
  /** Retries of transient failures (default: none). */
  retry?: RetryPolicy;
  /** Time windows and rate limits. */
  pace?: Pacer;
  /** Objects that could go now read ahead of the sending (default 256); those waiting for other objects do not count. */
  readAhead?: number;
  /**
   * How many file records the input holds, when the caller knows (`push DIR` walks the names
   * first): the progress total from the start. Otherwise the total is known when the input ends.
   */
  total?: number;
}

/** A `commitment` record: what the peer answered about one object pushed (Storage Commitment). */
export interface CommitmentRecord extends RtRecord {
  type: "commitment";
  path?: string;
  sopClassUid: string;
  sopInstanceUid: string;
  patientId?: string;
  peer: string;
  status: "committed" | "commit-failed";
  reason?: string;
}


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

export { rewriteMachines } from "./machines.ts";

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


const REFERENCED_SOP_INSTANCE_UID = 0x00081155;

function refsIn(ds: DataSet, path: number[]): string[] {
  let level: DataSet[] = [ds];
  for (const tag of path) level = level.flatMap((d) => d.items(tag));
  return level.map((d) => d.string(REFERENCED_SOP_INSTANCE_UID)).filter((u): u is string => !!u);
}

/**
 * The objects an object must follow (seed 003's order: image, structure set, plan, dose): a
 * structure set its contour images, a plan its structure set, a dose, RT image or treatment
 * record its plan, a registration its images.
 */
export function dependencyRefs(ds: DataSet, sopClassUid: string): string[] {
  const refs = new Set<string>();
  const add = (list: string[]) => list.forEach((u) => refs.add(u));
  if (sopClassUid === RT_SOP_CLASSES.RTStructureSet) {
    add(refsIn(ds, [0x30060010, 0x30060012, 0x30060014, 0x30060016]));
    add(refsIn(ds, [0x30060039, 0x30060040, 0x30060016]));
  } else if (PLAN_SOP_CLASSES.has(sopClassUid)) {
    add(refsIn(ds, [0x300c0060]));
  } else if (sopClassUid === RT_SOP_CLASSES.RTDose || sopClassUid === RT_SOP_CLASSES.RTImage || RECORD_SOP_CLASSES.has(sopClassUid)) {
    add(refsIn(ds, [0x300c0002]));
  } else if (sopClassUid === RT_SOP_CLASSES.SpatialRegistration || sopClassUid === RT_SOP_CLASSES.DeformableSpatialRegistration) {
    add(refsIn(ds, [0x00700308, 0x00081140]));
    add(refsIn(ds, [0x00081115, 0x0008114a]));
    add(refsIn(ds, [0x00081200, 0x00081115, 0x0008114a]));
  }
  return [...refs];
}

interface Item extends SchedItem {
  record: RtRecord;
  source: StoreSource;
  /** The (SOP class, transfer syntax) its presentation context is keyed by. */
  combo: string;
  /** Reference rules of the target to check once it may go. */
  checkRefs?: Reference[];
  attempts: number;
}

function errorText(e: unknown): string {
  return ((e as Error)?.message ?? String(e)).split("\n")[0];
}

function readFailure(path: string, e: unknown): string {
  return `Cannot read DICOM file "${path}": ${fsReason(e)}`;
}

/**
 * Fills a file record's DICOM fields from a header read (keeps what the record already has, but
 * the SOP Class and Instance UIDs are the data set's: they are what the C-STORE request carries,
 * issue 12).
 */
function describe(record: RtRecord, f: DicomFile): RtRecord {
  const fields: Record<string, string | number> = { bytes: f.size, ...dicomRecordFields(f) };
  for (const [k, v] of Object.entries(fields)) {
    if (record[k] === undefined || k === "sopClassUid" || k === "sopInstanceUid") record[k] = v;
  }
  return record;
}

/** An async queue of results (the reader and the workers push, the generator pulls). */
class Results {
  private items: RtRecord[] = [];
  private wake: (() => void) | undefined;
  private error: { e: unknown } | undefined;
  closed = false;
  push(r: RtRecord): void {
    this.items.push(r);
    this.wake?.();
  }
  fail(e: unknown): void {
    this.error ??= { e };
    this.close();
  }
  close(): void {
    this.closed = true;
    this.wake?.();
  }
  async *drain(): AsyncGenerator<RtRecord> {
    for (;;) {
      while (this.items.length) yield this.items.shift()!;
      if (this.closed) {
        if (this.error) throw this.error.e;
        return;
      }
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}

/**
 * Presentation contexts for associations opened while the input still arrives: the objects seen
 * so far (SOP class and transfer syntax), at most 128 (the most recent first after the one to send).
 * The one place the streaming engine decides what it proposes (`contexts`), and `covers` what an
 * open association can carry; a worker opens a new association for an object it cannot.
 */
class ContextBook {
  readonly #seen = new Map<string, { sopClassUid: string; transferSyntaxUid: string }>();
  static key(sopClassUid: string, transferSyntaxUid: string): string {
    return `${sopClassUid}|${transferSyntaxUid}`;
  }
  add(sopClassUid: string, transferSyntaxUid: string): string {
    const key = ContextBook.key(sopClassUid, transferSyntaxUid);
    this.#seen.delete(key);
    this.#seen.set(key, { sopClassUid, transferSyntaxUid });
    return key;
  }
  /** The contexts to propose, for an association that must carry `first`; and the combos they cover. */
  contexts(first: string): { contexts: ReturnType<typeof storageContexts>; covers: Set<string> } {
    const order = [this.#seen.get(first)!, ...[...this.#seen].reverse().filter(([k]) => k !== first).map(([, v]) => v)];
    const covers = new Set<string>();
    let contexts = storageContexts([]);
    for (const o of order) {
      const next = storageContexts([...[...covers].map((k) => this.#seen.get(k)!), o]);
      if (next.length > 128) break;
      contexts = next;
      covers.add(ContextBook.key(o.sopClassUid, o.transferSyntaxUid));
    }
    return { contexts, covers };
  }
}

/**
 * The push stage: sends every DICOM `file` record's object to the peer (see the module's summary)
 * as records arrive, and yields it with `push: {status, peer, …}`; other records pass through at
 * once. Never throws for a per-object problem. What the ledger (or the status file) lists as
 * stored at this peer is skipped, unless the peer failed to commit it; outcomes go to the ledger
 * and the event sink. With `commit`, `commitment` records follow for what was stored.
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
    const scope = { patientId: opts.patientScope };
    const alreadyStored = ledger ? await ledger.keys("push", "done", scope) : new Set<string>();
    // What the peer failed to commit is sent again.
    if (ledger) for (const k of await ledger.keys("commit", "failed", scope)) alreadyStored.delete(k);
    const committed = ledger && opts.commit ? await ledger.keys("commit", "done", scope) : new Set<string>();
    let committedCount = 0;
    let commitAsked = 0;
    // The progress total (every file record gets an outcome): given, or counted as the input is
    // read (the engine reads only its read-ahead beyond what it sent: known when the input ends).
    if (opts.total !== undefined) report.progress({ items: opts.total });
    let total = 0;
    const counted = async function* () {
      for await (const r of untilAborted(input, opts.signal)) {
        if (r.type === "file") total++;
        yield r;
      }
      if (opts.total === undefined && !opts.signal?.aborted) report.progress({ items: total });
    };
    for await (const r of pushObjects(counted(), opts, alreadyStored, committed, report)) {
      if (r.type === "commitment") {
        const c = r as CommitmentRecord;
        commitAsked++;
        const item = `"${c.path ?? c.sopInstanceUid}"`;
        if (c.status === "committed") committedCount++;
        else report.failed(item, `Cannot commit ${item} at ${c.peer}: ${c.reason}`, { patientId: c.patientId });
        if (ledger) {
          const entry: LedgerEntry = { kind: "commit", key: `${c.peer}|${c.sopInstanceUid}`, status: c.status === "committed" ? "done" : "failed", dest: c.peer };
          if (c.path) entry.source = c.path;
          if (c.patientId) entry.patientId = c.patientId;
          if (c.reason) entry.error = c.reason;
          await ledger.queue(entry);
        }
        yield r;
        continue;
      }
      const p = r.push as PushOutcome | undefined;
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
    if (commitAsked) report.message("info", `${committedCount} of ${commitAsked} objects committed by ${peerLabel(opts.peer)}`);
  } finally {
    report.finish();
  }
}

/** What the push engine's parts share for one run. */
interface Run {
  opts: PushOptions;
  report: StageReport;
  /** The peer as records name it (`AE@host:port`). */
  peer: string;
  /** `peer|sopInstanceUid` of the objects the peer already acknowledged (status file, ledger). */
  acknowledged: Set<string>;
  status?: StatusFile;
  mapMachine: Record<string, string>;
  defaultMachine: Record<string, string>;
  rewriting: boolean;
  checker?: Checker;
  sched: DependencyScheduler<Item>;
  results: Results;
  book: ContextBook;
  retry: RetryPolicy;
  /** UIDs this run stored (for the reference rules of the check). */
  stored: Set<string>;
  /** Objects to ask the peer to commit, in batches. */
  commits?: CommitQueue;
  /** `peer|sopInstanceUid` the peer committed in earlier runs (not asked again). */
  committed: Set<string>;
  /** Associations open now. */
  connected: number;
  /** Set once the peer is taken to be unreachable: what is left fails with this reason, unsent. */
  peerDown?: string;
  /** Set when the consumer stopped reading: what is left is not sent. */
  stopped: boolean;
  /** Set once an association was established: from then on a connect failure fails objects, not the run. */
  everConnected?: boolean;
  /** Set when the first association could not be made at all (after its retries): the run ends with it. */
  fatal?: FatalStageError;
  /**
   * Until a first association is made, a failure to connect is the peer's, not an object's: it is
   * retried for the run (one line per try), no object is tried before this time.
   */
  connectTries: number;
  connectNotBefore: number;
}

/** An object to ask the peer to commit. */
interface CommitObject {
  sopClassUid: string;
  sopInstanceUid: string;
  path?: string;
  patientId?: string;
}

/** Storage Commitment requests for what was stored, a batch at a time, in the background. */
class CommitQueue {
  readonly #batch: CommitObject[] = [];
  #chain: Promise<void> = Promise.resolve();
  readonly #size: number;
  readonly #send: (batch: CommitObject[]) => Promise<void>;
  constructor(size: number, send: (batch: CommitObject[]) => Promise<void>) {
    this.#size = size;
    this.#send = send;
  }
  add(o: CommitObject): void {
    this.#batch.push(o);
    if (this.#batch.length >= this.#size) this.flush();
  }
  flush(): void {
    if (this.#batch.length === 0) return;
    const batch = this.#batch.splice(0);
    this.#chain = this.#chain.then(() => this.#send(batch));
  }
  async done(): Promise<void> {
    this.flush();
    await this.#chain;
  }
}

/** The push engine under the stage: reads the input as it comes, sends, yields each record with its outcome. */
async function* pushObjects(
  input: AsyncIterable<RtRecord>, opts: PushOptions, alreadyStored: Set<string>, committed: Set<string>, report: StageReport,
): AsyncGenerator<RtRecord> {
  const peer = peerLabel(opts.peer);
  const acknowledged = opts.statusFile ? readStatusFile(opts.statusFile) : new Set<string>();
  for (const k of alreadyStored) acknowledged.add(k);
  const mapMachine = opts.mapMachine ?? {};
  const defaultMachine = opts.defaultMachine ?? {};
  // Opened first, so a wrong path fails before any file is read.
  const status = opts.statusFile ? new StatusFile(opts.statusFile) : undefined;
  const run: Run = {
    opts, report, peer, acknowledged, status, mapMachine, defaultMachine,
    rewriting: Object.keys(mapMachine).length > 0 || Object.keys(defaultMachine).length > 0,
    sched: new DependencyScheduler<Item>((uid) => acknowledged.has(`${peer}|${uid}`)),
    results: new Results(),
    book: new ContextBook(),
    retry: opts.retry ?? { retries: 0, maxWaitMs: 0 },
    stored: new Set(),
    committed,
    connected: 0,
    stopped: false,
    connectTries: 0,
    connectNotBefore: 0,
  };
  let committer: { commit(items: readonly { sopClassUid: string; sopInstanceUid: string }[]): Promise<{ sopInstanceUid: string; committed: boolean; reason?: string }[]>; close(): Promise<void> } | undefined;
  try {
    if (opts.check) run.checker = await makeChecker(run, opts.check);
    if (opts.commit) {
      const { Committer } = await import("../net/commitment_scu.ts");
      const c = await Committer.start({ peer: opts.peer, listen: opts.commit.listen, timeoutMs: opts.commit.timeoutMs, signal: opts.signal });
      committer = c;
      run.commits = new CommitQueue(opts.commit.batch ?? 500, (batch) => commitBatch(run, c, batch));
    }
  } catch (e) {
    status?.close();
    await committer?.close();
    throw e;
  }
  const readAhead = Math.max(opts.readAhead ?? 256, (opts.parallel ?? 1) * 2);
  const reader = (async () => {
    try {
      let seq = 0;
      for await (const record of input) {
        if (run.stopped) break;
        const t = triage(run, record, seq++);
        if ("item" in t) {
          run.sched.add(t.item);
          await run.sched.room(readAhead);
        } else run.results.push(t.now);
      }
    } catch (e) {
      run.results.fail(e);
      run.stopped = true;
      run.sched.stop();
    } finally {
      run.sched.inputEnded();
    }
  })();
  const n = Math.max(1, opts.parallel ?? 1);
  const all = Promise.all([reader, ...Array.from({ length: n }, () => worker(run))]).then(async () => {
    // Items a worker handed back when no other worker was left to take them. A stop (Ctrl-C, a
    // reader gone, a peer never reached) leaves the rest unsent, not failed: the rerun sends them.
    for (const it of run.sched.drain()) {
      if (run.stopped || opts.signal?.aborted || run.fatal) continue;
      run.results.push(withPush(it.record, { status: "failed", peer, error: "not sent: the peer accepted no further association" }));
    }
    await run.commits?.done();
  }).catch((e) => run.results.fail(e)).finally(async () => {
    status?.close();
    await committer?.close();
    run.results.close();
  });
  try {
    yield* run.results.drain();
    if (run.fatal) throw run.fatal;
  } finally {
    // A consumer that stops reading stops the sending: objects in flight finish (their
    // associations are released, the status file gets their lines), the rest stay unsent.
    run.stopped = true;
    run.sched.stop();
    await all;
  }
}

/** The checker for `--check`: the profile, and the machines the target knows (given, or asked for by C-FIND). */
async function makeChecker(run: Run, check: NonNullable<PushOptions["check"]>): Promise<Checker> {
  const [{ loadProfile }, { Checker }, { machinesAtTarget }] = await Promise.all([
    import("../check/profile.ts"), import("../check/rules.ts"), import("../check/target.ts"),
  ]);
  const profile = typeof check.target === "string" ? loadProfile(check.target) : check.target;
  const checker = new Checker(profile, { machines: check.machines });
  if (checker.needsMachines) {
    try {
      const names = await machinesAtTarget(run.opts.peer);
      if (names) checker.addMachines(names);
    } catch { /* the target does not answer C-FIND: said below */ }
    if (checker.needsMachines) {
      run.report.message("warn", `Treatment machine names are not checked: ${profile.name} needs the machines it knows (--machines), and ${run.peer} named none by C-FIND`);
    }
  }
  return checker;
}

/** One batch of commitment: asked (with retries of a request that could not be made), each object's answer a `commitment` record. */
async function commitBatch(
  run: Run,
  committer: { commit(items: readonly { sopClassUid: string; sopInstanceUid: string }[]): Promise<{ sopInstanceUid: string; committed: boolean; reason?: string }[]> },
  batch: CommitObject[],
): Promise<void> {
  let outcomes: { sopInstanceUid: string; committed: boolean; reason?: string }[] | undefined;
  let why = "";
  for (let attempt = 0; !outcomes; attempt++) {
    try {
      outcomes = await committer.commit(batch);
    } catch (e) {
      why = errorText(e);
      const c = classifyError(e);
      if (!c.transient || attempt >= run.retry.retries || run.opts.signal?.aborted) break;
      const delayMs = backoffDelay(attempt + 1, run.retry);
      run.report.message("warn", `Storage commitment request to ${run.peer}: ${retryText({ attempt: attempt + 1, retries: run.retry.retries, delayMs, why: c.why, error: why })}: ${why}`);
      await new Promise((r) => setTimeout(r, delayMs));
    }
  }
  const byUid = new Map((outcomes ?? []).map((o) => [o.sopInstanceUid, o]));
  for (const b of batch) {
    const o = byUid.get(b.sopInstanceUid);
    const rec: CommitmentRecord = {
      type: "commitment", sopClassUid: b.sopClassUid, sopInstanceUid: b.sopInstanceUid, peer: run.peer,
      status: o?.committed ? "committed" : "commit-failed",
    };
    if (b.path) rec.path = b.path;
    if (b.patientId) rec.patientId = b.patientId;
    if (!o?.committed) rec.reason = o?.reason ?? `Cannot request storage commitment: ${why}`;
    run.results.push(rec);
  }
}

/** A record with its outcome. */
function withPush(record: RtRecord, push: PushOutcome): RtRecord {
  return { ...record, push };
}

/**
 * What to do with one input record: an object to send (`item`), or a record to yield now
 * (passed through, skipped, held back, or failed before anything was sent).
 */
function triage(run: Run, record: RtRecord, seq: number): { item: Item } | { now: RtRecord } {
  const peer = run.peer;
  // Not a file, or not DICOM (documents, plan files…): not for a DICOM peer.
  if (record.type !== "file" || typeof record.path !== "string" || !isDicomFileRecord(record)) return { now: record };
  const path = record.path;
  if (typeof record.error === "string") return { now: withPush(record, { status: "failed", peer, error: record.error }) };
  let file: DicomFile;
  try {
    // Walked to its end (fragment headers, elements after the pixels): a truncated file is refused
    // here, with the reason, instead of leaving the peer waiting for the rest until a timeout (issue 12).
    file = readDicomFile(path, { checkEnd: true });
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
    if (!run.committed.has(`${peer}|${sopInstanceUid}`)) run.commits?.add({ sopClassUid, sopInstanceUid, path, patientId: rec.patientId as string | undefined });
    return { now: withPush(rec, { status: "skipped", peer, error: "already stored (status file or ledger)" }) };
  }
  const disagreement = metaHeaderWarning(file, path, "the data set's UIDs are sent in the C-STORE request");
  if (disagreement) run.report.message("warn", disagreement, path);
  let checkRefs: Reference[] | undefined;
  if (run.checker) {
    const violations = run.checker.check(file.dataset, sopClassUid);
    if (violations.length) return { now: heldBack(run, rec, violations) };
    checkRefs = run.checker.references(file.dataset, sopClassUid);
  }
  const hasPixelData = !file.complete || file.dataset.has(0x7fe00010);
  const rank = pushRank(sopClassUid, hasPixelData);
  const item: Item = {
    record: rec,
    source: { sopClassUid, sopInstanceUid, transferSyntaxUid: file.transferSyntaxUid, path, datasetOffset: file.datasetOffset, size: file.size },
    combo: run.book.add(sopClassUid, file.transferSyntaxUid),
    uid: sopInstanceUid,
    patient: String(rec.patientId ?? ""),
    rank,
    // Images never wait for what they reference (a localizer, a prior): only RT objects and registrations do.
    refs: rank === 0 ? [] : dependencyRefs(file.dataset, sopClassUid),
    notBefore: 0,
    seq,
    attempts: 0,
  };
  if (checkRefs?.length) item.checkRefs = checkRefs;
  return { item };
}

/** The record of an object the target would refuse: not sent. */
function heldBack(run: Run, rec: RtRecord, violations: Violation[]): RtRecord {
  const target = run.checker!.profile.name;
  return {
    ...rec,
    push: { status: "failed", peer: run.peer, error: `held back: ${target} would refuse it: ${violations.map((v) => v.message).join("; ")}` } satisfies PushOutcome,
    check: { target, status: "refused", violations },
  };
}

/** Records an item's outcome: the status file for what was stored, the scheduler, commitment, and the results. */
function finish(run: Run, it: Item, push: PushOutcome): void {
  if (it.attempts > 0) push.retries = it.attempts;
  if (push.status === "stored") {
    run.status?.append({ status: "stored", peer: run.peer, sopInstanceUid: it.source.sopInstanceUid, path: it.source.path, at: new Date().toISOString() });
    if (run.checker) run.stored.add(it.uid);
    run.commits?.add({ sopClassUid: it.source.sopClassUid, sopInstanceUid: it.uid, path: it.source.path, patientId: it.record.patientId as string | undefined });
  }
  run.sched.finish(it);
  run.results.push(withPush(it.record, push));
}

/**
 * Puts an item back for another try after a back-off, when the failure is transient and tries
 * are left; says so in a message. False when it is not to be tried again.
 */
function retry(run: Run, it: Item, failure: { transient: boolean; why: string }, error: string): boolean {
  if (!failure.transient || it.attempts >= run.retry.retries || run.stopped || run.opts.signal?.aborted) return false;
  it.attempts++;
  const delayMs = backoffDelay(it.attempts, run.retry);
  run.report.message("warn", `Retrying "${it.source.path}" at ${run.peer}: ${retryText({ attempt: it.attempts, retries: run.retry.retries, delayMs, why: failure.why, error })}: ${error}`, it.source.path);
  run.sched.retryLater(it, Date.now() + delayMs);
  return true;
}

/** Waits `ms`, or less when `signal` aborts. */
function sleepUnless(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** The data set to send: the file as it is, or (plans and records, with machine names to rewrite) re-encoded with the new names. */
function prepare(run: Run, it: Item): { source: StoreSource; machines?: string[] } {
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

/** The reference rules of the check, once an object may go: what it needs was stored, was there, or is at the target. */
async function missingRefs(run: Run, it: Item): Promise<Violation[]> {
  const { missingReference } = await import("../check/rules.ts");
  const have = (u: string) => run.stored.has(u) || run.acknowledged.has(`${run.peer}|${u}`);
  const out: Violation[] = [];
  for (const ref of it.checkRefs ?? []) {
    let missing = ref.uids.length ? ref.uids.filter((u) => !have(u)) : [];
    if (missing.length) {
      try {
        const { instancesAtTarget } = await import("../check/target.ts");
        const there = await instancesAtTarget(run.opts.peer, missing, ref.series);
        missing = missing.filter((u) => !there.has(u));
      } catch { /* the target does not answer C-FIND: what was not sent counts as missing */ }
    }
    if (missing.length) out.push(missingReference(ref, missing, run.checker!.profile.name));
  }
  return out;
}

/**
 * One association's worth of sending: takes items from the scheduler until none is left, on an
 * association of its own (opened when first needed, again after a break or when an object needs
 * a context it did not propose). Transient failures are retried with back-off; when it cannot
 * connect while others are connected (the peer takes fewer associations than asked), it hands its
 * item back and stops.
 */
async function worker(run: Run): Promise<void> {
  const peer = run.peer;
  const pace = run.opts.pace;
  let assoc: Association | undefined;
  let covers = new Set<string>();
  /** This worker's association counts in `run.connected` (until it is gone, whoever ended it). */
  let counted = false;
  const uncount = () => {
    if (counted) run.connected--;
    counted = false;
  };
  const release = async () => {
    uncount();
    const a = assoc;
    assoc = undefined;
    if (a?.established) await a.release();
  };
  try {
    for (;;) {
      const it = await run.sched.next();
      if (!it) break;
      if (run.opts.signal?.aborted || run.stopped) {
        // Stopped (Ctrl-C, a reader gone): what is left is not sent and not a failure; the rerun sends it.
        run.sched.finish(it);
        continue;
      }
      if (run.peerDown !== undefined) {
        finish(run, it, { status: "failed", peer, error: `not sent: ${run.peerDown}` });
        continue;
      }
      if (it.checkRefs) {
        const missing = await missingRefs(run, it);
        if (missing.length) {
          run.sched.finish(it);
          run.results.push(heldBack(run, it.record, missing));
          continue;
        }
      }
      if (pace) {
        // The rate's wait first: the window is checked at the moment the object would go.
        await pace.take(1, it.source.size ?? 0, run.opts.signal);
        await pace.waitForWindow({
          signal: run.opts.signal,
          // Nothing is held open against the peer while the window is closed.
          beforePause: release,
          onPause: (label) => {
            run.report.progress(undefined, label);
            run.report.message("info", pauseText(label));
          },
          onResume: () => run.report.progress(undefined, ""),
        });
        if (run.opts.signal?.aborted || run.stopped) {
          run.sched.finish(it);
          continue;
        }
      }
      let prepared: { source: StoreSource; machines?: string[] };
      try {
        prepared = prepare(run, it);
      } catch (e) {
        finish(run, it, { status: "failed", peer, error: readFailure(it.source.path!, e) });
        continue;
      }
      if (assoc?.established && !covers.has(it.combo)) await release(); // it needs a context this association did not propose
      if (!assoc?.established) {
        uncount(); // ended by the peer since the last object
        const proposal = run.book.contexts(it.combo);
        if (!run.everConnected && run.connectNotBefore > Date.now()) {
          await sleepUnless(run.connectNotBefore - Date.now(), run.opts.signal);
          if (run.opts.signal?.aborted || run.stopped || run.fatal) {
            run.sched.finish(it);
            continue;
          }
        }
        try {
          assoc = await connect(connectOptions(run.opts.peer, proposal.contexts));
          covers = proposal.covers;
          run.connected++;
          run.everConnected = true;
          counted = true;
        } catch (e) {
          assoc = undefined;
          if (run.connected > 0) {
            // Others are connected (the peer takes fewer associations than --parallel): leave it to them.
            run.sched.retryLater(it, 0);
            return;
          }
          if (!run.everConnected) {
            // The peer has not answered yet: retried for the run, not per object (one line per try).
            const c = classifyError(e);
            if (c.transient && run.connectTries < run.retry.retries && !run.stopped && !run.opts.signal?.aborted) {
              run.connectTries++;
              const delayMs = backoffDelay(run.connectTries, run.retry);
              run.connectNotBefore = Math.max(run.connectNotBefore, Date.now() + delayMs);
              run.report.message("warn", `${errorText(e)}; nothing sent yet, ${retryText({ attempt: run.connectTries, retries: run.retry.retries, delayMs, why: c.why, error: errorText(e) })}`);
              run.sched.retryLater(it, 0);
              continue;
            }
            // Unreachable or refusing from the start: one message for the run, not one per object.
            run.fatal ??= new FatalStageError(`${errorText(e)}; nothing was sent`, { cause: e });
            run.stopped = true;
            run.sched.finish(it);
            run.sched.stop();
            return;
          }
          if (retry(run, it, classifyError(e), errorText(e))) continue;
          run.peerDown = errorText(e);
          finish(run, it, { status: "failed", peer, error: run.peerDown });
          continue;
        }
      }
      try {
        const outcome = storedOutcome(peer, await store(assoc, prepared.source), prepared.machines);
        if (outcome.status === "failed") {
          const status = parseInt(outcome.dimseStatus!.slice(2), 16);
          if (retry(run, it, classifyStatus(status), `${outcome.dimseStatus} ${outcome.error}`)) continue;
        }
        finish(run, it, outcome);
      } catch (e) {
        if (e instanceof DicomNetError && e.code === "NO_CONTEXT") {
          finish(run, it, { status: "failed", peer, error: e.message });
          continue;
        }
        // The association broke while this object was in flight: it was not acknowledged.
        assoc?.abort();
        assoc = undefined;
        uncount();
        if (retry(run, it, classifyError(e), errorText(e))) continue;
        finish(run, it, { status: "failed", peer, error: errorText(e) });
      }
    }
  } finally {
    await release();
  }
}
