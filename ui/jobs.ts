/**
 * Jobs the UI starts: an export of a patient selection (`list-patients … | export-plan …`) or a
 * command from the command builder, run as child processes of this same program (ui/child.ts).
 * A job is a file in the UI's folder (what was asked for, which process ran it and how it ended)
 * plus, for exports, the rows its commands write in the ledger; its progress is read from there
 * (ui/dashboard.ts), so it survives a closed page and a restarted server. Cancel is Ctrl-C
 * (SIGINT: every command stops at its next item boundary, records what finished and exits 130);
 * retry runs the not-done patients and plans again, which resume from the ledger.
 */
import { randomBytes } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, closeSync, renameSync, statSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { defaultLedgerUrl } from "../lib/ledger/ledger.ts";
import { processAlive } from "../lib/runtime/mod.ts";
import { commandLine, type LogLine, type RunningPipeline, startPipeline } from "./child.ts";
import { exportProgress, ledgerCounts, pendingProgress, totalsOf } from "./dashboard.ts";
import { commandArgs, missingValues, resolveArgs } from "./shared/argv.ts";
import { exportCommand, type ExportSpec, isUnapproved } from "./shared/pipeline.ts";
import type {
  CommandInfo, CommandValues, ExportRequest, JobSnapshot, JobState, JobSummary, ListFilters, OutputEntry, SelectedPatient, SourceRef, UiConfig,
} from "./shared/types.ts";

/** A request the UI cannot start a job from: the message says why. */
export class JobInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "JobInputError";
  }
}

/** One process run of a job, as its file records it. */
interface RunRecord {
  started: string;
  ended?: string;
  pid?: number;
  host: string;
  exitCode?: number | null;
  signal?: string | null;
  pipeline: string[][];
  retry: boolean;
  error?: string;
  /** Records the last command wrote. */
  records?: number;
}

/** A job as its file holds it. */
export interface JobFile {
  id: string;
  title: string;
  kind: "export" | "command";
  created: string;
  ledger?: string;
  /** The ledger job export-plan's workers share (`--job`). */
  ledgerJob?: string;
  out?: string;
  export?: {
    source: SourceRef;
    filters: ListFilters;
    output: OutputEntry;
    exportValues: CommandValues;
    authorizedBy?: string;
    selection: SelectedPatient[];
  };
  command?: { name: string; pipeline: string[][] };
  runs: RunRecord[];
}

interface Live {
  running: RunningPipeline;
  log: string[];
  records: number;
}

const LOG_TAIL = 300;
const LOG_FILE_LIMIT = 4 * 1024 * 1024;

/** Where jobs live and how their commands run. */
export interface JobsOptions {
  /** The folder job files go in (created with mode 0700: they name patients). */
  dir: string;
  /** The folder commands run in. */
  cwd: string;
  /** The config file commands read (passed as --config when given). */
  config?: string;
  /** Lines for the server's own log (no patient data goes there). */
  log: (text: string) => void;
  commands: () => Promise<CommandInfo[]>;
  readConfig: () => UiConfig;
}

function exitState(run: RunRecord | undefined): JobState {
  if (!run) return "starting";
  if (!run.ended) return run.pid && processAlive(run.pid) && run.host === hostname() ? "running" : "killed";
  // Ctrl-C: the command exits 130 (under Deno its parent may see the SIGINT itself instead).
  if (run.exitCode === 130 || run.signal === "SIGINT") return "cancelled";
  if (run.signal) return "killed";
  if (run.exitCode === 0) return "done";
  if (run.exitCode === 3) return "partial";
  return "failed";
}

/** The jobs of one UI folder. */
export class Jobs {
  readonly #o: JobsOptions;
  readonly #dir: string;
  readonly #live = new Map<string, Live>();
  readonly #listeners = new Map<string, Set<() => void>>();
  readonly #snapshots = new Map<string, { at: number; value: Promise<JobSnapshot> }>();

  constructor(options: JobsOptions) {
    this.#o = options;
    this.#dir = join(options.dir, "jobs");
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
  }

