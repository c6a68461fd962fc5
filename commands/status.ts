/** `rtexport status`: a migration's progress from its ledger, opened read-only. */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { addDatabaseTimeoutOption, defineCommand, errorMessage, ExitCode, FatalError, runMain, UsageError } from "../cli/mod.ts";
import { defaultLedgerUrl, type LedgerSchema } from "../lib/ledger/ledger.ts";
import { defaultJournalDirs, ledgerIdentity, readJournals } from "../lib/ledger/journal.ts";
import { type JobStatus, summarizeLedger, type TreeCheck, type UnwrittenStatus, verifyTree, type WorkerStatus } from "../lib/ledger/status.ts";
import { formatBytes } from "../lib/util/format.ts";
import type { RtRecord } from "../lib/records/types.ts";
import { connectDatabase, DatabaseUrlError, parseDatabaseUrl } from "../lib/sql/connect.ts";

type Counts = { done: number; failed: number; pending: number; skipped: number; bytes: number };

function workerLine(w: WorkerStatus): string {
  const rate = w.itemsPerMinute === null ? "" : `  ${w.itemsPerMinute}/min ${formatBytes(w.bytesPerSecond ?? 0)}/s`;
  const state = w.state === "finished" ? (w.outcome ?? "finished") : w.state;
  const beat = w.state === "finished" ? `ended ${w.finishedAt}` : w.lastHeartbeat ? `heartbeat ${w.lastHeartbeat}` : "";
  const took = w.reclaimed ? `  ${w.reclaimed} item(s) taken over by others` : "";
  const who = `${w.host}${w.pid !== null ? `:${w.pid}` : ""}${w.workers && w.workers > 1 ? ` ×${w.workers}` : ""}`;
  return `  ${w.startedAt}  ${w.command.padEnd(12)} ${state.padEnd(11)} ${who.padEnd(24)} ${String(w.items).padStart(5)} items ${String(w.files).padStart(7)} files ${formatBytes(w.bytes).padStart(9)}${rate}  ${beat}${took}`;
}

