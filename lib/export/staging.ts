/**
 * Staging of objects retrieved from a peer, named by owner so that several processes on several
 * machines can stage into one shared tree, and leftovers of dead processes can be told apart from
 * the work of live ones: `staging-<host>-<pid>-<worker>/` under the tree's `.rtexport` folder
 * (export-plan --out), and `incoming-<host>-<pid>/` plus hand-off files
 * `<host>-<pid>-<n>-<SOP Instance UID>.dcm` in a `--staging` folder (export-plan | copy-files).
 * A process removes its own staging when it ends; {@link cleanStaging} removes what killed ones
 * left (identifiable patient data that would otherwise stay on disk).
 */
import { readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { hostTag, processAlive } from "../runtime/mod.ts";

/** The staging folder of one worker of this process under a tree's `.rtexport` folder. */
export function stagingName(worker: number): string {
  return `staging-${hostTag()}-${process.pid}-${worker}`;
}

/** The owner (host tag and process id) of a staging entry, or undefined for a name that is not one. */
export function stagingOwner(name: string): { host: string; pid: number } | undefined {
  let m = /^staging-([A-Za-z0-9_-]+)-(\d+)-\d+$/.exec(name) ?? /^incoming-([A-Za-z0-9_-]+)-(\d+)$/.exec(name) ??
    /^([A-Za-z0-9_-]+)-(\d+)-\d+-[0-9.]+\.dcm$/.exec(name);
  if (m) return { host: m[1], pid: Number(m[2]) };
  // Names of earlier versions (`staging-<pid>`, `incoming-<pid>`, `<pid>-<n>-<uid>.dcm`) were made on this machine.
  m = /^(?:staging|incoming)-(\d+)$/.exec(name) ?? /^(\d+)-\d+-[0-9.]+\.dcm$/.exec(name);
  return m ? { host: hostTag(), pid: Number(m[1]) } : undefined;
}

/**
 * Removes staging entries in `root` whose owner is gone: on this machine, a process that no longer
 * runs; on another, a run the ledger (when given) no longer holds alive. Entries of live owners are
 * left alone. Returns the names removed.
 */
export async function cleanStaging(root: string, ledgerUrl?: string): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const here = hostTag();
  const owned = names.map((name) => ({ name, owner: stagingOwner(name) })).filter((e) => e.owner);
  let liveElsewhere: Set<string> | undefined;
  if (ledgerUrl && owned.some((e) => e.owner!.host !== here)) liveElsewhere = await liveRunsOf(ledgerUrl);
  const removed: string[] = [];
  for (const { name, owner } of owned) {
    const { host, pid } = owner!;
    const gone = host === here ? pid !== process.pid && !processAlive(pid) : liveElsewhere !== undefined && !liveElsewhere.has(`${host}-${pid}`);
    if (!gone) continue;
    rmSync(join(root, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/** `<host tag>-<pid>` of every run the ledger holds alive (read-only). */
async function liveRunsOf(url: string): Promise<Set<string> | undefined> {
  try {
    const { connectDatabase } = await import("../sql/connect.ts");
    const { liveRuns } = await import("../ledger/status.ts");
    const conn = await connectDatabase<import("../ledger/ledger.ts").LedgerSchema>(url, { readOnly: true });
    try {
      return new Set((await liveRuns(conn.db)).map((r) => `${hostTag(r.host)}-${r.pid}`));
    } finally {
      await conn.close();
    }
  } catch {
    return undefined; // no ledger yet, or unreachable: other machines' entries stay
  }
}
