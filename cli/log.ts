/**
 * Messages for humans and the per-item failure reporter. Everything goes to stderr (stdout is
 * data). Text lines are prefixed with the command name so the stages of a pipeline can be told
 * apart; `--log-format json` writes one JSON object per line instead.
 * Messages must not contain PHI: name files and UIDs, not patients.
 */

/** `text` (one human line per message) or `json` (one JSON object per line). */
export type LogFormat = "text" | "json";

/** Severity of a log message. */
export type LogLevel = "error" | "warn" | "info" | "debug";

/** Where log lines go (stderr in commands). */
export interface LineSink {
  write(text: string): unknown;
}

/** Options for {@linkcode Logger}. */
export interface LoggerOptions {
  command: string;
  format?: LogFormat;
  quiet?: boolean;
  verbose?: boolean;
  sink: LineSink;
}

/** Extra structured fields of a log line (shown in JSON format; `item` also in text). */
export type LogFields = Record<string, unknown>;

/** Writes messages to stderr in text or JSON format; `-q` keeps only errors, `-v` adds debug. */
export class Logger {
  readonly command: string;
  readonly format: LogFormat;
  readonly quiet: boolean;
  readonly verbose: boolean;
  #sink: LineSink;

  constructor(options: LoggerOptions) {
    this.command = options.command;
    this.format = options.format ?? "text";
    this.quiet = options.quiet ?? false;
    this.verbose = options.verbose ?? false;
    this.#sink = options.sink;
  }

  /** Always shown. */
  error(message: string, fields?: LogFields): void {
    this.#emit("error", message, fields);
  }
  /** Hidden by `-q`. */
  warn(message: string, fields?: LogFields): void {
    if (!this.quiet) this.#emit("warn", message, fields);
  }
  /** Hidden by `-q`. */
  info(message: string, fields?: LogFields): void {
    if (!this.quiet) this.#emit("info", message, fields);
  }
  /** Shown only with `-v`. */
  debug(message: string, fields?: LogFields): void {
    if (this.verbose && !this.quiet) this.#emit("debug", message, fields);
  }

  #emit(level: LogLevel, message: string, fields?: LogFields): void {
    if (this.format === "json") {
      const line = { time: new Date().toISOString(), level, command: this.command, message, ...fields };
      this.#sink.write(JSON.stringify(line) + "\n");
      return;
    }
    const prefix = level === "warn" ? "warning: " : level === "debug" ? "debug: " : "";
    this.#sink.write(`${this.command}: ${prefix}${message}\n`);
  }
}

/** Counts of what a command did, as reported by {@linkcode Reporter.counts}. */
export interface ReportCounts {
  done: number;
  skipped: number;
  failed: number;
}

/**
 * Reports per-item outcomes: each failure is one line on stderr (text, or JSON with
 * `--log-format json`) and is counted; a command with failures exits 3 (partial).
 *
 * @example
 * ```ts
 * reporter.failed(`Cannot read DICOM file "${path}": unexpected end of data`, { item: path });
 * reporter.done();
 * ```
 */
export class Reporter {
  #log: Logger;
  #done = 0;
  #skipped = 0;
  #failed = 0;

  constructor(log: Logger) {
    this.#log = log;
  }

  /** Count `n` items done. */
  done(n = 1): void {
    this.#done += n;
  }

  /** Count `n` items skipped (already done, filtered out…). */
  skipped(n = 1): void {
    this.#skipped += n;
  }

  /** Report one failed item: `message` says what failed and on what; `fields.item` names the item. */
  failed(message: string, fields?: LogFields): void {
    this.#failed++;
    this.#log.error(message, fields);
  }

  /** Number of failed items so far. */
  get failures(): number {
    return this.#failed;
  }

  /** All counts so far. */
  counts(): ReportCounts {
    return { done: this.#done, skipped: this.#skipped, failed: this.#failed };
  }

  /** Log the summary line, e.g. `120 done, 3 skipped, 2 failed`; errors-only in `-q` mode. */
  summary(what = "items"): void {
    const { done, skipped, failed } = this.counts();
    const parts = [`${done} ${what} done`];
    if (skipped) parts.push(`${skipped} skipped`);
    parts.push(`${failed} failed`);
    const fields = { summary: true, done, skipped, failed };
    if (failed > 0) this.#log.error(parts.join(", "), fields);
    else this.#log.info(parts.join(", "), fields);
  }

  /** 0 when nothing failed, 3 (partial) otherwise. */
  exitCode(): 0 | 3 {
    return this.#failed > 0 ? 3 : 0;
  }
}
