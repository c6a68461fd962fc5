/**
 * `defineCommand`: the shared front end of every command, on commander. It adds the common
 * flags, layers config file and `RTEXPORT_*` environment values under the flags, decides between
 * NDJSON and the human view, wires stdin records, the logger and the failure reporter, and maps
 * errors to exit codes (0 ok, 1 fatal, 2 usage, 3 partial) with one line on stderr, never a stack
 * trace (unless `RTEXPORT_DEBUG=1`).
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import process from "node:process";
import { readNulPaths, readRecords } from "../lib/records/ndjson.ts";
import { type WritableLike, RecordWriter } from "../lib/records/ndjson.ts";
import type { RtRecord } from "../lib/records/types.ts";
import { exitAfterFlush, ignoreBrokenPipe, isMainModule, type ModuleMeta } from "../lib/runtime/mod.ts";
import { envVarName, loadConfig, parseBooleanEnv, type RtexportConfig } from "./config.ts";
import { errorMessage, ExitCode, UsageError } from "./errors.ts";
import { type LogFormat, Logger, Reporter } from "./log.ts";
import { COMMAND_NAMES, OPTION_NAMES } from "./option_names.ts";
import { didYouMean } from "./suggest.ts";
import { addPeerOptions, PEER_DEFAULTS, type PeerOptions, resolvePeer } from "./peer.ts";
import { type ProgressSink, StatusLine } from "./progress.ts";
import { setDatabaseTimeout } from "../lib/sql/timeout.ts";

/** How a command renders records for a human when stdout is a terminal (and `--json` is not given). */
export interface HumanView {
  /** Render each record as it comes (a line or a few); return undefined to print nothing for it. */
  record?(record: RtRecord): string | undefined;
  /**
   * The lines of `record` are per-item details (a line per file copied or stored): printed only
   * with `-v`. Without it the terminal shows the progress line and the summary.
   */
  detail?: boolean;
  /** Render all records at the end (tables, trees). Used when `record` is not given. */
  all?(records: RtRecord[]): string;
}

/** The streams and environment a command runs with (the process's by default; tests may replace them). */
export interface CommandIO {
  stdin: AsyncIterable<Uint8Array | string> & { isTTY?: boolean };
  stdout: WritableLike & { isTTY?: boolean };
  stderr: { write(text: string): unknown };
  env: Record<string, string | undefined>;
  cwd: string;
  /** How the command is invoked, for usage lines: `rtexport show` via cli.ts, `show` on its own. */
  programName?: string;
}

/** Where records go: NDJSON on stdout, or the command's human view. */
export interface RecordOutput {
  /** True when writing NDJSON (stdout not a terminal, or `--json`). */
  readonly json: boolean;
  /** True once the reader went away (`… | head`): stop producing. */
  readonly closed: boolean;
  /** Records written so far. */
  readonly count: number;
  /** Write one record; resolves when the stream can take more. */
  write(record: RtRecord): Promise<void>;
  /** Write every record of a stream, stopping early when the reader went away. */
  writeAll(records: AsyncIterable<RtRecord> | Iterable<RtRecord>): Promise<void>;
}

/** Everything `run` gets. */
export interface CommandContext {
  /** Command name, e.g. `show`. */
  name: string;
  /** The commander command, for anything not covered here. */
  command: Command;
  /** Option values after flags > env > config > defaults layering (camelCase keys). */
  // deno-lint-ignore no-explicit-any -- values are whatever each command's parsers return
  options: Record<string, any>;
  /** Where an option's value came from: `cli`, `env`, `config`, `default` or undefined. */
  optionSource(key: string): string | undefined;
  /** Positional operands (e.g. paths). */
  args: string[];
  /** The config file's content (empty when there is none). */
  config: RtexportConfig;
  /** The resolved peer, for commands defined with `peer: true`. */
  peer?: PeerOptions;
  /** Records from stdin when no operands were given and stdin is not a terminal; else undefined. */
  stdinRecords(): AsyncIterable<RtRecord> | undefined;
  /** True when {@linkcode CommandContext.stdinRecords} will read stdin. */
  readonly hasStdinRecords: boolean;
  /** Record output (NDJSON or human view). */
  out: RecordOutput;
  /** Messages to stderr. */
  log: Logger;
  /** Per-item failures; the command exits 3 when any were reported. */
  reporter: Reporter;
  /** Aborted on SIGINT/SIGTERM. */
  signal: AbortSignal;
  /** The terminal's progress line (stderr); all other terminal output goes around it. */
  statusLine: StatusLine;
  io: CommandIO;
}

