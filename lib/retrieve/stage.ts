/**
 * The retrieve stage: a patient's selected plans (or whole series) from a Q/R peer into an output
 * tree, with the gap report as events, ledger rows and a closing `retrieve-summary` record. The
 * command line, a script and the web UI run this one function.
 */
import { rmSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import process from "node:process";
import type { AnonymizeContext, AnonymizeOptions } from "../anonymize/anonymize.ts";
import type { LedgerEntry } from "../ledger/ledger.ts";
import { removeStale } from "../fs/stale.ts";
import type { AllowEntry } from "../net/mod.ts";
import { peerLabel, peerTimeouts, type PeerSettings, tlsFromFiles } from "../net/peer.ts";
import type { FileRecord, RtRecord } from "../records/types.ts";
import { type StageEvent, type StageOptions, StageReport, untilAborted } from "../stage/stage.ts";
import type { RetryPolicy } from "../net/retry.ts";
import type { Pacer } from "../stage/pace.ts";
import type { PatientRewrite } from "./output.ts";
import type { Gap, RetrieveSummary } from "./types.ts";
import { retrieveFiles } from "./retrieve.ts";

/** Options of the retrieve stage. */
export interface RetrieveRecordsOptions extends StageOptions {
  /** The Q/R peer (timeouts in seconds, TLS material as PEM file paths). */
  peer: PeerSettings;
  /** PatientID (0010,0020) of the patient to retrieve. */
  patientId: string;
  /** RT Plan Labels to retrieve (exact; default: every plan of the patient). */
  plans?: string[];
  /**
   * With `plans`: also plans whose Approval Status is not APPROVED (an explicit authorization, as
   * export-plan's and list-patients' `includeUnapproved`). Default: approved plans only. The whole
   * patient (no `plans`, `onlyApproved`, `series`, `sops`) selects no plans and has them all.
   */
  includeUnapproved?: boolean;
  /** Only plans whose Approval Status is APPROVED (selective without `plans`: every approved plan); with `plans` the default. */
  onlyApproved?: boolean;
  /** Whole series by Series Instance UID instead of plans (not with `plans` or `onlyApproved`). */
  series?: string[];
  /**
   * Instances by SOP Instance UID instead of plans (not with `plans` or `onlyApproved`; may go
   * with `series`). Without `plans`, `onlyApproved`, `series` and `sops`: the whole patient.
   */
  sops?: string[];
  /** Retries of transient failures (default none). */
  retry?: RetryPolicy;
  /** Time windows and rate limits, applied between requests (the session is released while a window is closed). */
  pace?: Pacer;
  /** C-GET on the query association; otherwise C-MOVE to an in-process storage SCP. */
  get?: boolean;
  /** C-MOVE destination AE title (default: the peer's calling AE title). */
  moveAet?: string;
  /**
   * C-MOVE to this third AE title (one the peer knows: a file service, a PACS) instead of here:
   * no receiver is opened and nothing is written; each request is a `done` or `failed` item with
   * the peer's sub-operation counts (the summary's `moves`). Not with `plans`, `onlyApproved`,
   * `get`, `rewrite` or `anonymize`; `out` is not needed.
   */
  moveDest?: string;
  /** Port of the C-MOVE receiver (default 11113; 0: any free port). */
  movePort?: number;
  /** Listen address of the C-MOVE receiver (default: the local address of the connection to the peer). */
  moveHost?: string;
  /** Callers the C-MOVE receiver accepts (default: the peer's AE title from the peer's address). */
  moveFrom?: (string | AllowEntry)[];
  /** C-FIND matches kept per query; a peer that sends more fails the query (default 50,000). */
  maxFindResults?: number;
  /** Associations a large series may be retrieved over at once (default 1). */
  parallel?: number;
  /** The output folder: `<out>/<PatientID>/<Study>/<Series>/<SOP>.dcm` (required unless `moveDest`). */
  out?: string;
  /** New PatientID / PatientName written into the copies (ignored with `anonymize`: set its `newPatientId`). */
  rewrite?: PatientRewrite;
  /**
   * De-identify what arrives before it is written under `out` (the anonymize stage, `uid`
   * layout); objects are retrieved into a staging folder under `out/.rtexport` that is removed at
   * the end, so no identifying copy stays under `out`. The `retrieve-summary` record and the
   * ledger rows then carry the new patient ID and UIDs too, and each file record's
   * `anonymized.from` names the peer (the events name the originals, for the person running the
   * retrieve).
   */
  anonymize?: AnonymizeOptions;
}

/**
 * The retrieve stage: input records pass through first, unchanged; then the retrieval runs
 * (selective with `plans`/`onlyApproved`, by UID with `series`/`sops`, else the whole patient)
 * and every object written under `out` comes out as a `file` record (a `done` event and a
 * ledger row of kind `file` each), followed by the `retrieve-summary` record. The gap report is
 * events: a message per plan or series (info when complete, warn when not) and a `failed` event
 * and a ledger row (kind `retrieval`) per gap (an object or series that did not arrive, a label
 * no plan has, no plan selected, nothing found), so an incomplete retrieve ends with failures
 * counted. An object of another patient that arrives is dropped and is a `failed` item naming
 * its UID. With `moveDest` each C-MOVE is an item instead, done or failed by the peer's counts.
 * A peer that cannot be reached, or refuses the association, throws.
 *
 * @example
 * ```ts
 * const peer = { host: "pacs", port: 104, callingAet: "RTEXPORT", calledAet: "PACS" };
 * for await (const r of retrieveRecords([], { peer, patientId: "123", plans: ["Prostate"], get: true, out: "export" })) {
 *   if (r.type === "retrieve-summary") console.log(r.complete);
 * }
 * ```
 */
export async function* retrieveRecords(input: AsyncIterable<RtRecord> | Iterable<RtRecord>, options: RetrieveRecordsOptions): AsyncGenerator<RtRecord> {
  const report = new StageReport("retrieve", options);
  let staging: string | undefined;
  try {
    for await (const r of untilAborted(input, options.signal)) yield r;
    if (options.signal?.aborted) return;
    if ((options.series?.length || options.sops?.length) && (options.plans?.length || options.onlyApproved)) {
      throw new Error("Cannot retrieve: series or instances by UID cannot be combined with plan labels or only approved plans");
    }
    if (options.moveDest && (options.anonymize || options.rewrite?.patientId !== undefined || options.rewrite?.patientName !== undefined)) {
      throw new Error(`Cannot retrieve: objects sent to "${options.moveDest}" cannot be anonymized or rewritten (they never arrive here)`);
    }
    if (!options.out && !options.moveDest) throw new Error("Cannot retrieve: no output folder");
    const outDir = resolve(options.out ?? ".");
    if (options.out) removeStale(join(outDir, ".rtexport"), /^retrieve-staging-(\d+)$/); // left by a run that was killed
    // One default across list-patients, export-plan and retrieve: where plans are selected (by
    // label or with onlyApproved), unapproved ones only when asked for. The whole patient (no
    // selection) is every series the peer has, whatever its plans' approval.
    const onlyApproved = options.onlyApproved ?? (options.plans?.length ? !options.includeUnapproved : false);
    const ctx = options.anonymize ? await anonymizeContext(options.anonymize) : undefined;
    if (ctx) staging = join(outDir, ".rtexport", `retrieve-staging-${process.pid}`);
    const run: Run = { options, report, source: `dicom:${peerLabel(options.peer)}`, ctx, rows: [] };
    let summary: RetrieveSummary | undefined;
    const retrieved = retrieveFiles({
      host: options.peer.host, port: options.peer.port, callingAet: options.peer.callingAet, calledAet: options.peer.calledAet,
      patientId: options.patientId, plans: options.plans, onlyApproved, series: options.series,
      retry: options.retry, pace: options.pace, signal: options.signal,
      onMessage: (level, text) => report.message(level, text),
      onPhase: (note) => report.progress(undefined, note),
      sops: options.sops, get: options.get === true, moveAet: options.moveAet, movePort: options.movePort ?? 11113, moveHost: options.moveHost,
      moveFrom: options.moveFrom, moveDest: options.moveDest, maxFindResults: options.maxFindResults,
      parallel: options.parallel, out: options.moveDest ? undefined : staging ?? outDir, rewrite: ctx ? {} : options.rewrite ?? {},
      maxPdu: options.peer.maxPdu, timeouts: peerTimeouts(options.peer), tls: tlsFromFiles(options.peer),
      onTotal: (objects) => report.progress({ items: objects }),
      onReceiver: (port, host) => {
        if (!options.get) {
          const tls = options.peer.tls ? " (TLS)" : "";
          report.message("info", `receiving C-MOVE objects as ${options.moveAet ?? options.peer.callingAet} on ${host ?? ""}:${port}${tls}`);
        }
      },
      onError: (uid, message) => writeFailed(run, uid, `Cannot write object ${uid}: ${message}`, "Cannot write object"),
      // Named by its UID only: the other patient's ID and name stay out of the report.
      onOtherPatient: (uid) =>
        writeFailed(run, uid, `Cannot keep object ${uid}: it belongs to another patient (its PatientID is not "${options.patientId}"); dropped, not written`, "Cannot keep object"),
    });
    const stored = new Map<string, string>(); // how the anonymize stage names a staged file → its SOP Instance UID
    let placed: AsyncIterable<RtRecord> = filesOf(retrieved, stored, (s) => (summary = s));
    if (ctx) {
      const { anonymizeRecords } = await import("../anonymize/stage.ts");
      placed = anonymizeRecords(placed, {
        ...ctx.options, context: ctx, out: outDir, signal: options.signal,
        onEvent: (e) => relayAnonymizeEvent(run, e, stored),
      });
    }
    for await (const r of untilAborted(placed, options.signal)) {
      await writeRows(run);
      // The staging path names the original patient and UIDs, and is gone once the stage ends.
      const f = (ctx ? { ...r, anonymized: { from: run.source } } : r) as FileRecord;
      const planKey = typeof f.planUid === "string" ? f.planUid : undefined;
      report.done(`"${f.path}"`, { bytes: f.bytes, patientId: f.patientId, planKey });
      await queueRow(run, withFields({
        kind: "file", key: relative(outDir, f.path).split(sep).join("/"), status: "done", source: run.source, dest: f.path,
      }, { bytes: f.bytes, sha256: f.sha256, patientId: f.patientId, planKey }), `"${f.path}"`);
      yield f;
    }
    await writeRows(run);
    if (summary && !options.signal?.aborted) {
      const shown = ctx ? anonymizeSummary(summary, ctx) : summary;
      await reportSummary(run, summary, shown);
      yield shown;
    }
  } finally {
    if (staging) rmSync(staging, { recursive: true, force: true });
    report.finish();
  }
}

/**
 * The file records of a retrieval; its closing summary goes to `onSummary`. Each file's name in
 * the anonymize stage's events (its quoted path) is kept with its SOP Instance UID in `stored`.
 */
async function* filesOf(
  retrieved: AsyncIterable<FileRecord | RetrieveSummary>,
  stored: Map<string, string>,
  onSummary: (s: RetrieveSummary) => void,
): AsyncGenerator<RtRecord> {
  for await (const r of retrieved) {
    if (r.type === "retrieve-summary") onSummary(r as RetrieveSummary);
    else {
      stored.set(`"${r.path}"`, String(r.sopInstanceUid));
      yield r;
    }
  }
}

/** What the stage's helpers share for one run. */
interface Run {
  options: RetrieveRecordsOptions;
  report: StageReport;
  /** `dicom:AE@host:port`, the ledger rows' source. */
  source: string;
  /** The anonymization context, with `anonymize`. */
  ctx?: AnonymizeContext;
  /** Ledger rows of failures reported from callbacks, written at the stage's next step. */
  rows: LedgerEntry[];
  /** Set when a write failed with a full disk (the ledger's own error may hide it). */
  diskFull?: boolean;
  /** Set once the ledger could not be written: no further rows are tried. */
  ledgerBroken?: boolean;
}

async function writeRows(run: Run): Promise<void> {
  for (const row of run.rows.splice(0)) await queueRow(run, row, "a failed object");
}

/**
 * Queues one ledger row; a ledger that cannot be written (its disk is full) is one failure with
 * the cause, and the retrieval goes on without it rather than ending in a crash.
 */
async function queueRow(run: Run, row: LedgerEntry, what: string): Promise<void> {
  if (!run.options.ledger || run.ledgerBroken) return;
  try {
    await run.options.ledger.queue(row);
  } catch (e) {
    run.ledgerBroken = true;
    const m = (e as Error).message ?? String(e);
    const cause = run.diskFull || /ENOSPC|disk is full|database or disk/i.test(m) ? "no space left on device" : m;
    run.report.failed("the ledger", `Cannot record ${what} in the ledger (no further rows are written): ${cause}`);
  }
}

/** The anonymizer (its profile tables) is loaded only when asked for: it would double retrieve's start-up. */
async function anonymizeContext(options: AnonymizeOptions): Promise<AnonymizeContext> {
  const { createAnonymizeContext } = await import("../anonymize/anonymize.ts");
  return createAnonymizeContext(options);
}

/** An anonymize event of a staged object, as an event of the retrieve (named by its SOP Instance UID, not its staging path). */
function relayAnonymizeEvent(run: Run, e: StageEvent, stored: Map<string, string>): void {
  if (e.type === "failed") {
    const uid = stored.get(e.item) ?? e.item;
    writeFailed(run, uid, `Cannot anonymize object "${uid}": ${e.reason}`, "Cannot anonymize object");
  } else if (e.type === "skipped") {
    run.report.skipped(`object "${stored.get(e.item) ?? e.item}"`, e.why, e.reason);
  } else if (e.type === "message") {
    run.report.message(e.level, e.text);
  }
}

/**
 * An object that arrived but could not be written: a failed item, and a ledger row. With
 * `anonymize` the row names the object by its new UID only (`what`), since the reason names
 * the original object and its staging path.
 */
function writeFailed(run: Run, uid: string, reason: string, what: string): void {
  if (/ENOSPC|no space left/i.test(reason)) run.diskFull = true;
  run.report.failed(`object ${uid}`, reason);
  const h = hide(run.ctx);
  const patientId = h.patient(run.options.patientId);
  run.rows.push({
    kind: "retrieval", key: `${patientId}|object|${h.uid(uid)}`, status: "failed", patientId, source: run.source,
    error: run.ctx ? `${what} ${h.uid(uid)}` : reason,
  });
}

/**
 * The gap report: a message per plan or series, and per gap a failed event and a ledger row.
 * `summary` names what the events say (the originals); `stored` is the summary as it is yielded
 * (with `anonymize`, de-identified), whose values the ledger rows take.
 */
async function reportSummary(run: Run, summary: RetrieveSummary, stored: RetrieveSummary): Promise<void> {
  const level = summary.complete ? "info" : "warn";
  const shown = reportEntries(summary);
  const kept = reportEntries(stored);
  for (const [i, entry] of shown.entries()) {
    if (entry.type === "message") {
      run.report.message(entry.level ?? level, entry.text);
      continue;
    }
    if (entry.type === "skip") {
      run.report.skipped(entry.item, "unapproved", entry.reason, { patientId: summary.patientId });
      continue;
    }
    const row = kept[i] as GapEntry | DoneEntry;
    if (entry.type === "done") {
      run.report.done(entry.item, { patientId: summary.patientId });
      await queueRow(run, { kind: "retrieval", key: row.key, status: "done", patientId: stored.patientId, source: run.source }, entry.item);
      continue;
    }
    run.report.failed(entry.item, entry.reason, { patientId: summary.patientId, planKey: entry.planKey });
    await queueRow(run, withFields({
      kind: "retrieval", key: row.key, status: "failed", patientId: stored.patientId, source: run.source, error: (row as GapEntry).error,
    }, { planKey: (row as GapEntry).planKey }), "a missing object");
  }
}

type GapEntry = { type: "gap"; item: string; reason: string; key: string; planKey?: string; error: string };
/** A request that did what was asked (a C-MOVE to another AE): a done item and a ledger row. */
type DoneEntry = { type: "done"; item: string; key: string };
/** A plan asked for by label and left out because it is not approved: a skip, as in export-plan. */
type SkipEntry = { type: "skip"; item: string; reason: string };
type ReportEntry = { type: "message"; text: string; level?: "info" | "warn" } | GapEntry | DoneEntry | SkipEntry;

/**
 * The gap report of a summary, in order: each plan's (or series', or C-MOVE's) headline, then
 * its gaps; labels no plan has; no plan selected or nothing found; the closing line. A gap's item
 * names what is missing for people (`RTDOSE 1.2.3 of plan "Plan1"`); its ledger key is
 * `<patient>|<plan or series>|<what>`.
 */
function reportEntries(s: RetrieveSummary): ReportEntry[] {
  const out: ReportEntry[] = [];
  const gap = (item: string, g: Gap, key: string, planKey?: string) =>
    out.push({ type: "gap", item, reason: g.reason, key, error: `${g.kind}: ${g.reason}`, ...(planKey ? { planKey } : {}) });
  for (const p of s.plans) {
    const name = p.label !== undefined ? `"${p.label}"` : p.planUid;
    out.push({ type: "message", text: `plan ${name}${p.approval ? ` (${p.approval})` : ""}: ${p.arrived} of ${p.expected} expected objects arrived` });
    for (const g of p.missing) gap(`${gapName(g)} of plan ${name}`, g, `${s.patientId}|${p.planUid}|${g.sopInstanceUid ?? g.seriesUid ?? g.frameOfReferenceUid ?? g.kind}`, p.planUid);
  }
  // With a destination AE, each C-MOVE is the item; what was never asked for (not found) is a gap.
  const moved = new Set((s.moves ?? []).flatMap((m) => m.sopInstanceUids ?? [m.seriesUid]));
  for (const r of s.series ?? []) {
    const complete = r.missing.length === 0;
    // The whole patient: a line per series only when it is short; --series: a line each.
    if (s.mode !== "patient" || !complete) {
      out.push({
        type: "message", level: complete ? "info" : "warn",
        text: `series ${r.seriesUid}${r.modality ? ` (${r.modality})` : ""}: ${r.arrived}${r.expected !== undefined ? ` of ${r.expected}` : ""} instances ${s.destination ? `sent to ${s.destination}` : "arrived"}`,
      });
    }
    if (s.destination && moved.has(r.seriesUid)) continue;
    for (const g of r.missing) gap(`series ${r.seriesUid}${g.sopInstanceUid ? ` instance ${g.sopInstanceUid}` : ""}`, g, `${s.patientId}|${r.seriesUid}|${g.sopInstanceUid ?? "series"}`);
  }
  for (const r of s.instances ?? []) {
    if (s.destination && moved.has(r.sopInstanceUid)) continue;
    for (const g of r.missing) gap(`${gapName(g)}`, g, `${s.patientId}|instance|${r.sopInstanceUid}`);
  }
  for (const m of s.moves ?? []) {
    const what = m.level === "SERIES" ? `series ${m.seriesUid}${m.modality ? ` (${m.modality})` : ""}` : `instance ${(m.sopInstanceUids ?? []).join(", ")}`;
    const sent = m.completed + m.warning;
    const short = m.expected !== undefined ? sent < m.expected : sent === 0;
    const bad = m.failed > 0 || (m.status !== 0 && (m.status & 0xf000) !== 0xb000) || short;
    const status = `status 0x${m.status.toString(16).padStart(4, "0")}${m.errorComment ? ` (${m.errorComment})` : ""}`;
    const counts = `${m.completed} completed, ${m.failed} failed, ${m.warning} warning${m.expected !== undefined ? ` of ${m.expected} expected` : ""}`;
    const key = `${s.patientId}|move|${m.level === "SERIES" ? m.seriesUid : (m.sopInstanceUids ?? []).join(",")}`;
    const item = `${what} → ${m.destination}`;
    if (bad) {
      const failedUids = m.failedInstances?.length ? `; failed: ${m.failedInstances.join(", ")}` : "";
      const reason = `the peer reported ${counts}, ${status}${failedUids}`;
      out.push({ type: "gap", item, reason, key, error: reason });
    } else {
      const more = m.expected !== undefined && sent > m.expected ? ` (${sent - m.expected} more than C-FIND counted for the patient)` : "";
      out.push({ type: "message", level: more ? "warn" : "info", text: `${item}: ${counts}${more}` });
      out.push({ type: "done", item, key });
    }
  }
  if (s.mode === "patient") {
    const series = s.series ?? [];
    const expected = series.reduce((n, r) => n + Math.max(r.expected ?? 0, r.arrived), 0);
    const arrived = series.reduce((n, r) => n + r.arrived, 0);
    if (series.length) {
      out.push({ type: "message", text: `patient "${s.patientId}": ${arrived} of ${expected} instances in ${series.length} series ${s.destination ? `sent to ${s.destination}` : "arrived"}` });
    } else {
      const reason = `nothing found for patient "${s.patientId}" (C-FIND)`;
      out.push({ type: "gap", item: `patient "${s.patientId}"`, reason, key: `${s.patientId}|patient|none`, error: reason });
    }
  }
  for (const l of s.missingLabels) {
    const reason = `no plan labelled "${l}" found for patient "${s.patientId}"`;
    out.push({ type: "gap", item: `plan labelled "${l}"`, reason, key: `${s.patientId}|label|${l}`, error: reason });
  }
  for (const l of s.unapprovedLabels ?? []) {
    out.push({ type: "skip", item: `plan labelled "${l}"`, reason: `not approved; --include-unapproved retrieves it` });
  }
  if ((s.mode === "plans" || (s.mode === undefined && !s.series)) && s.plans.length === 0 && s.missingLabels.length === 0 && !s.unapprovedLabels?.length) {
    const reason = `no plan selected for patient "${s.patientId}"`;
    out.push({ type: "gap", item: `patient "${s.patientId}"`, reason, key: `${s.patientId}|plans|none`, error: reason });
  }
  const requests = `${s.requests.find} C-FIND and ${s.requests.retrieve} ${s.destination ? `C-MOVE requests to ${s.destination}` : "retrieve requests"}`;
  const verdict = s.complete ? "complete" : "INCOMPLETE";
  if (s.destination) {
    const moves = s.moves ?? [];
    const sum = (k: "completed" | "failed" | "warning") => moves.reduce((n, m) => n + m[k], 0);
    out.push({ type: "message", text: `sent to ${s.destination}: ${sum("completed")} completed, ${sum("failed")} failed, ${sum("warning")} warning; ${requests}; ${verdict}` });
  } else {
    const other = s.otherPatient ? `, ${s.otherPatient} of another patient dropped` : "";
    out.push({
      type: "message",
      text: `${s.kept} objects written; ${s.inspectedAndDropped} fetched only to read their references, ${s.unexpected} unrequested dropped${other}; ` +
        `${requests}; ${verdict}`,
    });
  }
  return out;
}

function gapName(g: Gap): string {
  if (!g.sopInstanceUid && !g.seriesUid && g.frameOfReferenceUid) return `${g.kind} series of frame of reference ${g.frameOfReferenceUid}`;
  if (!g.sopInstanceUid) return `${g.kind} series ${g.seriesUid}`;
  return `${g.kind} ${g.sopInstanceUid}${g.seriesUid ? ` (series ${g.seriesUid})` : ""}`;
}

/** The new patient ID and UIDs of an anonymizing run (identity without one). */
function hide(ctx: AnonymizeContext | undefined): { patient(id: string): string; uid(uid: string): string } {
  if (!ctx) return { patient: (id) => id, uid: (u) => u };
  return { patient: (id) => ctx.patient(id).id, uid: (u) => (ctx.options.retainUids ? u : ctx.uid(u)) };
}

/**
 * The summary with the new identity: patient ID, plan, series, study and SOP Instance UIDs
 * replaced as in the objects, the original patient ID replaced in the reasons, plan labels kept
 * only with `cleanDescriptors` (the labels asked for, and not found, are the user's own words).
 */
function anonymizeSummary(s: RetrieveSummary, ctx: AnonymizeContext): RetrieveSummary {
  const h = hide(ctx);
  const patientId = h.patient(s.patientId);
  const reason = (text: string) => text.split(s.patientId).join(patientId);
  const gap = (g: Gap): Gap => {
    const out: Gap = { kind: g.kind, reason: reason(g.reason) };
    if (g.sopInstanceUid) out.sopInstanceUid = h.uid(g.sopInstanceUid);
    if (g.seriesUid) out.seriesUid = h.uid(g.seriesUid);
    if (g.frameOfReferenceUid) {
      out.frameOfReferenceUid = h.uid(g.frameOfReferenceUid);
      out.reason = out.reason.split(g.frameOfReferenceUid).join(out.frameOfReferenceUid);
    }
    return out;
  };
  const out: RetrieveSummary = {
    ...s,
    patientId,
    plans: s.plans.map((p) => {
      const { label, ...rest } = p;
      const plan = { ...rest, planUid: h.uid(p.planUid), missing: p.missing.map(gap) };
      return label !== undefined && ctx.options.cleanDescriptors ? { ...plan, label } : plan;
    }),
  };
  if (s.series) {
    out.series = s.series.map((r) => {
      const series = { ...r, seriesUid: h.uid(r.seriesUid), missing: r.missing.map(gap) };
      if (r.studyUid) series.studyUid = h.uid(r.studyUid);
      return series;
    });
  }
  if (s.instances) {
    out.instances = s.instances.map((r) => {
      const instance = { ...r, sopInstanceUid: h.uid(r.sopInstanceUid), missing: r.missing.map(gap) };
      if (r.studyUid) instance.studyUid = h.uid(r.studyUid);
      if (r.seriesUid) instance.seriesUid = h.uid(r.seriesUid);
      return instance;
    });
  }
  return out;
}

function withFields(entry: LedgerEntry, fields: Partial<LedgerEntry>): LedgerEntry {
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) (entry as unknown as Record<string, unknown>)[k] = v;
  return entry;
}
