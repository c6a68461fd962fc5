/** `rtexport check`: will the target import these objects? Pre-flight against its import rules, with lossless fixes. */
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { defineCommand, runMain, runStage, UsageError } from "../cli/mod.ts";
import { type CheckOutcome, checkRecords, type CheckSummary, FIX_KINDS, type FixKind, loadProfile } from "../lib/check/mod.ts";
import { pathRecords } from "../lib/fs/walk.ts";
import { LAYOUTS } from "../lib/layout/record_path.ts";
import type { RtRecord } from "../lib/records/types.ts";

function collectList(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(",").map((s) => s.trim()).filter((s) => s !== "")];
}

function collectFix(value: string, previous: FixKind[] | undefined): FixKind[] {
  const out = [...(previous ?? [])];
  for (const v of value.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    if (v === "all") out.push(...FIX_KINDS);
    else if ((FIX_KINDS as readonly string[]).includes(v)) out.push(v as FixKind);
    else throw new InvalidArgumentError(`expected ${FIX_KINDS.join(", ")} or all.`);
  }
  return [...new Set(out)];
}

function collectPair(value: string, previous: string[] | undefined): string[] {
  if (!/^[^=]+=[^=]+$/.test(value)) throw new InvalidArgumentError("expected OLD=NEW.");
  return [...(previous ?? []), value];
}

export const main = defineCommand({
  name: "check",
  summary: "check objects against a target's import rules (iDMS, ARIA, Orthanc or a profile file), with lossless fixes",
  usage: "[PATH...]",
  description: [
    "Checks each DICOM file under PATH (or each `file` record on stdin) against what the target refuses on",
    "import: Patient ID characters, CT matrix (square, power of two), gantry tilt, samples per pixel,",
    "photometric interpretation, character set, SOP class, treatment machine names, a structure set's",
    "images and a plan's structure set (sent along, or at the target: --host asks it by C-FIND), plans",
    "without beams. Built-in targets: idms (seed 002's conformance statement), aria (seed 003), orthanc;",
    "or a JSON profile file of a site (docs/clinical-safety.md). Every file record comes back with",
    '"check": {target, status: ok|fixed|refused|unreadable, violations: [{rule, message, tag, fix}]};',
    "a check-summary record ends the output. Exit 3 when any object would be refused.",
    "--fix applies the fixes you choose into --out: charset (every text value re-encoded in ISO_IR 100,",
    "transliterated where Latin-1 lacks a character; each change in the record, values on stderr with -v)",
    "and machines (--map-machine OLD=NEW). Clean objects are copied to --out too; anything else is",
    "refused with the reason.",
  ].join("\n"),
  examples: [
    "rtexport check --target idms export/",
    "rtexport check --target aria --machines TB1,TB2 export/Smith_Anna_123",
    "rtexport check --target idms --fix charset --out fixed/ export/",
    "rtexport check --target aria --machines TB1 --fix machines --map-machine TrueBeam1=TB1 --out fixed/ plan/",
    "rtexport check --target site-profile.json --host aria --port 104 --aec VMSDBD export/",
  ],
  peer: "optional",
  configure(cmd: Command) {
    cmd.argument("[paths...]", "files and directories to check (default: file records from stdin)");
    cmd.addOption(new Option("--target <name|file>", "idms, aria, orthanc, or a JSON profile file").makeOptionMandatory());
    cmd.option("--pattern <glob>", "only files whose name matches (e.g. '*.dcm')");
    cmd.option("--machines <names>", "treatment machines the target knows (comma-separated, repeatable)", collectList);
    cmd.option("--fix <fixes>", `apply these fixes into --out: ${FIX_KINDS.join(", ")} or all (comma-separated)`, collectFix);
    cmd.option("--map-machine <old=new>", "for --fix machines: rename treatment machine OLD to NEW (repeatable)", collectPair);
    cmd.option("--out <dir>", "with --fix: where fixed and clean objects are written");
    cmd.addOption(new Option("--layout <layout>", "with --fix: layout under --out").choices(LAYOUTS).default("series"));
  },
  human: {
    record(r: RtRecord) {
      if (r.type === "check-summary") {
        const s = r as CheckSummary;
        const rules = Object.entries(s.byRule).map(([k, n]) => `${k} ${n}`).join(", ");
        return `${s.objects} objects checked against ${s.target}: ${s.ok} ok, ${s.fixed} fixed, ${s.refused} refused${s.unreadable ? `, ${s.unreadable} unreadable` : ""}${rules ? ` (${rules})` : ""}`;
      }
      const c = r.check as CheckOutcome | undefined;
      if (r.type !== "file" || !c) return undefined;
      const lines = [`${c.status.padEnd(8)} ${r.path}`];
      for (const v of c.violations) lines.push(`  ${v.rule}: ${v.message}`);
      if (c.reason && c.status !== "unreadable") lines.push(`  not fixed: ${c.reason}`);
      return lines.join("\n");
    },
  },
  run(ctx) {
    const o = ctx.options;
    try {
      loadProfile(o.target);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (o.fix?.length && !o.out) throw new UsageError("--fix needs --out DIR (the checked files are never changed in place)");
    if (o.out && !o.fix?.length) throw new UsageError("--out goes with --fix");
    if (o.mapMachine?.length && !o.fix?.includes("machines")) throw new UsageError("--map-machine goes with --fix machines");
    const mapMachine: Record<string, string> = {};
    for (const p of o.mapMachine ?? []) {
      const [k, v] = p.split("=").map((s: string) => s.trim());
      if (v.length > 16) throw new UsageError(`Machine name "${v}" is longer than 16 characters (DICOM SH)`);
      mapMachine[k] = v;
    }
    const input = ctx.args.length > 0 ? pathRecords(ctx.args, o.pattern ? { pattern: o.pattern } : {}) : ctx.stdinRecords();
    if (!input) throw new UsageError("No input: give files or directories, or pipe file records on stdin");
    return runStage(ctx, {
      input,
      stage: checkRecords,
      options: {
        target: o.target,
        machines: o.machines,
        peer: ctx.peer?.host ? ctx.peer : undefined,
        fix: o.fix,
        mapMachine,
        out: o.out,
        layout: o.layout,
      },
      verb: "check",
      noun: "objects",
    });
  },
});

runMain(import.meta, main);