/** What a command module declares. */
export interface CommandSpec {
  /** Command name (`show`), also the name of its link/binary. */
  name: string;
  /** One line for `rtexport --help`. */
  summary: string;
  /** Operand synopsis after the options, e.g. `[PATH...]`. Defaults to commander's. */
  usage?: string;
  /** Longer help text shown under the summary. */
  description?: string;
  /** Text shown after the options in `--help` (examples). */
  examples?: string[];
  /** Add the peer option group; `"optional"` does not require a host. */
  peer?: boolean | "optional" | { defaults?: Partial<typeof PEER_DEFAULTS>; required?: boolean };
  /** Add the command's own options and arguments. */
  configure?(cmd: Command): void;
  /** Human view for terminals. Without it records are printed as NDJSON everywhere. */
  human?: HumanView;
  /** Do the work. Return an exit code, or nothing to let the reporter decide (0, or 3 on failures). */
  run(ctx: CommandContext): Promise<number | void> | number | void;
}

/** A command's entry point: argv without the command name → exit code. Never throws. `spec` is its definition. */
export type CommandMain = ((argv: string[], io?: Partial<CommandIO>) => Promise<number>) & { readonly spec: CommandSpec };

const COMMON = "Common options:";

/**
 * How long a command may take to stop after SIGINT/SIGTERM before the process is ended: under a
 * second, with time left to exit.
 */
const SIGNAL_GRACE_MS = 850;

function defaultIO(): CommandIO {
  return {
    stdin: process.stdin,
    stdout: process.stdout as unknown as CommandIO["stdout"],
    stderr: process.stderr,
    env: process.env,
    cwd: process.cwd(),
  };
}

function parseLogFormat(value: string): LogFormat {
  if (value !== "text" && value !== "json") throw new InvalidArgumentError("expected text or json.");
  return value;
}

/** Build the commander command for a spec (exported for `rtexport <command> --help` tests and docs). */
export function buildCommand(spec: CommandSpec, io: CommandIO): Command {
  const cmd = new Command(spec.name);
  const program = io.programName ?? spec.name;
  cmd.description(spec.description ? `${spec.summary}\n\n${spec.description}` : spec.summary);
  if (spec.usage) cmd.usage(`[options] ${spec.usage}`);
  if (program !== spec.name) {
    // Usage line shows "rtexport show" when dispatched through cli.ts.
    cmd.configureHelp({ commandUsage: (c) => `${program} ${c.usage()}` });
  }
  cmd.exitOverride();
  cmd.configureOutput({
    writeOut: (text) => void io.stdout.write(text),
    writeErr: (text) => void io.stderr.write(text),
    outputError: () => {},
  });
  spec.configure?.(cmd);
  if (spec.peer) {
    const defaults = typeof spec.peer === "object" ? spec.peer.defaults : undefined;
    addPeerOptions(cmd, defaults);
  }
  const common = [
    new Option("--json", "write NDJSON records even on a terminal"),
    new Option("--log-format <format>", "stderr message format: text or json").argParser(parseLogFormat).default(
      "text",
    ),
    new Option("-q, --quiet", "only report errors"),
    new Option("-v, --verbose", "also report details"),
    new Option("--config <file>", "config file (default: ./rtexport.json)"),
    new Option("-0, --null", "stdin holds NUL-separated paths (find -print0) instead of records"),
  ];
  for (const option of common) cmd.addOption(option.helpGroup(COMMON));
  cmd.addHelpOption(new Option("-h, --help", "show this help").helpGroup(COMMON));
  cmd.addHelpText(
    "after",
    [
      ...(spec.examples?.length ? ["", "Examples:", ...spec.examples.map((e) => `  ${e}`)] : []),
      "",
      `Any option can also be set as RTEXPORT_<OPTION> (e.g. RTEXPORT_LOG_FORMAT=json) or in rtexport.json`,
      `("defaults" or "commands": {"${spec.name}": {...}}); flags win over the environment, which wins over the file.`,
      "Exit status: 0 ok, 1 fatal error (nothing could be done), 2 usage error, 3 some items failed, 130 interrupted.",
    ].join("\n"),
  );
  return cmd;
}

