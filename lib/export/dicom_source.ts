import { renameSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import type { PeerOptions } from "../cli/peer.ts";
import type { TlsOptions } from "../net/mod.ts";
import type { PlanRecord } from "../records/types.ts";
import { ArrivalStore } from "../retrieve/arrivals.ts";
import { retrievePlans } from "../retrieve/planner.ts";
import { openRetrieveSession, type RetrieveSession } from "../retrieve/session.ts";
import type { FolderFile } from "../sources/folder.ts";

const RT = new Set(["RTPLAN", "RTSTRUCT", "RTDOSE", "RTRECORD", "RTIMAGE", "REG"]);

/** What a DICOM source hands the export for one plan: staged files, gaps, and a clean-up. */
export interface DicomPlanFiles {
  files: FolderFile[];
  missing: string[];
  done(): void;
}

/**
 * Fetches each plan's DICOM from a Q/R peer by the same selective retrieval as `retrieve` (the
 * plan, then only what it references), staging the objects under `stagingDir` until the export
 * has copied them into the tree. One association serves the whole export.
 */
export function dicomPlanSource(
  peer: PeerOptions,
  opts: {
    mode: "move" | "get"; moveAet?: string; movePort?: number; stagingDir: string; tls?: TlsOptions;
    /** Leave staged files for a later stage (copy-files) instead of removing them after each plan. */
    keepStaged?: boolean;
  },
): { fetch(plan: PlanRecord): Promise<DicomPlanFiles>; close(): Promise<void> } {
  let session: RetrieveSession | undefined;
  let store: ArrivalStore | undefined;
  let handoffs = 0;
  return {
    async fetch(plan) {
      store ??= new ArrivalStore(opts.keepStaged ? join(opts.stagingDir, `incoming-${process.pid}`) : opts.stagingDir);
      session ??= await openRetrieveSession({
        host: peer.host, port: peer.port, callingAet: peer.callingAet, calledAet: peer.calledAet, mode: opts.mode,
        moveAet: opts.moveAet, movePort: opts.movePort ?? 0, maxPdu: peer.maxPdu, tls: opts.tls,
        timeouts: { connect: peer.connectTimeout * 1000, association: peer.assocTimeout * 1000, dimse: peer.dimseTimeout * 1000 },
      }, store);
      const label = String(plan.label ?? "");
      const result = await retrievePlans(session.transport, store, { patientId: plan.patientId, planLabels: label ? [label] : [] });
      const planUid = plan.planUid;
      const files: FolderFile[] = [];
      for (const { object, planUids } of result.objects) {
        if (planUid && !planUids.includes(planUid) && object.sopInstanceUid !== planUid) continue;
        let path = object.path;
        if (opts.keepStaged) {
          // Handed to the next stage under a name of its own: a later plan that fetches the same
          // object again must not replace or remove a file the next stage has yet to read.
          path = join(opts.stagingDir, `${process.pid}-${handoffs++}-${object.sopInstanceUid}.dcm`);
          renameSync(object.path, path);
        }
        files.push({
          path, category: RT.has(object.modality) ? "rt-object" : "image",
          sopInstanceUid: object.sopInstanceUid, seriesUid: object.seriesUid, modality: object.modality,
        });
      }
      const missing: string[] = [];
      for (const p of result.summary.plans) {
        if (planUid && p.planUid !== planUid) continue;
        for (const g of p.missing) missing.push(`${g.kind} ${g.sopInstanceUid ?? g.seriesUid ?? ""} (${g.reason})`);
      }
      if (result.summary.missingLabels.length) missing.push(`RTPLAN labelled "${label}" (not found at the peer)`);
      const kept = result.objects.map((o) => o.object.sopInstanceUid);
      // Staged copies go once the export has put them in the tree; a later plan fetches again what it shares.
      // The store's copies go once the export has them (in the tree, or handed on).
      return { files, missing, done: () => kept.forEach((uid) => store!.discard(uid)) };
    },
    async close() {
      await session?.close();
      store?.cleanup();
    },
  };
}
