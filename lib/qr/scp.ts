/**
 * The project's own DICOM node over a folder: Verification, Storage SCP for every storage class
 * (received objects are moved atomically into `<dir>/<PatientID>/<Study>/<Series>/<SOP>.dcm`
 * and indexed), and Q/R SCP (C-FIND Patient Root and Study Root at all levels, C-MOVE to
 * destinations configured by AE title, C-GET) answered from the folder index.
 *
 * Closed by default (docs/security.md): it listens on loopback unless given a host; only callers
 * on the allow list may query and retrieve (and store); `allowStoreAny` opens storage alone to
 * anyone. A stored object never mixes patients (a study or series held for another patient is
 * refused), never replaces a stored instance unless `overwrite`, and never shares a file with
 * another SOP Instance UID.
 */
import { existsSync, linkSync, mkdirSync, renameSync, unlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { dicomRecordFields, type DicomRecordFields } from "../dicom/file_record.ts";
import { type DicomFile, readDicomFile } from "../dicom/reader.ts";
import { removeStale } from "../fs/stale.ts";
import { sha256Bytes, sha256FileAsync } from "../fs/hash.ts";
import { FolderIndex, type IndexReport } from "../index/index.ts";
import { storagePath } from "../layout/sanitize.ts";
import {
  type AllowEntry, createScp, DimseStatusError, isValidAeTitle, type MoveDestination, parseAllowEntry, printable, QR_MODELS,
  type QueryRequest, type ReceivedFile, type Scp, type ScpEvent, type ScpLimits, type StoreAnswer, type StoreSource,
  storeSourceFromFile, type Timeouts, type TlsOptions,
} from "../net/mod.ts";
import { TEMP_FILE_PATTERN } from "../net/sinks.ts";
import { ioErrorText } from "../fs/errors.ts";
import { DEFAULT_MAX_FIND_MATCHES, findMatches, QueryError, type QueryModel, selectInstances } from "./find.ts";

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
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /**
   * Callers that may query, retrieve and store: `AE`, `AE@10.0.0.5`, `AE@10.0.0.0/24`, `AE#client-cn`
   * (see lib/net/allow.ts). Everyone else is rejected, unless `allowStoreAny`.
   */
  allow?: (string | AllowEntry)[];
  /** Calling AE titles that may do everything, from any host (the same as `allow` entries without address). */
  allowedCallingAets?: string[];
  /** Anyone may store (and echo); their query/retrieve contexts are still refused. */
  allowStoreAny?: boolean;
  /**
   * Also store SOP classes that are not standard storage classes (vendors' private ones, retired
   * trial classes), as Orthanc's UnknownSopClassAccepted does; they are indexed and answered in
   * Q/R like any other object. Standard non-storage services are never taken for storage.
   */
  acceptUnknownSopClasses?: boolean;
  /** The per-class form of `acceptUnknownSopClasses`: these SOP classes are stored too. */
  acceptSopClasses?: string[];
  /** A second copy of a stored SOP instance replaces the first (default: the first is kept, answered with a warning). */
  overwrite?: boolean;
  /** C-MOVE destinations by AE title. */
  moveDestinations?: Record<string, { host: string; port: number; tls?: TlsOptions }>;
  tls?: TlsOptions;
  /** Timeouts; `dimse` is the idle timeout of an association (default 30 s). */
  timeouts?: Timeouts;
  maxPdu?: number;
  /** Caps on what peers may make the node hold (lib/net/limits.ts). */
  limits?: Partial<ScpLimits>;
  /** C-FIND matches one query may have (default 50,000); more are refused with 0xA700. */
  maxFindMatches?: number;
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
    transferSyntaxUid: string; sha256: string; modality?: string; patientId?: string; studyUid?: string; seriesUid?: string;
    /** The stored object's `file` record fields (lib/dicom/file_record.ts, as every route describes objects). */
    fields: DicomRecordFields;
    /** True when it replaced a stored copy (`overwrite`). */
    replaced?: boolean;
  }
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
  /** Temporary files of a previous run that died, removed at start. */
  readonly cleaned: string[];
  close(): Promise<void>;
}

