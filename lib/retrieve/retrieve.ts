import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import type { Timeouts, TlsOptions } from "../net/mod.ts";
import type { FileRecord } from "../records/types.ts";
import { ArrivalStore } from "./arrivals.ts";
import { placeObject, type PatientRewrite } from "./output.ts";
import { type RetrieveSummary, retrievePlans, retrieveSeriesByUid } from "./planner.ts";
import { openRetrieveSession } from "./session.ts";

/** Options of {@link retrieveFiles}. */
export interface RetrieveFilesOptions {
  host: string;
  port: number;
  callingAet: string;
  calledAet: string;
  patientId: string;
  /** RT Plan Labels to retrieve (default: all plans of the patient). */
  plans?: string[];
  onlyApproved?: boolean;
  /** Whole series by UID instead of plans. */
  series?: string[];
  /** C-GET on the query association; otherwise C-MOVE to an in-process receiver. */
  get?: boolean;
  moveAet?: string;
  movePort?: number;
  moveHost?: string;
  out: string;
  rewrite?: PatientRewrite;
  maxPdu?: number;
  timeouts?: Timeouts;
  tls?: TlsOptions;
  /** Told where the C-MOVE receiver listens. */
  onReceiver?: (port: number | undefined) => void;
  /** Called for each object that could not be written (the rest go on). */
  onError?: (sopInstanceUid: string, message: string) => void;
}

/**
 * Selective retrieval as an async iterable: yields a `file` record for every object written
 * under `out` (atomically, hashed), then the `retrieve-summary` record with the gaps between
 * what the plans reference and what arrived.
 *
 * @example
 * ```ts
 * for await (const r of retrieveFiles({ host: "pacs", port: 104, callingAet: "RTEXPORT", calledAet: "PACS",
 *   patientId: "123", plans: ["Prostate"], get: true, out: "export" })) console.log(r.type, r.path ?? "");
 * ```
 */
export async function* retrieveFiles(opts: RetrieveFilesOptions): AsyncGenerator<FileRecord | RetrieveSummary> {
  const outDir = resolve(opts.out);
  mkdirSync(outDir, { recursive: true });
  // The file records carry each object's SHA-256: hashed as it is received, never read again.
  const arrivals = new ArrivalStore(join(outDir, `.rtexport-staging-${process.pid}`), { hash: true });
  let session;
  try {
    session = await openRetrieveSession({
      host: opts.host, port: opts.port, callingAet: opts.callingAet, calledAet: opts.calledAet,
      mode: opts.get ? "get" : "move", moveAet: opts.moveAet, movePort: opts.movePort, moveHost: opts.moveHost,
      maxPdu: opts.maxPdu, timeouts: opts.timeouts, tls: opts.tls,
    }, arrivals);
    opts.onReceiver?.(session.receiverPort);
    const result = opts.series?.length
      ? await retrieveSeriesByUid(session.transport, arrivals, opts.patientId, opts.series)
      : await retrievePlans(session.transport, arrivals, { patientId: opts.patientId, planLabels: opts.plans, onlyApproved: opts.onlyApproved === true });
    for (const { object, planUids } of result.objects) {
      try {
        yield placeObject(object, outDir, object.modality === "RTPLAN" ? object.sopInstanceUid : planUids[0], opts.rewrite ?? {});
      } catch (e) {
        opts.onError?.(object.sopInstanceUid, (e as Error).message);
      }
    }
    yield result.summary;
  } finally {
    await session?.close();
    arrivals.cleanup();
  }
}
