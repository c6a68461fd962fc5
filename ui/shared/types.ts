/**
 * What the UI's server and its page exchange (JSON over HTTP and Server-Sent Events). Shared by
 * both sides: no runtime code, no imports of node: modules.
 */

/** One option of a command, as its definition (commands/<name>.ts `main.spec`) declares it. */
export interface CommandOptionInfo {
  /** `--out <dir>`, `-t, --tag <expr>`, `--no-verify`. */
  flags: string;
  long?: string;
  short?: string;
  /** The camelCase name the value is stored under (`calledAet`), as in rtexport.json. */
  attribute: string;
  description: string;
  /** The option takes a value (`<dir>`); otherwise it is a switch. */
  takesValue: boolean;
  /** The option may be given several times, each value kept (`--tag A --tag B`). */
  repeatable: boolean;
  /** `--no-x`: a switch that turns a default-on behaviour off. */
  negate: boolean;
  /** The command refuses to run without it. */
  mandatory: boolean;
  defaultValue?: string | number | boolean | string[];
  choices?: string[];
  /** The help group (`Peer options:`, `Common options:`), or undefined for the command's own. */
  group?: string;
  /** The value's placeholder in the flags (`dir`). */
  valueName?: string;
}

/** A positional argument of a command. */
export interface CommandArgumentInfo {
  name: string;
  description: string;
  required: boolean;
  variadic: boolean;
}

/** A command as the command builder shows it. */
export interface CommandInfo {
  name: string;
  summary: string;
  description?: string;
  examples: string[];
  options: CommandOptionInfo[];
  arguments: CommandArgumentInfo[];
}

/** A value the command builder holds for an option: a switch, one value, several, or a script variable. */
export type OptionValue = boolean | string | string[] | { var: string };

/** The command builder's state for one command. */
export interface CommandValues {
  options: Record<string, OptionValue>;
  /** Positional arguments (paths). */
  args: string[];
}

/** An argument of a generated command: literal text, or a variable the script declares (`OUT`). */
export type Arg = string | { var: string };

/** One line of a script: a pipeline of rtexport commands (each argv starts with the command name). */
export interface ScriptStep {
  comment?: string;
  pipeline: Arg[][];
}

/** A script's variables with their default values (the output folder). */
export interface ScriptVar {
  name: string;
  value: string;
  comment?: string;
}

/** What a script generator needs. */
export interface ScriptSpec {
  title: string;
  vars: ScriptVar[];
  steps: ScriptStep[];
  /** Environment variables the user must set before running (a catalog URL with a password). */
  env?: { name: string; why: string }[];
  /** Time the script was made (ISO 8601), written into its header. */
  created: string;
}

/** A DICOM peer in rtexport.json. */
export interface PeerEntry {
  host?: string;
  port?: number;
  calledAet?: string;
  callingAet?: string;
  tls?: boolean;
  ca?: string;
  cert?: string;
  key?: string;
  [field: string]: unknown;
}

/** A catalog database in rtexport.json (`catalogs`). */
export interface CatalogEntry {
  db: string;
  vault?: string;
  [field: string]: unknown;
}

/** A folder of DICOM files to list from (`folders`). */
export interface FolderEntry {
  path: string;
  [field: string]: unknown;
}

/** An output folder (`outputs`), with its ledger when it is not the default inside the folder. */
export interface OutputEntry {
  path: string;
  ledger?: string;
  [field: string]: unknown;
}

/** The sections of rtexport.json the UI edits. */
export interface UiConfig {
  path: string;
  exists: boolean;
  peers: Record<string, PeerEntry>;
  catalogs: Record<string, CatalogEntry>;
  folders: Record<string, FolderEntry>;
  outputs: Record<string, OutputEntry>;
  defaults: Record<string, unknown>;
  /** Problems with the file (a section of the wrong shape), as sentences. */
  warnings: string[];
}

/** The named sections the UI edits entry by entry. */
export type ConfigSection = "peers" | "catalogs" | "folders" | "outputs";

/** Where list-patients lists from: a named entry of one of the config sections. */
export interface SourceRef {
  kind: "catalog" | "folder" | "peer";
  name: string;
}

/** The list-patients filters the UI offers (the command's own flags). */
export interface ListFilters {
  patients?: string[];
  since?: string;
  statuses?: string[];
  includePhysician?: boolean;
  includeQa?: boolean;
  includeLot?: boolean;
  includeSetup?: boolean;
  includePhantom?: boolean;
  /** `--phantom-pattern`: patient ID or name patterns of phantom records (empty: the command's default). */
  phantomPatterns?: string[];
}

