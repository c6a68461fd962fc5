/**
 * `runStage`: how the command line runs a library stage. It opens and closes the ledger, passes
 * the command's AbortSignal, turns the stage's events into the progress line, stderr messages,
 * the summary and the exit code, and writes the stage's records to stdout. The stage itself does
 * everything else, exactly as it does for a library user or the web UI.
 */
import type { AuditSpec } from "../lib/audit/event.ts";
import type { Ledger, LedgerOpenOptions } from "../lib/ledger/ledger.ts";
import type { RtRecord } from "../lib/records/types.ts";
import { type Stage, type StageCounts, type StageEvent, type StageOptions, inputUntilAborted } from "../lib/stage/stage.ts";
import type { CommandContext } from "./command.ts";
import { errorMessage, ExitCode, FatalError } from "./errors.ts";
import { Progress } from "./progress.ts";

/** Skip reasons that are expected in a normal run: counted, and named only with `-v`. */
const QUIET_SKIPS = new Set(["already-done", "identical", "not-dicom", "filtered"]);

const SKIP_WORDS: Record<string, string> = {
  "already-done": "already done",
  identical: "identical",
  "not-dicom": "not DICOM",
  filtered: "filtered out",
  unapproved: "unapproved",
  other: "other",
};

/** What `runStage` needs beside the command context. */
export interface RunStageSpec<O extends StageOptions> {
  /** The stage's input records. */
  input: AsyncIterable<RtRecord>;
  stage: Stage<O>;
  /** The stage's own options; `ledger`, `signal` and `onEvent` are added here. */
  options: Omit<O, keyof StageOptions>;
  /** Ledger URL to open for the run (and close after it), when there is one. */
  ledger?: string;
  /** How to open it (lease, pool size, journal folders); its warnings go to stderr. */
  ledgerOptions?: Omit<LedgerOpenOptions, "onWarning">;
  /** Verb for failure lines: `Cannot <verb> <item>: <reason>` (copy, export, store, anonymize…). */
  verb: string;
  /** Noun for the progress line and summary (files, objects, plans). */
  noun?: string;
  /** Called for every record before it is written (e.g. to log a retrieve's gap report). */
  onRecord?: (record: RtRecord, ledger: Ledger | undefined) => void | Promise<void>;
  /** The exit code from the counts, when the default (3 on any failure) is not enough. */
  exitCode?: (counts: StageCounts) => number | undefined;
  /**
   * The run handles patient data: one audit event per patient goes to the ledger's audit trail
   * and, with `--audit URL`, to a syslog collector (lib/audit).
   */
  audit?: Omit<AuditSpec, "runId" | "user" | "host">;
}

/** The summary line: `12 files done, 3 skipped (2 already done, 1 not DICOM), 1 failed`. */
export function summaryLine(counts: StageCounts, noun: string): string {
  const parts = [`${counts.done} ${noun} done`];
  if (counts.skipped) {
    const why = Object.entries(counts.skippedBy).filter(([, n]) => n).map(([k, n]) => `${n} ${SKIP_WORDS[k] ?? k}`);
    parts.push(`${counts.skipped} skipped${why.length ? ` (${why.join(", ")})` : ""}`);
  }
  parts.push(`${counts.failed} failed`);
  return parts.join(", ");
}

/**
 * The line a run stopped by Ctrl-C or SIGTERM ends with: what was done, what is left when the
 * total is known (`interrupted: 186 files done, 182 left — rerun to resume`), or how many
 * patients were not reached when only they are counted.
 */
export function interruptedLine(counts: StageCounts, progress: Pick<Progress, "total" | "counts">, noun: string): string {
  const handled = counts.done + counts.skipped + counts.failed;
  const parts = [`${counts.done} ${noun} done`];
  if (counts.skipped) parts.push(`${counts.skipped} skipped`);
  if (counts.failed) parts.push(`${counts.failed} failed`);
  const total = progress.total;
  if (total.items !== undefined) parts.push(`${Math.max(0, total.items - handled)} left`);
  else if (total.patients !== undefined) {
    const left = Math.max(0, total.patients - progress.counts.patients);
    parts.push(`${left} of ${total.patients} patient${total.patients === 1 ? "" : "s"} not reached`);
  }
  return `interrupted: ${parts.join(", ")} — rerun to resume`;
}

/**
 * Runs `spec.stage` over `spec.input` for the command in `ctx`; resolves to the exit code
 * (0 done, 3 some items failed, 130 interrupted). Errors that stop the whole stage become
 * FatalError (exit 1) with one line.
 */
