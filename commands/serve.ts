/** `rtexport serve`: the project's own DICOM node (Verification, Storage, Q/R) over a folder. */
import process from "node:process";
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { defineCommand, errorMessage, parseAeTitle, parsePort, runMain, UsageError } from "../cli/mod.ts";
import { addRetryOptions, retryPolicyFrom } from "../cli/pace.ts";
import type { PeerSettings } from "../lib/net/peer.ts";
import { pushRecords } from "../lib/push/push.ts";
import type { RtRecord } from "../lib/records/types.ts";
import type { StageEvent } from "../lib/stage/stage.ts";
import { parseMoveDestination, type QrScpEvent, startQrScp } from "../lib/qr/scp.ts";
import { sha256File } from "../lib/fs/hash.ts";
import type { FileRecord } from "../lib/records/types.ts";
import { readPem, type TlsOptions } from "../lib/net/mod.ts";

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function collectAe(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), parseAeTitle(value)];
}

function collectDestination(value: string, previous: string[] | undefined): string[] {
  try {
    parseMoveDestination(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return collect(value, previous);
}

/** Records handed from the storage handler to the forwarding push, as they arrive. */
class RecordQueue implements AsyncIterable<RtRecord> {
  #items: RtRecord[] = [];
  #wake: (() => void) | undefined;
  #closed = false;
  push(r: RtRecord): void {
    this.#items.push(r);
    this.#wake?.();
  }
  close(): void {
    this.#closed = true;
    this.#wake?.();
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<RtRecord> {
    for (;;) {
      while (this.#items.length) yield this.#items.shift()!;
      if (this.#closed) return;
      await new Promise<void>((r) => (this.#wake = r));
      this.#wake = undefined;
    }
  }
}

/** `--forward`: a named peer from rtexport.json, or `AE@host:port`. */
function forwardPeer(value: string, peers: Record<string, Partial<PeerSettings>>, callingAet: string): PeerSettings {
  const m = /^([^@]+)@(.+):(\d+)$/.exec(value);
  if (m) return { host: m[2], port: parsePort(m[3]), calledAet: parseAeTitle(m[1]), callingAet };
  const named = peers[value];
  if (!named || typeof named.host !== "string") {
    throw new UsageError(`Unknown forward peer "${value}": give AE@host:port or a peer named in rtexport.json`);
  }
  return { port: 104, calledAet: "ANY-SCP", ...named, callingAet: named.callingAet ?? callingAet } as PeerSettings;
}

function readPemOption(path: string, what: string): string {
  try {
    return readPem(path, what);
  } catch (e) {
    throw new UsageError(errorMessage(e));
  }
}

export const main = defineCommand({
  name: "serve",
  summary: "run a DICOM node over a folder: storage, C-FIND, C-MOVE, C-GET, with an SQLite index",
  description: [
    "Listens for associations and answers Verification, Storage (every storage class, RT included),",
    "and Query/Retrieve (Patient Root and Study Root; C-FIND at PATIENT, STUDY, SERIES and IMAGE level;",
    "C-MOVE to the destinations given with --move-dest; C-GET). Received objects are written atomically to",
    "DIR/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm and indexed in",
    "DIR/.rtexport-index.sqlite; files already in DIR are indexed at start (incrementally).",
    "Each stored object is written to stdout as a `file` record. Stops cleanly on SIGINT/SIGTERM.",
    "With --forward PEER every object is also sent on to PEER as it arrives (push's engine: dependency",
    "order, retries); its record then carries the `push` outcome. Storage Commitment requests are answered",
    "on the association they came on: an object is committed when it is in DIR and indexed.",
  ].join(" "),
  examples: [
    "rtexport serve --dir ./pacs --port 11112 --aet RTEXPORT",
    "rtexport serve --dir ./pacs --port 11112 --allow MIM --allow ARIA --move-dest MIM=10.0.0.5:104",
    "rtexport serve --dir ./pacs --port 2762 --tls --cert server.pem --key server.key --ca clients.pem",
    "rtexport serve --dir ./relay --port 11112 --forward ORTHANC@pacs.local:4242",
  ],
  configure(cmd: Command) {
    cmd.addOption(new Option("--dir <dir>", "folder to serve (created when absent)").makeOptionMandatory());
    cmd.addOption(new Option("--port <port>", "TCP port to listen on (0: any free port)").argParser((v) => (v === "0" ? 0 : parsePort(v))).default(11112));
    cmd.addOption(new Option("--host <address>", "address to listen on").default("0.0.0.0"));
    cmd.addOption(new Option("--aet <ae>", "our AE title (the called AE title peers must use)").argParser(parseAeTitle).default("RTEXPORT"));
    cmd.addOption(new Option("--allow <ae>", "calling AE title allowed to associate (repeatable; default: any)").argParser(collectAe));
    cmd.addOption(new Option("--move-dest <NAME=host:port>", "C-MOVE destination (repeatable)").argParser(collectDestination));
    cmd.addOption(new Option("--tls", "accept TLS connections only (needs --cert and --key)"));
    cmd.addOption(new Option("--cert <file>", "TLS server certificate (PEM)"));
    cmd.addOption(new Option("--key <file>", "TLS private key (PEM)"));
    cmd.addOption(new Option("--ca <file>", "CA certificate(s); with it, clients must present a certificate it signed"));
    cmd.addOption(new Option("--forward <peer>", "send each stored object on to this peer as it arrives: AE@host:port or a peer named in rtexport.json"));
    addRetryOptions(cmd);
  },
  human: {
    record(r) {
      const f = r as FileRecord;
      return f.type === "file" ? `stored ${f.modality ?? ""} ${f.path}` : JSON.stringify(r);
    },
  },
  async run(ctx) {
    const o = ctx.options;
    let tls: TlsOptions | undefined;
    if (o.tls) {
      if (!o.cert || !o.key) throw new UsageError("--tls needs --cert and --key");
      tls = { cert: readPemOption(o.cert, "certificate"), key: readPemOption(o.key, "private key") };
      if (o.ca) Object.assign(tls, { ca: readPemOption(o.ca, "CA certificate"), requestCert: true, rejectUnauthorized: true });
    } else if (o.cert || o.key || o.ca) {
      throw new UsageError("--cert, --key and --ca need --tls");
    }
    const forwardTo = o.forward ? forwardPeer(o.forward, ctx.config.peers as Record<string, Partial<PeerSettings>>, o.aet) : undefined;
    const moveDestinations = Object.fromEntries((o.moveDest as string[] | undefined ?? []).map((d) => parseMoveDestination(d)));
    const log = ctx.log;
    const pending = new Set<Promise<void>>();
    // Forwarding: what arrives goes into a queue that push's engine reads while the node serves.
    const forward = forwardTo ? new RecordQueue() : undefined;
    let forwardFailures = 0;
    const forwarding = forward && (async () => {
      const onEvent = (e: StageEvent) => {
        if (e.type === "failed") forwardFailures++;
        if (e.type === "failed") ctx.reporter.failed(e.reason.startsWith("Cannot ") ? e.reason : `Cannot forward ${e.item}: ${e.reason}`);
        else if (e.type === "message" && e.level !== "debug") log[e.level](`forward: ${e.text}`);
      };
      for await (const r of pushRecords(forward, { peer: forwardTo!, retry: retryPolicyFrom(o), onEvent })) {
        if (!ctx.out.closed) await ctx.out.write(r).catch(() => {});
      }
    })();
    const onEvent = (e: QrScpEvent) => {
      switch (e.type) {
        case "association":
          log.info(`association from ${e.callingAet} (${e.remoteAddress}) accepted, ${e.accepted} presentation contexts`);
          break;
        case "rejected":
          log.warn(`association from ${e.callingAet} (${e.remoteAddress}) rejected: ${e.reason}`);
          break;
        case "closed":
          log.debug(`association from ${e.callingAet} (${e.remoteAddress}) ended: ${e.reason}`);
          break;
        case "error":
          log.warn(`association from ${e.callingAet ?? "?"} (${e.remoteAddress}): ${e.message}`);
          break;
        case "store-failed":
          ctx.reporter.failed(`Cannot store an object from ${e.callingAet}: ${e.message}`);
          break;
        case "find":
          log.debug(`C-FIND ${e.model === "PATIENT" ? "Patient Root" : "Study Root"} ${e.level} from ${e.callingAet}: ${e.matches} matches`);
          break;
        case "move":
          log.info(`C-MOVE from ${e.callingAet} to ${e.destination}: ${e.instances} objects`);
          break;
        case "get":
          log.info(`C-GET from ${e.callingAet}: ${e.instances} objects`);
          break;
        case "commit":
          log.info(`storage commitment for ${e.callingAet}: ${e.committed} committed, ${e.failed} not`);
          break;
        case "stored": {
          const rec: FileRecord = {
            type: "file", path: e.path, bytes: e.bytes, sha256: sha256File(e.path), category: "dicom",
            sopClassUid: e.sopClassUid, sopInstanceUid: e.sopInstanceUid, transferSyntaxUid: e.transferSyntaxUid,
          };
          if (e.modality) rec.modality = e.modality;
          if (e.patientId !== undefined) rec.patientId = e.patientId;
          if (e.studyUid) rec.studyUid = e.studyUid;
          if (e.seriesUid) rec.seriesUid = e.seriesUid;
          if (forward) {
            forward.push(rec);
            break;
          }
          if (!ctx.out.closed) {
            const p = ctx.out.write(rec).catch(() => {}).finally(() => pending.delete(p));
            pending.add(p);
          }
          break;
        }
      }
    };
    const node = await startQrScp({
      dir: o.dir,
      aeTitle: o.aet,
      port: o.port,
      host: o.host,
      allowedCallingAets: o.allow,
      moveDestinations,
      tls,
      onEvent,
    });
    const s = node.scan;
    if (s) {
      log.info(`indexed ${o.dir}: ${s.added} new, ${s.updated} changed, ${s.unchanged} unchanged, ${s.removed} removed, ${s.failed.length} not DICOM`);
    }
    log.info(`listening on ${node.host}:${node.port} as ${node.aeTitle}${tls ? " (TLS)" : ""}, serving ${node.index.dir}${forwardTo ? `, forwarding to ${forwardTo.calledAet}@${forwardTo.host}:${forwardTo.port}` : ""}`);
    // Our own signal listeners as well as ctx.signal: under Deno, when the command is loaded
    // through cli.ts, the platform's listeners were not called (measured: killed with 143).
    let stop: () => void = () => {};
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    if (ctx.signal.aborted) stop();
    ctx.signal.addEventListener("abort", stop, { once: true });
    try {
      await stopped;
    } finally {
      process.removeListener("SIGINT", stop);
      process.removeListener("SIGTERM", stop);
    }
    log.info("stopping");
    await node.close();
    await Promise.all(pending);
    if (forward) {
      // What arrived is forwarded before the command ends.
      forward.close();
      await forwarding;
    }
    // Exit 3 when something could not be forwarded (a rerun of push over DIR sends it).
    return forwardFailures > 0 ? 3 : 0;
  },
});

runMain(import.meta, main);
