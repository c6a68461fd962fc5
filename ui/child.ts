/**
 * Runs rtexport commands as child processes of this same program (the binary itself, or the
 * runtime and script this server was started with: lib/runtime's `selfCommand`), a pipeline of
 * them with each one's stdout fed to the next one's stdin, as a shell would. What the UI shows as
 * the command line is what runs. Messages come as JSON lines (`--log-format json`), records as
 * NDJSON; both are read with a bound on what is kept.
 */
import { type ChildProcess, spawn } from "node:child_process";
import process from "node:process";
import { selfCommand } from "../lib/runtime/mod.ts";
import { shQuote } from "./shared/argv.ts";

/** A message line a command wrote on stderr (`--log-format json`), or a plain line. */
export interface LogLine {
  level: string;
  command?: string;
  message: string;
  item?: string;
}

/** How to run a pipeline. */
export interface PipelineOptions {
  cwd: string;
  /** The config file every command reads (the one the UI edits). */
  config?: string;
  /** Added to this process's environment (RTEXPORT_* variables of this process are not passed on). */
  env?: Record<string, string>;
  /** Called with each record the last command writes. */
  onRecord?: (record: Record<string, unknown>) => void;
  /** Called with each message any command writes. */
  onLog?: (line: LogLine) => void;
  /** Records kept in the result (default 0: count only). */
  keepRecords?: number;
  /** Ends the run with SIGTERM after this many ms (default: none). */
  timeoutMs?: number;
}

/** A pipeline that runs. */
export interface RunningPipeline {
  children: ChildProcess[];
  /** pid of the last command (the one doing the work). */
  pid: number | undefined;
  done: Promise<PipelineResult>;
  /** Ctrl-C: SIGINT to every command (each stops at its next item boundary and exits 130). */
  interrupt(): void;
  kill(signal?: NodeJS.Signals): void;
}

/** How a pipeline ended. */
export interface PipelineResult {
  /** The pipeline's status as bash's pipefail gives it: the last command's, unless an earlier one failed. */
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  records: Record<string, unknown>[];
  recordCount: number;
  /** Records beyond `keepRecords` were counted, not kept. */
  truncated: boolean;
  /** The last error messages. */
  errors: string[];
}

/** A pipeline as one line for people (`rtexport list-patients … | rtexport export-plan …`). */
export function commandLine(pipeline: string[][]): string {
  return pipeline.map((argv) => ["rtexport", ...argv].map(shQuote).join(" ")).join(" | ");
}

function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("RTEXPORT_")) env[k] = v;
  return { ...env, ...extra };
}

/** Splits a byte stream into lines, keeping at most 1 MiB of an unfinished one. */
function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let rest = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    rest += chunk;
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      onLine(rest.slice(0, nl).replace(/\r$/, ""));
      rest = rest.slice(nl + 1);
    }
    if (rest.length > 1 << 20) rest = rest.slice(-(1 << 20));
  });
  stream.on("end", () => {
    if (rest) onLine(rest);
  });
}

function parseLog(line: string, command: string): LogLine {
  try {
    const j = JSON.parse(line);
    if (j && typeof j === "object" && typeof j.message === "string") {
      return { level: String(j.level ?? "info"), command: String(j.command ?? command), message: j.message, item: typeof j.item === "string" ? j.item : undefined };
    }
  } catch {
    // a line that is not JSON (a crash message): shown as it is
  }
  return { level: "info", command, message: line };
}

/** Starts `pipeline` (argv lists without the program; each starts with the command name). */
export function startPipeline(pipeline: string[][], opts: PipelineOptions): RunningPipeline {
  const self = selfCommand();
  const children: ChildProcess[] = [];
  const records: Record<string, unknown>[] = [];
  const errors: string[] = [];
  let recordCount = 0;
  const keep = opts.keepRecords ?? 0;
  const env = childEnv(opts.env);
  pipeline.forEach((argv, i) => {
    const args = [...self.slice(1), ...argv, "--log-format", "json", ...(opts.config ? ["--config", opts.config] : [])];
    const child = spawn(self[0], args, {
      cwd: opts.cwd,
      env,
      stdio: [i === 0 ? "ignore" : "pipe", "pipe", "pipe"],
      windowsHide: true,
    });
    const prev = children[i - 1];
    if (prev?.stdout && child.stdin) {
      prev.stdout.pipe(child.stdin);
      // The next command gone (it failed): the previous one's writes end in EPIPE, not a crash here.
      child.stdin.on("error", () => {});
    }
    lines(child.stderr!, (line) => {
      if (!line.trim()) return;
      const l = parseLog(line, argv[0]);
      if (l.level === "error") {
        errors.push(l.message);
        if (errors.length > 20) errors.shift();
      }
      opts.onLog?.(l);
    });
    children.push(child);
  });
  const last = children[children.length - 1];
  lines(last.stdout!, (line) => {
    if (!line.trim()) return;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line);
    } catch {
      return;
    }
    recordCount++;
    if (records.length < keep) records.push(rec);
    opts.onRecord?.(rec);
  });
  const exits = children.map((c) =>
    new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      c.on("error", (e) => {
        errors.push(`Cannot start rtexport: ${e.message}`);
        resolve({ code: 1, signal: null });
      });
      c.on("close", (code, signal) => resolve({ code, signal }));
    })
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (opts.timeoutMs) {
    timer = setTimeout(() => {
      errors.push(`Stopped after ${Math.round(opts.timeoutMs! / 1000)} s`);
      for (const c of children) c.kill("SIGTERM");
    }, opts.timeoutMs);
  }
  const done = Promise.all(exits).then((ends) => {
    if (timer) clearTimeout(timer);
    const lastEnd = ends[ends.length - 1];
    const failedBefore = ends.slice(0, -1).find((e) => e.code !== 0);
    const end = lastEnd.code === 0 && failedBefore ? failedBefore : lastEnd;
    return { exitCode: end.code, signal: end.signal, records, recordCount, truncated: recordCount > records.length, errors };
  });
  return {
    children,
    pid: last.pid,
    done,
    interrupt() {
      // process.kill, not c.kill: Deno's ChildProcess reports a child it signalled as killed by the
      // signal even when the child handled it and exited 130.
      for (const c of children) {
        if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) continue;
        try {
          process.kill(c.pid, "SIGINT");
        } catch {
          // gone meanwhile
        }
      }
    },
    kill(signal: NodeJS.Signals = "SIGKILL") {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
    },
  };
}

/** Runs a pipeline to its end and returns what it wrote (at most `keepRecords` records, default 50,000). */
export function runPipeline(pipeline: string[][], opts: PipelineOptions): Promise<PipelineResult> {
  return startPipeline(pipeline, { keepRecords: 50_000, ...opts }).done;
}
