/**
 * The audit trail: every export, retrieve, anonymize and push of patient data leaves one audit
 * event per patient and run (who: user and host; what: patient, studies, object counts; where:
 * source and destination; outcome). An {@link AuditTrail} watches a stage's events and records
 * (it is fed where every stage runs, not by each command) and hands the events to its sinks: the
 * ledger, and DICOM PS3.15 A.5 messages over syslog.
 */
import { hostname, userInfo } from "node:os";
import process from "node:process";
import type { RtRecord } from "../records/types.ts";
import type { StageEvent } from "../stage/stage.ts";

/** What was done to patient data. */
export type AuditAction = "export" | "retrieve" | "anonymize" | "push" | "copy";

/** PS3.15 A.5.3 outcome: success (0), minor failure (4: some items failed), serious failure (8: the run failed). */
export type AuditOutcome = "success" | "minor-failure" | "serious-failure";

/** One audit event: one patient in one run (or the run itself when it failed before any patient). */
export interface AuditEvent {
  action: AuditAction;
  /** When the event was recorded (ISO 8601, local offset). */
  time: string;
  /** Who: the operating-system user running the command, and the host. */
  user: string;
  host: string;
  /** The ledger run, when there is one. */
  runId?: string;
  patientId?: string;
  /** Studies touched, with instance counts per SOP class. */
  studies: { uid: string; sopClasses: Record<string, number> }[];
  /** Items done, failed; bytes moved. */
  objects: number;
  failed: number;
  bytes: number;
  /** Where from and where to: a peer (`AE@host:port`), a folder, a catalog. */
  source: string;
  destination: string;
  outcome: AuditOutcome;
  /** The first failure reason, for minor and serious failures. */
  outcomeText?: string;
  /** True when the result is de-identified (anonymize). */
  anonymized?: boolean;
}

/** Where audit events go. */
export interface AuditSink {
  write(events: AuditEvent[]): Promise<void>;
  close?(): Promise<void>;
}

/** What an audit trail needs to know about the run. */
export interface AuditSpec {
  action: AuditAction;
  source: string;
  destination: string;
  anonymized?: boolean;
  /** Defaults: the operating-system user and this host. */
  user?: string;
  host?: string;
  runId?: string;
}

interface PatientTally {
  done: number;
  failed: number;
  bytes: number;
  firstFailure?: string;
  studies: Map<string, Map<string, number>>;
}

/** The current operating-system user (the environment's, when the account has no name). */
export function currentUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? process.env.USERNAME ?? "unknown";
  }
}

/** The outcome a record says its item had, for stages that put it on the record. */
function recordFailed(r: RtRecord): boolean {
  for (const k of ["push", "export", "anonymized", "copy"]) {
    const v = r[k] as { status?: string } | undefined;
    if (v && typeof v === "object" && (v.status === "failed" || v.status === "skipped")) return true;
  }
  return typeof r.error === "string";
}

/**
 * Builds audit events from what a stage reports. Feed it every stage event (`onEvent`) and every
 * record the stage yields (`onRecord`); `finish` makes one event per patient and sends them.
 *
 * @example
 * ```ts
 * const trail = new AuditTrail({ action: "push", source: "export/", destination: "PACS@pacs:104" }, [sink]);
 * for await (const r of pushRecords(input, { peer, onEvent: (e) => trail.onEvent(e) })) trail.onRecord(r);
 * await trail.finish();
 * ```
 */
export class AuditTrail {
  readonly spec: AuditSpec;
  readonly #sinks: AuditSink[];
  readonly #patients = new Map<string, PatientTally>();
  #finished = false;

  constructor(spec: AuditSpec, sinks: AuditSink[]) {
    this.spec = spec;
    this.#sinks = sinks;
  }

  #tally(patientId: string | undefined): PatientTally {
    const key = patientId ?? "";
    let t = this.#patients.get(key);
    if (!t) this.#patients.set(key, t = { done: 0, failed: 0, bytes: 0, studies: new Map() });
    return t;
  }

  /** Counts a stage event (done and failed items per patient). */
  onEvent(e: StageEvent): void {
    if (e.type === "done") {
      const t = this.#tally(e.patientId);
      t.done++;
      t.bytes += e.bytes ?? 0;
    } else if (e.type === "failed") {
      const t = this.#tally(e.patientId);
      t.failed++;
      t.firstFailure ??= e.reason;
    }
  }

  /** Notes the study and SOP class of a DICOM file record the stage yielded (what it acted on). */
  onRecord(r: RtRecord): void {
    // De-identified records name other patients and studies than the events may (retrieve
    // --anonymize reports the originals): their studies are not counted.
    if (this.spec.anonymized) return;
    if (r.type !== "file" || typeof r.studyUid !== "string" || recordFailed(r)) return;
    const patientId = typeof r.patientId === "string" ? r.patientId : undefined;
    const t = this.#tally(patientId);
    let study = t.studies.get(r.studyUid);
    if (!study) t.studies.set(r.studyUid, study = new Map());
    const cls = typeof r.sopClassUid === "string" ? r.sopClassUid : "";
    study.set(cls, (study.get(cls) ?? 0) + 1);
  }

  /**
   * Makes the events (one per patient; one for the run when nothing was counted and `error` says
   * why it failed) and writes them to every sink. Once only; a sink that fails does not keep the
   * others from getting the events: the first error is thrown after all were tried.
   */
  async finish(error?: string): Promise<AuditEvent[]> {
    if (this.#finished) return [];
    this.#finished = true;
    const base = {
      action: this.spec.action,
      time: localIso(new Date()),
      user: this.spec.user ?? currentUser(),
      host: this.spec.host ?? hostname(),
      source: this.spec.source,
      destination: this.spec.destination,
    };
    const events: AuditEvent[] = [];
    for (const [patientId, t] of this.#patients) {
      if (t.done === 0 && t.failed === 0 && t.studies.size === 0) continue;
      const outcome: AuditOutcome = error !== undefined ? "serious-failure" : t.failed > 0 ? "minor-failure" : "success";
      const ev: AuditEvent = {
        ...base,
        studies: [...t.studies].map(([uid, classes]) => ({ uid, sopClasses: Object.fromEntries(classes) })),
        objects: t.done,
        failed: t.failed,
        bytes: t.bytes,
        outcome,
      };
      if (patientId !== "") ev.patientId = patientId;
      const why = error ?? t.firstFailure;
      if (outcome !== "success" && why !== undefined) ev.outcomeText = why;
      this.#decorate(ev);
      events.push(ev);
    }
    if (events.length === 0 && error !== undefined) {
      const ev: AuditEvent = { ...base, studies: [], objects: 0, failed: 0, bytes: 0, outcome: "serious-failure", outcomeText: error };
      this.#decorate(ev);
      events.push(ev);
    }
    let first: unknown;
    for (const sink of this.#sinks) {
      try {
        if (events.length) await sink.write(events);
      } catch (e) {
        first ??= e;
      }
    }
    for (const sink of this.#sinks) {
      try {
        await sink.close?.();
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw first;
    return events;
  }

  #decorate(ev: AuditEvent): void {
    if (this.spec.runId) ev.runId = this.spec.runId;
    if (this.spec.anonymized) ev.anonymized = true;
  }
}

/** ISO 8601 with the local offset (2025-03-04T06:29:58.123+01:00), as audit records want. */
export function localIso(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? "+" : "-";
  const abs = Math.abs(off);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}${sign}${p(Math.floor(abs / 60))}:${p(abs % 60)}`;
}