/** A plan as the patient list shows it (a list-patients `plan` record, trimmed). */
export interface PlanRow {
  planKey: string;
  planId?: string;
  planUid?: string;
  label?: string;
  name?: string;
  status?: string;
  approval?: string;
  machines?: string[];
  planType?: string;
}

/** A patient with its plans. */
export interface PatientRow {
  patientId: string;
  name?: { family?: string; given?: string };
  birthDate?: string;
  /** The records' `source` (it keys the patient's work item in the ledger). */
  source?: string;
  plans: PlanRow[];
}

/** A selected patient and the plans of it to export. */
export interface SelectedPatient {
  patientId: string;
  name?: { family?: string; given?: string };
  source?: string;
  plans: PlanRow[];
}

/** What list-patients gave: patients with their plans, and the problems it reported. */
export interface ListResult {
  commandLine: string;
  patients: PatientRow[];
  problems: string[];
  exitCode: number | null;
  /** More patients than the UI keeps were listed (the rest left out). */
  truncated: boolean;
}

/** What the export form sends to start a job. */
export interface ExportRequest {
  source: SourceRef;
  filters: ListFilters;
  selection: SelectedPatient[];
  output: string;
  /** export-plan's own options from the command builder (out, job, authorized-by are set by the UI). */
  exportValues: CommandValues;
  /** The person who authorized exporting the selected unapproved plans, and that they ticked it. */
  authorization?: { by: string; confirmed: boolean };
}

/** The state of a patient or plan on the dashboard. */
export type ItemState = "pending" | "running" | "done" | "failed" | "skipped" | "interrupted";

/** A plan's row on the dashboard. */
export interface PlanProgress {
  planKey: string;
  label?: string;
  approval?: string;
  state: ItemState;
  files: number;
  bytes: number;
  error?: string;
  authorizedBy?: string;
}

/** A patient's row on the dashboard. */
export interface PatientProgress {
  patientId: string;
  name?: { family?: string; given?: string };
  state: ItemState;
  /** The worker holding it: `host:pid`. */
  worker?: string;
  attempts: number;
  files: number;
  bytes: number;
  error?: string;
  plans: PlanProgress[];
}

/** A process working on the job, from the ledger's runs (lib/ledger/status.ts). */
export interface WorkerRow {
  host: string;
  pid: number | null;
  state: string;
  outcome: string | null;
  startedAt: string;
  lastHeartbeat: string | null;
  items: number;
  files: number;
  bytes: number;
  bytesPerSecond: number | null;
}

/** One process run of a job (a start or a retry). */
export interface JobRunInfo {
  started: string;
  ended?: string;
  pid?: number;
  host: string;
  exitCode?: number | null;
  signal?: string | null;
  /** The command line that ran, as a shell would show it. */
  commandLine: string;
  retry: boolean;
  /** The last error line the commands wrote. */
  error?: string;
}

/** What a job is doing: from its processes and its ledger. */
export type JobState = "starting" | "running" | "done" | "partial" | "failed" | "cancelled" | "killed";

/** A job in the list. */
export interface JobSummary {
  id: string;
  title: string;
  kind: "export" | "command";
  created: string;
  state: JobState;
}

/** Everything the dashboard shows of a job. */
export interface JobSnapshot extends JobSummary {
  out?: string;
  ledger?: string;
  runs: JobRunInfo[];
  /** True while a process of the job runs (here, or elsewhere according to the ledger). */
  active: boolean;
  totals: {
    patients: number;
    patientsDone: number;
    plans: number;
    plansDone: number;
    plansFailed: number;
    plansRunning: number;
    plansPending: number;
    plansSkipped: number;
    files: number;
    bytes: number;
    /** Bytes per second of the current run. */
    rate?: number;
    /** Seconds left, from the current run's pace. */
    eta?: number;
  };
  patients: PatientProgress[];
  workers: WorkerRow[];
  /** The last lines the job's commands wrote on stderr. */
  log: string[];
  /** Counts per ledger kind, for jobs that are not exports. */
  kinds?: Record<string, { done: number; failed: number; pending: number; skipped: number; bytes: number }>;
  /** Records the commands wrote (jobs that are not exports: the last ones). */
  records?: number;
}

/** The result of "test connection". */
export interface ProbeResult {
  ok: boolean;
  /** A short category: ok, refused, timeout, dns, rejected, tls, not-found, not-a-catalog, not-writable, … */
  kind: string;
  message: string;
  ms?: number;
}
