/**
 * The commands' options for the command builder, read from their definitions: each
 * commands/<name>.ts `main.spec` built into its commander command by cli/command.ts's
 * `buildCommand`, exactly as `rtexport <name> --help` shows it. There is no second copy of any
 * option here; a flag added to a command appears in the builder.
 */
import type { Command, Option } from "commander";
import { buildCommand, type CommandMain } from "../cli/command.ts";
import { COMMANDS } from "../cli.ts";
import type { CommandInfo, CommandOptionInfo } from "./shared/types.ts";

/** The commands the builder offers (seed 004's retrieve, store, search, show, and the rest of the pipeline). */
export const BUILDER_COMMANDS = ["export-plan", "copy-files", "anonymize", "push", "retrieve", "show", "search"] as const;

/** Commands the UI reads definitions of besides the builder's: the patient list builder's and test connection's. */
const OTHER_COMMANDS = ["list-patients", "echo"];

/** Options that make no sense in the UI: the UI reads NDJSON itself and passes its own config file. */
const HIDDEN = new Set(["help", "null", "json", "config"]);

const quietIO = { stdin: [] as never, stdout: { write: () => true } as never, stderr: { write: () => true }, env: {}, cwd: "." };

/** True when the option collects every value given (its parser returns a list). */
function repeatable(option: Option): boolean {
  if (option.variadic) return true;
  const parse = option.parseArg as ((v: string, prev: unknown) => unknown) | undefined;
  if (!parse) return false;
  for (const sample of ["x", "A=B", "1", "AE@127.0.0.1"]) {
    try {
      return Array.isArray(parse(sample, undefined));
    } catch {
      // not a value this parser takes: try the next
    }
  }
  return false;
}

function plainDefault(v: unknown): CommandOptionInfo["defaultValue"] {
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return v;
  if (Array.isArray(v) && v.every((x) => typeof x === "string")) return v as string[];
  return undefined;
}

function optionInfo(option: Option): CommandOptionInfo {
  const takesValue = option.required || option.optional;
  const valueName = /[<[]([^>\]]+)[>\]]/.exec(option.flags)?.[1];
  return {
    flags: option.flags,
    long: option.long,
    short: option.short,
    attribute: option.attributeName(),
    description: option.description,
    takesValue,
    repeatable: takesValue && repeatable(option),
    negate: option.negate,
    mandatory: option.mandatory,
    defaultValue: plainDefault(option.defaultValue),
    choices: option.argChoices ? [...option.argChoices] : undefined,
    group: option.helpGroupHeading,
    valueName,
  };
}

/** One command's definition as the builder shows it. */
export function describeCommand(main: CommandMain): CommandInfo {
  const spec = main.spec;
  const cmd: Command = buildCommand(spec, quietIO);
  return {
    name: spec.name,
    summary: spec.summary,
    description: spec.description,
    examples: spec.examples ?? [],
    options: cmd.options.filter((o) => !o.hidden && !HIDDEN.has(o.attributeName())).map(optionInfo),
    arguments: cmd.registeredArguments.map((a) => ({ name: a.name(), description: a.description, required: a.required, variadic: a.variadic })),
  };
}

let cached: Promise<CommandInfo[]> | undefined;

/** The builder's commands and the ones the UI runs itself, from cli.ts's command table (loaded once). */
export function commandInfos(): Promise<CommandInfo[]> {
  cached ??= (async () => {
    const out: CommandInfo[] = [];
    for (const name of [...BUILDER_COMMANDS, ...OTHER_COMMANDS]) {
      const mod = await COMMANDS[name].load() as unknown as { main: CommandMain };
      out.push(describeCommand(mod.main));
    }
    return out;
  })();
  return cached;
}
