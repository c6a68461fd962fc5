/**
 * The Storage Commitment SCU as a service: asks a peer to commit objects (one N-ACTION per batch,
 * on an association of its own) and waits for the report on that association or on a new one the
 * peer opens to our listener (a small SCP that only takes reports), whichever the peer chooses.
 */
import { randomUUID } from "node:crypto";
import { connect } from "./association.ts";
import { type CommitItem, CommitmentTracker, failureReasonText, receiveReports, requestCommitment, STORAGE_COMMITMENT_PUSH } from "./commitment.ts";
import { statusText } from "./dimse.ts";
import { connectOptions, peerLabel, type PeerSettings } from "./peer.ts";
import { createScp, type Scp } from "./scp.ts";
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from "../dicom/uids.ts";

/** A UID under the UUID root (2.25), for Transaction UIDs. */
export function uuidUid(): string {
  return `2.25.${BigInt(`0x${randomUUID().replace(/-/g, "")}`).toString()}`;
}

/** Where the peer's reports on a new association come in. */
export interface CommitListen {
  /** Our AE title (the peer must know it with this host and port). Default: the peer's calling AE title. */
  aeTitle?: string;
  port: number;
  host?: string;
}

/** How a {@link Committer} reaches the peer and waits for its reports. */
export interface CommitterOptions {
  peer: PeerSettings;
  /** Listen for reports on new associations (without it, only reports on the requesting association arrive). */
  listen?: CommitListen;
  /** How long to wait for a report, ms (default 60 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** What became of one object. */
export interface CommitOutcome extends CommitItem {
  committed: boolean;
  /** Why not, in words (a failure reason, no report, the request refused). */
  reason?: string;
  /** The Failure Reason code, when the report gave one. */
  failureReason?: number;
}

/**
 * Requests commitment in transactions and reports what became of each object.
 *
 * @example
 * ```ts
 * const committer = await Committer.start({ peer, listen: { port: 11114 } });
 * const outcomes = await committer.commit([{ sopClassUid, sopInstanceUid }]);
 * await committer.close();
 * ```
 */
export class Committer {
  readonly tracker = new CommitmentTracker();
  readonly #opts: CommitterOptions;
  #listener: Scp | undefined;

  private constructor(opts: CommitterOptions) {
    this.#opts = opts;
  }

  /** Starts the listener (when `listen` is given); throws when its port cannot be taken. */
  static async start(opts: CommitterOptions): Promise<Committer> {
    const c = new Committer(opts);
    if (opts.listen) {
      const tracker = c.tracker;
      try {
        c.#listener = await createScp({
          aeTitle: opts.listen.aeTitle ?? opts.peer.callingAet,
          port: opts.listen.port,
          host: opts.listen.host,
          checkCalledAet: false,
          handlers: { commitReport: ({ result }) => tracker.deliver(result) },
        });
      } catch (e) {
        throw new Error(`Cannot listen for storage commitment reports on port ${opts.listen.port}: ${(e as Error).message}`);
      }
    }
    return c;
  }

  /** The port the listener took (useful with port 0). */
  get listenPort(): number | undefined {
    return this.#listener?.port;
  }

  /**
   * One transaction: asks the peer to commit `items` and waits for its report. Never throws for
   * the peer's answer: every item comes back with its outcome (a failure that hit the request
   * itself is every item's reason). Throws only on a connection failure (for the caller's retry).
   */
  async commit(items: readonly CommitItem[]): Promise<CommitOutcome[]> {
    const peer = peerLabel(this.#opts.peer);
    const transactionUid = uuidUid();
    const contexts = [{ abstractSyntax: STORAGE_COMMITMENT_PUSH, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN] }];
    const assoc = await connect(connectOptions(this.#opts.peer, contexts));
    const timeoutMs = this.#opts.timeoutMs ?? 60_000;
    try {
      const rsp = await requestCommitment(assoc, transactionUid, items);
      if (rsp.status !== 0) {
        const why = `${peer} refused the storage commitment request: ${statusText(rsp.status)} (0x${rsp.status.toString(16).toUpperCase().padStart(4, "0")})${rsp.errorComment ? `: ${rsp.errorComment}` : ""}`;
        return items.map((i) => ({ ...i, committed: false, reason: why }));
      }
      const report = this.tracker.wait(transactionUid, timeoutMs, this.#opts.signal);
      // Some peers report on this association, others on one they open: listen to both.
      await receiveReports(assoc, (r) => this.tracker.deliver(r), report);
      const result = await report;
      if (!result) {
        const why = `no storage commitment report from ${peer} within ${Math.round(timeoutMs / 1000)} s`;
        return items.map((i) => ({ ...i, committed: false, reason: why }));
      }
      const committed = new Set(result.committed.map((c) => c.sopInstanceUid));
      const failed = new Map(result.failed.map((f) => [f.sopInstanceUid, f.reason]));
      return items.map((i) => {
        if (committed.has(i.sopInstanceUid)) return { ...i, committed: true };
        const code = failed.get(i.sopInstanceUid);
        if (code !== undefined) return { ...i, committed: false, failureReason: code, reason: `${peer} did not commit it: ${failureReasonText(code)}` };
        return { ...i, committed: false, reason: `${peer}'s commitment report does not mention it` };
      });
    } finally {
      if (assoc.established) await assoc.release();
    }
  }

  async close(): Promise<void> {
    await this.#listener?.close();
    this.#listener = undefined;
  }
}
