/**
 * The stage contract every acting command shares. A stage is
 * `(input: AsyncIterable<RtRecord>, options) => AsyncIterable<RtRecord>`: it acts on the record
 * types it understands, passes every other record through unchanged and in order, writes its own
 * ledger rows, applies its own PHI rules, and reports what it does as typed events. The command
 * line, a TypeScript or zx program and the web UI run the same stage and differ only in how they
 * show its events.
 */
import type { Ledger } from "../ledger/ledger.ts";
import type { RtRecord } from "../records/types.ts";

/** Why an item was skipped. Skips the user asked for (a filter, an earlier run's work) are not failures. */
export type SkipReason =
  /** Not a DICOM file where DICOM was expected (a PDF, a PNG, the tool's own database). */
  | "not-dicom"
  /** Done by an earlier run (the ledger says so and the result is still in place). */
  | "already-done"
  /** The result is already there with the same bytes (a second copy of a shared object). */
  | "identical"
  /** Left out by an option (a filter, an item list). */
  | "filtered"
  /** A plan left out because it is not approved (and unapproved plans were not asked for). */
  | "unapproved"
  /** Anything else, explained by the event's `reason`. */
  | "other";

/** What an item event may say about the item, for progress, dashboards and ledgers. */
export interface ItemFields {
  /** Bytes the item moved or wrote. */
  bytes?: number;
  /** The patient the item belongs to, when known. */
  patientId?: string;
  /** The plan the item belongs to (a plan UID or label), when known. */
  planKey?: string;
}

/** The counts a stage keeps; `finished` carries them. */
export interface StageCounts {
  done: number;
  skipped: number;
  failed: number;
  /** Bytes of the items done. */
  bytes: number;
  /** Distinct patients of the items done, skipped or failed. */
  patients: number;
  /** Skipped items by reason. */
  skippedBy: Partial<Record<SkipReason, number>>;
}

/** The amount of work, when a stage knows it (all fields optional: a stage says what it knows). */
export interface StageTotals {
  items?: number;
  bytes?: number;
  patients?: number;
}

/** A stage's events, in the order they happen. */
export type StageEvent =
  | { type: "started"; stage: string }
  /** Totals became known or changed, or the stage's phase changed (`note`: "paused until 19:00"). */
  | { type: "progress"; stage: string; total?: StageTotals; note?: string }
  | ({ type: "done"; stage: string; item: string } & ItemFields)
  | ({ type: "skipped"; stage: string; item: string; why: SkipReason; reason: string } & ItemFields)
  | ({ type: "failed"; stage: string; item: string; reason: string } & ItemFields)
  /** Something a person may want to read that is not an item's outcome. Never PHI beyond what the user asked for. */
  | { type: "message"; stage: string; level: "info" | "warn" | "debug"; text: string; item?: string }
  | { type: "finished"; stage: string; counts: StageCounts; interrupted: boolean };

/**
 * Thrown by a stage when nothing can be done at all: the peer it must talk to is unreachable or
 * refuses the first association, before any item was done. The run ends with this one message
 * (the command line exits 1) instead of one failure per item, each saying the same.
 *
 * @example
 * ```ts
 * try {
 *   assoc = await connect(options);
 * } catch (e) {
 *   if (nothingDoneYet) throw new FatalStageError((e as Error).message, { cause: e });
 * }
 * ```
 */
export class FatalStageError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FatalStageError";
  }
}

/** Receives a stage's events. Called synchronously; it must not throw. */
export type StageEventSink = (event: StageEvent) => void;

/** What every stage's options carry beside its own settings. */
export interface StageOptions {
  /** Where the stage records what it did (and reads what earlier runs did), when given. */
  ledger?: Ledger;
  /** Stops the stage at the next item boundary; in-flight writes are abandoned atomically. */
  signal?: AbortSignal;
  /** Receives the stage's events. */
  onEvent?: StageEventSink;
  /**
   * Set by a claimed run (lib/ledger/claimed_stage.ts) when every record of this call belongs to
   * this patient: what earlier runs did is read from the ledger for this patient only ("": files
   * of no patient, rows recorded without one).
   */
  patientScope?: string;
}

/** A stage: records in, records out. */
export type Stage<O extends StageOptions = StageOptions> = (input: AsyncIterable<RtRecord>, options: O) => AsyncIterable<RtRecord>;

/**
 * Keeps a stage's counts and sends its events: the one place a stage reports from.
 *
 * @example
 * ```ts
 * async function* touch(input: AsyncIterable<RtRecord>, options: StageOptions = {}) {
 *   const report = new StageReport("touch", options);
 *   try {
 *     for await (const r of input) {
 *       if (r.type === "file") report.done(`file "${r.path}"`);
 *       yield r;
 *     }
 *   } finally {
 *     report.finish();
 *   }
 * }
 * ```
 */
export class StageReport {
  readonly stage: string;
  readonly #sink?: StageEventSink;
  readonly #signal?: AbortSignal;
  readonly #patients = new Set<string>();
  readonly #counts: StageCounts = { done: 0, skipped: 0, failed: 0, bytes: 0, patients: 0, skippedBy: {} };
  #finished = false;

  constructor(stage: string, options: StageOptions = {}) {
    this.stage = stage;
    this.#sink = options.onEvent;
    this.#signal = options.signal;
    this.#emit({ type: "started", stage });
  }

