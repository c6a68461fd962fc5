// Helpers for the tests that run a command's CLI and its library stage on the same input and
// compare what each produced: records, and the ledger's item rows.
import { Ledger } from "../lib/ledger/ledger.ts";
import type { RtRecord } from "../lib/records/types.ts";
import type { Stage, StageEvent, StageOptions } from "../lib/stage/stage.ts";

/** `value` with every string's occurrences of each `from` replaced by its `to` (objects and arrays walked). */
export function replacePaths<T>(value: T, replacements: [from: string, to: string][]): T {
  if (typeof value === "string") {
    let s: string = value;
    for (const [from, to] of replacements) s = s.split(from).join(to);
    return s as T;
  }
  if (Array.isArray(value)) return value.map((v) => replacePaths(v, replacements)) as T;
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replacePaths(v, replacements)])) as T;
  }
  return value;
}

/** The item rows of a ledger, sorted by kind and key, without what differs between runs (run id, time). */
export async function ledgerItems(url: string): Promise<Record<string, unknown>[]> {
  const ledger = await Ledger.open(url, "test");
  try {
    const rows = await ledger.db.selectFrom("rtx_ledger_items")
      .select(["kind", "key", "status", "patient_id", "plan_key", "source", "dest", "bytes", "sha256", "error"])
      .orderBy("kind").orderBy("key").execute();
    // SQLite hands integers back as numbers or bigints depending on the runtime's driver.
    return rows.map((r) => ({ ...r, bytes: r.bytes === null ? null : Number(r.bytes) }));
  } finally {
    await ledger.close();
  }
}

/**
 * Runs a stage the way a library user does: a ledger of its own at `ledgerUrl` (finished and
 * closed after the run), the records it yields, and its events.
 */
export async function runLibraryStage<O extends StageOptions>(
  stage: Stage<O>,
  input: AsyncIterable<RtRecord> | Iterable<RtRecord>,
  options: Omit<O, keyof StageOptions>,
  ledgerUrl: string,
  command: string,
): Promise<{ records: RtRecord[]; events: StageEvent[] }> {
  const ledger = await Ledger.open(ledgerUrl, command);
  const records: RtRecord[] = [];
  const events: StageEvent[] = [];
  try {
    const source = (async function* () {
      yield* input;
    })();
    for await (const r of stage(source, { ...options, ledger, onEvent: (e: StageEvent) => events.push(e) } as unknown as O)) records.push(r);
    const finished = events.find((e) => e.type === "finished");
    await ledger.finish(finished && finished.type === "finished" && finished.counts.failed > 0 ? "partial" : "ok");
  } finally {
    await ledger.close();
  }
  return { records, events };
}
