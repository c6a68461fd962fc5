/**
 * Runs `fn` over `items` with at most `limit` calls in flight and yields the results in input
 * order, so parallel work keeps a pipeline's output deterministic. Input is pulled lazily:
 * memory stays bounded by `limit` plus the results waiting for an earlier one to finish.
 * A consumer that stops early (Ctrl-C, `… | head`) gets control back only once the calls in
 * flight have ended, so none of them writes after the stage that started it has ended (their
 * callers give them an AbortSignal to end them quickly).
 */
export async function* mapOrdered<T, R>(items: AsyncIterable<T> | Iterable<T>, limit: number, fn: (item: T) => Promise<R>): AsyncGenerator<R> {
  const n = Math.max(1, Math.floor(limit));
  const queue: Promise<R>[] = [];
  try {
    for await (const item of items as AsyncIterable<T>) {
      const p = fn(item);
      p.catch(() => {}); // handled when awaited in order
      queue.push(p);
      if (queue.length >= n) yield await queue.shift()!;
    }
    while (queue.length) yield await queue.shift()!;
  } finally {
    await Promise.allSettled(queue);
  }
}
