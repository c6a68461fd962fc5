/**
 * What every retrieval planner asks a Q/R peer through: C-FIND and C-MOVE/C-GET identifiers that
 * always name the patient (PatientID below the patient level, issue 12), answers of another
 * patient left out, requests counted, and with a C-MOVE to another AE each request's
 * sub-operation counts kept for the report.
 */
import type { DataSet } from "../dicom/dataset.ts";
import { forPatient, identifier } from "../qr/identifier.ts";
import type { MoveReport, RetrieveOutcome, RetrieveTransport } from "./types.ts";

const PATIENT_ID = 0x00100020;

/** One retrieval's questions to the peer, all about one patient. */
export class PatientQueries {
  readonly requests = { find: 0, retrieve: 0 };
  /** With `transport.destination`: every C-MOVE sent, with what the peer reported. */
  readonly moves: MoveReport[] = [];
  readonly transport: RetrieveTransport;
  readonly patientId: string;

  constructor(transport: RetrieveTransport, patientId: string) {
    this.transport = transport;
    this.patientId = patientId;
  }

  /** The C-MOVE destination when the objects go to another AE (nothing arrives here). */
  get destination(): string | undefined {
    return this.transport.destination;
  }

  /**
   * C-FIND with PatientID set. An answer that names another patient is left out: a peer that
   * ignores the PatientID key below the study level (dcmqrscp) may still say whose series it is.
   */
  async find(fields: Record<string, string | DataSet[]>): Promise<DataSet[]> {
    this.requests.find++;
    const answers = await this.transport.find(forPatient(identifier(fields), this.patientId));
    return answers.filter((a) => this.samePatient(a));
  }

  /** C-MOVE/C-GET with PatientID set; with a destination AE, the request and its counts are kept for the report. */
  async retrieve(
    fields: Record<string, string>,
    known: { instances?: number } | undefined,
    what: Pick<MoveReport, "level" | "studyUid" | "seriesUid" | "sopInstanceUids" | "modality" | "expected">,
  ): Promise<RetrieveOutcome> {
    this.requests.retrieve++;
    const id = forPatient(identifier(fields), this.patientId);
    const outcome = await this.transport.retrieve(id, known);
    if (this.destination) this.record(what, outcome);
    return outcome;
  }

  private record(what: Pick<MoveReport, "level" | "studyUid" | "seriesUid" | "sopInstanceUids" | "modality" | "expected">, o: RetrieveOutcome): void {
    const m: MoveReport = { ...what, destination: this.destination!, status: o.status, completed: o.completed, failed: o.failed, warning: o.warning };
    for (const k of Object.keys(m) as (keyof MoveReport)[]) if (m[k] === undefined) delete m[k];
    if (o.failedInstances?.length) m.failedInstances = o.failedInstances;
    if (o.errorComment) m.errorComment = o.errorComment;
    this.moves.push(m);
  }

  private samePatient(answer: DataSet): boolean {
    const id = answer.string(PATIENT_ID);
    return id === undefined || id.trim() === this.patientId.trim();
  }
}

/** Why a retrieve failed, from its final status (undefined: it did not). */
export function failure(o: RetrieveOutcome | undefined): string | undefined {
  return o && (o.failed > 0 || (o.status !== 0 && (o.status & 0xf000) !== 0xb000))
    ? `retrieve status 0x${o.status.toString(16).padStart(4, "0")}${o.errorComment ? ` (${o.errorComment})` : ""}`
    : undefined;
}

/** The peer's sub-operation counts of a request, as words. */
export function counts(o: RetrieveOutcome): string {
  return `${o.completed} completed, ${o.failed} failed, ${o.warning} warning`;
}
