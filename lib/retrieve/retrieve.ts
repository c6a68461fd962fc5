/**
 * Retrieval into a folder, as file records and a closing summary: the session (network), the
 * arrivals (staging), the planners (what to ask for and keep) and the output (placing) put
 * together. The stage in stage.ts adds the ledger, the events and anonymization on top.
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { removeStale } from "../fs/stale.ts";
import type { AllowEntry, Timeouts, TlsOptions } from "../net/mod.ts";
import type { FileRecord } from "../records/types.ts";
import { ArrivalStore } from "./arrivals.ts";
import { placeObject, type PatientRewrite } from "./output.ts";
import { type RetrieveResult, type RetrieveSummary, retrievePlans } from "./planner.ts";
import { retrieveByUid, retrievePatient } from "./patient.ts";
import type { RetryPolicy } from "../net/retry.ts";
import type { Pacer } from "../stage/pace.ts";
import { openResilientSession } from "./resilient.ts";
import { openRetrieveSession, type RetrieveSession } from "./session.ts";
import { refusedText } from "./move_receiver.ts";

/** Options of {@link retrieveFiles}. */
export interface RetrieveFilesOptions {
  host: string;
  port: number;
  callingAet: string;
  calledAet: string;
  patientId: string;
  /** RT Plan Labels to retrieve (selective: the plans and what they reference). */
  plans?: string[];
  /** Only approved plans (selective). */
  onlyApproved?: boolean;
  /** Whole series by UID. */
  series?: string[];
  /** Instances by SOP Instance UID. Without plans, series and instances: the whole patient. */
  sops?: string[];
  /** Retries of transient failures (default none); a series that fails as a whole is asked for by instance either way. */
  retry?: RetryPolicy;
  /** Time windows and rate limits, applied between requests (the associations are released while a window is closed). */
  pace?: Pacer;
  /**
   * Stops the retrieval: the associations are aborted at once and the generator ends (what was
   * put in place so far has been yielded; nothing half-written stays under `out`).
   */
  signal?: AbortSignal;
  /** Retries, fallbacks and pauses, in words. */
  onMessage?: (level: "info" | "warn", text: string) => void;
  /** The pace's phase ("paused until 19:00"; "" once it resumed). */
  onPhase?: (note: string) => void;
  /** C-GET on the query association; otherwise C-MOVE to an in-process receiver. */
  get?: boolean;
  moveAet?: string;
  movePort?: number;
  /** Listen address of the C-MOVE receiver (default: the local address of our connection to the peer). */
  moveHost?: string;
  /** Who may send to the C-MOVE receiver (default: the peer's AE title from the peer's address). */
  moveFrom?: (string | AllowEntry)[];
  /**
   * C-MOVE to this AE title (one the peer knows) instead of here: no receiver, nothing written;
   * the summary's `moves` carry the peer's sub-operation counts per request. Not with plans.
   */
  moveDest?: string;
  /** C-FIND matches kept per query (default 50,000). */
  maxFindResults?: number;
  /** The output folder (not needed with `moveDest`). */
  out?: string;
  rewrite?: PatientRewrite;
  maxPdu?: number;
  timeouts?: Timeouts;
  tls?: TlsOptions;
  /** Associations a large series may be retrieved over at once (default 1; see `RetrieveSessionOptions.parallel`). */
  parallel?: number;
  /** Told how many objects the whole patient holds, when the peer says (for a progress total). */
  onTotal?: (objects: number) => void;
  /** Told where the C-MOVE receiver listens. */
  onReceiver?: (port: number | undefined, host?: string) => void;
  /** Called for each object that could not be written (the rest go on). */
  onError?: (sopInstanceUid: string, message: string) => void;
  /** Called for each object that arrived but belongs to another patient: dropped, never written. */
  onOtherPatient?: (sopInstanceUid: string) => void;
}