export const main = defineCommand({
  name: "status",
  summary: "show a migration's progress from its ledger: done, failed, pending, workers, last errors",
  description: [
    "Opens the ledger read-only (a read-only export or ledger works). Items listed",
    "for export but not done are pending; a run whose lease ran out (or whose",
    "process is gone from this machine) is dead, and the items it held are taken",
    "over by the other workers; outcomes a run could not write to the ledger (kept",
    "in its journal until the next run records them) are counted. --verify rehashes",
    "the tree against the ledger and reports changed and missing files (exit status",
    "3 when there are any).",
  ].join("\n"),
  usage: "[DIR]",
  examples: [
    "rtexport status export/",
    "rtexport status --ledger postgres://user@dbhost/migration --json",
    "rtexport status export/ --verify",
  ],
  configure(cmd) {
    cmd.option("--ledger <url>", "ledger database (default: sqlite:<DIR>/.rtexport/ledger.sqlite)");
    addDatabaseTimeoutOption(cmd);
    cmd.option("--errors <n>", "how many recent errors to show", (v) => Number(v), 10);
    cmd.option("--verify", "rehash every file the ledger records as done in DIR and report changed or missing ones");
    cmd.argument("[dir]", "the export folder (holding the ledger, unless --ledger)");
  },
  human: {
    record(r: RtRecord) {
      if (r.type !== "status") return undefined;
      const kinds = r.kinds as Record<string, Counts>;
      const lines = [`ledger ${r.ledger}`];
      for (const [k, v] of Object.entries(kinds)) {
        lines.push(`  ${k.padEnd(10)} ${String(v.done).padStart(7)} done  ${String(v.failed).padStart(5)} failed  ${String(v.pending).padStart(5)} pending  ${String(v.skipped).padStart(5)} skipped  ${formatBytes(v.bytes)}`);
      }
      const c = r.commitment as { stored: number; committed: number; failed: number; unconfirmed: number } | undefined;
      if (c) {
        lines.push(`storage commitment: ${c.stored} stored, ${c.committed} committed, ${c.failed} not committed (sent again by the next push), ${c.unconfirmed} stored without an answer yet`);
      }
      if (r.auditEvents) lines.push(`audit trail: ${r.auditEvents} events`);
      for (const j of (r.jobs ?? []) as JobStatus[]) {
        const i = j.items;
        lines.push(`job ${j.job}: ${i.total} item(s) in the current pass: ${i.done} done, ${i.failed} failed, ${i.running} running, ${i.pending} pending${j.reclaimed ? `; ${j.reclaimed} taken over from dead workers` : ""}`);
      }
      const unwritten = (r.unwritten ?? []) as UnwrittenStatus[];
      for (const u of unwritten) {
        lines.push(`unwritten: ${u.entries} outcome(s) (${u.failed} failed) of run ${u.runId} could not be written to the ledger; kept in ${u.path} until the next run records them`);
      }
      const errors = r.lastErrors as { kind: string; key: string; error: string; at: string }[];
      if (errors.length) {
        lines.push("last errors:");
        for (const e of errors) lines.push(`  ${e.at}  ${e.kind} ${e.key}: ${e.error}`);
      }
      const runs = r.runs as WorkerStatus[];
      if (runs.length) {
        lines.push("runs (workers):");
        for (const run of runs) lines.push(workerLine(run));
      }
      const v = r.verify as { checked: number; ok: number; changed: number; missing: number; problems: TreeCheck[] } | undefined;
      if (v) {
        lines.push(`verify: ${v.checked} file(s) rehashed: ${v.ok} as recorded, ${v.changed} changed, ${v.missing} missing`);
        for (const p of v.problems) lines.push(`  ${p.state.padEnd(8)} ${p.key}${p.state === "changed" ? ` (sha256 ${p.sha256}, the ledger recorded ${p.ledgerSha256})` : ""}`);
      }
      return lines.join("\n");
    },
  },
  async run(ctx) {
    const o = ctx.options;
    const dir = ctx.args[0] !== undefined ? resolve(ctx.io.cwd, ctx.args[0]) : undefined;
    let url: string = o.ledger;
    if (!url) {
      const where = dir ?? resolve(ctx.io.cwd, ".");
      url = defaultLedgerUrl(where);
      if (!existsSync(url.slice(7))) throw new FatalError(`No ledger in "${where}" (expected ${url.slice(7)}); give the export folder or --ledger URL`);
    }
    if (o.verify && !dir) throw new UsageError("--verify needs the export folder (DIR) to rehash");
    try {
      parseDatabaseUrl(url);
    } catch (e) {
      if (e instanceof DatabaseUrlError) throw new UsageError(e.message);
      throw e;
    }
    let problems = 0;
    try {
      const conn = await connectDatabase<LedgerSchema>(url, { readOnly: true });
      try {
        const journals = readJournals(defaultJournalDirs(url, dir ? [join(dir, ".rtexport")] : []), ledgerIdentity(url));
        const s = await summarizeLedger(conn.db, { errorLimit: o.errors, journals });
        let verify: Record<string, unknown> | undefined;
        if (o.verify) {
          const v = { checked: 0, ok: 0, changed: 0, missing: 0, problems: [] as TreeCheck[] };
          for await (const c of verifyTree(conn.db, dir!)) {
            v.checked++;
            v[c.state]++;
            if (c.state !== "ok" && v.problems.length < 50) v.problems.push(c);
          }
          problems = v.changed + v.missing;
          verify = v;
        }
        await ctx.out.write({ type: "status", ledger: conn.display, ...s, ...(verify ? { verify } : {}) });
      } finally {
        await conn.close();
      }
    } catch (e) {
      throw new FatalError(`Cannot read ledger: ${errorMessage(e)}`);
    }
    return problems > 0 ? ExitCode.PARTIAL : ExitCode.OK;
  },
});

runMain(import.meta, main);
