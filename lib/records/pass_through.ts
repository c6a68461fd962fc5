/**
 * Pass-through of records a stage does not handle: `list-patients | export-plan | anonymize | push`
 * works because each stage acts on the types it understands and forwards every other record
 * unchanged, in order.
 */
import type { RtRecord } from "./types.ts";

/** What a handler may return for one record: nothing, one record, or several (sync or async). */
export type HandlerOutput =
  | RtRecord
  | Iterable<RtRecord>
  | AsyncIterable<RtRecord>
  | null
  | undefined
  | void;

/** Which records a stage handles: a list of record types, or a predicate. */
export type RecordSelector<T extends RtRecord> = readonly string[] | ((record: RtRecord) => record is T) | ((record: RtRecord) => boolean);

function selects<T extends RtRecord>(selector: RecordSelector<T>, record: RtRecord): record is T {
  return typeof selector === "function" ? selector(record) : selector.includes(record.type);
}

/** One record of a split stream: `handled` says whether the stage acts on it. */
export type SplitRecord<T extends RtRecord> = { handled: true; record: T } | { handled: false; record: RtRecord };

/**
 * Tag each record as handled (its type is selected) or pass-through, preserving order.
 *
 * @example
 * ```ts
 * for await (const item of splitRecords(records, ["file"])) {
 *   if (item.handled) console.error(item.record.path); else await out.write(item.record);
 * }
 * ```
 */
export async function* splitRecords<T extends RtRecord>(
  records: AsyncIterable<RtRecord> | Iterable<RtRecord>,
  selector: RecordSelector<T>,
): AsyncGenerator<SplitRecord<T>> {
  for await (const record of records) {
    if (selects(selector, record)) yield { handled: true, record };
    else yield { handled: false, record };
  }
}

/**
 * Apply `handle` to the selected records and pass the others through unchanged, in order.
 * The handler may return nothing (drop), one record, or an (async) iterable of records.
 *
 * @example
 * ```ts
 * const out = mapRecords(readRecords(process.stdin), ["file"], async (file) => ({ ...file, checked: true }));
 * ```
 */
export async function* mapRecords<T extends RtRecord>(
  records: AsyncIterable<RtRecord> | Iterable<RtRecord>,
  selector: RecordSelector<T>,
  handle: (record: T) => HandlerOutput | Promise<HandlerOutput>,
): AsyncGenerator<RtRecord> {
  for await (const record of records) {
    if (!selects(selector, record)) {
      yield record;
      continue;
    }
    const output = await handle(record);
    if (output === null || output === undefined) continue;
    if (isIterable(output)) {
      for await (const produced of output) yield produced;
    } else {
      yield output as RtRecord;
    }
  }
}

function isIterable(value: unknown): value is Iterable<RtRecord> | AsyncIterable<RtRecord> {
  return typeof value === "object" && value !== null &&
    (Symbol.iterator in value || Symbol.asyncIterator in value);
}

/**
 * Collect an (async) iterable of records into an array.
 *
 * @example
 * ```ts
 * const all = await collectRecords(readRecords(process.stdin));
 * ```
 */
export async function collectRecords<T>(records: AsyncIterable<T> | Iterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const record of records) all.push(record);
  return all;
}
