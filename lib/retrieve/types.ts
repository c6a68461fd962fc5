/**
 * The types the ways to retrieve share (plans in `planner.ts`; the whole patient, series and
 * instances in `patient.ts`), in a file of their own so neither imports the other.
 */
import type { DataSet } from "../dicom/dataset.ts";
import type { RtRecord } from "../records/types.ts";
import type { ArrivedObject } from "./arrivals.ts";

/** The Q/R operations the planner needs (Study Root); implemented over lib/net by `session.ts`. */
export interface RetrieveTransport {
  find(identifier: DataSet): Promise<DataSet[]>;
  /**
   * C-MOVE or C-GET of what the identifier selects; objects arrive in the ArrivalStore before it
   * resolves. `known.instances`: the series' instance count, when a C-FIND already said it.
   */
  retrieve(identifier: DataSet, known?: { instances?: number }): Promise<RetrieveOutcome>;
  /**
   * Set when each C-MOVE sends the objects to this AE title, not here (`--move-dest`): nothing
   * arrives, and the peer's sub-operation counts are all there is to report.
   */
  readonly destination?: string;
}

export interface RetrieveOutcome {
  status: number;
  completed: number;
  failed: number;
  warning: number;
  errorComment?: string;
  /** Failed SOP Instance UID List (0008,0058) of the final response, when the peer sent one. */
  failedInstances?: string[];
}

export interface PlanSelection {
  patientId: string;
  /** Plan labels to retrieve (RTPlanLabel, exact); all plans when empty. */
  planLabels?: string[];
  /** Only plans whose ApprovalStatus is APPROVED. */
  onlyApproved?: boolean;
  /**
   * Retrieve the image series (the structure sets' and those registrations relate them to);
   * default true. export-plan says false: it takes every image series with the patient.
   */
  images?: boolean;
}

/** One expected object or series that did not arrive. */
export interface Gap {
  /** What is missing: an RT object by its modality, an image (series), or an object of unknown kind (`--sop`). */
  kind: "RTPLAN" | "RTSTRUCT" | "IMAGE" | "RTDOSE" | "RTRECORD" | "RTIMAGE" | "REG" | "OBJECT";
  sopInstanceUid?: string;
  seriesUid?: string;
  /** An image series not known by UID: the frame of reference a registration names. */
  frameOfReferenceUid?: string;
  reason: string;
}

export interface PlanReport {
  planUid: string;
  label?: string;
  approval?: string;
  expected: number;
  arrived: number;
  missing: Gap[];
}

export interface SeriesReport {
  seriesUid: string;
  studyUid?: string;
  modality?: string;
  /** NumberOfSeriesRelatedInstances from the peer, when it answered it. */
  expected?: number;
  /** Instances written here; with a destination AE, the instances the peer says it sent (completed + warning). */
  arrived: number;
  missing: Gap[];
}

/** One instance asked for by SOP Instance UID (`--sop`). */
export interface InstanceReport {
  sopInstanceUid: string;
  studyUid?: string;
  seriesUid?: string;
  sopClassUid?: string;
  /** Written here; with a destination AE, sent there according to the peer. */
  arrived: boolean;
  missing: Gap[];
}

/** One C-MOVE to a destination AE (`--move-dest`) and the sub-operation counts the peer reported for it. */
export interface MoveReport {
  level: "SERIES" | "IMAGE";
  studyUid: string;
  seriesUid: string;
  sopInstanceUids?: string[];
  modality?: string;
  /** Instances the request should send, from C-FIND (the series count, or the UIDs asked for). */
  expected?: number;
  destination: string;
  /** Final status of the C-MOVE. */
  status: number;
  completed: number;
  failed: number;
  warning: number;
  failedInstances?: string[];
  errorComment?: string;
}

/** The `retrieve-summary` record. */
export interface RetrieveSummary extends RtRecord {
  type: "retrieve-summary";
  patientId: string;
  /**
   * What was asked for: the patient's plans (`--plan`, `--only-approved`), the whole patient (no
   * filter), or series and instances by UID (`--series`, `--sop`).
   */
  mode?: "plans" | "patient" | "uids";
  plans: PlanReport[];
  /** Requested plan labels no plan of the patient has. */
  missingLabels: string[];
  /**
   * Requested plan labels whose plans are all not approved, left out because only approved plans
   * were asked for (`--include-unapproved` takes them): skipped, not missing.
   */
  unapprovedLabels?: string[];
  /** Objects kept (written), and objects fetched only to be inspected and then dropped. */
  kept: number;
  inspectedAndDropped: number;
  /** Objects received that no request asked for (dropped). */
  unexpected: number;
  /** Objects received that belong to another patient (dropped, never written; each is a failed item). */
  otherPatient?: number;
  /** C-FIND/C-MOVE/C-GET requests sent. */
  requests: { find: number; retrieve: number };
  /** Whole patient, `--series`: expected vs arrived per series. */
  series?: SeriesReport[];
  /** `--sop`: each instance asked for. */
  instances?: InstanceReport[];
  /** Requests tried again after a transient failure, and series asked for by instance after failing as a whole. */
  resilience?: { retries: number; fallbacks: number };
  /** `--move-dest`: the AE title the objects were sent to. */
  destination?: string;
  /** `--move-dest`: every C-MOVE with the peer's sub-operation counts. */
  moves?: MoveReport[];
  /** Every expected object arrived, every requested label was found, and at least one plan was selected. */
  complete: boolean;
}

export interface RetrieveResult {
  /** Kept objects, with the plans each belongs to. */
  objects: { object: ArrivedObject; planUids: string[] }[];
  summary: RetrieveSummary;
  /** SOP Instance UIDs of objects that arrived but belong to another patient (dropped). */
  otherPatient: string[];
}
