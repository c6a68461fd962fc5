/**
 * A retrieve session that survives a live clinical system: each C-MOVE/C-GET request is retried
 * with back-off when it fails for a transient reason (connection reset or refused, timeout,
 * 0xA7xx out of resources, sub-operations that failed); a request that fails as a whole is asked
 * for in smaller parts (a series by its instances: seed 004's ARIA that fails a C-MOVE for a
 * patient with 30+ plans; the planners never ask for more than a series, so a whole patient is
 * one request per series already); and requests are paced (time windows, with the associations
 * released while the window is closed; rate and bandwidth limits, paid between requests). The
 * parts name the patient as the request did (issue 12).
 */
import type { DataSet } from "../dicom/dataset.ts";
import { backoffDelay, classifyError, classifyStatus, type RetryPolicy, retryText } from "../net/retry.ts";
import { identifier } from "../qr/identifier.ts";
import { type Pacer, pauseText } from "../stage/pace.ts";
import type { ArrivalStore } from "./arrivals.ts";
import type { RetrieveOutcome, RetrieveTransport } from "./types.ts";
import type { RetrieveSession } from "./session.ts";

export interface ResilienceOptions {
  retry: RetryPolicy;
  pace?: Pacer;
  signal?: AbortSignal;
  /** A retry, a fallback or a pause, in words. */
  onMessage?: (level: "info" | "warn", text: string) => void;
  /** The pace's phase changed ("paused until 19:00"; "" when it resumed). */
  onPhase?: (note: string) => void;
  /** Waits between tries (a test's clock); default setTimeout. */
  sleep?: (ms: number) => Promise<void>;
}

/** What the resilient layer did, for the summary. */
export interface ResilienceStats {
  retries: number;
  /** Requests asked for in parts after failing as a whole. */
  fallbacks: number;
}

function isFailure(o: RetrieveOutcome): boolean {
  return o.failed > 0 || (o.status !== 0 && (o.status & 0xf000) !== 0xb000 && o.status !== 0xff00);
}

function statusHex(s: number): string {
  return `0x${s.toString(16).toUpperCase().padStart(4, "0")}`;
}

/**
 * Wraps a session opener: the session is opened when first needed, closed while a time window is
 * closed and opened again after. Its transport retries, falls back and paces (see the module
 * summary); `stats` counts what it did.
 */
