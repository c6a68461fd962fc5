/**
 * The project's own DICOM node over a folder: Verification, Storage SCP for every storage class
 * (received objects are renamed atomically into `<dir>/<PatientID>/<Study>/<Series>/<SOP>.dcm`
 * and indexed), and Q/R SCP (C-FIND Patient Root and Study Root at all levels, C-MOVE to
 * destinations configured by AE title, C-GET) answered from the folder index.
 */
import { existsSync, mkdirSync, renameSync } from "node:fs";
import { dirname, join } from "node:path";
import { readDicomFile } from "../dicom/reader.ts";
import { FolderIndex, type IndexReport } from "../index/index.ts";
import { storagePath } from "../index/layout.ts";
import {
  createScp, DimseStatusError, type MoveDestination, QR_MODELS, type QueryRequest, type Scp, type ScpEvent, type StoreSource,
  storeSourceFromFile, type Timeouts, type TlsOptions,
} from "../net/mod.ts";
import { findMatches, QueryError, type QueryModel, selectInstances } from "./find.ts";

/**
 * Settings of the DICOM node `serve` runs: the folder, AE title, port, allowed callers, C-MOVE
 * destinations, TLS, timeouts, index database.
 */
export interface QrScpOptions {
  /** The served folder (created when absent). */
  dir: string;
  aeTitle: string;
  /** 0 picks a free port. */
  port?: number;
  host?: string;
  /** Calling AE titles allowed to associate; all when empty/undefined. */
  allowedCallingAets?: string[];
  /** C-MOVE destinations by AE title. */
  moveDestinations?: Record<string, { host: string; port: number; tls?: TlsOptions }>;
  tls?: TlsOptions;
  timeouts?: Timeouts;
  maxPdu?: number;
  /** Index database path (default `<dir>/.rtexport-index.sqlite`). */
  dbPath?: string;
  /** Scan the folder at start (default true). */
  scan?: boolean;
  onEvent?: (e: QrScpEvent) => void;
}

export type QrScpEvent =
  | ScpEvent
  | {
    type: "stored"; callingAet: string; path: string; sopClassUid: string; sopInstanceUid: string; bytes: number;
    transferSyntaxUid: string; modality?: string; patientId?: string; studyUid?: string; seriesUid?: string;
  }
  | { type: "store-failed"; callingAet: string; sopInstanceUid: string; message: string }
  | { type: "find"; callingAet: string; model: QueryModel; level: string; matches: number }
  | { type: "move"; callingAet: string; destination: string; instances: number }
  | { type: "get"; callingAet: string; instances: number }
  /** A Storage Commitment request answered: how many objects this node committed, and how many not. */
  | { type: "commit"; callingAet: string; committed: number; failed: number };

export interface QrScp {
  readonly port: number;
  readonly host: string;
  readonly aeTitle: string;
  readonly index: FolderIndex;
  /** What the start-up scan found (undefined when `scan: false`). */
  readonly scan?: IndexReport;
  close(): Promise<void>;
}

/** PS3.4 C.4.2.1.5: Refused — Move Destination unknown. */
const STATUS_MOVE_DESTINATION_UNKNOWN = 0xa801;
/** PS3.4 B.2.3: Error — cannot understand. */
const STATUS_CANNOT_UNDERSTAND = 0xc000;
/** PS3.4 C.4.1.1.4: Failed — unable to process (C-FIND). */
const STATUS_UNABLE_TO_PROCESS = 0xc001;

function modelOf(sopClass: string): QueryModel {
  const p = QR_MODELS.patientRoot;
  return sopClass === p.find || sopClass === p.move || sopClass === p.get ? "PATIENT" : "STUDY";
}

function statusError(e: unknown, fallback: number): DimseStatusError {
  if (e instanceof DimseStatusError) return e;
  if (e instanceof QueryError) return new DimseStatusError(e.status, e.message);
  return new DimseStatusError(fallback, (e as Error).message ?? String(e));
}

/**
 * Starts the DICOM node `rtexport serve` runs over a folder (Verification, Storage, Q/R with
 * C-FIND/C-MOVE/C-GET); the folder is scanned first so what is already there can be queried.
 *
 * @example
 * ```ts
 * const scp = await startQrScp({ dir: "store", aeTitle: "RTEXPORT-SCP", port: 11112 });
 * // … later:
 * await scp.close();
 * ```
 */
