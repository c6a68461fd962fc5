/** `rtexport status`: a migration's progress from its ledger. */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { defineCommand, errorMessage, FatalError, runMain, UsageError } from "../cli/mod.ts";
import { defaultLedgerUrl, type LedgerSchema, summarizeLedger } from "../lib/ledger/ledger.ts";
import { formatBytes } from "../cli/progress.ts";
import type { RtRecord } from "../lib/records/types.ts";
import { connectDatabase, DatabaseUrlError, parseDatabaseUrl } from "../lib/sql/connect.ts";

export const main = defineCommand({
  name: "status",
  summary: "show a migration's progress from its ledger: done, failed, pending, bytes, last errors",
  usage: "[DIR]",
  examples: ["rtexport status export/", "rtexport status --ledger postgres://user@dbhost/migration --json"],
  configure(cmd) {
    cmd.option("--ledger <url>", "ledger database (default: sqlite:<DIR>/.rtexport/ledger.sqlite)");
    cmd.option("--errors <n>", "how many recent errors to show", (v) => Number(v), 10);
    cmd.argument("[dir]", "the export folder holding the ledger");
  },
  human: {
    record(r: RtRecord) {
      if (r.type !== "status") return undefined;
      const kinds = r.kinds as Record<string, { done: number; failed: number; pending: number; skipped: number; bytes: number }>;
      const lines = [`ledger ${r.ledger}`];
      for (const [k, v] of Object.entries(kinds)) {
        lines.push(`  ${k.padEnd(10)} ${String(v.done).padStart(7)} done  ${String(v.failed).padStart(5)} failed  ${String(v.pending).padStart(5)} pending  ${String(v.skipped).padStart(5)} skipped  ${formatBytes(v.bytes)}`);
      }
      const c = r.commitment as { stored: number; committed: number; failed: number; unconfirmed: number } | undefined;
      if (c) {
        lines.push(`storage commitment: ${c.stored} stored, ${c.committed} committed, ${c.failed} not committed (sent again by the next push), ${c.unconfirmed} stored without an answer yet`);
      }
      if (r.auditEvents) lines.push(`audit trail: ${r.auditEvents} events`);
      const errors = r.lastErrors as { kind: string; key: string; error: string; at: string }[];
      if (errors.length) {
        lines.push("last errors:");
        for (const e of errors) lines.push(`  ${e.at}  ${e.kind} ${e.key}: ${e.error}`);
      }
      const runs = r.runs as { command: string; startedAt: string; finishedAt: string | null; outcome: string | null }[];
      if (runs.length) {
        lines.push("runs:");
        for (const run of runs) lines.push(`  ${run.startedAt}  ${run.command.padEnd(12)} ${run.outcome ?? (run.finishedAt ? "" : "interrupted or running")}`);
      }
      return lines.join("\n");
    },
  },
  async run(ctx) {
    const o = ctx.options;
    let url: string = o.ledger;
    if (!url) {
      const dir = resolve(ctx.io.cwd, ctx.args[0] ?? ".");
      url = defaultLedgerUrl(dir);
      if (!existsSync(url.slice(7))) throw new FatalError(`No ledger in "${dir}" (expected ${url.slice(7)}); give the export folder or --ledger URL`);
    }
    try {
      parseDatabaseUrl(url);
    } catch (e) {
      if (e instanceof DatabaseUrlError) throw new UsageError(e.message);
      throw e;
    }
    try {
      const conn = await connectDatabase<LedgerSchema>(url, { mustExist: true });
      try {
        const s = await summarizeLedger(conn.db, o.errors);
        await ctx.out.write({ type: "status", ledger: conn.display, ...s });
      } finally {
        await conn.close();
      }
    } catch (e) {
      throw new FatalError(`Cannot read ledger: ${errorMessage(e)}`);
    }
  },
});

runMain(import.meta, main);
