/** `rtexport push`: C-STORE files to a PACS/TPS/OIS in dependency order, resumable, in parallel. */
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { addDatabaseTimeoutOption, checkDatabaseUrl, defineCommand, parsePositiveInt, runMain, runStage, UsageError } from "../cli/mod.ts";
import { pathRecords } from "../lib/fs/walk.ts";
import { type PushOutcome, pushRecords } from "../lib/push/push.ts";
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
    cmd.option("--pattern <glob>", "in directories given, only files whose name matches (*.dcm, RP*.dcm; case-insensitive)");
    cmd.option("--parallel <n>", "associations in parallel", parsePositiveInt, 1);
    cmd.option("--status-file <file>", "NDJSON log of acknowledged objects; objects in it are skipped on a rerun");
    cmd.option("--ledger <url>", "also record outcomes in a ledger (sqlite:FILE, postgres://…); objects it lists as pushed are skipped");
    addDatabaseTimeoutOption(cmd);
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
    detail: true,
  },
  run(ctx) {
    const o = ctx.options;
    checkDatabaseUrl(o.ledger);
    const input = ctx.args.length > 0 ? pathRecords(ctx.args, o.pattern ? { pattern: o.pattern } : {}) : ctx.stdinRecords();
    if (!input) throw new UsageError("No input: give files or directories, or pipe file records on stdin");
    return runStage(ctx, {
      input,
      stage: pushRecords,
      options: {
        peer: ctx.peer!,
        parallel: o.parallel,
        statusFile: o.statusFile,
        mapMachine: pairs(o.mapMachine),
        defaultMachine: pairs(o.defaultMachine),
      },
      ledger: o.ledger,
      verb: "store",
      noun: "objects",
    });
  },
});

runMain(import.meta, main);