export async function openResilientSession(
  open: () => Promise<RetrieveSession>,
  arrivals: ArrivalStore | undefined,
  opts: ResilienceOptions,
): Promise<RetrieveSession & { stats: ResilienceStats }> {
  let session: RetrieveSession | undefined = await open();
  const firstPort = session.receiverPort;
  const firstHost = session.receiverHost;
  const extra = { find: 0, retrieve: 0 };
  const stats: ResilienceStats = { retries: 0, fallbacks: 0 };
  // Outcomes whose failures were this side's own (could not write what arrived).
  const failedHere = new WeakSet<RetrieveOutcome>();
  // Once aborted (Ctrl-C), no association is opened again for a retry.
  let aborted = false;
  // A stop (the signal, or abort()) ends a back-off wait at once: the loop then gives up.
  const stopped = () => aborted || opts.signal?.aborted === true;
  const wakers = new Set<() => void>();
  const sleep = opts.sleep ?? ((ms: number) =>
    new Promise<void>((r) => {
      if (stopped()) return r();
      const wake = () => {
        clearTimeout(t);
        wakers.delete(wake);
        r();
      };
      const t = setTimeout(wake, ms);
      wakers.add(wake);
    }));
  opts.signal?.addEventListener("abort", () => [...wakers].forEach((w) => w()), { once: true });
  const current = async (): Promise<RetrieveSession> => {
    if (aborted) throw new Error("Retrieval stopped");
    return (session ??= await open());
  };
  const closeSession = async () => {
    const s = session;
    session = undefined;
    if (s) {
      extra.find += s.extraRequests.find;
      extra.retrieve += s.extraRequests.retrieve;
      await s.close();
    }
  };
  // Objects and bytes that arrived, for the rate and bandwidth limits (with a C-MOVE to another
  // AE nothing arrives here: the peer's completed count, bytes unknown).
  let arrivedItems = 0, arrivedBytes = 0;
  const previous = arrivals?.onArrival;
  if (arrivals) {
    arrivals.onArrival = (o) => {
      arrivedItems++;
      arrivedBytes += o.bytes;
      previous?.(o);
    };
  }

  const pace = async () => {
    if (!opts.pace) return;
    await opts.pace.settle(opts.signal);
    await opts.pace.waitForWindow({
      signal: opts.signal,
      beforePause: closeSession,
      onPause: (label) => {
        opts.onPhase?.(label);
        opts.onMessage?.("info", pauseText(label));
      },
      onResume: () => opts.onPhase?.(""),
    });
  };

  const find = async (id: DataSet): Promise<DataSet[]> => {
    for (let attempt = 0;; attempt++) {
      try {
        return await (await current()).transport.find(id);
      } catch (e) {
        const c = classifyError(e);
        if (!c.transient || attempt >= opts.retry.retries || stopped()) throw e;
        const delayMs = backoffDelay(attempt + 1, opts.retry);
        stats.retries++;
        opts.onMessage?.("warn", `C-FIND: ${retryText({ attempt: attempt + 1, retries: opts.retry.retries, delayMs, why: c.why, error: (e as Error).message })}: ${(e as Error).message}`);
        await sleep(delayMs);
      }
    }
  };

  /** One request, tried again while it fails for a transient reason. */
  const once = async (id: DataSet, known: { instances?: number } | undefined, what: string): Promise<RetrieveOutcome> => {
    for (let attempt = 0;; attempt++) {
      await pace();
      const before = { items: arrivedItems, bytes: arrivedBytes, writes: arrivals?.writeFailures.length ?? 0 };
      let outcome: RetrieveOutcome | undefined;
      let error: unknown;
      try {
        outcome = await (await current()).transport.retrieve(id, known);
      } catch (e) {
        error = e;
      }
      const sent = arrivals ? arrivedItems - before.items : (outcome ? outcome.completed + outcome.warning : 0);
      opts.pace?.book(sent, arrivedBytes - before.bytes);
      if (outcome && !isFailure(outcome)) return outcome;
      // Sub-operations that failed because this side could not write them (a full disk) fail
      // the same way on every try and in every part: not the peer's transient trouble.
      if (outcome && outcome.failed > 0 && (arrivals?.writeFailures.length ?? 0) > before.writes) {
        failedHere.add(outcome);
        return outcome;
      }
      const c = outcome ? classifyStatus(outcome.status, outcome) : classifyError(error);
      const text = outcome
        ? `status ${statusHex(outcome.status)}${outcome.failed ? `, ${outcome.failed} sub-operations failed` : ""}${outcome.errorComment ? ` (${outcome.errorComment})` : ""}`
        : (error as Error)?.message ?? String(error);
      if (!c.transient || attempt >= opts.retry.retries || stopped()) {
        if (outcome) return outcome;
        throw error;
      }
      const delayMs = backoffDelay(attempt + 1, opts.retry);
      stats.retries++;
      opts.onMessage?.("warn", `${what}: ${retryText({ attempt: attempt + 1, retries: opts.retry.retries, delayMs, why: c.why, error: text })}: ${text}`);
      await sleep(delayMs);
    }
  };

  const level = (id: DataSet) => (id.string(0x00080052) ?? "").trim();

  /** A request, and when a series fails as a whole, its instances one by one. */
  const retrieve = async (id: DataSet, known?: { instances?: number }): Promise<RetrieveOutcome> => {
    const lvl = level(id);
    const studyUid = id.string(0x0020000d);
    const seriesUid = id.string(0x0020000e);
    const what = lvl === "SERIES" ? `C-MOVE/C-GET of series ${seriesUid}` : `C-MOVE/C-GET of ${lvl.toLowerCase() || "the request"}`;
    const divisible = lvl === "SERIES" && studyUid !== undefined && seriesUid !== undefined;
    let outcome: RetrieveOutcome;
    try {
      outcome = await once(id, known, what);
    } catch (e) {
      if (!divisible) throw e;
      outcome = { status: 0xc000, completed: 0, failed: 0, warning: 0, errorComment: (e as Error).message };
    }
    if (!isFailure(outcome) || !divisible || failedHere.has(outcome) || stopped()) return outcome;
    // A destination the peer does not know, or an identifier it cannot match, fails every part too.
    if (outcome.status === 0xa801 || (outcome.status & 0xff00) === 0xa900) return outcome;
    // Failed as a whole: its instances, each on its own, naming the patient as the request did.
    const patientId = id.string(0x00100020);
    const patient: Record<string, string> = patientId !== undefined ? { PatientID: patientId } : {};
    const parts: DataSet[] = [];
    // With a C-MOVE to another AE nothing arrives here: the peer's failed list, when it sent one.
    const failedThere = !arrivals && outcome.failedInstances?.length ? new Set(outcome.failedInstances) : undefined;
    extra.find++;
    for (const i of await find(identifier({ QueryRetrieveLevel: "IMAGE", ...patient, StudyInstanceUID: studyUid, SeriesInstanceUID: seriesUid, SOPInstanceUID: "" }))) {
      const uid = i.string(0x00080018);
      const other = patientId !== undefined && i.string(0x00100020) !== undefined && i.string(0x00100020)!.trim() !== patientId.trim();
      if (!uid || other) continue;
      // What arrived before the request failed is not asked for again.
      if (arrivals?.has(uid) || (failedThere && !failedThere.has(uid))) continue;
      parts.push(identifier({ QueryRetrieveLevel: "IMAGE", ...patient, StudyInstanceUID: studyUid, SeriesInstanceUID: seriesUid, SOPInstanceUID: uid }));
    }
    if (parts.length === 0) return outcome;
    stats.fallbacks++;
    opts.onMessage?.("warn", `${what} failed as a whole (${statusHex(outcome.status)}${outcome.errorComment ? `: ${outcome.errorComment}` : ""}): asking for its ${parts.length} instances one by one`);
    // Those the first request did send (by the peer's list) count as sent.
    const total: RetrieveOutcome = failedThere
      ? { status: 0, completed: outcome.completed, failed: 0, warning: outcome.warning }
      : { status: 0, completed: 0, failed: 0, warning: 0 };
    const failedUids: string[] = [];
    for (const p of parts) {
      extra.retrieve++;
      const o = await retrieve(p).catch((e: Error) => ({ status: 0xc000, completed: 0, failed: 1, warning: 0, errorComment: e.message }));
      total.completed += o.completed;
      total.failed += o.failed + (isFailure(o) && o.failed === 0 ? 1 : 0);
      total.warning += o.warning;
      if (isFailure(o)) {
        failedUids.push(p.string(0x00080018)!);
        total.errorComment ??= o.errorComment;
      }
    }
    if (failedUids.length) total.failedInstances = failedUids;
    if (total.failed > 0 || total.warning > 0) total.status = 0xb000;
    return total;
  };

  const transport: RetrieveTransport = { find, retrieve, destination: session.transport.destination };
  return {
    transport,
    receiverPort: firstPort,
    receiverHost: firstHost,
    get extraRequests() {
      return { find: extra.find + (session?.extraRequests.find ?? 0), retrieve: extra.retrieve + (session?.extraRequests.retrieve ?? 0) };
    },
    stats,
    async close() {
      if (arrivals) arrivals.onArrival = previous;
      await closeSession();
    },
    abort() {
      aborted = true;
      for (const w of [...wakers]) w();
      session?.abort();
    },
  };
}