  /** The counts so far (a copy). */
  get counts(): StageCounts {
    return { ...this.#counts, skippedBy: { ...this.#counts.skippedBy } };
  }

  /** True once the stage's signal asked it to stop. */
  get interrupted(): boolean {
    return this.#signal?.aborted === true;
  }

  /** The totals became known (or changed); `note` names a phase ("paused until 19:00"). */
  progress(total?: StageTotals, note?: string): void {
    const event: StageEvent = { type: "progress", stage: this.stage };
    if (total) event.total = total;
    if (note !== undefined) event.note = note;
    this.#emit(event);
  }

  /** One item done; `item` names it for people (`file "a.dcm"`, `plan "Plan1" of patient …`). */
  done(item: string, fields: ItemFields = {}): void {
    this.#counts.done++;
    this.#counts.bytes += fields.bytes ?? 0;
    this.#patient(fields.patientId);
    this.#emit({ type: "done", stage: this.stage, item, ...fields });
  }

  /** One item skipped, with why (a category) and the reason in words. */
  skipped(item: string, why: SkipReason, reason: string, fields: ItemFields = {}): void {
    this.#counts.skipped++;
    this.#counts.skippedBy[why] = (this.#counts.skippedBy[why] ?? 0) + 1;
    this.#patient(fields.patientId);
    this.#emit({ type: "skipped", stage: this.stage, item, why, reason, ...fields });
  }

  /** One item failed; `reason` says what went wrong (the event names the item). */
  failed(item: string, reason: string, fields: ItemFields = {}): void {
    this.#counts.failed++;
    this.#patient(fields.patientId);
    this.#emit({ type: "failed", stage: this.stage, item, reason, ...fields });
  }

  /** A message for people that is not an item's outcome. */
  message(level: "info" | "warn" | "debug", text: string, item?: string): void {
    const event: StageEvent = { type: "message", stage: this.stage, level, text };
    if (item !== undefined) event.item = item;
    this.#emit(event);
  }

  /** Sends `finished` with the counts, once; later calls return the same counts. */
  finish(): StageCounts {
    const counts = this.counts;
    if (!this.#finished) {
      this.#finished = true;
      this.#emit({ type: "finished", stage: this.stage, counts, interrupted: this.interrupted });
    }
    return counts;
  }

  #patient(id: string | undefined): void {
    if (id === undefined || this.#patients.has(id)) return;
    this.#patients.add(id);
    this.#counts.patients = this.#patients.size;
  }

  #emit(event: StageEvent): void {
    this.#sink?.(event);
  }
}

/**
 * The records of `input` until `signal` aborts: a stage reads its input through this so that a
 * stop request ends it at the next item boundary (work already in flight finishes or is abandoned
 * by the stage, atomically). A wait for the next record still runs to its end, so a generator that
 * cleans up after itself (a retrieval removing its staging) has done so when this returns.
 */
export async function* untilAborted<T>(input: AsyncIterable<T> | Iterable<T>, signal: AbortSignal | undefined): AsyncGenerator<T> {
  if (signal?.aborted) return;
  for await (const item of input) {
    yield item;
    if (signal?.aborted) return;
  }
}

/**
 * A command's input records (a pipe, a file) until `signal` aborts, where the abort also ends a
 * wait for the next record: a run waiting on a pipe whose writer has not written yet
 * (`export-plan … | copy-files`) stops at Ctrl-C at once. The pending read is abandoned, so only
 * for input that needs no clean-up (see {@link untilAborted} for a stage's own generators).
 */
export async function* inputUntilAborted<T>(input: AsyncIterable<T> | Iterable<T>, signal: AbortSignal | undefined): AsyncGenerator<T> {
  if (signal?.aborted) return;
  if (!signal) {
    yield* input;
    return;
  }
  const it: AsyncIterator<T> | Iterator<T> = Symbol.asyncIterator in input ? input[Symbol.asyncIterator]() : input[Symbol.iterator]();
  let onAbort = () => {};
  const aborted = new Promise<"aborted">((resolve) => {
    onAbort = () => resolve("aborted");
    signal.addEventListener("abort", onAbort, { once: true });
  });
  let pending = false;
  let finished = false;
  try {
    for (;;) {
      pending = true;
      const read = Promise.resolve(it.next());
      const next = await Promise.race([read, aborted]);
      if (next === "aborted") {
        read.catch(() => {}); // abandoned: its end, or failure, no longer matters
        return;
      }
      pending = false;
      if (next.done) {
        finished = true;
        return;
      }
      yield next.value;
      if (signal.aborted) return;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    // Closed as a for-await loop closes it, except while a read is still pending: an async
    // generator would queue the return behind it (and wait for the writer).
    if (!finished && !pending) await it.return?.();
  }
}

/**
 * Passes `input` through while reading it ahead of the consumer (records are small), calling
 * `see` for each record as it is read and `ended` once the input has ended: a stage learns its
 * totals (patients, files) as early as possible without holding its work back. At most
 * `readAhead` records (default 100,000) wait in memory; beyond that the reading waits for the
 * consumer, and the total comes later.
 */
export async function* withTotal<T>(
  input: AsyncIterable<T>, see: (item: T) => void, ended: () => void, options: { readAhead?: number } = {},
): AsyncGenerator<T> {
  const limit = Math.max(1, options.readAhead ?? 100_000);
  const queue: T[] = [];
  let done = false;
  let stopped = false;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  let room: (() => void) | undefined;
  const reading = (async () => {
    try {
      for await (const item of input) {
        see(item);
        queue.push(item);
        wake?.();
        while (queue.length >= limit && !stopped) await new Promise<void>((resolve) => (room = resolve));
        if (stopped) return;
      }
      ended();
    } catch (error) {
      failure = { error };
    } finally {
      done = true;
      wake?.();
    }
  })();
  try {
    for (;;) {
      if (queue.length) {
        const item = queue.shift()!;
        room?.();
        room = undefined;
        yield item;
        continue;
      }
      if (failure) throw failure.error;
      if (done) return;
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  } finally {
    // A consumer that stops early stops the reading at the next record.
    stopped = true;
    room?.();
    void reading;
  }
}
