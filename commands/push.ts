/** `rtexport push`: C-STORE files to a PACS/TPS/OIS in dependency order, resumable, in parallel. */
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { defineCommand, parsePositiveInt, runMain, UsageError } from "../cli/mod.ts";
import { walkEntriesSync } from "../lib/fs/walk.ts";
import type { Ledger } from "../lib/ledger/ledger.ts";
import { Progress } from "../cli/progress.ts";
import { peerLabel } from "../lib/net/peer.ts";
import { type PushOutcome, pushRecords } from "../lib/net/push.ts";
import type { RtRecord } from "../lib/records/types.ts";

function collectPair(value: string, previous: string[] | undefined): string[] {
  if (!/^[^=]*=[^=]*$/.test(value) || value.startsWith("=")) throw new InvalidArgumentError("expected OLD=NEW.");
  return [...(previous ?? []), value];
}

function pairs(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of list ?? []) {
    const i = p.indexOf("=");
    const k = p.slice(0, i).trim();
    const v = p.slice(i + 1).trim();
    if (v.length > 16) throw new UsageError(`Machine name "${v}" is longer than 16 characters (DICOM SH)`);
    out[k] = v;
  }
  return out;
}

function* pathRecords(paths: string[], pattern: string | undefined, onError: (path: string, error: string) => void): Generator<RtRecord> {
  for (const e of walkEntriesSync(paths, pattern ? { pattern } : {})) {
    if (e.error !== undefined) onError(e.path, e.error);
    else yield { type: "file", path: e.path };
  }
}

