/**
 * The network side of `retrieve`: one association to the Q/R peer for C-FIND and C-MOVE (with
 * an in-process storage SCP receiving the sub-operations) or C-GET (objects come back on the
 * same association, negotiated with SCP role selection).
 */
import { SOP_CLASSES } from "../dicom/_sop_classes.ts";
import type { DataSet } from "../dicom/dataset.ts";
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from "../dicom/uids.ts";
import {
  type Association, connect, type RoleSelection, createScp, DicomNetError, find, get, move, QR_MODELS, type RetrieveProgress, type Scp,
  type Timeouts, type TlsOptions,
} from "../net/mod.ts";
import type { ArrivalStore } from "./arrivals.ts";
import type { RetrieveOutcome, RetrieveTransport } from "./planner.ts";

export interface RetrieveSessionOptions {
  host: string;
  port: number;
  callingAet: string;
  calledAet: string;
  mode: "move" | "get";
  /** C-MOVE destination AE title (ours; the peer must know it with our host and port). Default: callingAet. */
  moveAet?: string;
  /** Port of the in-process receiving SCP for C-MOVE (0: any free port). */
  movePort?: number;
  /** Listen address of the receiving SCP (default 0.0.0.0). */
  moveHost?: string;
  timeouts?: Timeouts;
  maxPdu?: number;
  /** TLS to the peer; with `cert`/`key`, the receiving SCP also accepts TLS with them. */
  tls?: TlsOptions;
}

export interface RetrieveSession {
  transport: RetrieveTransport;
  /** Port the receiving SCP listens on (C-MOVE). */
  readonly receiverPort?: number;
  close(): Promise<void>;
}

const TS = [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN];

/**
 * Storage classes proposed for C-GET (at most 128 presentation contexts fit in an association):
 * radiotherapy, the cross-sectional and projection images plans are made on, registration,
 * segmentation and secondary capture.
 */
export const GET_STORAGE_CLASSES: readonly string[] = SOP_CLASSES
  .filter((s) => /RT |RT$|Radiation|Tomotherap|Robotic|C-Arm|CT |MR |PET|Positron|Registration|Secondary Capture|Segmentation|Computed Radiography|Digital X-Ray|Encapsulated PDF|Raw Data|Surface|Fiducials|Nuclear Medicine|Ultrasound|X-Ray Angio/.test(s.name))
  .map((s) => s.uid)
  .slice(0, 120);

/** Opens the Q/R association (and, for C-MOVE, the receiving SCP). Objects go into `arrivals`. */
export async function openRetrieveSession(opts: RetrieveSessionOptions, arrivals: ArrivalStore): Promise<RetrieveSession> {
  const model = QR_MODELS.studyRoot;
  let receiver: Scp | undefined;
  const moveAet = opts.moveAet ?? opts.callingAet;
  if (opts.mode === "move") {
    const serverTls = opts.tls?.cert && opts.tls?.key ? { cert: opts.tls.cert, key: opts.tls.key } : undefined;
    receiver = await createScp({
      aeTitle: moveAet,
      port: opts.movePort ?? 0,
      host: opts.moveHost,
      tls: serverTls,
      storeDir: arrivals.dir,
      hashReceived: arrivals.hash,
      maxPdu: opts.maxPdu,
      timeouts: opts.timeouts,
      handlers: { store: ({ file }) => arrivals.accept(file) },
    });
  }
  const contexts: { abstractSyntax: string; transferSyntaxes: string[] }[] = [
    { abstractSyntax: model.find, transferSyntaxes: TS },
    { abstractSyntax: opts.mode === "move" ? model.move : model.get, transferSyntaxes: TS },
  ];
  const roles: RoleSelection[] = [];
  if (opts.mode === "get") {
    for (const uid of GET_STORAGE_CLASSES) {
      contexts.push({ abstractSyntax: uid, transferSyntaxes: TS });
      roles.push({ sopClassUid: uid, scu: false, scp: true });
    }
  }
  let assoc: Association | undefined;
  const open = async (): Promise<Association> => {
    if (assoc?.established) return assoc;
    assoc = await connect({
      host: opts.host, port: opts.port, callingAet: opts.callingAet, calledAet: opts.calledAet,
      contexts, roles, maxPdu: opts.maxPdu, timeouts: opts.timeouts, tls: opts.tls,
    });
    if (opts.mode === "get") {
      assoc.storeDir = arrivals.dir; // received files stay there (ArrivalStore.accept)
      assoc.hashReceived = arrivals.hash;
    }
    return assoc;
  };
  const finish = (last: RetrieveProgress | undefined): RetrieveOutcome => {
    if (!last) throw new DicomNetError("PROTOCOL", `No final response from ${opts.calledAet}@${opts.host}:${opts.port}`);
    const r: RetrieveOutcome = { status: last.status, completed: last.completed ?? 0, failed: last.failed ?? 0, warning: last.warning ?? 0 };
    if (last.errorComment) r.errorComment = last.errorComment;
    return r;
  };
  const transport: RetrieveTransport = {
    async find(identifier: DataSet): Promise<DataSet[]> {
      const a = await open();
      const out: DataSet[] = [];
      for await (const m of find(a, model.find, identifier)) out.push(m);
      return out;
    },
    async retrieve(identifier: DataSet): Promise<RetrieveOutcome> {
      const a = await open();
      let last: RetrieveProgress | undefined;
      if (opts.mode === "move") {
        for await (const p of move(a, model.move, identifier, moveAet)) last = p;
      } else {
        for await (const p of get(a, model.get, identifier, (file) => arrivals.accept(file))) last = p;
      }
      return finish(last);
    },
  };
  return {
    transport,
    receiverPort: receiver?.port,
    async close() {
      if (assoc?.established) await assoc.release();
      await receiver?.close();
    },
  };
}
