/**
 * The check stage: DICOM `file` records in, each with `check: {target, status, violations}` out,
 * then one `check-summary` record. An object a target would refuse is a failed item (the reason
 * says what the target refuses); with `fix`, the chosen lossless fixes are applied and every
 * importable object (fixed or already clean) is written to `out`.
 */
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { type DicomFile, readDicomFile } from "../dicom/reader.ts";
import { encodeFile } from "../dicom/writer.ts";
import { headerOf, type Layout, recordPath } from "../layout/record_path.ts";
import type { PeerSettings } from "../net/peer.ts";
import { isDicomFileRecord, type RtRecord } from "../records/types.ts";
import { type StageOptions, StageReport, untilAborted } from "../stage/stage.ts";
import { type Change, fixCharacterSet, fixMachines, whyNotFixable } from "./fix.ts";
import { loadProfile, type Profile, type RuleId } from "./profile.ts";
import { Checker, type FixKind, missingReference, type Reference, type Violation } from "./rules.ts";
import { instancesAtTarget, machinesAtTarget } from "./target.ts";

/** Options of the check stage. */
export interface CheckOptions extends StageOptions {
  /** A built-in target (`idms`, `aria`, `orthanc`), a profile file, or a profile. */
  target: string | Profile;
  /** Treatment machines the target knows (beside the profile's). */
  machines?: string[];
  /** The target itself, to ask for its machines and for objects already there (C-FIND). */
  peer?: PeerSettings;
  /** Fixes to apply; needs `out`. */
  fix?: FixKind[];
  /** OLD → NEW machine names for the `machines` fix. */
  mapMachine?: Record<string, string>;
  /** Where fixed and clean objects are written (with `fix`). */
  out?: string;
  /** Their layout under `out` (default `series`: PatientID/Study/Series/SOP.dcm). */
  layout?: Layout;
}

/** The `check` field of a file record. */
export interface CheckOutcome {
  target: string;
  /** ok: importable; fixed: importable after the fixes (written to `out`); refused: not importable; unreadable. */
  status: "ok" | "fixed" | "refused" | "unreadable";
  violations: Violation[];
  /** Every change a fix made. */
  changes?: Change[];
  /** With fix: the file checked (the record's `path` is then the copy under `out`). */
  from?: string;
  /** Why a refused object cannot be fixed. */
  reason?: string;
}

/** The `check-summary` record. */
export interface CheckSummary extends RtRecord {
  type: "check-summary";
  target: string;
  objects: number;
  ok: number;
  fixed: number;
  refused: number;
  unreadable: number;
  /** Objects breaking each rule. */
  byRule: Partial<Record<RuleId, number>>;
}

