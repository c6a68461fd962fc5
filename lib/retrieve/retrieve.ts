/**
 * Selective retrieval into a folder, as file records and a closing summary: the session (network),
 * the arrivals (staging), the planner (what to keep) and the output (placing) put together. The
 * stage in stage.ts adds the ledger, the events and anonymization on top.
 */
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { removeStale } from "../fs/stale.ts";
import type { AllowEntry, Timeouts, TlsOptions } from "../net/mod.ts";
import type { FileRecord } from "../records/types.ts";
import { ArrivalStore } from "./arrivals.ts";
import { placeObject, type PatientRewrite } from "./output.ts";
import { type RetrieveSummary, retrievePlans, retrieveSeriesByUid } from "./planner.ts";
import type { RetryPolicy } from "../net/retry.ts";
import type { Pacer } from "../stage/pace.ts";
import { openResilientSession } from "./resilient.ts";
import { openRetrieveSession } from "./session.ts";
import { retrievePatient } from "./whole.ts";

/** Options of {@link retrieveFiles}. */
export interface RetrieveFilesOptions {
  host: string;
  port: number;
  callingAet: string;
  calledAet: string;
  patientId: string;
  /** RT Plan Labels to retrieve (default: all plans of the patient). */
  plans?: string[];
  onlyApproved?: boolean;
  /** Whole series by UID instead of plans. */
  series?: string[];
  /** Everything of the patient (a request per study; by series, then by instance, when the peer fails one as a whole). */
  all?: boolean;
  /** Retries of transient failures (default none); a request that fails as a whole is asked for in parts either way. */
  retry?: RetryPolicy;
  /** Time windows and rate limits, applied between requests. */
  pace?: Pacer;
  /** Stops at the next request. */
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
  /** C-FIND matches kept per query (default 50,000). */
  maxFindResults?: number;
  out: string;
  rewrite?: PatientRewrite;
  maxPdu?: number;
  timeouts?: Timeouts;
  tls?: TlsOptions;
  /** Associations a large series may be retrieved over at once (default 1; see `RetrieveSessionOptions.parallel`). */
  parallel?: number;
  /** Told where the C-MOVE receiver listens. */
  onReceiver?: (port: number | undefined, host?: string) => void;
  /** Called for each object that could not be written (the rest go on). */
  onError?: (sopInstanceUid: string, message: string) => void;
}

/**
 * Selective retrieval as an async iterable: yields a `file` record for every object written
 * under `out` (atomically, hashed), then the `retrieve-summary` record with the gaps between
 * what the plans reference and what arrived.
 *
 * @example
 * ```ts
 * for await (const r of retrieveFiles({ host: "pacs", port: 104, callingAet: "RTEXPORT", calledAet: "PACS",
 *   patientId: "123", plans: ["Prostate"], get: true, out: "export" })) console.log(r.type, r.path ?? "");
 * ```
 */
export async function* retrieveFiles(opts: RetrieveFilesOptions): AsyncGenerator<FileRecord | RetrieveSummary> {
  const outDir = resolve(opts.out);
  mkdirSync(outDir, { recursive: true });
  // Staging folders of earlier runs that were killed before they could remove them.
  removeStale(outDir, /^\.rtexport-staging-(\d+)$/);
  // The file records carry each object's SHA-256: hashed once, right after it arrived.
  const arrivals = new ArrivalStore(join(outDir, `.rtexport-staging-${process.pid}`), { hash: true });
  // Whole series: every object of a requested series is kept, so each is put in place as soon as
  // its header is read, in the wait between two objects, not all after the last one (~50 ms for
  // 500 CT slices here). Plans: the planner decides what is kept once everything arrived.
  const placed = new Map<string, FileRecord | Error>();
  let placing = true;
  if (opts.series?.length) {
    const wanted = new Set(opts.series);
    arrivals.onArrival = (o) => {
      if (!placing || !wanted.has(o.seriesUid)) return;
      try {
        placed.set(o.sopInstanceUid, placeObject(o, outDir, undefined, opts.rewrite ?? {}));
      } catch (e) {
        placed.set(o.sopInstanceUid, e as Error);
      }
    };
  }
  // Objects that arrived but could not be written (disk full): each named with its cause, once.
  const reportWriteFailures = () => {
    for (const f of arrivals.writeFailures.splice(0)) opts.onError?.(f.sopInstanceUid, f.error);
  };
  let session;
  try {
    session = await openResilientSession(() =>
      openRetrieveSession({
        host: opts.host, port: opts.port, callingAet: opts.callingAet, calledAet: opts.calledAet,
        mode: opts.get ? "get" : "move", moveAet: opts.moveAet, movePort: opts.movePort, moveHost: opts.moveHost, moveFrom: opts.moveFrom,
        maxFindResults: opts.maxFindResults, maxPdu: opts.maxPdu, timeouts: opts.timeouts, tls: opts.tls, parallel: opts.parallel,
      }, arrivals), arrivals, { retry: opts.retry ?? { retries: 0, maxWaitMs: 0 }, pace: opts.pace, signal: opts.signal, onMessage: opts.onMessage, onPhase: opts.onPhase });
    opts.onReceiver?.(session.receiverPort, session.receiverHost);
    let result;
    try {
      result = opts.series?.length
        ? await retrieveSeriesByUid(session.transport, arrivals, opts.patientId, opts.series)
        : opts.all
        ? await retrievePatient(session.transport, arrivals, opts.patientId)
        : await retrievePlans(session.transport, arrivals, { patientId: opts.patientId, planLabels: opts.plans, onlyApproved: opts.onlyApproved === true });
    } catch (e) {
      // What arrived whole before the failure is in place already: it is reported, not orphaned.
      placing = false;
      for (const r of placed.values()) if (!(r instanceof Error)) yield r;
      reportWriteFailures();
      throw e;
    }
    placing = false;
    result.summary.requests.find += session.extraRequests.find;
    result.summary.requests.retrieve += session.extraRequests.retrieve;
    if (session.stats.retries || session.stats.fallbacks) result.summary.resilience = { ...session.stats };
    for (const { object, planUids } of result.objects) {
      try {
        const early = placed.get(object.sopInstanceUid);
        if (early instanceof Error) throw early;
        yield early ?? placeObject(object, outDir, object.modality === "RTPLAN" ? object.sopInstanceUid : planUids[0], opts.rewrite ?? {});
      } catch (e) {
        opts.onError?.(object.sopInstanceUid, (e as Error).message);
      }
    }
    reportWriteFailures();
    yield result.summary;
  } finally {
    await session?.close();
    arrivals.cleanup();
  }
}
