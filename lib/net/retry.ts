/**
 * Which network failures are worth another try, and how long to wait before it: exponential
 * back-off with full jitter, capped. Transient: a connection refused, reset or timed out, an
 * association rejected as transient (PS3.8 result 2) or aborted, "out of resources" (0xA7xx),
 * C-MOVE/C-GET sub-operations that failed. Permanent: everything the peer will say again
 * (0xA9xx data set does not match, 0xCxxx cannot understand, a permanent rejection, a TLS or
 * protocol failure, no presentation context, an unknown host).
 */
import { DicomNetError } from "./errors.ts";

/** How often and how long to retry. */
export interface RetryPolicy {
  /** Tries after the first (0: none). */
  retries: number;
  /** The longest single wait, ms. */
  maxWaitMs: number;
  /** The first wait before jitter, ms (doubles each try). Default 1000. */
  baseMs?: number;
  /** A number in [0, 1) (jitter); default Math.random. */
  random?: () => number;
}

/**
 * The default: 5 retries, waits of 1, 2, 4, 8, 16 s (each jittered), none longer than 60 s.
 *
 * @example
 * ```ts
 * for await (const r of pushRecords(input, { peer, retry: DEFAULT_RETRY_POLICY })) console.log(r.push);
 * ```
 */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { retries: 5, maxWaitMs: 60_000, baseMs: 1000 };

/** Transient or permanent, with a short reason for the log. */
export interface FailureClass {
  transient: boolean;
  why: string;
}

/** Classifies a DIMSE status (C-STORE-RSP, the final C-MOVE/C-GET response, N-ACTION-RSP). */
export function classifyStatus(status: number, counts?: { failed?: number; completed?: number }): FailureClass {
  if (status === 0xa702) return { transient: true, why: "out of resources for sub-operations" };
  if ((status & 0xff00) === 0xa700) return { transient: true, why: "out of resources" };
  if ((status & 0xff00) === 0xa900) return { transient: false, why: "data set does not match the SOP class" };
  if ((status & 0xf000) === 0xc000) return { transient: false, why: "the peer cannot understand the request" };
  if (status === 0xa801) return { transient: false, why: "move destination unknown" };
  if ((status === 0xb000 || status === 0xfe00 || status === 0) && (counts?.failed ?? 0) > 0) {
    return { transient: true, why: `${counts!.failed} sub-operations failed` };
  }
  return { transient: false, why: `status 0x${status.toString(16).toUpperCase().padStart(4, "0")}` };
}

/** Classifies a thrown error (DicomNetError codes; other errors are permanent). */
export function classifyError(e: unknown): FailureClass {
  if (e instanceof DicomNetError) {
    switch (e.code) {
      case "REFUSED":
        return { transient: true, why: "connection refused" };
      case "TIMEOUT":
        return { transient: true, why: "timeout" };
      case "CLOSED":
        return { transient: true, why: "connection closed" };
      case "ABORTED":
        return { transient: true, why: "association aborted" };
      case "REJECTED":
        // PS3.8 Table 9-21: result 2 is "rejected-transient"; source 3 reason 1/2 (temporary congestion, local limit exceeded) too.
        if (e.reject?.result === 2 || (e.reject?.source === 3 && (e.reject.reason === 1 || e.reject.reason === 2))) {
          return { transient: true, why: "association rejected (transient)" };
        }
        return { transient: false, why: "association rejected (permanent)" };
      case "UNREACHABLE":
        return /not found/.test(e.message) ? { transient: false, why: "host not found" } : { transient: true, why: "host unreachable" };
      default:
        return { transient: false, why: e.code.toLowerCase().replace("_", " ") };
    }
  }
  const code = (e as { code?: string })?.code;
  if (code === "ECONNRESET" || code === "EPIPE" || code === "ETIMEDOUT" || code === "ECONNREFUSED") return { transient: true, why: code };
  return { transient: false, why: "error" };
}

/** The wait before retry number `attempt` (1 = the first retry): full jitter over base·2^(attempt-1), capped. */
export function backoffDelay(attempt: number, policy: RetryPolicy): number {
  const base = policy.baseMs ?? 1000;
  const ceiling = Math.min(policy.maxWaitMs, base * 2 ** Math.max(0, attempt - 1));
  const r = (policy.random ?? Math.random)();
  // Half fixed, half random: never a zero wait, and workers that failed together spread out.
  return Math.round(ceiling / 2 + (ceiling / 2) * r);
}

/** One retry about to happen, for the log. */
export interface RetryNotice {
  attempt: number;
  retries: number;
  delayMs: number;
  why: string;
  error: string;
}

/** Thrown by {@link withRetries}' callback to report a DIMSE status as the failure. */
export class StatusFailure extends Error {
  readonly status: number;
  readonly counts?: { failed?: number; completed?: number };
  constructor(message: string, status: number, counts?: { failed?: number; completed?: number }) {
    super(message);
    this.name = "StatusFailure";
    this.status = status;
    if (counts) this.counts = counts;
  }
}

/**
 * Classifies anything {@link withRetries} may see.
 *
 * @example
 * ```ts
 * classify(new DicomNetError("REFUSED", "x"));   // { transient: true, why: "connection refused" }
 * classify(new StatusFailure("x", 0xc000));      // { transient: false, why: "the peer cannot understand the request" }
 * ```
 */
export function classify(e: unknown): FailureClass {
  return e instanceof StatusFailure ? classifyStatus(e.status, e.counts) : classifyError(e);
}

/**
 * Runs `fn` until it succeeds, a failure is permanent, or the retries are spent; waits with
 * back-off between tries (`sleep`, so a test's clock can stand in) and tells `onRetry` before
 * each. Throws the last error.
 *
 * @example
 * ```ts
 * const status = await withRetries(async () => {
 *   const assoc = await connect(options);
 *   try { return await echo(assoc); } finally { await assoc.release(); }
 * }, { retries: 3, maxWaitMs: 10_000 }, { onRetry: (n) => console.error(retryText(n)) });
 * ```
 */
export async function withRetries<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy,
  hooks: { onRetry?: (n: RetryNotice) => void; sleep?: (ms: number, signal?: AbortSignal) => Promise<void>; signal?: AbortSignal } = {},
): Promise<T> {
  const sleep = hooks.sleep ?? ((ms: number, signal?: AbortSignal) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    }));
  for (let attempt = 0;; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      const c = classify(e);
      if (!c.transient || attempt >= policy.retries || hooks.signal?.aborted) throw e;
      const delayMs = backoffDelay(attempt + 1, policy);
      hooks.onRetry?.({ attempt: attempt + 1, retries: policy.retries, delayMs, why: c.why, error: (e as Error)?.message ?? String(e) });
      await sleep(delayMs, hooks.signal);
      if (hooks.signal?.aborted) throw e;
    }
  }
}

/** "retry 2 of 5 in 1.8 s (connection refused)": the words a retry message uses. */
export function retryText(n: RetryNotice): string {
  return `retry ${n.attempt} of ${n.retries} in ${(n.delayMs / 1000).toFixed(1)} s (${n.why})`;
}