interface Held {
  record: RtRecord;
  file: DicomFile;
  sopClassUid: string;
  violations: Violation[];
  refs: Reference[];
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Checks DICOM file records against a target's import rules (see the module summary). Records
 * that are not DICOM files pass through unchanged. Objects that reference others (a structure
 * set's images, a plan's structure set) wait until those have been seen, or the input ends (then
 * the target is asked, when `peer` is given).
 *
 * @example
 * ```ts
 * for await (const r of checkRecords(pathRecords(["export/"]), { target: "idms" })) {
 *   if (r.type === "file" && r.check.status === "refused") console.log(r.path, r.check.violations);
 * }
 * ```
 */
export async function* checkRecords(input: AsyncIterable<RtRecord>, opts: CheckOptions): AsyncGenerator<RtRecord> {
  const profile = typeof opts.target === "string" ? loadProfile(opts.target) : opts.target;
  const fixes = opts.fix ?? [];
  if (fixes.length && !opts.out) throw new Error("Fixing needs an output folder (out)");
  const out = opts.out ? resolve(opts.out) : undefined;
  const report = new StageReport("check", opts);
  const checker = new Checker(profile, { machines: opts.machines });
  const summary: CheckSummary = { type: "check-summary", target: profile.name, objects: 0, ok: 0, fixed: 0, refused: 0, unreadable: 0, byRule: {} };
  try {
    if (checker.needsMachines && opts.peer) {
      try {
        const names = await machinesAtTarget(opts.peer);
        if (names) checker.addMachines(names);
      } catch (e) {
        report.message("warn", `Cannot ask ${profile.name} for its treatment machines: ${(e as Error).message}`);
      }
    }
    if (checker.needsMachines) {
      report.message("warn", `Treatment machine names are not checked: ${profile.name} needs the machines it knows (--machines TB1,TB2${opts.peer ? "; the target answered none by C-FIND" : ", or --peer to ask the target"})`);
    }
    // Objects the target will have: what passed here (an object refused here will not be there).
    const present = new Set<string>();
    const held: Held[] = [];

    const finish = (h: Held): RtRecord => {
      const { record } = h;
      const item = `"${record.path}"`;
      const fields = { patientId: typeof record.patientId === "string" ? record.patientId : undefined };
      summary.objects++;
      for (const rule of new Set(h.violations.map((v) => v.rule))) summary.byRule[rule] = (summary.byRule[rule] ?? 0) + 1;
      const outcome: CheckOutcome = { target: profile.name, status: "ok", violations: h.violations };
      let result: RtRecord = { ...record, check: outcome };
      const reasons = h.violations.map((v) => v.message);
      if (h.violations.length && !fixes.length) {
        outcome.status = "refused";
        summary.refused++;
        report.failed(item, `Cannot import ${item} into ${profile.name}: ${reasons.join("; ")}`, fields);
        return result;
      }
      if (h.violations.length) {
        const unfixable = h.violations.filter((v) => !v.fix || !fixes.includes(v.fix));
        if (unfixable.length) {
          outcome.status = "refused";
          outcome.reason = unfixable.map((v) => `${v.message} (no fix: ${whyNotFixable(v, fixes)})`).join("; ");
          summary.refused++;
          report.failed(item, `Cannot import ${item} into ${profile.name}: ${outcome.reason}`, fields);
          return result;
        }
      }
      if (!out) {
        summary.ok++;
        report.done(item, fields);
        return result;
      }
      // Fix mode: write the object (fixed, or as it is) under `out`.
      try {
        const changes: Change[] = [];
        const rules = new Set(h.violations.map((v) => v.fix));
        let bytes: Uint8Array | undefined;
        if (h.violations.length) {
          const full = readDicomFile(String(record.path), { full: true });
          if (rules.has("machines")) changes.push(...fixMachines(full.dataset, h.sopClassUid, opts.mapMachine ?? {}));
          if (rules.has("charset")) {
            const r = fixCharacterSet(full.dataset);
            if ("refused" in r) throw new Refusal(r.refused);
            changes.push(...r.changes);
          }
          // What the fixes left is still refused (a machine without a mapping).
          const left = checker.check(full.dataset, h.sopClassUid);
          if (left.length) throw new Refusal(left.map((v) => `${v.message} (no fix: ${whyNotFixable(v, fixes)})`).join("; "));
          bytes = encodeFile(full.dataset, { meta: full.meta, transferSyntaxUid: full.transferSyntaxUid });
        }
        const rel = recordPath({ ...record, type: "file", path: String(record.path) }, opts.layout ?? "series", headerOf(h.file));
        const dest = join(out, rel);
        mkdirSync(dirname(dest), { recursive: true });
        const data = bytes ?? readBytes(String(record.path));
        const tmp = `${dest}.${process.pid}.tmp`;
        try {
          writeFileSync(tmp, data);
          renameSync(tmp, dest);
        } catch (e) {
          try {
            unlinkSync(tmp);
          } catch { /* not written */ }
          throw e;
        }
        outcome.from = String(record.path);
        if (changes.length) outcome.changes = changes;
        outcome.status = h.violations.length ? "fixed" : "ok";
        if (outcome.status === "fixed") summary.fixed++;
        else summary.ok++;
        result = { ...record, path: dest, bytes: data.length, sha256: sha256(data), check: outcome };
        report.done(item, { ...fields, bytes: data.length });
        if (changes.length) {
          const tags = [...new Set(changes.map((c) => c.keyword ?? c.tag))];
          report.message("info", `Fixed ${item}: ${changes.length} value${changes.length === 1 ? "" : "s"} changed (${tags.join(", ")})`, String(record.path));
          for (const c of changes) report.message("debug", `${item} ${c.tag}${c.keyword ? ` ${c.keyword}` : ""}: ${JSON.stringify(c.from)} -> ${JSON.stringify(c.to)}`, String(record.path));
        }
        return result;
      } catch (e) {
        outcome.status = "refused";
        outcome.reason = e instanceof Refusal ? e.message : `Cannot write the fixed copy: ${(e as Error).message}`;
        summary.refused++;
        report.failed(item, `Cannot import ${item} into ${profile.name}: ${outcome.reason}`, fields);
        return { ...record, check: outcome };
      }
    };

    /** True when every reference is satisfied by what was seen. */
    const resolved = (h: Held) => h.refs.every((r) => missingOf(r, present).length === 0);

    /** Held objects whose references are all here now (repeatedly: a structure set released may release a plan). */
    const release = function* (): Generator<RtRecord> {
      for (let changed = true; changed;) {
        changed = false;
        for (let i = 0; i < held.length; i++) {
          if (!resolved(held[i])) continue;
          const [h] = held.splice(i--, 1);
          const r = finish(h);
          if ((r.check as CheckOutcome).status !== "refused") markPresent(present, h);
          changed = true;
          yield r;
        }
      }
    };

    for await (const record of untilAborted(input, opts.signal)) {
      if (record.type !== "file" || typeof record.path !== "string" || !isDicomFileRecord(record)) {
        yield record;
        continue;
      }
      let file: DicomFile;
      try {
        if (typeof record.error === "string") throw new Error(record.error);
        file = readDicomFile(record.path);
      } catch (e) {
        if ((e as Error).name === "DicomParseError" && /^not a DICOM file/.test((e as Error).message)) {
          report.skipped(`"${record.path}"`, "not-dicom", "not a DICOM file");
          yield record;
          continue;
        }
        summary.objects++;
        summary.unreadable++;
        const reason = (e as Error).message.startsWith("Cannot ") ? (e as Error).message : `Cannot read DICOM file "${record.path}": ${(e as Error).message}`;
        report.failed(`"${record.path}"`, reason);
        yield { ...record, check: { target: profile.name, status: "unreadable", violations: [], reason } satisfies CheckOutcome };
        continue;
      }
      const sopClassUid = file.meta.string(0x00020002) ?? file.dataset.string(0x00080016) ?? "";
      const sopInstanceUid = file.meta.string(0x00020003) ?? file.dataset.string(0x00080018) ?? "";
      const rec: RtRecord = { ...record };
      for (const [k, v] of Object.entries({ sopClassUid, sopInstanceUid, modality: file.dataset.string(0x00080060), patientId: file.dataset.string(0x00100020), studyUid: file.dataset.string(0x0020000d), seriesUid: file.dataset.string(0x0020000e) })) {
        if (v && rec[k] === undefined) rec[k] = v;
      }
      const h: Held = { record: rec, file, sopClassUid, violations: checker.check(file.dataset, sopClassUid), refs: checker.references(file.dataset, sopClassUid) };
      if (h.refs.length && !resolved(h)) {
        held.push(h);
        continue;
      }
      const r = finish(h);
      if ((r.check as CheckOutcome).status !== "refused") markPresent(present, h);
      yield r;
      if (held.length) yield* release();
    }
    // The input ended: what is still missing may be at the target already.
    if (held.length && opts.peer && !opts.signal?.aborted) {
      const uids = new Set<string>();
      const series = new Map<string, { studyUid?: string; seriesUid: string }>();
      for (const h of held) {
        for (const r of h.refs) {
          for (const u of missingOf(r, present)) uids.add(u);
          for (const s of r.series) if (!present.has(s.seriesUid)) series.set(s.seriesUid, s);
        }
      }
      try {
        for (const u of await instancesAtTarget(opts.peer, [...uids], [...series.values()])) present.add(u);
      } catch (e) {
        report.message("warn", `Cannot ask ${profile.name} which referenced objects it has: ${(e as Error).message}`);
      }
    }
    yield* release();
    for (const h of held.splice(0)) {
      for (const r of h.refs) {
        const missing = missingOf(r, present);
        if (missing.length) h.violations.push(missingReference(r, missing, profile.name));
      }
      yield finish(h);
    }
    yield summary;
  } finally {
    report.finish();
  }
}

class Refusal extends Error {}

function readBytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}

/** The UIDs (or, for references that name only series, the series) not in `present`. */
function missingOf(r: Reference, present: Set<string>): string[] {
  if (r.uids.length) return r.uids.filter((u) => !present.has(u));
  return r.series.map((s) => s.seriesUid).filter((s) => !present.has(s));
}

function markPresent(present: Set<string>, h: Held): void {
  const uid = h.record.sopInstanceUid;
  if (typeof uid === "string") present.add(uid);
  const series = h.record.seriesUid;
  if (typeof series === "string") present.add(series);
}