/**
 * Warnings for keys of the config's `defaults` that no command has (a typo such as "parralel"
 * would otherwise be ignored in silence), and for `commands` sections no command reads.
 */
function unknownDefaults(cmd: Command, config: RtexportConfig): string[] {
  const own = cmd.options.map((o) => o.attributeName());
  const every = new Set([...OPTION_NAMES, ...own]);
  const warnings: string[] = [];
  for (const key of Object.keys(config.defaults)) {
    if (!every.has(key)) warnings.push(`Unknown option "${key}" in "defaults" of config file "${config.path}" is ignored${didYouMean(key, every)}`);
  }
  for (const name of Object.keys(config.commands)) {
    if (!COMMAND_NAMES.includes(name) && name !== cmd.name()) warnings.push(`Unknown command "${name}" in "commands" of config file "${config.path}" is ignored${didYouMean(name, COMMAND_NAMES)}`);
  }
  return warnings;
}

/**
 * Apply `RTEXPORT_*` environment variables and config values to options not given as flags.
 * Both are named after the option's attribute (`--no-color` and `--color` → `RTEXPORT_COLOR`,
 * `"color": false`), so their value is the attribute's value, never negated.
 */
function layerOptions(cmd: Command, env: CommandIO["env"], config: RtexportConfig, name: string): void {
  const section = config.commands[name] ?? {};
  const known = new Set(cmd.options.map((o) => o.attributeName()));
  for (const key of Object.keys(section)) {
    if (!known.has(key)) {
      throw new UsageError(`Unknown option "${key}" for ${name} in config file "${config.path}"${didYouMean(key, known)}`);
    }
  }
  const fromConfig = { ...config.defaults, ...section };
  const done = new Set<string>();
  for (const option of cmd.options) {
    const key = option.attributeName();
    if (key === "help" || key === "config" || done.has(key)) continue;
    done.add(key);
    if (cmd.getOptionValueSource(key) === "cli") continue;
    const envName = envVarName(key);
    const raw = env[envName];
    if (raw !== undefined) {
      cmd.setOptionValueWithSource(key, convert(option, raw, `environment variable ${envName}`), "env");
      continue;
    }
    if (Object.hasOwn(fromConfig, key)) {
      const value = fromConfig[key];
      const where = `"${key}" in config file "${config.path}"`;
      cmd.setOptionValueWithSource(key, convertConfig(option, value, where), "config");
    }
  }
}

function convert(option: Option, raw: string, where: string): unknown {
  const takesValue = option.required || option.optional;
  if (!takesValue) return parseBooleanEnv(where, raw);
  if (option.argChoices && !option.argChoices.includes(raw)) {
    throw new UsageError(`Invalid value "${raw}" for ${where}: expected one of ${option.argChoices.join(", ")}`);
  }
  const parse = (option as unknown as { parseArg?: (value: string, previous: unknown) => unknown }).parseArg;
  try {
    if (parse) return parse(raw, option.defaultValue);
  } catch (error) {
    throw new UsageError(`Invalid value "${raw}" for ${where}: ${errorMessage(error)}`);
  }
  return option.variadic ? [raw] : raw;
}