export async function startQrScp(opts: QrScpOptions): Promise<QrScp> {
  mkdirSync(opts.dir, { recursive: true });
  const index = await FolderIndex.open(opts.dir, { dbPath: opts.dbPath });
  let scan: IndexReport | undefined;
  try {
    if (opts.scan !== false) scan = await index.indexFolder();
  } catch (e) {
    await index.close();
    throw e;
  }
  const incoming = join(index.dir, ".incoming");
  mkdirSync(incoming, { recursive: true });
  const emit = (e: QrScpEvent) => opts.onEvent?.(e);
  const destinations = new Map(Object.entries(opts.moveDestinations ?? {}).map(([ae, d]) => [ae.trim(), d]));

  const sources = (files: { path: string }[]): StoreSource[] => {
    const out: StoreSource[] = [];
    for (const f of files) {
      try {
        out.push(storeSourceFromFile(f.path));
      } catch {
        // Removed or damaged since it was indexed: rescan later; skip now (the count says so).
      }
    }
    return out;
  };
  // The instances a C-MOVE or C-GET identifier selects; an identifier that cannot be matched is 0xC000.
  const selected = async (rq: Pick<QueryRequest, "identifier" | "model">): Promise<StoreSource[]> => {
    let files;
    try {
      files = await selectInstances(index, rq.identifier, modelOf(rq.model));
    } catch (e) {
      throw statusError(e, STATUS_CANNOT_UNDERSTAND);
    }
    return sources(files);
  };

  let scp: Scp;
  try {
    scp = await createScp({
      aeTitle: opts.aeTitle,
      port: opts.port ?? 0,
      host: opts.host,
      tls: opts.tls,
      allowedCallingAets: opts.allowedCallingAets?.length ? opts.allowedCallingAets : undefined,
      storeDir: incoming,
      maxPdu: opts.maxPdu,
      timeouts: opts.timeouts,
      onEvent: emit,
      handlers: {
        echo: () => 0,
        store: async ({ file, callingAet }) => {
          let parsed;
          try {
            parsed = readDicomFile(file.path);
          } catch (e) {
            emit({ type: "store-failed", callingAet, sopInstanceUid: file.sopInstanceUid, message: (e as Error).message });
            return { status: STATUS_CANNOT_UNDERSTAND, errorComment: "Cannot parse the data set" };
          }
          const ds = parsed.dataset;
          const dest = storagePath(index.dir, {
            patientId: ds.string(0x00100020),
            studyUid: ds.string(0x0020000d),
            seriesUid: ds.string(0x0020000e),
            sopInstanceUid: ds.string(0x00080018) ?? file.sopInstanceUid,
          });
          mkdirSync(dirname(dest), { recursive: true });
          renameSync(file.path, dest);
          parsed.path = dest;
          await index.addInstance(dest, parsed);
          emit({
            type: "stored", callingAet, path: dest, sopClassUid: file.sopClassUid, sopInstanceUid: file.sopInstanceUid, bytes: file.size,
            transferSyntaxUid: file.transferSyntaxUid, modality: ds.string(0x00080060), patientId: ds.string(0x00100020),
            studyUid: ds.string(0x0020000d), seriesUid: ds.string(0x0020000e),
          });
          return { status: 0 };
        },
        find: async function* (rq) {
          const model = modelOf(rq.model);
          let matches;
          try {
            matches = await findMatches(index, rq.identifier, model);
          } catch (e) {
            throw statusError(e, STATUS_UNABLE_TO_PROCESS);
          }
          emit({ type: "find", callingAet: rq.callingAet, model, level: rq.level, matches: matches.length });
          for (const m of matches) {
            if (rq.cancelled()) return;
            yield m;
          }
        },
        move: async (rq) => {
          const d = destinations.get(rq.destination.trim());
          if (!d) throw new DimseStatusError(STATUS_MOVE_DESTINATION_UNKNOWN, `Move destination "${rq.destination}" is not configured`);
          const instances = await selected(rq);
          emit({ type: "move", callingAet: rq.callingAet, destination: rq.destination, instances: instances.length });
          const destination: MoveDestination = { host: d.host, port: d.port, aeTitle: rq.destination.trim() };
          if (d.tls) destination.tls = d.tls;
          return { destination, instances };
        },
        get: async (rq) => {
          const instances = await selected(rq);
          emit({ type: "get", callingAet: rq.callingAet, instances: instances.length });
          return { instances };
        },
        // Storage Commitment: an object is committed when it is indexed, of the class asked, and its file is there.
        commit: async ({ transactionUid, items, callingAet }) => {
          const files = new Map((await index.filesOf(items.map((i) => i.sopInstanceUid))).map((f) => [f.sopInstanceUid, f]));
          const committed = [];
          const failed = [];
          for (const i of items) {
            const f = files.get(i.sopInstanceUid);
            if (!f || !existsSync(f.path)) failed.push({ ...i, reason: 0x0112 });
            else if (f.sopClassUid !== i.sopClassUid) failed.push({ ...i, reason: 0x0119 });
            else committed.push(i);
          }
          emit({ type: "commit", callingAet, committed: committed.length, failed: failed.length });
          return { transactionUid, committed, failed, retrieveAet: opts.aeTitle };
        },
      },
    });
  } catch (e) {
    await index.close();
    throw e;
  }
  return {
    port: scp.port,
    host: scp.host,
    aeTitle: scp.aeTitle,
    index,
    scan,
    async close() {
      await scp.close();
      await index.close();
    },
  };
}

/** Parses `NAME=host:port` (C-MOVE destination). */
export function parseMoveDestination(text: string): [string, { host: string; port: number }] {
  const m = /^([^=]{1,16})=(.+):(\d{1,5})$/.exec(text.trim());
  if (!m) throw new Error(`Invalid move destination "${text}": expected NAME=host:port`);
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new Error(`Invalid move destination "${text}": port out of range`);
  return [m[1].trim(), { host: m[2].replace(/^\[(.*)\]$/, "$1"), port }];
}
