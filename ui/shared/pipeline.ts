/**
 * The command lines of the patient list builder: `list-patients` for a source and its filters,
 * and for a selection `list-patients … --patient ID --plan ID | export-plan …`. The flags come from
 * the commands' definitions (their attribute names are rtexport.json's keys), so the page's preview,
 * the scripts and the job the server starts are the same command lines.
 */
import { commandArgs } from "./argv.ts";
import type {
  Arg, CatalogEntry, CommandInfo, CommandValues, FolderEntry, ListFilters, OptionValue, OutputEntry, PeerEntry, PlanRow, ScriptSpec,
  ScriptStep, SelectedPatient, SourceRef, UiConfig,
} from "./types.ts";

/** The fields of a named peer that become flags (their attribute names are the config's keys). */
const PEER_FLAGS = ["host", "port", "calledAet", "callingAet", "tls", "ca", "cert", "key", "connectTimeout", "assocTimeout", "dimseTimeout", "maxPdu"] as const;

/** An environment variable a command line needs (a catalog URL that holds a password). */
export interface EnvNeed {
  name: string;
  value: string;
  why: string;
}

/** Command lines and what they need from the environment. */
export interface Built {
  pipeline: Arg[][];
  env: EnvNeed[];
}

/** True for a database URL with a password in it (`postgres://u:secret@host/db`). */
export function hasPassword(url: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\/[^/@:]*:[^/@]*@/i.test(url);
}

/** How a selected plan is named on the command line: its plan ID, else its UID, else its label. */
export function planSelector(plan: Pick<PlanRow, "planId" | "planUid" | "label">): string {
  return plan.planId ?? plan.planUid ?? plan.label ?? "";
}

/** True for a plan whose export needs an authorization (approval other than APPROVED). */
export function isUnapproved(plan: Pick<PlanRow, "approval">): boolean {
  return !!plan.approval && plan.approval !== "APPROVED";
}

function sourceEntry(config: UiConfig, source: SourceRef): PeerEntry | CatalogEntry | FolderEntry {
  const section = source.kind === "catalog" ? config.catalogs : source.kind === "folder" ? config.folders : config.peers;
  const entry = section[source.name];
  if (!entry) throw new Error(`No ${source.kind} named "${source.name}" in ${config.path}`);
  return entry;
}

function peerValues(peer: PeerEntry): Record<string, OptionValue> {
  const values: Record<string, OptionValue> = {};
  for (const f of PEER_FLAGS) {
    const v = peer[f];
    if (v === undefined || v === null || v === "") continue;
    values[f] = typeof v === "boolean" ? v : String(v);
  }
  return values;
}

/** The source's flags for list-patients, and what it needs from the environment. */
function sourceValues(config: UiConfig, source: SourceRef): { options: Record<string, OptionValue>; args: string[]; env: EnvNeed[] } {
  const entry = sourceEntry(config, source);
  if (source.kind === "catalog") {
    const c = entry as CatalogEntry;
    const secret = hasPassword(c.db);
    const options: Record<string, OptionValue> = { from: "catalog" };
    if (!secret) options.db = c.db;
    if (c.vault) options.vault = c.vault;
    const env = secret ? [{ name: "RTEXPORT_DB", value: c.db, why: "Set RTEXPORT_DB to the catalog's URL (it holds a password, so it is not written here)" }] : [];
    return { options, args: [], env };
  }
  if (source.kind === "folder") return { options: { from: "folder" }, args: [(entry as FolderEntry).path], env: [] };
  return { options: { from: "dicom", ...peerValues(entry as PeerEntry) }, args: [], env: [] };
}

function filterValues(filters: ListFilters): Record<string, OptionValue> {
  const v: Record<string, OptionValue> = {};
  if (filters.patients?.length) v.patient = filters.patients;
  if (filters.since) v.since = filters.since;
  if (filters.statuses?.length) v.status = filters.statuses;
  for (const k of ["includePhysician", "includeQa", "includeLot", "includeSetup", "includePhantom"] as const) if (filters[k]) v[k] = true;
  if (filters.phantomPatterns?.length) v.phantomPattern = filters.phantomPatterns;
  // The list shows every plan, unapproved ones too: the approval gate is export-plan's --authorized-by.
  v.includeUnapproved = true;
  return v;
}

const ALWAYS = ["from", "db", "vault", "host", "port", "calledAet", "callingAet", "out", "ledger", "job", "authorizedBy"];

/** `list-patients` for a source and filters (the patient list builder's "List patients"). */
export function listCommand(listInfo: CommandInfo, config: UiConfig, source: SourceRef, filters: ListFilters): Built {
  const s = sourceValues(config, source);
  const values: CommandValues = { options: { ...s.options, ...filterValues(filters) }, args: s.args };
  return { pipeline: [["list-patients", ...commandArgs(listInfo, values, ALWAYS)]], env: s.env };
}

