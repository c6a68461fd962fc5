/**
 * Leftovers of processes that died (killed, power loss) before they could clean up: temporary
 * files and staging folders whose name carries the pid of the process that made them. They are
 * removed at the next start, unless that pid is still running (another instance on the same
 * folder, or a reused pid: then the entry is left alone, which is the safe mistake).
 */
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { processAlive } from "../runtime/mod.ts";

/**
 * Removes the entries of `dir` whose name matches `pattern` (its first group is the pid) and
 * whose process is gone; returns the names removed. A missing `dir` is nothing to clean.
 */
export function removeStale(dir: string, pattern: RegExp): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = pattern.exec(name);
    if (!m || processAlive(Number(m[1]))) continue;
    try {
      rmSync(join(dir, name), { recursive: true, force: true });
      removed.push(name);
    } catch { /* in use or not ours to remove: left */ }
  }
  return removed;
}
