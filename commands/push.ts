/** `rtexport push`: C-STORE files to a PACS/TPS/OIS in dependency order, resumable, in parallel. */
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { addDatabaseTimeoutOption, checkDatabaseUrl, defineCommand, parsePort, parsePositiveInt, parseSeconds, runMain, runStage, UsageError } from "../cli/mod.ts";
import { addClaimOptions, claimJob, claimLedgerOptions, claimsWanted } from "../cli/claim_options.ts";
import { addAuditOption, addPaceOptions, addRetryOptions, pacerFrom, retryPolicyFrom } from "../cli/pace.ts";
import { loadProfile } from "../lib/check/profile.ts";
import { pathRecords } from "../lib/fs/walk.ts";
import { claimedStage } from "../lib/ledger/claimed_stage.ts";
import { type PushOutcome, pushRecords } from "../lib/push/push.ts";
import type { RtRecord } from "../lib/records/types.ts";

function collectPair(value: string, previous: string[] | undefined): string[] {
  if (!/^[^=]*=[^=]*$/.test(value) || value.startsWith("=")) throw new InvalidArgumentError("expected OLD=NEW.");
  return [...(previous ?? []), value];
}

function collectList(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(",").map((s) => s.trim()).filter((s) => s !== "")];
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
    "Records are sent as they arrive (export-plan | push starts with the first object): an object waits",
    "only for the objects it references and the lower ranks of its patient already read.",
    "--check TARGET holds back what the target would refuse (rules of `rtexport check`). --commit asks",
    "the peer to commit what was stored (Storage Commitment) and writes a `commitment` record per object;",
    "with a ledger, what failed to commit is sent again on the next run. Transient failures are retried",
    "(--retries); --window, --max-rate and --max-bandwidth pace the run (it pauses outside the windows).",
  ].join("\n"),
  examples: [
    "rtexport push --host pacs --port 104 --aec PACS export/",
    "rtexport push --peer aria --parallel 4 --status-file push-status.ndjson export/Smith_Anna_123",
    "rtexport push --peer aria --map-machine TrueBeam1=TB1 --default-machine 'TrueBeam=TB1' plan/",
    "rtexport list-patients … | rtexport export-plan … | rtexport push --peer mim",
    "rtexport push --peer aria --check aria --machines TB1,TB2 --ledger sqlite:push.db export/",
    "rtexport push --peer pacs --commit --commit-port 11114 --ledger sqlite:push.db export/",
    "rtexport push --peer aria --window 'Mon-Fri 19:00-06:30' --window Sat,Sun --max-rate 20/s export/",
    "rtexport push --peer pacs --ledger postgres://rtx@db/migration --workers 2 /mnt/shared/export  # on every machine",
  ],
  peer: true,
  configure(cmd: Command) {
    cmd.argument("[paths...]", "files and directories to send (default: file records from stdin)");
    cmd.option("--pattern <glob>", "in directories given, only files whose name matches (*.dcm, RP*.dcm; case-insensitive)");
    cmd.option("--parallel <n>", "associations in parallel (per worker)", parsePositiveInt, 1);
    cmd.option("--status-file <file>", "NDJSON log of acknowledged objects; objects in it are skipped on a rerun");
    cmd.option("--ledger <url>", "also record outcomes in a ledger (sqlite:FILE, postgres://…); objects it lists as pushed are skipped");
    addDatabaseTimeoutOption(cmd);
    addClaimOptions(cmd, { job: "push", items: "patients", verb: "sent" });
    cmd.option("--map-machine <old=new>", "rewrite TreatmentMachineName OLD to NEW in RTPLAN and treatment records (repeatable)", collectPair);
    cmd.option(
      "--default-machine <model=name>",
      "fill an empty TreatmentMachineName with NAME where ManufacturerModelName (or Modality, or *) is MODEL (repeatable)",
      collectPair,
    );
    cmd.option("--check <target>", "check each object first against idms, aria, orthanc or a profile file; hold back what it would refuse");
    cmd.option("--machines <names>", "with --check: treatment machines the target knows (comma-separated; default: asked by C-FIND)", collectList);
    cmd.option("--commit", "request Storage Commitment for what was stored; one `commitment` record per object");
    cmd.option("--commit-port <port>", "with --commit: port for the peer's reports on a new association (the peer must know our AE there)", parsePort, 11114);
    cmd.option("--commit-host <address>", "with --commit: listen address for those reports", "0.0.0.0");
    cmd.option("--commit-timeout <s>", "with --commit: how long to wait for the peer's report, seconds", parseSeconds, 60);
    addRetryOptions(cmd);
    addPaceOptions(cmd);
    addAuditOption(cmd);
  },
  human: {
    record(r: RtRecord) {
      if (r.type === "commitment") return `${String(r.status).padEnd(13)} ${r.path ?? r.sopInstanceUid}${r.reason ? `  ${r.reason}` : ""}`;
      const p = r.push as PushOutcome | undefined;
      if (r.type !== "file" || !p) return undefined;
      const extra = p.status === "stored" ? (p.machines ? `  machines ${p.machines.join(", ")}` : "") : `  ${p.dimseStatus ?? ""} ${p.error ?? ""}`.trimEnd();
      return `${p.status.padEnd(7)} ${r.path}${extra}`;
    },
    detail: true,
  },
  async run(ctx) {
    const o = ctx.options;
    checkDatabaseUrl(o.ledger);
    if (o.check) {
      try {
        loadProfile(o.check);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
    } else if (o.machines) throw new UsageError("--machines goes with --check");
    // With a shared ledger (or --workers, --job) each patient's objects are a work item claimed in it.
    const jobGiven = ctx.optionSource("job") !== "default";
    const claims = claimsWanted(o, o.ledger, jobGiven);
    if (!o.ledger && (o.workers > 1 || ctx.optionSource("job") === "cli")) throw new UsageError("--workers and --job claim work in a ledger: give --ledger");
    if (o.commit && o.workers > 1) throw new UsageError("--commit runs one worker (--workers 1): the peer's reports come to one --commit-port");
    // Paths given: their names are walked first (no file is read), so the progress line has its total from the start.
    const paths = ctx.args.length > 0 ? await Array.fromAsync(pathRecords(ctx.args, o.pattern ? { pattern: o.pattern } : {})) : undefined;
    const input = paths ? (async function* () { yield* paths; })() : ctx.stdinRecords();
    if (!input) throw new UsageError("No input: give files or directories, or pipe file records on stdin");
    const peer = ctx.peer!;
    return runStage(ctx, {
      input,
      stage: claims ? claimedStage(pushRecords, { name: "push", job: claimJob(o, jobGiven, `${peer.calledAet}@${peer.host}:${peer.port}`), workers: o.workers }) : pushRecords,
      options: {
        peer,
        parallel: o.parallel,
        statusFile: o.statusFile,
        mapMachine: pairs(o.mapMachine),
        defaultMachine: pairs(o.defaultMachine),
        check: o.check ? { target: o.check, machines: o.machines } : undefined,
        commit: o.commit ? { listen: { port: o.commitPort, host: o.commitHost }, timeoutMs: o.commitTimeout * 1000 } : undefined,
        retry: retryPolicyFrom(o),
        pace: pacerFrom(o, ctx.io.env),
        total: paths?.length,
      },
      ledger: o.ledger,
      ledgerOptions: claims ? claimLedgerOptions(o) : undefined,
      verb: "store",
      noun: "objects",
      audit: { action: "push", source: ctx.args.length ? ctx.args.join(", ") : "stdin", destination: `${peer.calledAet}@${peer.host}:${peer.port}` },
    });
  },
});

runMain(import.meta, main);
