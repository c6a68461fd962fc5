/**
 * Command lines from the command builder's values, and quoting for the shells the scripts are
 * written for. Shared by the page (live preview) and the server (what a job runs), so what the
 * preview shows is what runs.
 */
import type { Arg, CommandInfo, CommandOptionInfo, CommandValues, OptionValue } from "./types.ts";

/** The option's flag as written on a command line: its long form, else its short one. */
export function flagOf(option: CommandOptionInfo): string {
  return option.long ?? option.short ?? `--${option.attribute}`;
}

function sameAsDefault(option: CommandOptionInfo, value: string): boolean {
  const d = option.defaultValue;
  return d !== undefined && !Array.isArray(d) && String(d) === value;
}

/** The value the builder starts with for an option: its default, or empty. */
export function initialValue(option: CommandOptionInfo): OptionValue {
  if (!option.takesValue) return option.negate ? true : option.defaultValue === true;
  if (option.repeatable) return Array.isArray(option.defaultValue) ? option.defaultValue.map(String) : [];
  return option.defaultValue === undefined || Array.isArray(option.defaultValue) ? "" : String(option.defaultValue);
}

/**
 * The arguments after the command name: each option whose value differs from its default (or is
 * named in `always`: values the UI sets, written out so that an rtexport.json where the script
 * runs cannot change them), in the order the command defines them, then the positional arguments.
 * Empty values are left out.
 */
export function commandArgs(command: CommandInfo, values: CommandValues, always: readonly string[] = []): Arg[] {
  const argv: Arg[] = [];
  for (const option of command.options) {
    const value = values.options[option.attribute];
    if (value === undefined) continue;
    const flag = flagOf(option);
    if (typeof value === "object" && !Array.isArray(value)) {
      argv.push(flag, value);
      continue;
    }
    if (!option.takesValue) {
      if (option.negate ? value === false : value === true) argv.push(flag);
      continue;
    }
    const list = Array.isArray(value) ? value : typeof value === "string" ? [value] : typeof value === "number" ? [String(value)] : [];
    const texts = list.map((v) => String(v).trim()).filter((v) => v !== "");
    if (option.repeatable) {
      for (const v of texts) argv.push(flag, v);
    } else if (texts.length && (always.includes(option.attribute) || !sameAsDefault(option, texts[0]))) {
      argv.push(flag, texts[0]);
    }
  }
  for (const a of values.args) if (a.trim() !== "") argv.push(a.trim());
  return argv;
}

/** The problems that keep a command from running: mandatory options left empty. */
export function missingValues(command: CommandInfo, values: CommandValues): string[] {
  const problems: string[] = [];
  for (const option of command.options) {
    if (!option.mandatory) continue;
    const v = values.options[option.attribute];
    const empty = v === undefined || v === false || (typeof v === "string" && v.trim() === "") || (Array.isArray(v) && v.every((x) => x.trim() === ""));
    if (empty) problems.push(`${flagOf(option)} is required`);
  }
  for (const a of command.arguments) {
    if (a.required && values.args.every((x) => x.trim() === "")) problems.push(`${a.name} is required`);
  }
  return problems;
}

const SH_SAFE = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** A word for a POSIX shell: as it is when it is safe, else in single quotes. */
export function shQuote(word: string): string {
  if (word !== "" && SH_SAFE.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

const BAT_SAFE = /^[A-Za-z0-9_@+=:,./\\-]+$/;

/**
 * A word for a Windows batch file: as it is when it is safe, else in double quotes with `%`
 * doubled (cmd expands `%NAME%` even inside quotes). A double quote or a line break cannot be
 * written safely into a batch file: that is an error naming the value.
 */
export function batQuote(word: string): string {
  if (/["\r\n]/.test(word)) throw new Error(`Cannot write ${JSON.stringify(word)} into a .bat file: it holds a double quote or a line break`);
  if (word !== "" && BAT_SAFE.test(word)) return word;
  return `"${word.replace(/%/g, "%%")}"`;
}

/** An argument for a shell: a variable reference (`"$OUT"`) or a quoted literal. */
export function shArg(arg: Arg): string {
  return typeof arg === "string" ? shQuote(arg) : `"$${arg.var}"`;
}

/** An argument for a batch file: `"%OUT%"` or a quoted literal. */
export function batArg(arg: Arg): string {
  return typeof arg === "string" ? batQuote(arg) : `"%${arg.var}%"`;
}

/** A pipeline as one shell line (`rtexport a … | rtexport b …`), for the preview. */
export function shPipeline(pipeline: Arg[][], program = "rtexport"): string {
  return pipeline.map((argv) => [program, ...argv.map(shArg)].join(" ")).join(" | ");
}

/** Replaces variables by their values (what a job runs). */
export function resolveArgs(argv: Arg[], vars: Record<string, string>): string[] {
  return argv.map((a) => {
    if (typeof a === "string") return a;
    const v = vars[a.var];
    if (v === undefined) throw new Error(`No value for ${a.var}`);
    return v;
  });
}
