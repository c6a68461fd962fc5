/**
 * Runs a stage's work as claimed items (see claims.ts): the input's records are grouped into
 * items, the items are seeded into the ledger's job, and `workers` claimers in this process take
 * items one at a time until the pass has none left — waiting, when other workers still hold
 * items, until those are done or their lease runs out (then taking them over). Records that
 * belong to no item pass through at once.
 */
import type { RtRecord } from "../records/types.ts";
import { FatalStageError } from "../stage/stage.ts";
import { type ClaimedItem, type ItemOutcome, type SeedItem, WorkQueue } from "./claims.ts";
import type { Ledger } from "./ledger.ts";

/** How a stage's records become items, how an item is done, and how it ended. */
export interface ClaimedWork {
  /** The item a record belongs to (records of one item are gathered in input order); undefined passes the record through. */
  itemOf(record: RtRecord): Omit<SeedItem, "payload" | "listed"> | undefined;
  /**
   * The key an item is seeded under, from the key `itemOf` gave and all its records (default: that
   * key). A key that also says which records the item holds keeps a run with more records for the
   * same patient from being folded into an item another run seeded with fewer.
   */
  keyOf?(key: string, records: RtRecord[]): string;
  /** Rows listed with an item (recorded as pending until done), from its records. */
  listed?(records: RtRecord[]): SeedItem["listed"];
  /** Does one item: its records in, result records out. */
  work(records: RtRecord[], ctx: { worker: number; item: ClaimedItem }): AsyncIterable<RtRecord>;
  /** How the item ended, once `work` has ended. */
  outcome(item: ClaimedItem): ItemOutcome;
}

/** Options of {@link runClaimed}. */
export interface RunClaimedOptions {
  ledger: Ledger;
  /** The job's name: workers started with the same command line give the same one. */
  job: string;
  /** Claimers in this process (default 1). */
  workers?: number;
  signal?: AbortSignal;
  /** How often a worker with nothing to claim looks again (default a quarter of the lease, at most 1 s). */
  pollMs?: number;
  /** Told when an item is taken over from a dead run, given back, or lost to another worker. */
  onMessage?: (level: "info" | "warn" | "debug", text: string) => void;
}

/** A bounded hand-over from the claimers to the consumer. */
class Channel<T> {
  private readonly items: T[] = [];
  private wakeConsumer: (() => void) | undefined;
  private readonly waitingProducers: (() => void)[] = [];
  closed = false;
  private readonly capacity: number;
  constructor(capacity: number) {
    this.capacity = capacity;
  }

  async push(item: T): Promise<boolean> {
    while (!this.closed && this.items.length >= this.capacity) await new Promise<void>((r) => this.waitingProducers.push(r));
    if (this.closed) return false;
    this.items.push(item);
    this.wakeConsumer?.();
    return true;
  }

  async pull(): Promise<{ value: T } | undefined> {
    for (;;) {
      if (this.items.length) {
        const value = this.items.shift()!;
        this.waitingProducers.shift()?.();
        return { value };
      }
      if (this.closed) return undefined;
      await new Promise<void>((r) => (this.wakeConsumer = r));
      this.wakeConsumer = undefined;
    }
  }

  close(): void {
    this.closed = true;
    this.wakeConsumer?.();
    for (const w of this.waitingProducers.splice(0)) w();
  }
}

/**
 * The claimed-items form of a stage (see the module comment). Records come out as items finish,
 * in no fixed order across items.
 *
 * @example
 * ```ts
 * const out = runClaimed(records, {
 *   itemOf: (r) => (typeof r.patientId === "string" ? { key: `patient|${r.patientId}`, patientId: r.patientId } : undefined),
 *   work: (recs) => exportPlans(recs, options),
 *   outcome: () => ({ status: "done" }),
 * }, { ledger, job: "export-plan", workers: 4 });
 * ```
 */
export async function* runClaimed(input: AsyncIterable<RtRecord>, spec: ClaimedWork, opts: RunClaimedOptions): AsyncGenerator<RtRecord> {
  const items = new Map<string, { seed: Omit<SeedItem, "payload" | "listed">; records: RtRecord[] }>();
  for await (const r of input) {
    if (opts.signal?.aborted) return;
    const it = spec.itemOf(r);
    if (!it) {
      yield r;
      continue;
    }
    let entry = items.get(it.key);
    if (!entry) items.set(it.key, entry = { seed: it, records: [] });
    entry.records.push(r);
  }
  const workers = Math.max(1, Math.floor(opts.workers ?? 1));
  const queue = await WorkQueue.join(opts.ledger, { job: opts.job, workers });
  await queue.seed([...items.values()].map(({ seed, records }) => ({
    ...seed, key: spec.keyOf ? spec.keyOf(seed.key, records) : seed.key, payload: records, listed: spec.listed?.(records),
  })));
  items.clear(); // the records live in the ledger now: memory does not grow with the migration
  const pollMs = opts.pollMs ?? Math.min(1000, Math.max(50, Math.floor(opts.ledger.leaseMs / 4)));
  const channel = new Channel<RtRecord>(256);
  const say = opts.onMessage ?? (() => {});

  async function claimer(worker: number): Promise<void> {
    const ledgerError = (e: unknown) => new Error(`Cannot claim work in the ledger ${opts.ledger.display}: ${(e as Error).message}`);
    while (!opts.signal?.aborted && !channel.closed) {
      const item = await queue.claim().catch((e) => Promise.reject(ledgerError(e)));
      if (!item) {
        const s = await queue.state().catch((e) => Promise.reject(ledgerError(e)));
        if (s.claimable > 0) continue; // another worker holds the row for an instant: look again
        if (s.othersActive === 0) return; // the pass is done, or what is left is this process's
        // Others still hold items: wait for them to finish, or for a lease to run out.
        if (await queue.reapLocalDead()) continue;
        await new Promise((r) => setTimeout(r, pollMs));
        continue;
      }
      if (item.reclaimedFrom) say("info", `Taking over ${item.kind} ${item.patientId ?? item.key} from run ${item.reclaimedFrom}, which is gone (its process ended, or its lease ran out)`);
      let finished = false;
      try {
        const records = Array.isArray(item.payload) ? item.payload as RtRecord[] : [];
        for await (const r of spec.work(records, { worker, item })) {
          if (!(await channel.push(r))) break;
        }
        finished = !opts.signal?.aborted && !channel.closed;
        if (finished) {
          if (!(await queue.complete(item, spec.outcome(item)))) {
            say("warn", `Lost the lease on ${item.kind} ${item.patientId ?? item.key} before it was done; another worker took it over`);
          }
        }
      } catch (e) {
        // Nothing can be done at all (the peer unreachable): the item goes back, the run ends with this error.
        if (e instanceof FatalStageError) {
          channel.close();
          throw e;
        }
        finished = true;
        await queue.complete(item, { ...spec.outcome(item), status: "failed", error: (e as Error).message }).catch(() => {});
        say("warn", `Cannot finish ${item.kind} ${item.patientId ?? item.key}: ${(e as Error).message}`);
      } finally {
        if (!finished) await queue.release(item).catch(() => {});
      }
    }
  }

  let failure: unknown;
  const running = Promise.all(Array.from({ length: workers }, (_, i) => claimer(i).catch((e) => (failure ??= e))))
    .finally(() => channel.close());
  try {
    for (;;) {
      const next = await channel.pull();
      if (!next) break;
      yield next.value;
    }
    await running;
    if (failure) throw failure;
  } finally {
    channel.close();
    await running;
    await queue.leave().catch(() => {});
  }
}
