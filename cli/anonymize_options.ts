/**
 * The de-identification options, defined once for every command that anonymizes: `anonymize`,
 * `retrieve --anonymize` and `export-plan --anonymize`. A command adds them with
 * `addAnonymizeOptions` and turns the parsed values into library options with
 * `anonymizeOptionsFrom`, so a flag means the same everywhere and appears in every `--help`.
 */
import { type Command, Option } from "commander";
import type { AnonymizeOptions, PatientIdentity } from "../lib/anonymize/anonymize.ts";
import { KeyError, resolveAnonymizationKey } from "../lib/anonymize/key.ts";
import { PRESETS, withPreset } from "../lib/anonymize/presets.ts";
import { UsageError } from "./errors.ts";

/** How a command spells the options it shares with `anonymize`. */
export interface AnonymizeOptionSpec {
  /**
   * `key`: `-k, --key`/`--key-file` (the anonymize command). `anonymize-key`:
   * `--anonymize-key`/`--anonymize-key-file`, where `--key` is the TLS private key of a peer.
   */
  keyFlags: "key" | "anonymize-key";
  /** Also define `--new-patient-id`/`--new-patient-name` (false when the command has its own). */
  identity?: boolean;
  /** Help heading prefix, e.g. "With --anonymize, " */
  headingPrefix?: string;
}

const KEY_FLAGS = {
  key: { key: "--key", keyFile: "--key-file", keyOption: "-k, --key <secret>", keyProp: "key", fileProp: "keyFile" },
  "anonymize-key": {
    key: "--anonymize-key", keyFile: "--anonymize-key-file", keyOption: "--anonymize-key <secret>", keyProp: "anonymizeKey",
    fileProp: "anonymizeKeyFile",
  },
} as const;

/** Adds the de-identification options to a command. */
export function addAnonymizeOptions(cmd: Command, spec: AnonymizeOptionSpec): void {
  const k = KEY_FLAGS[spec.keyFlags];
  const prefix = spec.headingPrefix ?? "";
  const id = `${prefix}identity and key:`;
  const opt = `${prefix}profile options (PS3.15 E.3), combinable:`;
  const add = (group: string, o: Option) => cmd.addOption(o.helpGroup(group));
  add(id, new Option(k.keyOption, `secret for UIDs, pseudonyms and date shifts (16+ bytes; prefer ${k.keyFile} or RTEXPORT_${k.key.slice(2).toUpperCase().replace(/-/g, "_")})`));
  add(id, new Option(`${k.keyFile} <file>`, "read the secret from a file (trailing newline ignored)"));
  if (spec.identity !== false) {
    add(id, new Option("--new-patient-id <id>", "Patient ID for every patient not in --map"));
    add(id, new Option("--new-patient-name <name>", "Patient's Name (DICOM PN, e.g. Study^Subject 7) for every patient not in --map"));
  }
  add(id, new Option("--map <file.csv>", "patient map: old id,new id[,new name] per line"));
  add(opt, new Option("--preset <name>", `named option set: ${[...PRESETS.values()].map((p) => `${p.name} (${p.summary})`).join("; ")}; options given beside it add to it`));
  add(opt, new Option("--retain-safe-private", "keep numeric private attributes of the safe-private list (113111)"));
  add(opt, new Option("--retain-uids", "keep UIDs as they are (113110)"));
  add(opt, new Option("--retain-device-identity", "keep station names, serial numbers, machine names (113109)"));
  add(opt, new Option("--retain-institution-identity", "keep institution names and addresses (113112)"));
  add(opt, new Option("--retain-patient-characteristics", "keep age, sex, size, weight… (113108)"));
  add(opt, new Option("--retain-dates <how>", "keep dates: full (113106) or modified, every date shifted per patient (113107)").choices(["full", "modified"]));
  add(opt, new Option("--clean-descriptors", "keep descriptions, labels and ROI names, with identifiers removed (113105)"));
  add(opt, new Option("--clean-structured-content", "keep structured content, cleaned (113104)"));
  add(opt, new Option("--clean-graphics", "keep curves, overlays and graphic annotations, cleaned (113103)"));
  add(opt, new Option("--profile <file.csv>", "rows tag,action[,private creator] that add to or override Table E.1-1"));
  add(opt, new Option("--allow-burned-in", "anonymize objects whose pixels may show identifying text (header only)"));
  add(opt, new Option("--no-scrub", "do not remove identifiers copied into kept free text"));
}

/**
 * The library options from parsed values; a usage error names what is wrong. Asynchronous: the
 * profile tables are loaded only here, so a command that anonymizes only on request (retrieve,
 * export-plan) does not pay for them at start-up.
 */
// deno-lint-ignore no-explicit-any -- commander option values
export async function anonymizeOptionsFrom(o: Record<string, any>, spec: AnonymizeOptionSpec): Promise<AnonymizeOptions> {
  const k = KEY_FLAGS[spec.keyFlags];
  let key: string | Uint8Array;
  try {
    key = resolveAnonymizationKey({ key: o[k.keyProp], keyFile: o[k.fileProp] }, { key: k.key, keyFile: k.keyFile });
  } catch (e) {
    if (e instanceof KeyError) throw new UsageError(e.message);
    throw e;
  }
  let patientMap: Map<string, PatientIdentity> | undefined;
  let profile;
  try {
    if (o.map) patientMap = (await import("../lib/anonymize/patient_map.ts")).readPatientMap(o.map);
    if (o.profile) profile = (await import("../lib/anonymize/profile.ts")).readProfileCsv(o.profile);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (o.newPatientId !== undefined && (o.newPatientId === "" || o.newPatientId.length > 64)) {
    throw new UsageError(`Invalid value for --new-patient-id: "${o.newPatientId}" (1 to 64 characters)`);
  }
  const options: AnonymizeOptions = {
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
  if (o.preset === undefined) return options;
  if (!PRESETS.has(o.preset)) throw new UsageError(`Unknown preset "${o.preset}" (use ${[...PRESETS.keys()].join(", ")})`);
  return withPreset(o.preset, options);
}

/** True when any de-identification option was given (for commands where they need `--anonymize`). */
// deno-lint-ignore no-explicit-any -- commander option values
export function anonymizeOptionsGiven(o: Record<string, any>, spec: AnonymizeOptionSpec): string | undefined {
  const k = KEY_FLAGS[spec.keyFlags];
  const names: [string, string][] = [
    [k.keyProp, k.key], [k.fileProp, k.keyFile], ["map", "--map"], ["preset", "--preset"], ["retainSafePrivate", "--retain-safe-private"],
    ["retainUids", "--retain-uids"], ["retainDeviceIdentity", "--retain-device-identity"],
    ["retainInstitutionIdentity", "--retain-institution-identity"], ["retainPatientCharacteristics", "--retain-patient-characteristics"],
    ["retainDates", "--retain-dates"], ["cleanDescriptors", "--clean-descriptors"], ["cleanStructuredContent", "--clean-structured-content"],
    ["cleanGraphics", "--clean-graphics"], ["profile", "--profile"], ["allowBurnedIn", "--allow-burned-in"],
  ];
  for (const [prop, flag] of names) if (o[prop] !== undefined && o[prop] !== false) return flag;
  if (o.scrub === false) return "--no-scrub";
  return undefined;
}