  /** Every job, newest first. */
  list(): JobSummary[] {
    const out: JobSummary[] = [];
    for (const f of readdirSync(this.#dir)) {
      if (!/^[0-9a-f]{12}\.json$/.test(f)) continue;
      try {
        const job = this.#load(f.slice(0, -5));
        out.push({ id: job.id, title: job.title, kind: job.kind, created: job.created, state: this.#state(job) });
      } catch {
        // a job file being written, or damaged: left out of the list
      }
    }
    return out.sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
  }

  /** Starts exporting a selection; resolves to the job. */
  async startExport(req: ExportRequest): Promise<JobFile> {
    const config = this.#o.readConfig();
    const selection = (req.selection ?? []).filter((p) => p.plans?.length);
    if (!selection.length) throw new JobInputError("Nothing to export: tick at least one plan");
    const output = config.outputs[req.output];
    if (!output) throw new JobInputError(`No output folder named "${req.output}": add one under Sources`);
    const unapproved = selection.flatMap((p) => p.plans.filter(isUnapproved));
    let authorizedBy: string | undefined;
    if (unapproved.length) {
      authorizedBy = req.authorization?.by?.trim();
      if (!req.authorization?.confirmed || !authorizedBy) {
        throw new JobInputError(`${unapproved.length} selected plan(s) are not approved: their export needs your authorization (tick it and give your name)`);
      }
    }
    const id = randomBytes(6).toString("hex");
    const job: JobFile = {
      id,
      kind: "export",
      title: `Export of ${selection.length} patient(s), ${selection.reduce((n, p) => n + p.plans.length, 0)} plan(s)`,
      created: new Date().toISOString(),
      ledger: output.ledger ?? defaultLedgerUrl(output.path),
      ledgerJob: `ui-${id}`,
      out: output.path,
      export: { source: req.source, filters: req.filters ?? {}, output, exportValues: req.exportValues ?? { options: {}, args: [] }, authorizedBy, selection },
      runs: [],
    };
    const { pipeline, env } = await this.#exportPipeline(job, selection);
    this.#save(job);
    this.#run(job, pipeline, env, false);
    return job;
  }

  /** Starts a command from the command builder; resolves to the job. */
  async startCommand(name: string, values: CommandValues): Promise<JobFile> {
    const info = (await this.#o.commands()).find((c) => c.name === name);
    if (!info) throw new JobInputError(`Unknown command "${name}"`);
    if (name === "export-plan") throw new JobInputError("export-plan reads patients and plans: start it from the patient list");
    const missing = missingValues(info, values);
    if (missing.length) throw new JobInputError(`Cannot run ${name}: ${missing.join(", ")}`);
    const argv = commandArgs(info, values).map((a) => (typeof a === "string" ? a : ""));
    const id = randomBytes(6).toString("hex");
    const o = values.options;
    const place = typeof o.out === "string" && o.out ? o.out : typeof o.to === "string" && o.to ? o.to : undefined;
    const ledger = typeof o.ledger === "string" && o.ledger ? o.ledger : place && ["copy-files", "retrieve"].includes(name) ? defaultLedgerUrl(place) : undefined;
    const job: JobFile = {
      id, kind: "command", title: `${name}`, created: new Date().toISOString(), ledger, out: place,
      command: { name, pipeline: [[name, ...argv]] }, runs: [],
    };
    this.#save(job);
    this.#run(job, job.command!.pipeline, {}, false);
    return job;
  }

  /** Ctrl-C for a job: its commands stop at their next item boundary (exit 130). */
  cancel(id: string): void {
    const job = this.#load(id);
    const live = this.#live.get(id);
    if (live) {
      live.running.interrupt();
      this.#o.log(`job ${id}: cancel requested`);
      return;
    }
    const last = job.runs.at(-1);
    if (last && !last.ended && last.pid && last.host === hostname() && processAlive(last.pid)) {
      process.kill(last.pid, "SIGINT");
      return;
    }
    throw new JobInputError(`Job ${id} is not running`);
  }

  /** Runs again what is not done: for an export, the patients and plans not done; else the same command (it resumes). */
  async retry(id: string): Promise<JobFile> {
    const job = this.#load(id);
    if (this.#live.has(id) || this.#state(job) === "running") throw new JobInputError(`Job ${id} is still running`);
    if (job.kind === "command") {
      this.#run(job, job.command!.pipeline, {}, true);
      return job;
    }
    const progress = await exportProgress(job.ledger!, job.ledgerJob!, job.export!.selection);
    const left: SelectedPatient[] = [];
    for (const p of job.export!.selection) {
      const prog = progress.patients.find((x) => x.patientId === p.patientId);
      let plans = p.plans.filter((q) => {
        const s = prog?.plans.find((x) => x.planKey === q.planKey)?.state;
        return s !== "done" && s !== "skipped";
      });
      // A patient whose own files failed: all of its plans again (what is in place is skipped).
      if (!plans.length && (prog?.state === "failed" || prog?.state === "interrupted")) plans = p.plans;
      if (plans.length) left.push({ ...p, plans });
    }
    if (!left.length) throw new JobInputError("Nothing to retry: every plan of the job is done");
    const { pipeline, env } = await this.#exportPipeline(job, left);
    this.#run(job, pipeline, env, true);
    return job;
  }

  /** Everything the dashboard shows of a job (looked up at most every 400 ms; every viewer shares it). */
  snapshot(id: string): Promise<JobSnapshot> {
    const cached = this.#snapshots.get(id);
    if (cached && Date.now() - cached.at < 400) return cached.value;
    const value = this.#snapshot(id);
    this.#snapshots.set(id, { at: Date.now(), value });
    value.catch(() => this.#snapshots.delete(id));
    return value;
  }

  /** Called when something about the job changed (its commands wrote, it ended); returns the unsubscribe. */
  subscribe(id: string, listener: () => void): () => void {
    let set = this.#listeners.get(id);
    if (!set) this.#listeners.set(id, set = new Set());
    set.add(listener);
    return () => set!.delete(listener);
  }

  /** True while a job started by this server runs. */
  get running(): number {
    return this.#live.size;
  }

  /**
   * Interrupts every running job and waits (at most `ms`) for them to stop, then kills what is
   * left: within the second cli/command.ts gives a command after a signal (resumable either way).
   */
  async close(ms = 700): Promise<void> {
    const waits = [...this.#live.values()].map((l) => {
      l.running.interrupt();
      return l.running.done;
    });
    await Promise.race([Promise.all(waits), new Promise((r) => setTimeout(r, ms))]);
    for (const l of this.#live.values()) l.running.kill("SIGKILL");
  }

  /** The job file (an unknown or malformed id is a JobInputError). */
  get(id: string): JobFile {
    return this.#load(id);
  }

  async #exportPipeline(job: JobFile, patients: SelectedPatient[]): Promise<{ pipeline: string[][]; env: Record<string, string> }> {
    const infos = await this.#o.commands();
    const e = job.export!;
    const spec: ExportSpec = {
      listInfo: infos.find((c) => c.name === "list-patients")!,
      exportInfo: infos.find((c) => c.name === "export-plan")!,
      config: this.#o.readConfig(),
      source: e.source,
      filters: e.filters,
      output: e.output,
      exportValues: e.exportValues,
      authorizedBy: e.authorizedBy,
      job: job.ledgerJob,
    };
    let built;
    try {
      built = exportCommand(spec, patients);
    } catch (err) {
      throw new JobInputError((err as Error).message);
    }
    const pipeline = built.pipeline.map((argv) => resolveArgs(argv, { OUT: e.output.path }));
    return { pipeline, env: Object.fromEntries(built.env.map((x) => [x.name, x.value])) };
  }

  #run(job: JobFile, pipeline: string[][], env: Record<string, string>, retry: boolean): void {
    const run: RunRecord = { started: new Date().toISOString(), host: hostname(), pipeline, retry };
    job.runs.push(run);
    const live: Live = { log: [], records: 0, running: undefined as unknown as RunningPipeline };
    const logFile = join(this.#dir, `${job.id}.log`);
    const note = (line: string) => {
      live.log.push(line);
      if (live.log.length > LOG_TAIL) live.log.shift();
      try {
        if (!existsSync(logFile) || statSync(logFile).size < LOG_FILE_LIMIT) appendFileSync(logFile, line + "\n", { mode: 0o600 });
      } catch {
        // the log file is a convenience; the ledger has the outcomes
      }
      this.#notify(job.id);
    };
    note(`${run.started} ${retry ? "retry" : "start"}: ${commandLine(pipeline)}`);
    live.running = startPipeline(pipeline, {
      cwd: this.#o.cwd,
      config: this.#o.config,
      env,
      onLog: (l: LogLine) => note(`${l.level === "info" ? "" : `${l.level}: `}${l.command ? `${l.command}: ` : ""}${l.message}`),
      onRecord: () => {
        live.records++;
        if (live.records % 50 === 1) this.#notify(job.id);
      },
    });
    run.pid = live.running.pid;
    this.#live.set(job.id, live);
    this.#save(job);
    const what = job.kind === "export" ? `export-plan, ${job.export!.selection.length} patient(s)` : job.command!.name;
    this.#o.log(`job ${job.id} ${retry ? "retried" : "started"} (${what}), pid ${run.pid ?? "?"}`);
    live.running.done.then((r) => {
      run.ended = new Date().toISOString();
      run.exitCode = r.exitCode;
      run.signal = r.signal;
      run.error = r.errors.at(-1);
      run.records = r.recordCount;
      this.#live.delete(job.id);
      this.#save(job);
      note(`${run.ended} ended: ${r.signal ? `killed by ${r.signal}` : `exit status ${r.exitCode}`}`);
      this.#o.log(`job ${job.id} ended: ${r.signal ? `killed by ${r.signal}` : `exit status ${r.exitCode}`}`);
    });
  }

  #notify(id: string): void {
    this.#snapshots.delete(id);
    for (const l of this.#listeners.get(id) ?? []) l();
  }

  #state(job: JobFile): JobState {
    if (this.#live.has(job.id)) return job.runs.at(-1)?.pid ? "running" : "starting";
    return exitState(job.runs.at(-1));
  }

  async #snapshot(id: string): Promise<JobSnapshot> {
    const job = this.#load(id);
    const live = this.#live.get(id);
    let state = this.#state(job);
    const runs = job.runs.map((r) => ({
      started: r.started, ended: r.ended, pid: r.pid, host: r.host, exitCode: r.exitCode, signal: r.signal, retry: r.retry,
      commandLine: commandLine(r.pipeline), error: r.error,
    }));
    const base = { id: job.id, title: job.title, kind: job.kind, created: job.created, out: job.out, ledger: job.ledger, runs };
    const log = live ? [...live.log] : this.#logTail(id);
    if (job.kind === "export") {
      let progress;
      try {
        progress = await exportProgress(job.ledger!, job.ledgerJob!, job.export!.selection);
      } catch (e) {
        const patients = pendingProgress(job.export!.selection);
        progress = { patients, totals: totalsOf(patients), workers: [], kinds: {}, active: false };
        log.push(`Cannot read the ledger: ${(e as Error).message}`);
      }
      // A worker of this job alive in the ledger (a process of an earlier server, another machine) is running it.
      if (progress.active && state !== "running") state = "running";
      return { ...base, state, active: state === "running" || state === "starting", totals: progress.totals, patients: progress.patients, workers: progress.workers, log, kinds: progress.kinds };
    }
    let counts;
    if (job.ledger) {
      try {
        counts = await ledgerCounts(job.ledger);
      } catch {
        counts = undefined;
      }
    }
    return {
      ...base, state, active: state === "running" || state === "starting", patients: [], workers: counts?.workers ?? [], log, kinds: counts?.kinds,
      records: live?.records ?? job.runs.at(-1)?.records, totals: totalsOf([]),
    };
  }

  #logTail(id: string): string[] {
    const path = join(this.#dir, `${id}.log`);
    if (!existsSync(path)) return [];
    const size = statSync(path).size;
    const want = Math.min(size, 64 * 1024);
    const buf = new Uint8Array(want);
    const fd = openSync(path, "r");
    try {
      readSync(fd, buf, 0, want, size - want);
    } finally {
      closeSync(fd);
    }
    const lines = new TextDecoder().decode(buf).split("\n").filter(Boolean);
    if (want < size) lines.shift();
    return lines.slice(-LOG_TAIL);
  }

  #load(id: string): JobFile {
    if (!/^[0-9a-f]{12}$/.test(id)) throw new JobInputError(`No job "${id}"`);
    const path = join(this.#dir, `${id}.json`);
    if (!existsSync(path)) throw new JobInputError(`No job "${id}"`);
    return JSON.parse(readFileSync(path, "utf8")) as JobFile;
  }

  #save(job: JobFile): void {
    const path = join(this.#dir, `${job.id}.json`);
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(job, null, 1), { mode: 0o600 });
    renameSync(tmp, path);
  }
}
