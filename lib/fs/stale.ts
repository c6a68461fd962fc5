/**
 * Leftovers of processes that died (killed, power loss) before they could clean up: temporary
 * files and staging folders whose name carries the pid of the process that made them. They are
 * removed at the next start, unless that pid is still running (another instance on the same
 * folder, or a reused pid: then the entry is left alone, which is the safe mistake).
 */
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";

/** True when a process with this pid exists (signal 0 probes without signalling). */
export function isProcessAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    return (e as { code?: string }).code === "EPERM";
  }
}

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
    if (!m || isProcessAlive(Number(m[1]))) continue;
    try {
      rmSync(join(dir, name), { recursive: true, force: true });
      removed.push(name);
    } catch { /* in use or not ours to remove: left */ }
  }
  return removed;
}
