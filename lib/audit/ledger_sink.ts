/** Audit events into the ledger (table `rtx_ledger_audit`), beside the run that made them. */
import type { Ledger } from "../ledger/ledger.ts";
import type { AuditEvent, AuditSink } from "./event.ts";

/**
 * Writes audit events to a ledger (it stays open: whoever opened it closes it).
 *
 * @example
 * ```ts
 * const ledger = await Ledger.open("sqlite:push.sqlite", "my-script");
 * const trail = new AuditTrail({ action: "push", source: "export/", destination: "PACS@pacs:104", runId: ledger.runId }, [new LedgerAuditSink(ledger)]);
 * // … trail.onEvent / trail.onRecord while the stage runs …
 * await trail.finish();
 * await ledger.close();
 * ```
 */
export class LedgerAuditSink implements AuditSink {
  readonly #ledger: Ledger;
  constructor(ledger: Ledger) {
    this.#ledger = ledger;
  }
  async write(events: AuditEvent[]): Promise<void> {
    await this.#ledger.appendAudit(events.map((e) => ({
      at: e.time,
      action: e.action,
      user_name: e.user,
      host: e.host,
      patient_id: e.patientId ?? null,
      studies: JSON.stringify(e.studies),
      objects: e.objects,
      failed: e.failed,
      bytes: e.bytes,
      source: e.source,
      dest: e.destination,
      outcome: e.outcome,
      outcome_text: e.outcomeText ?? null,
    })));
  }
}