export async function runStage<O extends StageOptions>(ctx: CommandContext, spec: RunStageSpec<O>): Promise<number> {
  const noun = spec.noun ?? "files";
  let ledger: Ledger | undefined;
  let ledgerTrouble = false;
  if (spec.ledger) {
    try {
      // Loaded only when a run has a ledger: kysely and the SQL layer are a third of a small command's start-up.
      const { Ledger } = await import("../lib/ledger/ledger.ts");
      // Outcomes the ledger refuses are kept in its journal; the run goes on, says so, and ends "partial".
      ledger = await Ledger.open(spec.ledger, ctx.name, {
        ...spec.ledgerOptions,
        onWarning: (text) => {
          if (/could not be written|Cannot write/.test(text)) ledgerTrouble = true;
          ctx.log.warn(text);
        },
      });
    } catch (e) {
      throw new FatalError(errorMessage(e));
    }
  }
  const trail = await auditTrail(ctx, spec, ledger);
  const progress = new Progress(ctx.statusLine, { noun });
  const log = ctx.log;
  let counts: StageCounts | undefined;
  const onEvent = (e: StageEvent) => {
    progress.onEvent(e);
    trail?.onEvent(e);
    switch (e.type) {
      case "done":
        ctx.reporter.done();
        break;
      case "skipped":
        ctx.reporter.skipped();
        if (QUIET_SKIPS.has(e.why)) log.debug(`Skipped ${e.item}: ${e.reason}`, { item: e.item, why: e.why });
        else log.warn(`Skipped ${e.item}: ${e.reason}`, { item: e.item, why: e.why });
        break;
      case "failed":
        // A reason that is a sentence of its own (it says what failed, or names its item) is the line.
        ctx.reporter.failed(e.reason.startsWith("Cannot ") || e.reason.includes(e.item) ? e.reason : `Cannot ${spec.verb} ${e.item}: ${e.reason}`, { item: e.item });
        break;
      case "message":
        log[e.level](e.text, e.item === undefined ? undefined : { item: e.item });
        break;
      case "finished":
        counts = e.counts;
        break;
    }
  };
  const controller = new AbortController();
  const signal = AbortSignal.any([ctx.signal, controller.signal]);
  const options = { ...spec.options, ledger, signal, onEvent } as unknown as O;
  let outcome: "ok" | "partial" | "failed" | "interrupted" = "failed";
  let fatal: string | undefined;
  progress.start();
  try {
    // The input ends at Ctrl-C even while the stage waits for its first record.
    for await (const record of spec.stage(inputUntilAborted(spec.input, signal), options)) {
      await spec.onRecord?.(record, ledger);
      trail?.onRecord(record);
      await ctx.out.write(record);
      if (ctx.out.closed) {
        // The reader went away (`… | head`): stop the stage at its next item; it abandons what is
        // in flight and the run ends quietly (exit 0), its unfinished work left for a rerun.
        controller.abort(new Error("stdout closed"));
        break;
      }
    }
    // A run stopped early (Ctrl-C, SIGTERM, a reader that went away) has work left: a rerun resumes it.
    outcome = signal.aborted ? "interrupted" : (counts?.failed ?? ctx.reporter.failures) > 0 ? "partial" : "ok";
  } catch (e) {
    // A stage that ends its work in flight by throwing once it was asked to stop was interrupted, not failed.
    if (signal.aborted) outcome = "interrupted";
    else {
      progress.stop();
      fatal = errorMessage(e);
      throw e instanceof FatalError ? e : new FatalError(errorMessage(e));
    }
  } finally {
    // The audit trail before the ledger closes: its rows go there.
    await trail?.finish(fatal).catch((e) => log.warn(`Cannot record the audit trail: ${errorMessage(e)}`));
    if (ledger) {
      await ledger.finish(outcome).catch(() => {});
      await ledger.close().catch((e) => {
        ledgerTrouble = true;
        log.error(errorMessage(e));
      });
    }
  }
  const final = counts ?? { done: 0, skipped: 0, failed: ctx.reporter.failures, bytes: 0, patients: 0, skippedBy: {} };
  const figures = progress.summary();
  if (ctx.signal.aborted) {
    log.error(interruptedLine(final, progress, noun), { interrupted: true, ...final });
    return ExitCode.INTERRUPTED;
  }
  const line = `${summaryLine(final, noun)} (${figures})`;
  if (final.failed > 0) log.error(line, { summary: true, ...final });
  else log.info(line, { summary: true, ...final });
  const custom = spec.exitCode?.(final);
  if (custom !== undefined) return custom;
  return final.failed > 0 || ledgerTrouble ? ExitCode.PARTIAL : ExitCode.OK;
}

/** The audit trail of a run that handles patient data: the ledger's audit rows, and syslog with `--audit`. */
async function auditTrail<O extends StageOptions>(ctx: CommandContext, spec: RunStageSpec<O>, ledger: Ledger | undefined) {
  if (!spec.audit) return undefined;
  const url = typeof ctx.options.audit === "string" ? ctx.options.audit : undefined;
  if (!ledger && !url) return undefined;
  const audit = await import("../lib/audit/mod.ts");
  const sinks: import("../lib/audit/event.ts").AuditSink[] = [];
  if (ledger) sinks.push(new audit.LedgerAuditSink(ledger));
  if (url) sinks.push(new audit.SyslogSink(url));
  return new audit.AuditTrail({ ...spec.audit, runId: ledger?.runId }, sinks);
}