/**
 * Retrieval as an async iterable: yields a `file` record for every object written under `out`
 * (atomically, hashed), then the `retrieve-summary` record with the gaps between what was
 * expected and what arrived. With plans (`plans`, `onlyApproved`): the selective retrieval;
 * with `series`/`sops`: those; otherwise the whole patient.
 *
 * @example
 * ```ts
 * for await (const r of retrieveFiles({ host: "pacs", port: 104, callingAet: "RTEXPORT", calledAet: "PACS",
 *   patientId: "123", plans: ["Prostate"], get: true, out: "export" })) console.log(r.type, r.path ?? "");
 * ```
 */
export async function* retrieveFiles(opts: RetrieveFilesOptions): AsyncGenerator<FileRecord | RetrieveSummary> {
  const selective = (opts.plans?.length ?? 0) > 0 || opts.onlyApproved === true;
  const byUid = (opts.series?.length ?? 0) > 0 || (opts.sops?.length ?? 0) > 0;
  if (selective && byUid) throw new Error("Cannot retrieve: series or instances by UID cannot be combined with plan labels or only approved plans");
  if (opts.moveDest && (selective || opts.get)) {
    throw new Error(`Cannot retrieve ${selective ? "plans" : "by C-GET"} with a C-MOVE to another AE ("${opts.moveDest}")`);
  }
  if (opts.moveDest) {
    yield* toAnotherAe(opts);
    return;
  }
  if (!opts.out) throw new Error("Cannot retrieve: no output folder");
  const outDir = resolve(opts.out);
  mkdirSync(outDir, { recursive: true });
  // Staging folders of earlier runs that were killed before they could remove them.
  removeStale(outDir, /^\.rtexport-staging-(\d+)$/);
  // The file records carry each object's SHA-256: hashed once, right after it arrived.
  const arrivals = new ArrivalStore(join(outDir, `.rtexport-staging-${process.pid}`), { hash: true });
  // Without plans every object of a requested series (or instance) is kept, so each is put in
  // place as soon as its header is read (and its PatientID checked), in the wait between two
  // objects, not all after the last one (~50 ms for 500 CT slices here). Plans: the planner
  // decides what is kept once everything arrived.
  const placed = new Map<string, FileRecord | Error>();
  // Placed records wait here until the consumer takes them, while the retrieval goes on: the
  // first record is out after the first object, so `| head -1` ends the run early.
  const ready: FileRecord[] = [];
  const yielded = new Set<string>();
  let wake: (() => void) | undefined;
  let placing = true;
  const wantedSeries = new Set(opts.series ?? []);
  const wantedInstances = new Set(opts.sops ?? []);
  if (!selective) {
    arrivals.onArrival = (o) => {
      if (!placing || !(wantedSeries.has(o.seriesUid) || wantedInstances.has(o.sopInstanceUid))) return;
      try {
        const r = placeObject(o, outDir, undefined, opts.rewrite ?? {});
        placed.set(o.sopInstanceUid, r);
        ready.push(r);
        wake?.();
      } catch (e) {
        placed.set(o.sopInstanceUid, e as Error);
      }
    };
  }
  // Objects that arrived but could not be written (disk full): each named with its cause, once.
  const reportWriteFailures = () => {
    for (const f of arrivals.writeFailures.splice(0)) opts.onError?.(f.sopInstanceUid, f.error);
  };
  let session: Awaited<ReturnType<typeof openSession>> | undefined;
  let work: Promise<{ result: RetrieveResult } | { error: unknown }> | undefined;
  let finished = false;
  const stop = () => session?.abort();
  opts.signal?.addEventListener("abort", stop, { once: true });
  try {
    if (opts.signal?.aborted) return;
    session = await openSession(opts, arrivals);
    if (opts.signal?.aborted) return;
    opts.onReceiver?.(session.receiverPort, session.receiverHost);
    const transport = session.transport;
    work = (selective
      ? retrievePlans(transport, arrivals, { patientId: opts.patientId, planLabels: opts.plans, onlyApproved: opts.onlyApproved === true })
      : byUid
      ? retrieveByUid(transport, arrivals, opts.patientId, { series: opts.series, instances: opts.sops })
      : retrievePatient(transport, arrivals, opts.patientId, {
        onSeries: (uids, instances) => {
          uids.forEach((u) => wantedSeries.add(u));
          if (instances !== undefined) opts.onTotal?.(instances);
        },
      }))
      .then((result) => ({ result }), (error) => ({ error }))
      .finally(() => (finished = true));
    let outcome: { result: RetrieveResult } | { error: unknown } | undefined;
    while (!outcome) {
      const woken = new Promise<undefined>((resolve) => (wake = () => resolve(undefined)));
      if (!ready.length) outcome = await Promise.race([work, woken]);
      for (const r of ready.splice(0)) {
        yielded.add(String(r.sopInstanceUid));
        yield r;
      }
    }
    placing = false;
    if ("error" in outcome) {
      // What arrived whole before the failure is in place already: it is reported, not orphaned.
      for (const r of placed.values()) if (!(r instanceof Error) && !yielded.has(String(r.sopInstanceUid))) yield r;
      reportWriteFailures();
      throw outcome.error;
    }
    const result = outcome.result;
    result.summary.requests.find += session.extraRequests.find;
    result.summary.requests.retrieve += session.extraRequests.retrieve;
    if (session.stats.retries || session.stats.fallbacks) result.summary.resilience = { ...session.stats };
    for (const { object, planUids } of result.objects) {
      if (yielded.has(object.sopInstanceUid)) continue;
      try {
        const early = placed.get(object.sopInstanceUid);
        if (early instanceof Error) throw early;
        yield early ?? placeObject(object, outDir, object.modality === "RTPLAN" ? object.sopInstanceUid : planUids[0], opts.rewrite ?? {});
      } catch (e) {
        opts.onError?.(object.sopInstanceUid, (e as Error).message);
      }
    }
    reportWriteFailures();
    for (const uid of result.otherPatient) opts.onOtherPatient?.(uid);
    yield result.summary;
  } finally {
    opts.signal?.removeEventListener("abort", stop);
    placing = false;
    if (work) {
      // Ended early (the consumer stopped, or a signal): the requests in flight are abandoned.
      if (!finished) session?.abort();
      await work;
    }
    await session?.close();
    arrivals.cleanup();
  }
}

