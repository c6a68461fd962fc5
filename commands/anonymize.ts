/** `rtexport anonymize`: de-identify DICOM files per PS3.15 Annex E, keeping RT references intact. */
import { type Command, Option } from "commander";
import { addDatabaseTimeoutOption, checkDatabaseUrl, type CommandContext, defineCommand, runMain, runStage, UsageError } from "../cli/mod.ts";
import type { AnonymizeOptions, PatientIdentity } from "../lib/anonymize/anonymize.ts";
import { KeyError, resolveAnonymizationKey } from "../lib/anonymize/key.ts";
import { readPatientMap } from "../lib/anonymize/patient_map.ts";
import { readProfileCsv } from "../lib/anonymize/profile.ts";
import { anonymizeRecords } from "../lib/anonymize/stage.ts";
import { pathRecords } from "../lib/fs/walk.ts";

function configure(cmd: Command): void {
  cmd.argument("[path...]", "DICOM files or directories (default: file records on stdin)");
  const id = "Identity and key:";
  const out = "Output:";
  const opt = "Profile options (PS3.15 E.3), combinable:";
  const add = (group: string, o: Option) => cmd.addOption(o.helpGroup(group));
  add(id, new Option("-k, --key <secret>", "secret for UIDs, pseudonyms and date shifts (16+ bytes; prefer --key-file or RTEXPORT_KEY)"));
  add(id, new Option("--key-file <file>", "read the secret from a file (trailing newline ignored)"));
  add(id, new Option("--new-patient-id <id>", "Patient ID for every patient not in --map"));
  add(id, new Option("--new-patient-name <name>", "Patient's Name (DICOM PN, e.g. Study^Subject 7) for every patient not in --map"));
  add(id, new Option("--map <file.csv>", "patient map: old id,new id[,new name] per line"));
  add(id, new Option("--write-map <file.csv>", "write the mapping used (PHI: store it safely)"));
  add(out, new Option("-o, --out <dir>", "output directory"));
  add(out, new Option("--in-place", "overwrite the input files instead of writing to --out"));
  add(out, new Option("--pattern <glob>", "in directories given, only files whose name matches (*.dcm, RP*.dcm; case-insensitive)"));
  add(out, new Option("--concurrency <n>", "files in flight at once (reads and writes overlap with work on others)").default("4"));
  add(out, new Option("--layout <layout>", "uid: <patient>/<series UID>/<SOP UID>.dcm; mirror: input paths (may carry PHI)").choices(["uid", "mirror"]).default("uid"));
  add(out, new Option("--ledger <url>", "record each file's outcome in a ledger (sqlite:FILE, postgres://…); it lists input paths"));
  addDatabaseTimeoutOption(cmd);
  add(opt, new Option("--retain-safe-private", "keep private attributes on the safe-private list (113111)"));
  add(opt, new Option("--retain-uids", "keep UIDs as they are (113110)"));
  add(opt, new Option("--retain-device-identity", "keep station names, serial numbers, machine names (113109)"));
  add(opt, new Option("--retain-institution-identity", "keep institution names and addresses (113112)"));
  add(opt, new Option("--retain-patient-characteristics", "keep age, sex, size, weight… (113108)"));
  add(opt, new Option("--retain-dates <how>", "keep dates: full (113106) or modified, shifted per patient (113107)").choices(["full", "modified"]));
  add(opt, new Option("--clean-descriptors", "keep descriptions, labels and ROI names, with identifying values removed (113105)"));
  add(opt, new Option("--clean-structured-content", "keep structured content, cleaned (113104)"));
  add(opt, new Option("--clean-graphics", "keep curves, overlays and graphic annotations, cleaned (113103)"));
  add(opt, new Option("--profile <file.csv>", "rows tag,action[,private creator] that add to or override Table E.1-1"));
  add(opt, new Option("--allow-burned-in", "anonymize objects whose pixels may show identifying text (header only)"));
  add(opt, new Option("--no-scrub", "do not remove identifying values copied into kept free text"));
}

function readKey(o: Record<string, unknown>): string | Uint8Array {
  try {
    return resolveAnonymizationKey(o);
  } catch (e) {
    if (e instanceof KeyError) throw new UsageError(e.message);
    throw e;
  }
}

// deno-lint-ignore no-explicit-any -- commander option values
function buildOptions(o: Record<string, any>): AnonymizeOptions {
  const key = readKey(o);
  let patientMap: Map<string, PatientIdentity> | undefined;
  let profile;
  try {
    if (o.map) patientMap = readPatientMap(o.map);
    if (o.profile) profile = readProfileCsv(o.profile);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (o.newPatientId !== undefined && (o.newPatientId === "" || o.newPatientId.length > 64)) {
    throw new UsageError(`Invalid value for --new-patient-id: "${o.newPatientId}" (1 to 64 characters)`);
  }
  return {
    key,
    profile,
    patientMap,
    newPatientId: o.newPatientId,
    newPatientName: o.newPatientName,
    allowBurnedIn: o.allowBurnedIn === true,
    scrubIdentifiers: o.scrub !== false,
    retainSafePrivate: o.retainSafePrivate === true,
    retainUids: o.retainUids === true,
    retainDeviceIdentity: o.retainDeviceIdentity === true,
    retainInstitutionIdentity: o.retainInstitutionIdentity === true,
    retainPatientCharacteristics: o.retainPatientCharacteristics === true,
    retainLongitudinal: o.retainDates,
    cleanDescriptors: o.cleanDescriptors === true,
    cleanStructuredContent: o.cleanStructuredContent === true,
    cleanGraphics: o.cleanGraphics === true,
  };
}

async function run(c: CommandContext): Promise<number> {
  const o = c.options;
  const options = buildOptions(o);
  if (o.inPlace && o.out) throw new UsageError("Give either --out or --in-place, not both");
  if (!o.inPlace && !o.out) throw new UsageError("An output directory is required: give --out DIR (or --in-place to overwrite the inputs)");
  if (o.inPlace && o.layout !== "uid" && c.optionSource("layout") === "cli") throw new UsageError("--layout has no effect with --in-place");
  checkDatabaseUrl(o.ledger);
  const concurrency = Number(o.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
    throw new UsageError(`Invalid value for --concurrency: "${o.concurrency}" (expected 1 to 64)`);
  }
  const input = c.args.length > 0 ? pathRecords(c.args, o.pattern ? { pattern: o.pattern } : {}) : c.stdinRecords();
  if (!input) throw new UsageError("No input: give files or directories, or pipe file records on stdin");
  return await runStage(c, {
    input,
    stage: anonymizeRecords,
    options: { ...options, out: o.out, inPlace: o.inPlace === true, layout: o.layout, roots: c.args, concurrency, writeMap: o.writeMap },
    ledger: o.ledger,
    verb: "anonymize",
  });
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
    detail: true,
  },
  run,
});

runMain(import.meta, main);
