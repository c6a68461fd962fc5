import { renameSync } from "node:fs";
import type { DicomFile } from "../dicom/reader.ts";
import { isRtObject, PLAN_OBJECT_MODALITIES } from "../dicom/rt.ts";
import { join } from "node:path";
import process from "node:process";
import { type PeerSettings, peerTimeouts, tlsFromFiles } from "../net/peer.ts";
import { hostTag } from "../runtime/mod.ts";
import type { PlanRecord } from "../records/types.ts";
import { ArrivalStore } from "../retrieve/arrivals.ts";
import type { ArrivedObject } from "../retrieve/arrivals.ts";
import { retrievePlans } from "../retrieve/planner.ts";
import { retrievePatient } from "../retrieve/patient.ts";
import type { RetryPolicy } from "../net/retry.ts";
import { openResilientSession } from "../retrieve/resilient.ts";
import { openRetrieveSession, type RetrieveSession } from "../retrieve/session.ts";
import { type MoveReceiver, refusedText } from "../retrieve/move_receiver.ts";
import type { FolderFile } from "../sources/folder.ts";
import { FatalStageError } from "../stage/stage.ts";
import { DicomNetError, type NetErrorCode } from "../net/errors.ts";

/** Failures that mean the peer was never reached or refused us (as opposed to a request it failed). */
const NOT_REACHED = new Set<NetErrorCode>(["REFUSED", "UNREACHABLE", "REJECTED", "TLS", "TIMEOUT"]);

/** Port of the in-process C-MOVE receiver when none is given. */
export const DEFAULT_MOVE_PORT = 11113;

/** How export-plan retrieves DICOM from a Q/R peer (`ExportPlanOptions.retrieve`). */
export interface RetrieveSettings {
  /** C-MOVE to an in-process receiver (default) or C-GET. */
  mode?: "move" | "get";
  /** C-MOVE destination AE title (default: the calling AE title). */
  moveAet?: string;
  /** Port of the C-MOVE receiver (default 11113). */
  movePort?: number;
  /**
   * Without `out`: where retrieved objects wait for copy-files, which removes each once copied
   * (default `.rtexport-staging`). With `out` they are staged under `<out>/.rtexport/`.
   */
  staging?: string;
  /**
   * Retries of transient failures of each C-FIND and C-MOVE/C-GET, with back-off (default none);
   * a series the peer fails as a whole is asked for by instance either way (as `retrieve` does).
   */
  retry?: RetryPolicy;
}

/** A retrieved object in staging, as handed to the export. */
export interface StagedFile extends FolderFile {
  /**
   * When the export puts it in the tree itself (not `keepStaged`): its size and the SHA-256 of the
   * bytes received and written, taken on arrival, so the file is not read back to be hashed.
   */
  written?: { sha256: string; bytes: number };
  /** Its header, parsed on arrival (then not read again from the file). */
  header?: DicomFile;
}

/** What a DICOM source hands the export for one plan: staged files, gaps, and a clean-up. */
export interface DicomPlanFiles {
  files: StagedFile[];
  missing: string[];
  done(): void;
}

