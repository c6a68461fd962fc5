/**
 * What `list-patients`' filters mean on each source, from what the source carries: the catalog's
 * columns (status, plan_type, is_phantom, updated_at), or what DICOM carries (Plan Intent, setup
 * beams, Quality Control Subject, dates) for a folder and a Q/R peer. A filter a source cannot
 * apply is refused ({@linkcode checkListFilter}), never ignored in silence.
 */
import { wildcardMatch } from "../dicom/wildcard.ts";

/**
 * Which patients and plans `list-patients` lists, the same for every source: IDs, updated since,
 * plan statuses, plan types and phantoms to include, phantom patterns.
 */
export interface ListFilter {
  patientIds?: string[];
  /** ISO date or date-time: only patients or plans updated since it (per source: docs/export.md). */
  since?: string;
  statuses?: string[];
  includePlanTypes?: string[];
  includePhantoms?: boolean;
  /**
   * Patient ID / name patterns of phantom records (`*`, `?`; case-insensitive), on top of what the
   * source says (the catalog's is_phantom, DICOM's Quality Control Subject). Default
   * {@linkcode DEFAULT_PHANTOM_PATTERNS}; `[""]` for none.
   */
  phantomPatterns?: string[];
  /**
   * Also plans whose approval is not APPROVED (seed 001: exporting an unapproved plan needs an
   * explicit authorization). Default: they are left out, as export-plan and retrieve leave them.
   */
  includeUnapproved?: boolean;
  /** Told about each plan left out for its approval (for a count on stderr). */
  onUnapproved?: (plan: { approval?: unknown }) => void;
  /**
   * Only plans with one of these plan IDs, plan UIDs or labels, each after its patient; a name no
   * listed plan has is reported as a problem. Applied by `listPatients` after the source's filters.
   */
  plans?: string[];
}

/** A source's row or patient that could not be used or found, reported rather than dropped. */
export interface ListProblem {
  type: "problem";
  problem: { what: string; reason: string };
  [field: string]: unknown;
}

/** Plan Intent (300A,000A) values of QA plans: left out unless QA plans are included. */
export const QA_PLAN_INTENTS: ReadonlySet<string> = new Set(["VERIFICATION", "MACHINE_QA", "QA"]);

/**
 * Patient ID / name patterns of phantom records when the config names none (`phantomPattern` in
 * rtexport.json, or `--phantom-pattern`): `*` and `?` wildcards, case-insensitive.
 */
export const DEFAULT_PHANTOM_PATTERNS: readonly string[] = ["*PHANTOM*"];

/**
 * A filter a source cannot apply, and why (the command turns it into a usage error). Thrown by
 * {@linkcode checkListFilter} and by `listPatients` before the source is opened.
 *
 * @example
 * ```ts
 * try {
 *   checkListFilter("dicom", { statuses: ["Completed"] });
 * } catch (e) {
 *   if (e instanceof ListFilterError) console.error(`${e.filter}: ${e.message}`);
 * }
 * ```
 */
export class ListFilterError extends Error {
  /** The filter's field in {@linkcode ListFilter} (`statuses`, `includePlanTypes`). */
  readonly filter: string;
  /** For `includePlanTypes`: the plan type refused. */
  readonly planType?: string;
  constructor(filter: string, message: string, planType?: string) {
    super(message);
    this.name = "ListFilterError";
    this.filter = filter;
    if (planType !== undefined) this.planType = planType;
  }
}

const SOURCE_NAMES = { folder: "a folder", dicom: "a DICOM Q/R peer", catalog: "a catalog" } as const;

/**
 * Throws a {@linkcode ListFilterError} for the first filter `from` cannot apply: plan statuses and
 * the physician and LOT simulation plan types are catalog notions DICOM does not carry; setup
 * plans cannot be told apart over C-FIND (a plan's beams are not queryable).
 *
 * @example
 * ```ts
 * checkListFilter("folder", { since: "2024-01-01" }); // fine
 * checkListFilter("folder", { statuses: ["Completed"] }); // throws: a folder's DICOM carries no plan status
 * ```
 */
export function checkListFilter(from: "catalog" | "folder" | "dicom", filter: ListFilter): void {
  if (from === "catalog") return;
  const where = SOURCE_NAMES[from];
  if (filter.statuses?.length) {
    throw new ListFilterError("statuses", `Plan statuses cannot be filtered on ${where}: DICOM carries no plan status (Deliverable, Completed, …); only a catalog has them`);
  }
  for (const t of filter.includePlanTypes ?? []) {
    const type = t.toUpperCase();
    if (type === "PHYSICIAN" || type === "LOT_SIMULATION") {
      throw new ListFilterError(
        "includePlanTypes", `${type === "PHYSICIAN" ? "Physician (contour-only)" : "LOT simulation"} plans are a catalog's plan type; ${where} has none to include`, type,
      );
    }
    if (type === "SETUP" && from === "dicom") {
      throw new ListFilterError("includePlanTypes", `Setup plans cannot be told apart on ${where} (C-FIND does not show a plan's beams): they are always listed`, type);
    }
  }
}

/**
 * True for a phantom record: DICOM's Quality Control Subject (0010,0200) says YES, or the patient
 * ID or a name component matches one of `patterns` (case-insensitive wildcards).
 *
 * @example
 * ```ts
 * isPhantom({ patientId: "QA-1", name: "Phantom^Head" }, DEFAULT_PHANTOM_PATTERNS); // true
 * isPhantom({ patientId: "12345", qualityControlSubject: "YES" }, []); // true
 * ```
 */
export function isPhantom(
  p: { patientId: string; name?: string; family?: string; given?: string; qualityControlSubject?: string },
  patterns: readonly string[],
): boolean {
  if (p.qualityControlSubject?.trim().toUpperCase() === "YES") return true;
  const values = [p.patientId, p.name, p.family, p.given].filter((v): v is string => !!v);
  // An empty pattern matches nothing: `--phantom-pattern ''` turns the default patterns off.
  return patterns.some((pattern) => pattern !== "" && values.some((v) => wildcardMatch(pattern, v, true)));
}

/**
 * The plan type DICOM tells (what the catalog's plan_type says): `QA` for a Plan Intent of
 * VERIFICATION, MACHINE_QA or QA, `SETUP` for a plan whose every beam is a setup beam; undefined
 * for a clinical plan.
 */
export function dicomPlanType(p: { planIntent?: string; setupOnly?: boolean }): "QA" | "SETUP" | undefined {
  if (p.planIntent && QA_PLAN_INTENTS.has(p.planIntent.trim().toUpperCase())) return "QA";
  if (p.setupOnly) return "SETUP";
  return undefined;
}

/** True when a plan of `type` is listed under `filter` (QA and setup plans only when included). */
export function planTypeIncluded(type: string | undefined, filter: ListFilter): boolean {
  if (type === undefined) return true;
  return (filter.includePlanTypes ?? []).some((t) => t.toUpperCase() === type);
}