/** What an export of a selection is made of. */
export interface ExportSpec {
  listInfo: CommandInfo;
  exportInfo: CommandInfo;
  config: UiConfig;
  source: SourceRef;
  /** The filters the list was made with (statuses and plan types decide what list-patients lists; patients are replaced by the selection's). */
  filters: ListFilters;
  output: OutputEntry;
  /** export-plan's options from the command builder. */
  exportValues: CommandValues;
  authorizedBy?: string;
  /** The ledger job (jobs started by the UI name their own). */
  job?: string;
}

/** The option attributes the patient list builder sets itself on export-plan. */
export const EXPORT_OWN = ["out", "ledger", "authorizedBy", "job", "includeUnapproved", ...PEER_FLAGS, "peer"];

/**
 * `list-patients … --patient ID… --plan ID… | export-plan --out "$OUT" …` for `patients` (a
 * selection, or part of it). `--authorized-by` is given only when one of the plans needs it; the
 * output folder is the variable `OUT`.
 */
export function exportCommand(spec: ExportSpec, patients: SelectedPatient[]): Built {
  const s = sourceValues(spec.config, spec.source);
  const listValues: CommandValues = {
    options: {
      ...s.options,
      ...filterValues({ ...spec.filters, patients: patients.map((p) => p.patientId), since: undefined }),
      plan: patients.flatMap((p) => p.plans.map(planSelector)),
    },
    args: s.args,
  };
  const own: Record<string, OptionValue> = {};
  for (const [k, v] of Object.entries(spec.exportValues.options)) if (!EXPORT_OWN.includes(k)) own[k] = v;
  own.out = { var: "OUT" };
  const env = [...s.env];
  if (spec.output.ledger && hasPassword(spec.output.ledger)) {
    // A password never goes on a command line (ps, logs, scripts): the commands read RTEXPORT_LEDGER.
    env.push({ name: "RTEXPORT_LEDGER", value: spec.output.ledger, why: "Set RTEXPORT_LEDGER to the ledger's URL (it holds a password, so it is not written here)" });
  } else if (spec.output.ledger) own.ledger = spec.output.ledger;
  if (spec.job) own.job = spec.job;
  if (spec.authorizedBy && patients.some((p) => p.plans.some(isUnapproved))) own.authorizedBy = spec.authorizedBy;
  if (spec.source.kind === "peer") Object.assign(own, peerValues(sourceEntry(spec.config, spec.source) as PeerEntry));
  const exportArgv = commandArgs(spec.exportInfo, { options: own, args: [] }, ALWAYS);
  return { pipeline: [["list-patients", ...commandArgs(spec.listInfo, listValues, ALWAYS)], ["export-plan", ...exportArgv]], env };
}

function planNames(p: SelectedPatient): string {
  return p.plans.map((q) => `${q.label ?? planSelector(q)}${isUnapproved(q) ? ` (${q.approval})` : ""}`).join(", ");
}

/**
 * The export of a selection as a script: one step per patient (`per: "patient"`, as DicomTools
 * writes its batch files), one per plan, or one for all.
 */
export function exportScript(spec: ExportSpec, selection: SelectedPatient[], per: "patient" | "plan" | "all", created: string): ScriptSpec {
  const groups: { comment: string; patients: SelectedPatient[] }[] = [];
  if (per === "all") groups.push({ comment: `${selection.length} patient(s)`, patients: selection });
  else if (per === "patient") for (const p of selection) groups.push({ comment: `patient ${p.patientId}: ${planNames(p)}`, patients: [p] });
  else {
    for (const p of selection) {
      for (const q of p.plans) groups.push({ comment: `patient ${p.patientId}, plan ${planNames({ ...p, plans: [q] })}`, patients: [{ ...p, plans: [q] }] });
    }
  }
  const steps: ScriptStep[] = [];
  let env: EnvNeed[] = [];
  for (const g of groups) {
    const built = exportCommand({ ...spec, job: undefined }, g.patients);
    env = built.env;
    steps.push({ comment: g.comment, pipeline: built.pipeline });
  }
  const plans = selection.reduce((n, p) => n + p.plans.length, 0);
  const unapproved = selection.flatMap((p) => p.plans.filter(isUnapproved));
  const title = `Export of ${selection.length} patient(s), ${plans} plan(s)` +
    (unapproved.length && spec.authorizedBy ? `; ${unapproved.length} unapproved plan(s) authorized by ${spec.authorizedBy}` : "");
  return {
    title,
    created,
    vars: [{ name: "OUT", value: spec.output.path, comment: "the export folder (patient folders go under it)" }],
    env: env.map((e) => ({ name: e.name, why: e.why })),
    steps,
  };
}