/** A plan's DICOM (and a patient's series) fetched from a peer; one association for the whole export. */
export interface DicomPlanSource {
  /**
   * A plan's own RT objects (with the registrations that relate its images to other series), and
   * with `images` (default true) the image series it references and those registered with them.
   */
  fetch(plan: PlanRecord, opts?: { images?: boolean }): Promise<DicomPlanFiles>;
  /** Every series of the patient that is not a plan's own RT object (CT, MR, PET, registrations, …). */
  fetchPatientSeries(patientId: string): Promise<DicomPlanFiles>;
  /** Releases the association (a paced run outside its time window); the next fetch opens one again. */
  release(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Fetches each plan's DICOM from a Q/R peer by the same selective retrieval as `retrieve` (the
 * plan, then only what it references, and its registrations), and a patient's series by the same
 * whole-patient retrieval, staging the objects under `stagingDir` until the export has copied
 * them into the tree. Every query names the patient, and objects of another patient are dropped
 * (they are named in `missing`). One association serves the whole export.
 */
export function dicomPlanSource(
  peer: PeerSettings,
  opts: {
    mode: "move" | "get"; moveAet?: string; movePort?: number; stagingDir: string;
    /**
     * The C-MOVE receiver this source shares with the export's other workers (one port; each
     * object goes to the worker whose request it answers). Default: its own.
     */
    receiver?: MoveReceiver;
    /** Leave staged files for a later stage (copy-files) instead of removing them after each plan. */
    keepStaged?: boolean;
    retry?: RetryPolicy;
    /** Retries and fallbacks, in words. */
    onMessage?: (level: "info" | "warn", text: string) => void;
    /** Ctrl-C, SIGTERM: the association is aborted at once, so a fetch in flight fails and the export stops. */
    signal?: AbortSignal;
  },
): DicomPlanSource {
  let session: RetrieveSession | undefined;
  opts.signal?.addEventListener("abort", () => session?.abort(), { once: true });
  let store: ArrivalStore | undefined;
  let handoffs = 0;
  let answered = false;
  async function open(): Promise<{ session: RetrieveSession; store: ArrivalStore }> {
    if (opts.signal?.aborted) throw new Error("Interrupted");
    // Objects the export links into the tree itself are hashed on arrival, from the copy the network
    // layer kept of the bytes it wrote, instead of being read back (bench/README.md "export").
    store ??= new ArrivalStore(opts.keepStaged ? join(opts.stagingDir, `incoming-${hostTag()}-${process.pid}`) : opts.stagingDir, { hash: !opts.keepStaged });
    const arrivals = store;
    // Retried and asked for in parts as `retrieve` does; the export paces per file itself.
    session ??= await openResilientSession(() =>
      openRetrieveSession({
        host: peer.host, port: peer.port, callingAet: peer.callingAet, calledAet: peer.calledAet, mode: opts.mode,
        moveAet: opts.moveAet, movePort: opts.movePort ?? DEFAULT_MOVE_PORT, maxPdu: peer.maxPdu, tls: tlsFromFiles(peer),
        timeouts: peerTimeouts(peer), receiver: opts.receiver,
        onRefused: (r) => opts.onMessage?.("warn", refusedText(r)),
      }, arrivals), arrivals, { retry: opts.retry ?? { retries: 0, maxWaitMs: 0 }, onMessage: opts.onMessage, signal: opts.signal });
    return { session, store };
  }
  /**
   * Runs one request. The peer unreachable or refusing before it ever answered: every plan would
   * fail the same way, so the export stops with this one message ({@link FatalStageError}).
   */
  async function guarded<T>(work: () => Promise<T>): Promise<T> {
    try {
      const result = await work();
      answered = true;
      return result;
    } catch (e) {
      if (!answered && (!(e instanceof DicomNetError) || NOT_REACHED.has(e.code))) throw new FatalStageError((e as Error).message, { cause: e });
      throw e;
    }
  }
  function handOver(objects: { object: ArrivedObject }[]): StagedFile[] {
    const files: StagedFile[] = [];
    for (const { object } of objects) {
      let path = object.path;
      if (opts.keepStaged) {
        // Handed to the next stage under a name of its own: a later fetch of the same object
        // must not replace or remove a file the next stage has yet to read.
        // Named by host and process: a killed run's leftovers are told from a live one's (lib/export/staging.ts).
        path = join(opts.stagingDir, `${hostTag()}-${process.pid}-${handoffs++}-${object.sopInstanceUid}.dcm`);
        renameSync(object.path, path);
      }
      const file: StagedFile = { path, sopClassUid: object.sopClassUid, sopInstanceUid: object.sopInstanceUid, seriesUid: object.seriesUid, modality: object.modality };
      if (!opts.keepStaged) {
        file.written = { sha256: object.hashNow(), bytes: object.bytes };
        file.header = object.header();
      }
      files.push(file);
    }
    return files;
  }
  return {
    fetchPatientSeries: (patientId) => guarded(async () => {
      const { session, store } = await open();
      // The plans' own RT objects come with each plan; every other series (images, registrations, …) here.
      const result = await retrievePatient(session.transport, store, patientId, { include: (s) => !PLAN_OBJECT_MODALITIES.has(s.modality) });
      const files = handOver(result.objects);
      const missing = (result.summary.series ?? []).flatMap((s) => s.missing.map((g) => `${g.kind} series ${g.seriesUid ?? ""} (${g.reason})`));
      missing.push(...otherPatient(result.otherPatient));
      const kept = result.objects.map((o) => o.object.sopInstanceUid);
      return { files, missing, done: () => kept.forEach((uid) => store.discard(uid)) };
    }),
    fetch: (plan, fetchOpts = {}) => guarded(async () => {
      const { session, store } = await open();
      const label = String(plan.label ?? "");
      const result = await retrievePlans(session.transport, store, {
        patientId: plan.patientId, planLabels: label ? [label] : [], images: fetchOpts.images !== false,
      });
      const planUid = plan.planUid;
      const files = handOver(result.objects.filter(({ object, planUids }) =>
        (!planUid || planUids.includes(planUid) || object.sopInstanceUid === planUid) &&
        (fetchOpts.images !== false || isRtObject(object.sopClassUid, object.modality))
      ));
      const missing: string[] = [];
      for (const p of result.summary.plans) {
        if (planUid && p.planUid !== planUid) continue;
        for (const g of p.missing) missing.push(`${g.kind} ${g.sopInstanceUid ?? g.seriesUid ?? ""} (${g.reason})`);
      }
      if (result.summary.missingLabels.length) missing.push(`RTPLAN labelled "${label}" (not found at the peer)`);
      missing.push(...otherPatient(result.otherPatient));
      const kept = result.objects.map((o) => o.object.sopInstanceUid);
      // Staged copies go once the export has put them in the tree; a later plan fetches again what it shares.
      // The store's copies go once the export has them (in the tree, or handed on).
      return { files, missing, done: () => kept.forEach((uid) => store.discard(uid)) };
    }),
    async release() {
      const s = session;
      session = undefined;
      await s?.close();
    },
    async close() {
      await session?.close();
      store?.cleanup();
    },
  };
}

/** Objects of another patient that arrived (dropped), as gaps: by UID, never by the other patient's name. */
function otherPatient(uids: string[]): string[] {
  return uids.map((uid) => `object ${uid} (it belongs to another patient; dropped)`);
}