/** PS3.4 C.4.2.1.5: Refused — Move Destination unknown. */
const STATUS_MOVE_DESTINATION_UNKNOWN = 0xa801;
/** PS3.4 B.2.3: Error — cannot understand. */
const STATUS_CANNOT_UNDERSTAND = 0xc000;
/** PS3.4 C.4.1.1.4: Failed — unable to process (C-FIND). */
const STATUS_UNABLE_TO_PROCESS = 0xc001;
/** PS3.4 B.2.3: Error — data set does not match SOP class (the 0xA9xx class: the object itself is refused). */
const STATUS_DATASET_MISMATCH = 0xa900;
/** PS3.4 B.2.3 warning class (0xB000): stored, with a remark. Here: a duplicate, the stored copy kept. */
const STATUS_WARNING = 0xb000;
/** PS3.7 C.4: processing failure. */
const STATUS_PROCESSING_FAILURE = 0x0110;

/** Objects up to this size are also kept in memory while they arrive, so their hash needs no read-back. */
const KEEP_RECEIVED = 8 * 1024 * 1024;

function modelOf(sopClass: string): QueryModel {
  const p = QR_MODELS.patientRoot;
  return sopClass === p.find || sopClass === p.move || sopClass === p.get ? "PATIENT" : "STUDY";
}

function statusError(e: unknown, fallback: number): DimseStatusError {
  if (e instanceof DimseStatusError) return e;
  if (e instanceof QueryError) return new DimseStatusError(e.status, e.message);
  return new DimseStatusError(fallback, (e as Error).message ?? String(e));
}

/** A refusal: the status, a short Error Comment for the peer, the whole story for the log. */
function refuse(status: number, errorComment: string, detail = errorComment): StoreAnswer {
  return { status, errorComment, detail };
}

/** Runs `fn`s one at a time, in call order (the check-then-place of a store must not interleave). */
function serialized(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>) => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => {});
    return run;
  };
}

/**
 * Puts a received file at `dest` without replacing anything there (a hard link fails when the
 * name exists: two associations storing one SOP instance at once keep the first); false when
 * `dest` exists. With `replace`, a rename (atomic either way).
 */
function place(from: string, dest: string, replace: boolean): boolean {
  mkdirSync(dirname(dest), { recursive: true });
  if (replace) {
    renameSync(from, dest);
    return true;
  }
  try {
    linkSync(from, dest);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "EEXIST") return false;
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "EXDEV") throw e;
    // A file system without hard links: check, then rename (a race between two stores of one UID is then possible).
    if (existsSync(dest)) return false;
    renameSync(from, dest);
    return true;
  }
  unlinkSync(from);
  return true;
}

/**
 * Starts the DICOM node `rtexport serve` runs over a folder (Verification, Storage, Q/R with
 * C-FIND/C-MOVE/C-GET); the folder is scanned first so what is already there can be queried.
 *
 * @example
 * ```ts
 * const scp = await startQrScp({ dir: "store", aeTitle: "RTEXPORT-SCP", port: 11112, allow: ["MIM@10.0.0.5"] });
 * // … later:
 * await scp.close();
 * ```
 */