function sessionOptions(opts: RetrieveFilesOptions): Parameters<typeof openRetrieveSession>[0] {
  return {
    host: opts.host, port: opts.port, callingAet: opts.callingAet, calledAet: opts.calledAet,
    mode: opts.get ? "get" : "move", moveAet: opts.moveAet, movePort: opts.movePort, moveHost: opts.moveHost, moveFrom: opts.moveFrom,
    moveDest: opts.moveDest, maxFindResults: opts.maxFindResults, maxPdu: opts.maxPdu, timeouts: opts.timeouts, tls: opts.tls,
    parallel: opts.moveDest ? 1 : opts.parallel,
    onRefused: (r) => opts.onMessage?.("warn", refusedText(r)),
  };
}

/** The session every retrieval goes through: retried, asked for in parts, paced (resilient.ts). */
function openSession(opts: RetrieveFilesOptions, arrivals: ArrivalStore | undefined): ReturnType<typeof openResilientSession> {
  const open = (): Promise<RetrieveSession> => openRetrieveSession(sessionOptions(opts), arrivals);
  return openResilientSession(open, arrivals, {
    retry: opts.retry ?? { retries: 0, maxWaitMs: 0 },
    pace: opts.pace,
    signal: opts.signal,
    onMessage: opts.onMessage,
    onPhase: opts.onPhase,
  });
}

/** C-MOVEs to another AE: no receiver, no staging, nothing written; the summary is the report. */
async function* toAnotherAe(opts: RetrieveFilesOptions): AsyncGenerator<RetrieveSummary> {
  const session = await openSession(opts, undefined);
  try {
    const byUid = (opts.series?.length ?? 0) > 0 || (opts.sops?.length ?? 0) > 0;
    const result = byUid
      ? await retrieveByUid(session.transport, undefined, opts.patientId, { series: opts.series, instances: opts.sops })
      : await retrievePatient(session.transport, undefined, opts.patientId);
    result.summary.requests.find += session.extraRequests.find;
    result.summary.requests.retrieve += session.extraRequests.retrieve;
    if (session.stats.retries || session.stats.fallbacks) result.summary.resilience = { ...session.stats };
    yield result.summary;
  } finally {
    await session.close();
  }
}