function convertConfig(option: Option, value: unknown, where: string): unknown {
  const takesValue = option.required || option.optional;
  if (!takesValue) {
    if (typeof value !== "boolean") throw new UsageError(`Invalid value ${JSON.stringify(value)} for ${where}: expected true or false`);
    return value;
  }
  if (Array.isArray(value)) {
    if (option.variadic) return value.map((v) => convert(option, String(v), where)).flat();
    // A repeatable option (its parser takes the list so far, like `collect` for --allow): the
    // array is the flags given in turn. Empty is as if the key were absent, so a command's
    // section can take back a list "defaults" gives.
    const parse = (option as unknown as { parseArg?: (value: string, previous: unknown) => unknown }).parseArg;
    const single = () => new UsageError(`Invalid value ${JSON.stringify(value)} for ${where}: expected a single value`);
    if (!parse || parse.length < 2) throw single();
    if (value.length === 0) return option.defaultValue;
    let collected: unknown = undefined;
    for (const v of value) {
      if (v === null || typeof v === "object") throw new UsageError(`Invalid value ${JSON.stringify(v)} in ${where}: expected a string or a number`);
      try {
        collected = parse(String(v), collected);
      } catch (error) {
        throw new UsageError(`Invalid value "${v}" for ${where}: ${errorMessage(error)}`);
      }
    }
    if (!Array.isArray(collected)) throw single();
    return collected;
  }
  if (value === null || typeof value === "object") {
    throw new UsageError(`Invalid value ${JSON.stringify(value)} for ${where}`);
  }
  return convert(option, String(value), where);
}

class Output implements RecordOutput {
  readonly json: boolean;
  #writer: RecordWriter;
  #human?: HumanView;
  #stdout: CommandIO["stdout"];
  #collected: RtRecord[] = [];
  #humanCount = 0;
  #verbose: boolean;
  /** Set when stdout is the terminal the progress line is on: writes go around that line. */
  #line: StatusLine | undefined;