export async function startQrScp(opts: QrScpOptions): Promise<QrScp> {
  const allow = [
    ...(opts.allow ?? []).map((e) => (typeof e === "string" ? parseAllowEntry(e) : e)),
    ...(opts.allowedCallingAets ?? []).map((aeTitle) => ({ aeTitle })),
  ];
  if (allow.length === 0 && !opts.allowStoreAny) {
    throw new Error("Nobody could use this node: give allow entries (query, retrieve and storage) or allowStoreAny (storage only)");
  }
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
  const cleaned = removeStale(incoming, TEMP_FILE_PATTERN);
  const emit = (e: QrScpEvent) => opts.onEvent?.(e);
  const destinations = new Map(Object.entries(opts.moveDestinations ?? {}).map(([ae, d]) => [ae.trim(), d]));
  const exclusive = serialized();
  const hashing = new Set<Promise<void>>();

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

  /** Hashes a stored file off the event loop, then reports it (the C-STORE-RSP does not wait for this). */
  const report = (file: ReceivedFile, callingAet: string, dest: string, parsed: DicomFile, replaced: boolean) => {
    const ds = parsed.dataset;
    const bytes = file.bytes;
    const job = (file.sha256 ? Promise.resolve(file.sha256) : bytes ? sha256Bytes(bytes) : sha256FileAsync(dest))
      .then((sha256) => {
        emit({
          type: "stored", callingAet: printable(callingAet), path: dest, sopClassUid: file.sopClassUid, sopInstanceUid: file.sopInstanceUid,
          bytes: file.size, transferSyntaxUid: file.transferSyntaxUid, sha256, modality: ds.string(0x00080060),
          patientId: ds.string(0x00100020), studyUid: ds.string(0x0020000d), seriesUid: ds.string(0x0020000e),
          fields: dicomRecordFields(parsed),
          ...(replaced ? { replaced } : {}),
        });
      })
      .catch((e) => emit({ type: "error", callingAet: printable(callingAet), remoteAddress: "", message: `Cannot hash "${dest}": ${(e as Error).message}` }))
      .finally(() => {
        file.release?.();
        hashing.delete(job);
      });
    hashing.add(job);
  };

  const store = async (file: ReceivedFile, callingAet: string): Promise<StoreAnswer> => {
    let parsed;
    try {
      parsed = readDicomFile(file.path);
    } catch (e) {
      return refuse(STATUS_CANNOT_UNDERSTAND, "Cannot parse the data set", `Cannot parse the data set: ${(e as Error).message}`);
    }
    const ds = parsed.dataset;
    if (ds.elements.size === 0) return refuse(STATUS_DATASET_MISMATCH, "Empty data set");
    const sopInstanceUid = ds.string(0x00080018) ?? "";
    const sopClassUid = ds.string(0x00080016) ?? "";
    // The command names the object; the data set must be that object (PS3.4 B.2.3: 0xA900).
    if (sopInstanceUid !== file.sopInstanceUid) {
      return refuse(
        STATUS_DATASET_MISMATCH, "SOP Instance UID differs from the command",
        `the data set's SOP Instance UID "${printable(sopInstanceUid)}" is not the command's "${printable(file.sopInstanceUid)}"`,
      );
    }
    if (sopClassUid !== file.sopClassUid) {
      return refuse(
        STATUS_DATASET_MISMATCH, "SOP Class UID differs from the command",
        `the data set's SOP Class UID "${printable(sopClassUid)}" is not the command's "${printable(file.sopClassUid)}"`,
      );
    }
    const ids = { patientId: ds.string(0x00100020) ?? "", studyUid: ds.string(0x0020000d), seriesUid: ds.string(0x0020000e), sopInstanceUid };
    const dest = storagePath(index.dir, ids);
    return await exclusive(async () => {
      const existing = await index.instanceOf(sopInstanceUid);
      const sameParents = existing &&
        existing.patientId === ids.patientId && existing.studyUid === (ids.studyUid ?? "") && existing.seriesUid === (ids.seriesUid ?? "");
      if (existing && !opts.overwrite) {
        return refuse(STATUS_WARNING, "Duplicate SOP instance: first copy kept", `SOP instance ${sopInstanceUid} is stored already; the first copy was kept (--overwrite replaces it)`);
      }
      if (existing && !sameParents) {
        return refuse(STATUS_DATASET_MISMATCH, "Would move the instance elsewhere", `SOP instance ${sopInstanceUid} is stored under another patient, study or series; not replaced`);
      }
      const conflict = existing ? undefined : await index.conflictOf(ids);
      if (conflict) return refuse(STATUS_DATASET_MISMATCH, "UID held for another patient", conflict);
      // Another SOP Instance UID at this path (a case-insensitive file system, a file put there by hand): never shared.
      const there = await index.uidAt(dest);
      if (there !== undefined && there !== sopInstanceUid) {
        return refuse(STATUS_PROCESSING_FAILURE, "Storage path holds another instance", `"${dest}" already holds SOP instance ${there}`);
      }
      if (!place(file.path, dest, existing !== undefined)) {
        return refuse(STATUS_WARNING, "Duplicate SOP instance: first copy kept", `"${dest}" exists already; the first copy was kept`);
      }
      if (existing && existing.path !== dest) {
        try {
          unlinkSync(existing.path);
        } catch { /* already gone */ }
        await index.removeInstance(existing.path);
      }
      parsed.path = dest;
      await index.addInstance(dest, parsed);
      report(file, callingAet, dest, parsed, existing !== undefined);
      return { status: 0, kept: true };
    });
  };

  let scp: Scp;
  try {
    scp = await createScp({
      aeTitle: opts.aeTitle,
      port: opts.port ?? 0,
      host: opts.host ?? "127.0.0.1",
      tls: opts.tls,
      allow,
      openTo: { store: opts.allowStoreAny === true },
      acceptUnknownSopClasses: opts.acceptUnknownSopClasses === true,
      acceptSopClasses: opts.acceptSopClasses,
      storeDir: incoming,
      keepReceived: KEEP_RECEIVED,
      maxPdu: opts.maxPdu,
      limits: opts.limits,
      timeouts: opts.timeouts,
      onEvent: emit,
      handlers: {
        echo: () => 0,
        store: async ({ file, callingAet }) => {
          try {
            return await store(file, callingAet);
          } catch (e) {
            // Disk full, permissions, a damaged index: the object is refused and the cause logged.
            const why = /database or disk is full/i.test((e as Error).message ?? "")
              ? "no space left on device (the index could not be written)"
              : ioErrorText(e);
            return refuse(STATUS_PROCESSING_FAILURE, "Cannot store the object", why);
          }
        },
        find: async function* (rq) {
          const model = modelOf(rq.model);
          let matches;
          try {
            matches = await findMatches(index, rq.identifier, model, { maxMatches: opts.maxFindMatches ?? DEFAULT_MAX_FIND_MATCHES });
          } catch (e) {
            throw statusError(e, STATUS_UNABLE_TO_PROCESS);
          }
          emit({ type: "find", callingAet: printable(rq.callingAet), model, level: printable(rq.level), matches: matches.length });
          for (const m of matches) {
            if (rq.cancelled()) return;
            yield m;
          }
        },
        move: async (rq) => {
          const name = rq.destination.trim();
          if (!isValidAeTitle(name)) {
            throw new DimseStatusError(STATUS_MOVE_DESTINATION_UNKNOWN, `Move destination "${printable(rq.destination)}" is not an AE title`);
          }
          const d = destinations.get(name);
          if (!d) throw new DimseStatusError(STATUS_MOVE_DESTINATION_UNKNOWN, `Move destination "${name}" is not configured`);
          const instances = await selected(rq);
          emit({ type: "move", callingAet: printable(rq.callingAet), destination: name, instances: instances.length });
          const destination: MoveDestination = { host: d.host, port: d.port, aeTitle: name };
          if (d.tls) destination.tls = d.tls;
          return { destination, instances };
        },
        get: async (rq) => {
          const instances = await selected(rq);
          emit({ type: "get", callingAet: printable(rq.callingAet), instances: instances.length });
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
          emit({ type: "commit", callingAet: printable(callingAet), committed: committed.length, failed: failed.length });
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
    cleaned,
    async close() {
      await scp.close();
      await Promise.all(hashing);
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
