/** `rtexport anonymize`: de-identify DICOM files per PS3.15 Annex E, keeping RT references intact. */
import { type Command, Option } from "commander";
import { addAnonymizeOptions, anonymizeOptionsFrom } from "../cli/anonymize_options.ts";
import { type CommandContext, defineCommand, runMain, UsageError } from "../cli/mod.ts";
import {
  type AnonymizeContext, type AnonymizeFilesOptions, anonymizeStream, createAnonymizeContext, type FileInput,
  walkInputs, writePatientMap,
} from "../lib/anonymize/mod.ts";
import { replacementLines, ReplacementTally } from "../lib/anonymize/report.ts";
import { type FileRecord, isDicomFileRecord, isFileRecord, type RtRecord } from "../lib/records/types.ts";

const OPTION_SPEC = { keyFlags: "key" } as const;

function configure(cmd: Command): void {
  cmd.argument("[path...]", "DICOM files or directories (default: file records on stdin)");
  const out = "Output:";
  const add = (group: string, o: Option) => cmd.addOption(o.helpGroup(group));
  addAnonymizeOptions(cmd, OPTION_SPEC);
  add(out, new Option("--write-map <file.csv>", "write the mapping used (PHI: store it safely)"));
  add(out, new Option("-o, --out <dir>", "output directory"));
  add(out, new Option("--in-place", "overwrite the input files instead of writing to --out"));
  // Accepted for scripts written for the pipelined writer; files are now written one at a time (faster, measured).
  add(out, new Option("--concurrency <n>", "no effect: files are anonymized and written one at a time").default("1").hideHelp());
  add(out, new Option("--layout <layout>", "uid: <patient>/<series UID>/<SOP UID>.dcm; mirror: input paths (may carry PHI)").choices(["uid", "mirror"]).default("uid"));
}

/** Patient and plan records are PHI too: they leave with the new identity, or not at all. */
function anonymizeRecord(record: RtRecord, ctx: AnonymizeContext): RtRecord | undefined {
  const o = ctx.options;
  if (record.type === "patient" && typeof record.patientId === "string") {
    const p = ctx.patient(record.patientId);
    const out: RtRecord = { type: "patient", patientId: p.id, name: { family: p.name ?? p.id } };
    if (o.retainPatientCharacteristics && typeof record.sex === "string") out.sex = record.sex;
    return out;
  }
  if (record.type === "plan" && typeof record.patientId === "string") {
    const out: RtRecord = { type: "plan", patientId: ctx.patient(record.patientId).id };
    if (typeof record.planUid === "string") out.planUid = o.retainUids ? record.planUid : ctx.uid(record.planUid);
    if (o.cleanDescriptors) {
      if (typeof record.label === "string") out.label = record.label;
      if (typeof record.name === "string") out.name = record.name;
    }
    if (record.status !== undefined) out.status = record.status;
    if (record.approval !== undefined) out.approval = record.approval;
    if (o.retainDeviceIdentity && Array.isArray(record.machines)) out.machines = record.machines;
    return out;
  }
  return record;
}

async function run(c: CommandContext): Promise<number | void> {
  const o = c.options;
  const options = anonymizeOptionsFrom(o, OPTION_SPEC);
  if (o.inPlace && o.out) throw new UsageError("Give either --out or --in-place, not both");
  if (!o.inPlace && !o.out) throw new UsageError("An output directory is required: give --out DIR (or --in-place to overwrite the inputs)");
  if (o.inPlace && o.layout !== "uid" && c.optionSource("layout") === "cli") throw new UsageError("--layout has no effect with --in-place");
  if (c.args.length === 0 && !c.hasStdinRecords) throw new UsageError("No input: give files or directories, or pipe file records on stdin");
  const ctx = createAnonymizeContext(options);
  const files: AnonymizeFilesOptions = { out: o.out, inPlace: o.inPlace === true, layout: o.layout };
  const concurrency = Number(o.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new UsageError(`Invalid value for --concurrency: "${o.concurrency}" (expected 1 to 64)`);
  }

  type Item =
    | { kind: "file"; input: FileInput }
    | { kind: "record"; record: RtRecord }
    | { kind: "not-dicom"; path: string; category: string };
  async function* items(): AsyncGenerator<Item> {
    if (c.args.length > 0) {
      for (const input of walkInputs(c.args)) yield { kind: "file", input };
      return;
    }
    for await (const record of c.stdinRecords()!) {
      if (isFileRecord(record)) {
        const category = record.category;
        if (!isDicomFileRecord(record)) yield { kind: "not-dicom", path: record.path, category: String(category) };
        else yield { kind: "file", input: { path: record.path, record: record as FileRecord } };
      } else {
        yield { kind: "record", record };
      }
    }
  }
  const fileOf = (item: Item) => (item.kind === "file" ? item.input : undefined);
  const tally = new ReplacementTally();
  for await (const { item, result } of anonymizeStream(items(), fileOf, ctx, files, concurrency)) {
    if (item.kind === "record") {
      const out = anonymizeRecord(item.record, ctx);
      if (out) await c.out.write(out);
    } else if (item.kind === "not-dicom") {
      c.reporter.failed(`Not anonymized "${item.path}": a ${item.category} file is not DICOM, so it is left out of the anonymized output`, { item: item.path });
    } else if (result!.ok) {
      c.reporter.done();
      tally.add(result!.ids.replacements);
      for (const line of replacementLines(result!.ids.replacements, item.input.path)) c.log.debug(line, { item: item.input.path });
      await c.out.write(result!.record);
    } else if (result!.reason === "skipped") {
      c.reporter.skipped();
      c.log.warn(result!.message);
    } else {
      c.reporter.failed(result!.message, { item: item.input.path });
    }
    if (c.signal.aborted || c.out.closed) break;
  }
  if (o.writeMap) {
    try {
      writePatientMap(o.writeMap, ctx.patients);
    } catch (e) {
      c.reporter.failed(`Cannot write patient map "${o.writeMap}": ${(e as { code?: string }).code ?? (e as Error).message}`);
    }
  }
  for (const line of tally.lines()) c.log.info(line);
  c.reporter.summary("files");
}

export const main = defineCommand({
  name: "anonymize",
  summary: "de-identify DICOM files (PS3.15 Annex E) with consistent UID and date remapping",
  usage: "[path...]",
  description: [
    "Applies the Basic Application Level Confidentiality Profile (every row of PS3.15 Table E.1-1) and the",
    "options chosen. UIDs become 2.25.<HMAC-SHA-256(key, uid)>, so references between plans, structure",
    "sets, doses and images still resolve; patients without a --map entry get a keyed pseudonym. Pixel",
    "data is copied as bytes. Objects that may show identifying text in their pixels are refused unless",
    "--allow-burned-in. Each output is written atomically and described by a file record.",
  ].join(" "),
  examples: [
    "rtexport anonymize --key-file site.key --out anon/ export/Smith_John_123/",
    "rtexport anonymize --key-file site.key --out anon/ --retain-dates modified --clean-descriptors --map ids.csv in/",
    "rtexport list-patients … | rtexport export-plan … | rtexport anonymize --key-file site.key --out anon/ | rtexport push …",
  ],
  configure,
  human: {
    record: (r) => (r.type === "file" ? `${r.path}` : undefined),
  },
  run,
});

runMain(import.meta, main);