  constructor(json: boolean, stdout: CommandIO["stdout"], human: HumanView | undefined, opts: { verbose: boolean; line: StatusLine }) {
    this.json = json || !human || (!human.record && !human.all);
    this.#writer = new RecordWriter(stdout);
    this.#human = human;
    this.#stdout = stdout;
    this.#verbose = opts.verbose;
    this.#line = stdout.isTTY === true && opts.line.enabled ? opts.line : undefined;
  }
  get closed(): boolean {
    return this.#writer.closed;
  }
  get count(): number {
    return this.json ? this.#writer.count : this.#humanCount;
  }
  async write(record: RtRecord): Promise<void> {
    if (this.json) {
      if (!this.#line) return await this.#writer.write(record);
      this.#line.clear();
      try {
        return await this.#writer.write(record);
      } finally {
        this.#line.restore();
      }
    }
    this.#humanCount++;
    if (this.#human?.record) {
      if (this.#human.detail && !this.#verbose) return;
      const text = this.#human.record(record);
      if (text !== undefined && !this.closed) this.#print(text.endsWith("\n") ? text : text + "\n");
    } else {
      this.#collected.push(record);
    }
  }
  async writeAll(records: AsyncIterable<RtRecord> | Iterable<RtRecord>): Promise<void> {
    for await (const record of records) {
      await this.write(record);
      if (this.closed) break;
    }
  }
  finish(): void {
    if (!this.json && !this.#human?.record && this.#human?.all && !this.closed) {
      const text = this.#human.all(this.#collected);
      if (text) this.#print(text.endsWith("\n") ? text : text + "\n");
    }
    this.#writer.release();
  }
  #print(text: string): void {
    if (this.#line) this.#line.print(() => this.#stdout.write(text));
    else this.#stdout.write(text);
  }
}

function debugEnabled(env: CommandIO["env"]): boolean {
  const v = env.RTEXPORT_DEBUG;
  return v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";
}

/** Report a thrown error as one line on stderr and return its exit code. */
function reportError(error: unknown, name: string, io: CommandIO, format: LogFormat): number {
  const program = io.programName ?? name;
  const usage = error instanceof UsageError || error instanceof CommanderError;
  let message = errorMessage(error).replace(/^error: /, "");
  // commander puts its "(Did you mean --parallel?)" on a second line: keep it, on the same line.
  const suggestion = error instanceof CommanderError ? /\n\(Did you mean (.+)\?\)/.exec(error.message) : null;
  if (suggestion) message += ` (did you mean ${suggestion[1]}?)`;
  const code = usage ? ExitCode.USAGE : ExitCode.FATAL;
  if (format === "json") {
    io.stderr.write(JSON.stringify({ time: new Date().toISOString(), level: "error", command: name, message, exitCode: code }) + "\n");
  } else {
    io.stderr.write(`${name}: ${message}\n`);
    if (usage) io.stderr.write(`Try '${program} --help' for more information.\n`);
  }
  if (debugEnabled(io.env) && error instanceof Error && error.stack) io.stderr.write(error.stack + "\n");
  return code;
}

/**
 * Define a command. Returns its `main(argv)`, which parses `argv` (the arguments after the
 * command name), runs the command and resolves to the exit code; it never throws.
 *
 * @example
 * ```ts
 * export const main = defineCommand({
 *   name: "echo",
 *   summary: "C-ECHO a DICOM peer",
 *   peer: true,
 *   async run(ctx) {
 *     await ctx.out.write({ type: "echo", host: ctx.peer!.host, status: "ok" });
 *   },
 * });
 * runMain(import.meta, main);
 * ```
 */
export function defineCommand(spec: CommandSpec): CommandMain {
  const main = async (argv: string[], ioOverrides: Partial<CommandIO> = {}): Promise<number> => {
    const io: CommandIO = { ...defaultIO(), ...ioOverrides };
    let format: LogFormat = io.env.RTEXPORT_LOG_FORMAT === "json" ? "json" : "text";
    let cmd: Command;
    try {
      cmd = buildCommand(spec, io);
    } catch (error) {
      return reportError(error, spec.name, io, format);
    }
    const controller = new AbortController();
    const statusLine = new StatusLine(io.stderr as ProgressSink);
    // Every message goes around the progress line, so the two never share a line on a terminal.
    const stderr = { write: (text: string) => statusLine.print(() => io.stderr.write(text)) };
    let forceExit: ReturnType<typeof setTimeout> | undefined;
    // Ctrl-C and SIGTERM abort ctx.signal: the stage abandons what is in flight (temporary files
    // removed), records what finished, and runStage says so (exit 130). A stage that has not
    // stopped within the grace period, or a second signal, ends the process at once (the copy
    // layer's exit hook still removes its temporary files).
    const onSignal = () => {
      const code = ExitCode.INTERRUPTED;
      if (controller.signal.aborted) {
        statusLine.end();
        io.stderr.write(`${spec.name}: interrupted again: stopped at once; rerun to resume\n`);
        process.exit(code);
      }
      controller.abort(new Error("Interrupted"));
      forceExit = setTimeout(() => {
        statusLine.end();
        io.stderr.write(`${spec.name}: interrupted before the work in flight could stop; what finished is recorded, rerun to resume\n`);
        process.exit(code);
      }, SIGNAL_GRACE_MS);
      (forceExit as { unref?: () => void }).unref?.();
    };
    const listening = ioOverrides.stdin === undefined;
    if (listening) {
      process.on("SIGINT", onSignal);
      process.on("SIGTERM", onSignal);
    }
    let output: Output | undefined;
    try {
      try {
        await cmd.parseAsync(argv, { from: "user" });
      } catch (error) {
        if (error instanceof CommanderError && (error.code === "commander.helpDisplayed" || error.code === "commander.version")) {
          return ExitCode.OK;
        }
        throw error;
      }
      const explicitConfig = cmd.getOptionValue("config") ?? io.env.RTEXPORT_CONFIG;
      const config = loadConfig({ path: explicitConfig, cwd: io.cwd });
      layerOptions(cmd, io.env, config, spec.name);
      const options = cmd.opts();
      format = options.logFormat === "json" ? "json" : "text";
      const log = new Logger({
        command: spec.name,
        format,
        quiet: options.quiet === true,
        verbose: options.verbose === true,
        sink: stderr,
      });
      // --db-timeout: every database this process opens (catalog, ledger) gets the same limit.
      if (typeof options.dbTimeout === "number") setDatabaseTimeout(options.dbTimeout);
      for (const warning of config.warnings) log.warn(warning);
      for (const warning of unknownDefaults(cmd, config)) log.warn(warning);
      const reporter = new Reporter(log);
      const args = cmd.args.slice();
      const json = options.json === true || io.stdout.isTTY !== true;
      output = new Output(json, io.stdout, spec.human, { verbose: options.verbose === true && options.quiet !== true, line: statusLine });
      const hasStdinRecords = args.length === 0 && io.stdin.isTTY !== true;
      let peer: PeerOptions | undefined;
      if (spec.peer) {
        const required = spec.peer === "optional" ? false : typeof spec.peer === "object" ? spec.peer.required !== false : true;
        peer = resolvePeer(options, (key) => cmd.getOptionValueSource(key), config, { requireHost: required });
      }
      let stdinUsed = false;
      const ctx: CommandContext = {
        name: spec.name,
        command: cmd,
        options,
        optionSource: (key) => cmd.getOptionValueSource(key),
        args,
        config,
        peer,
        hasStdinRecords,
        stdinRecords() {
          if (!hasStdinRecords) return undefined;
          if (stdinUsed) throw new Error("stdin records can be read only once");
          stdinUsed = true;
          return stdinInput(io, options.null === true, log);
        },
        out: output,
        log,
        reporter,
        signal: controller.signal,
        statusLine,
        io,
      };
      const result = await spec.run(ctx);
      output.finish();
      if (typeof result === "number") return result;
      return reporter.exitCode();
    } catch (error) {
      output?.finish();
      statusLine.end();
      return reportError(error, spec.name, io, format);
    } finally {
      statusLine.end();
      if (forceExit !== undefined) clearTimeout(forceExit);
      if (listening) {
        process.removeListener("SIGINT", onSignal);
        process.removeListener("SIGTERM", onSignal);
      }
    }
  };
  return Object.assign(main, { spec });
}

/**
 * The records a command reads on stdin: NDJSON records, where a line that is not JSON is taken as
 * a path (`find … | rtexport search …`), or NUL-separated paths with `-0` (`find … -print0`).
 * When the input holds nothing at all, a warning says so: the command before this one in a
 * pipeline most likely failed (`set -o pipefail` makes the shell say which).
 */
async function* stdinInput(io: CommandIO, nul: boolean, log: Logger): AsyncGenerator<RtRecord> {
  let n = 0;
  const records = nul ? readNulPaths(io.stdin) : readRecords(io.stdin, { input: "stdin", pathLines: true });
  for await (const record of records) {
    n++;
    yield record;
  }
  if (n === 0) log.warn("No input on stdin: if a command before this one in a pipeline failed, nothing was passed on (use set -o pipefail)");
}

/**
 * Run `main` with the process's arguments when the module is the program's entry point
 * (`deno run -A commands/show.ts …`, `node commands/show.ts …`), then exit with its code.
 *
 * @example
 * ```ts
 * export const main = defineCommand({ ... });
 * runMain(import.meta, main);
 * ```
 */
export function runMain(meta: ModuleMeta, main: (argv: string[]) => Promise<number>): void {
  if (!isMainModule(meta)) return;
  ignoreBrokenPipe();
  main(process.argv.slice(2)).then(
    (code) => exitAfterFlush(code),
    (error) => {
      process.stderr.write(`rtexport: ${errorMessage(error)}\n`);
      return exitAfterFlush(ExitCode.FATAL);
    },
  );
}

/**
 * Resolves when the command is told to stop: Ctrl-C, SIGTERM or `signal`. For the commands that
 * run until stopped (serve, ui). Our own signal listeners as well as `signal`: under Deno, with
 * the command loaded through cli.ts, the platform's listeners were not called (measured: killed
 * with 143).
 */
export async function untilStopped(signal: AbortSignal): Promise<void> {
  let stop: () => void = () => {};
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  if (signal.aborted) stop();
  signal.addEventListener("abort", stop, { once: true });
  try {
    await stopped;
  } finally {
    process.removeListener("SIGINT", stop);
    process.removeListener("SIGTERM", stop);
  }
}