export const main = defineCommand({
  name: "push",
  summary: "C-STORE files to a DICOM peer in dependency order, resumable, in parallel",
  usage: "[PATH...]",
  description: [
    "Sends the DICOM files under PATH (directories are walked), or the `file` records",
    "read from stdin, to the peer. Per patient the order is: images, other objects",
    "(registrations…), RTSTRUCT, RTPLAN, RTDOSE and RTIMAGE, treatment records; a",
    "rank starts only when the peer acknowledged the ranks before it.",
    "A file's data set is streamed unchanged when the peer accepts its transfer",
    "syntax, else transcoded between uncompressed syntaxes; a compressed one the peer",
    "refuses fails with the reason. Every file record comes back with",
    '"push": {status: stored|skipped|failed, peer, dimseStatus, error}; other',
    "records pass through. Exit 3 when any object failed.",
  ].join("\n"),
  examples: [
    "rtexport push --host pacs --port 104 --aec PACS export/",
    "rtexport push --peer aria --parallel 4 --status-file push-status.ndjson export/Smith_Anna_123",
    "rtexport push --peer aria --map-machine TrueBeam1=TB1 --default-machine 'TrueBeam=TB1' plan/",
    "rtexport list-patients … | rtexport export-plan … | rtexport push --peer mim",
  ],
  peer: true,
  configure(cmd: Command) {
    cmd.argument("[paths...]", "files and directories to send (default: file records from stdin)");
    cmd.option("--pattern <glob>", "only files whose name matches (e.g. '*.dcm')");
    cmd.option("--parallel <n>", "associations in parallel", parsePositiveInt, 1);
    cmd.option("--status-file <file>", "NDJSON log of acknowledged objects; objects in it are skipped on a rerun");
    cmd.option("--ledger <url>", "also record outcomes in a ledger (sqlite:FILE, postgres://…); objects it lists as pushed are skipped");
    cmd.option("--map-machine <old=new>", "rewrite TreatmentMachineName OLD to NEW in RTPLAN and treatment records (repeatable)", collectPair);
    cmd.option(
      "--default-machine <model=name>",
      "fill an empty TreatmentMachineName with NAME where ManufacturerModelName (or Modality, or *) is MODEL (repeatable)",
      collectPair,
    );
  },
  human: {
    record(r: RtRecord) {
      const p = r.push as PushOutcome | undefined;
      if (r.type !== "file" || !p) return undefined;
      const extra = p.status === "stored" ? (p.machines ? `  machines ${p.machines.join(", ")}` : "") : `  ${p.dimseStatus ?? ""} ${p.error ?? ""}`.trimEnd();
      return `${p.status.padEnd(7)} ${r.path}${extra}`;
    },
  },
  async run(ctx) {
    const peer = ctx.peer!;
    const o = ctx.options;
    const input: Iterable<RtRecord> | AsyncIterable<RtRecord> | undefined = ctx.args.length > 0
      ? pathRecords(ctx.args, o.pattern, (path, error) => ctx.reporter.failed(error, { item: path }))
      : ctx.stdinRecords();
    if (!input) throw new UsageError("No input: give files or directories, or pipe file records on stdin");
    const label = peerLabel(peer);
    let stored = 0, skipped = 0, failed = 0;
    // Loaded only when asked for: kysely and the SQL layer are a third of push's start-up.
    const ledger = o.ledger ? await (await import("../lib/ledger/ledger.ts")).Ledger.open(o.ledger, "push") : undefined;
    // A progress line on a terminal's stderr (files, bytes, rate); nothing when redirected.
    const progress = new Progress(ctx.io.stderr as { write(s: string): unknown; isTTY?: boolean });
    const patients = new Set<string>();
    const alreadyStored = ledger ? await ledger.keys("push", "done") : undefined;
    const results = pushRecords(input, {
      alreadyStored,
      peer,
      parallel: o.parallel,
      statusFile: o.statusFile,
      mapMachine: pairs(o.mapMachine),
      defaultMachine: pairs(o.defaultMachine),
      signal: ctx.signal,
    });
    try {
      for await (const r of results) {
        const p = r.push as PushOutcome | undefined;
        if (r.type === "file" && p) {
          progress.clearLine();
          if (p.status !== "skipped" && typeof r.patientId === "string" && !patients.has(r.patientId)) {
            patients.add(r.patientId);
            progress.update({ patients: 1 });
          }
          if (p.status === "stored") progress.update({ files: 1, bytes: typeof r.bytes === "number" ? r.bytes : 0 });
          else if (p.status === "failed") progress.update({ failed: 1 });
          if (p.status === "stored") {
            stored++;
            ctx.reporter.done();
            if (p.error) ctx.log.warn(`"${r.path}" stored with a warning: ${p.dimseStatus} ${p.error}`, { item: r.path });
          } else if (p.status === "skipped") {
            skipped++;
            ctx.reporter.skipped();
            if (p.error && !p.error.startsWith("already stored")) ctx.log.warn(`Skipped: ${p.error}`, { item: r.path });
          } else {
            failed++;
            const status = p.dimseStatus ? ` (status ${p.dimseStatus})` : "";
            ctx.reporter.failed(`Cannot store "${r.path}" at ${label}${status}: ${p.error}`, { item: r.path, dimseStatus: p.dimseStatus });
          }
        }
        if (ledger && r.type === "file" && p && typeof r.sopInstanceUid === "string") {
          const entry: Parameters<Ledger["record"]>[0] = {
            kind: "push",
            key: `${p.peer}|${r.sopInstanceUid}`,
            status: p.status === "stored" ? "done" : p.status,
            source: String(r.path),
            dest: p.peer,
          };
          if (typeof r.patientId === "string") entry.patientId = r.patientId;
          if (typeof r.bytes === "number") entry.bytes = r.bytes;
          if (p.error) entry.error = p.dimseStatus ? `${p.dimseStatus} ${p.error}` : p.error;
          // A skip because the ledger already has it must not overwrite its "done" row.
          if (!(p.status === "skipped" && alreadyStored?.has(entry.key))) await ledger.queue(entry);
        }
        await ctx.out.write(r);
        if (ctx.out.closed) break;
      }
    } finally {
      if (ledger) {
        await ledger.finish(failed > 0 ? "partial" : "ok").catch(() => {});
        await ledger.close();
      }
    }
    if (stored + failed > 0) ctx.log.info(`Sent to ${label}: ${progress.summary()}`);
    if (stored + skipped + failed > 0) ctx.reporter.summary("objects");
  },
});

runMain(import.meta, main);
