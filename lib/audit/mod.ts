/**
 * The audit trail: one event per patient and run for every export, retrieve, anonymize and push
 * (who, what, where, outcome), into the ledger and, optionally, to a syslog audit repository as
 * DICOM PS3.15 A.5 messages (IHE ATNA).
 * @module
 */
export { atnaMessage, xmlEscape } from "./atna.ts";
export {
  type AuditAction, type AuditEvent, type AuditOutcome, type AuditSink, type AuditSpec, AuditTrail, currentUser, localIso,
} from "./event.ts";
export { LedgerAuditSink } from "./ledger_sink.ts";
export { frame, parseSyslogUrl, SyslogSink, syslogMessage, type SyslogTarget } from "./syslog.ts";
