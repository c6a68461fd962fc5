/**
 * What a peer may make us hold, as data: every byte buffered and every association kept has a
 * cap here, so a hostile peer costs a bounded amount and then gets a refusal (A-ABORT,
 * A-ASSOCIATE-RJ or a failure status), never the whole process. docs/security.md lists them.
 */

/** Limits of one association (both sides). */
export interface AssociationLimits {
  /**
   * Largest P-DATA-TF PDU we receive, announced in our A-ASSOCIATE (Maximum Length Received); a
   * peer that sends a larger one is aborted, as DCMTK does. 0 announces "no limit" (PDUs are
   * streamed, never reassembled, so this bounds no buffer: it keeps peers honest).
   */
  maxPdu: number;
  /**
   * Largest other PDU (A-ASSOCIATE-RQ/AC above all): checked on its 6-byte header, before its
   * body is buffered.
   */
  maxAssociatePdu: number;
  /** Largest command set (commands are a few hundred bytes). */
  maxCommand: number;
  /**
   * Largest data set kept in memory: identifiers (C-FIND/MOVE/GET requests, C-FIND answers) and
   * a C-STORE received without `storeDir`. C-STORE data sets stream to disk, unbounded here.
   */
  maxIdentifier: number;
  /** Complete messages queued unread before we stop reading the socket (back-pressure). */
  maxQueuedMessages: number;
}

/** Limits of an SCP (listener). */
export interface ScpLimits extends AssociationLimits {
  /** Open connections at once; those beyond are refused (A-ASSOCIATE-RJ, local limit exceeded). */
  maxAssociations: number;
  /** Open connections at once from one host (remote address), and associations of one calling AE title. */
  maxAssociationsPerPeer: number;
}

import { DEFAULT_MAX_PDU } from "./pdu.ts";

/** Bytes in a mebibyte, for readable defaults. */
const MiB = 1024 * 1024;

export const DEFAULT_ASSOCIATION_LIMITS: Readonly<AssociationLimits> = Object.freeze({
  maxPdu: DEFAULT_MAX_PDU,
  maxAssociatePdu: 256 * 1024,
  maxCommand: 64 * 1024,
  maxIdentifier: 1 * MiB,
  maxQueuedMessages: 8,
});

export const DEFAULT_SCP_LIMITS: Readonly<ScpLimits> = Object.freeze({
  ...DEFAULT_ASSOCIATION_LIMITS,
  maxAssociations: 32,
  maxAssociationsPerPeer: 16,
});

/** Idle timeout of an SCP association (no bytes from the peer for this long): as Orthanc's DicomScpTimeout. */
export const DEFAULT_SCP_IDLE_MS = 30_000;

/** The defaults with `given` on top (undefined fields ignored). */
export function withDefaults<T extends object>(defaults: Readonly<T>, given: Partial<T> | undefined): T {
  const out = { ...defaults } as T;
  for (const [k, v] of Object.entries(given ?? {})) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
