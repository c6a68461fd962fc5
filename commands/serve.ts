/** `rtexport serve`: the project's own DICOM node (Verification, Storage, Q/R) over a folder. */
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { defineCommand, errorMessage, parseAeTitle, parsePort, parsePositiveInt, parseSeconds, runMain, untilStopped, UsageError } from "../cli/mod.ts";
import { addRetryOptions, retryPolicyFrom } from "../cli/pace.ts";
import type { PeerSettings } from "../lib/net/peer.ts";
import { pushRecords } from "../lib/push/push.ts";
import type { RtRecord } from "../lib/records/types.ts";
import type { StageEvent } from "../lib/stage/stage.ts";
import { parseMoveDestination, type QrScpEvent, startQrScp } from "../lib/qr/scp.ts";
import { DEFAULT_MAX_FIND_MATCHES } from "../lib/qr/find.ts";
import type { FileRecord } from "../lib/records/types.ts";
import {
  type AllowEntry, DEFAULT_SCP_IDLE_MS, DEFAULT_SCP_LIMITS, formatAllowEntry, parseAllowEntry, readPem, type TlsOptions,
} from "../lib/net/mod.ts";

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function collectAllow(value: string, previous: AllowEntry[] | undefined): AllowEntry[] {
  try {
    return [...(previous ?? []), parseAllowEntry(value)];
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message.replace(/^Invalid allow entry "[^"]*": /, "") + ".");
  }
}

function collectUid(value: string, previous: string[] | undefined): string[] {
  const uid = value.trim();
  if (!/^[0-2](\.(0|[1-9]\d*))+$/.test(uid) || uid.length > 64) throw new InvalidArgumentError(`"${value}" is not a UID (digits and dots, at most 64 characters).`);
  return collect(uid, previous);
}

function collectDestination(value: string, previous: string[] | undefined): string[] {
  try {
    parseMoveDestination(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  return collect(value, previous);
}

/** A byte count between `min` and `max` (commander argument parser). */
function bytesBetween(min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || n < min || n > max) throw new InvalidArgumentError(`expected a number of bytes ${min}-${max}.`);
    return n;
  };
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

const LIMITS = "Limits (what one peer may cost; docs/security.md):";

export const main = defineCommand({
  name: "serve",
  summary: "run a DICOM node over a folder: storage, C-FIND, C-MOVE, C-GET, with an SQLite index",
  description: [
    "Listens for associations and answers Verification, Storage (every standard storage class, RT included;",
    "vendors' private and retired trial classes with --accept-unknown or --accept-sop-class UID),",
    "and Query/Retrieve (Patient Root and Study Root; C-FIND at PATIENT, STUDY, SERIES and IMAGE level;",
    "C-MOVE to the destinations given with --move-dest; C-GET). Received objects are written atomically to",
    "DIR/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm and indexed in",
    "DIR/.rtexport-index.sqlite; files already in DIR are indexed at start (incrementally).",
    "Closed by default: it listens on 127.0.0.1 unless --host is given, and only callers given with --allow",
    "may query, retrieve and store (--allow-store-any opens storage alone to anyone). A stored instance is",
    "never replaced unless --overwrite, and an object whose study or series belongs to another patient is",
    "refused (0xA900). Each stored object is written to stdout as a `file` record. Stops cleanly on SIGINT/SIGTERM.",
    "With --forward PEER every object is also sent on to PEER as it arrives (push's engine: dependency",
    "order, retries); its record then carries the `push` outcome. Storage Commitment requests are answered",
    "on the association they came on: an object is committed when it is in DIR and indexed.",
  ].join(" "),
  examples: [
    "rtexport serve --dir ./pacs --port 11112 --aet RTEXPORT --allow STORESCU --allow FINDSCU",
    "rtexport serve --dir ./pacs --host 0.0.0.0 --allow MIM@10.0.0.5 --allow ARIA@10.0.1.0/24 --move-dest MIM=10.0.0.5:104",
    "rtexport serve --dir ./pacs --host 0.0.0.0 --allow-store-any --allow MIM@10.0.0.5",
    "rtexport serve --dir ./pacs --allow IDMS@10.0.0.7 --accept-sop-class 1.3.46.670589.2.4.1.1 --accept-sop-class 1.2.840.10008.5.1.4.34.1",
    "rtexport serve --dir ./pacs --host 0.0.0.0 --port 2762 --tls --cert server.pem --key server.key --ca clients.pem --allow MIM#mim.hospital.org",
    "rtexport serve --dir ./relay --allow-store-any --forward ORTHANC@pacs.local:4242",
  ],
  configure(cmd: Command) {
    cmd.addOption(new Option("--dir <dir>", "folder to serve (created when absent)").makeOptionMandatory());
    cmd.addOption(new Option("--port <port>", "TCP port to listen on (0: any free port)").argParser((v) => (v === "0" ? 0 : parsePort(v))).default(11112));
    cmd.addOption(new Option("--host <address>", "address to listen on (0.0.0.0: every interface)").default("127.0.0.1"));
    cmd.addOption(new Option("--aet <ae>", "our AE title (the called AE title peers must use)").argParser(parseAeTitle).default("RTEXPORT"));
    cmd.addOption(
      new Option(
        "--allow <AE[@address[/bits]][#CN]>",
        "caller allowed to query, retrieve and store, optionally only from an address or network and, with --tls, with a client certificate of that CN (repeatable)",
      ).argParser(collectAllow),
    );
    cmd.addOption(new Option("--allow-store-any", "any caller may store (and echo); query/retrieve still needs --allow"));
    cmd.addOption(new Option("--accept-unknown", "also store SOP classes that are not standard storage classes (vendors' private ones, retired trial classes) and answer them in Q/R"));
    cmd.addOption(
      new Option("--accept-sop-class <uid>", "also store this SOP class (repeatable; the per-class form of --accept-unknown, e.g. in rtexport.json)").argParser(collectUid),
    );
    cmd.addOption(new Option("--overwrite", "a second copy of a stored SOP instance replaces the first (default: the first is kept, answered with warning 0xB000)"));
    cmd.addOption(new Option("--move-dest <NAME=host:port>", "C-MOVE destination (repeatable; with --tls, reached over TLS)").argParser(collectDestination));
    cmd.addOption(new Option("--tls", "accept TLS connections only (needs --cert, --key and --ca, or --tls-no-client-cert)"));
    cmd.addOption(new Option("--cert <file>", "TLS server certificate (PEM)"));
    cmd.addOption(new Option("--key <file>", "TLS private key (PEM)"));
    cmd.addOption(new Option("--ca <file>", "CA certificate(s) that sign the clients' certificates (and C-MOVE destinations' with --tls)"));
    cmd.addOption(new Option("--tls-no-client-cert", "with --tls: do not ask callers for a certificate (the allow list then binds AE titles to addresses only)"));
    cmd.addOption(new Option("--forward <peer>", "send each stored object on to this peer as it arrives: AE@host:port or a peer named in rtexport.json"));
    addRetryOptions(cmd);
    const limits = [
      new Option("--idle-timeout <s>", "close an association after this many seconds without a byte from the peer").argParser(parseSeconds).default(DEFAULT_SCP_IDLE_MS / 1000),
      new Option("--max-associations <n>", "associations open at once").argParser(parsePositiveInt).default(DEFAULT_SCP_LIMITS.maxAssociations),
      new Option("--max-associations-per-peer <n>", "associations open at once from one host, and as one calling AE title").argParser(parsePositiveInt).default(DEFAULT_SCP_LIMITS.maxAssociationsPerPeer),
      new Option("--max-pdu <bytes>", "largest PDU we receive (announced; larger ones abort the association)").argParser(bytesBetween(4096, 4194304)).default(DEFAULT_SCP_LIMITS.maxPdu),
      new Option("--max-associate-pdu <bytes>", "largest A-ASSOCIATE-RQ (checked before it is read)").argParser(bytesBetween(4096, 16777216)).default(DEFAULT_SCP_LIMITS.maxAssociatePdu),
      new Option("--max-command <bytes>", "largest DIMSE command set").argParser(bytesBetween(1024, 16777216)).default(DEFAULT_SCP_LIMITS.maxCommand),
      new Option("--max-identifier <bytes>", "largest query identifier (C-FIND/MOVE/GET data set)").argParser(bytesBetween(1024, 268435456)).default(DEFAULT_SCP_LIMITS.maxIdentifier),
      new Option("--max-find-results <n>", "C-FIND matches one query may have (more: refused with 0xA700)").argParser(parsePositiveInt).default(DEFAULT_MAX_FIND_MATCHES),
    ];
    for (const o of limits) cmd.addOption(o.helpGroup(LIMITS));
  },
  human: {
    record(r) {
      const f = r as FileRecord;
      return f.type === "file" ? `stored ${f.modality ?? ""} ${f.path}` : JSON.stringify(r);
    },
  },
  async run(ctx) {
    const o = ctx.options;
    const allow = (o.allow as AllowEntry[] | undefined) ?? [];
    if (allow.length === 0 && !o.allowStoreAny) {
      throw new UsageError("serve needs --allow AE for callers that may query and retrieve, or --allow-store-any to accept storage from anyone");
    }
    let tls: TlsOptions | undefined;
    if (o.tls) {
      if (!o.cert || !o.key) throw new UsageError("--tls needs --cert and --key");
      if (!o.ca && !o.tlsNoClientCert) {
        throw new UsageError("--tls needs --ca to verify client certificates, or --tls-no-client-cert to accept callers without one");
      }
      tls = { cert: readPemOption(o.cert, "certificate"), key: readPemOption(o.key, "private key") };
      if (o.ca) tls.ca = readPemOption(o.ca, "CA certificate");
      if (!o.tlsNoClientCert) tls.requestCert = true;
    } else if (o.cert || o.key || o.ca || o.tlsNoClientCert) {
      throw new UsageError("--cert, --key, --ca and --tls-no-client-cert need --tls");
    }
    const bound = allow.find((e) => e.subject !== undefined);
    if (bound && !tls?.requestCert) {
      throw new UsageError(`--allow ${formatAllowEntry(bound)} names a client certificate: it needs --tls with --ca (and not --tls-no-client-cert)`);
    }
    // With --tls, C-MOVE sub-associations go out over TLS too: our certificate as the client's, the destination checked against --ca.
    const moveTls: TlsOptions | undefined = tls ? { cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}) } : undefined;
    const moveDestinations = Object.fromEntries((o.moveDest as string[] | undefined ?? []).map((d) => {
      const [name, dest] = parseMoveDestination(d);
      return [name, moveTls ? { ...dest, tls: moveTls } : dest];
    }));
    const forwardTo = o.forward ? forwardPeer(o.forward, ctx.config.peers as Record<string, Partial<PeerSettings>>, o.aet) : undefined;
    const log = ctx.log;
    const pending = new Set<Promise<void>>();
    // Forwarding: what arrives goes into a queue that push's engine reads while the node serves.
    const forward = forwardTo ? new RecordQueue() : undefined;
    let forwardFailures = 0;
    const forwarding = forward && (async () => {
      const onEvent = (e: StageEvent) => {
        if (e.type === "failed") {
          forwardFailures++;
          ctx.reporter.failed(e.reason.startsWith("Cannot ") ? e.reason : `Cannot forward ${e.item}: ${e.reason}`);
        } else if (e.type === "message" && e.level !== "debug") log[e.level](`forward: ${e.text}`);
      };
      for await (const r of pushRecords(forward, { peer: forwardTo!, retry: retryPolicyFrom(o), onEvent })) {
        if (!ctx.out.closed) await ctx.out.write(r).catch(() => {});
      }
    })();
    const onEvent = (e: QrScpEvent) => {
      switch (e.type) {
        case "association":
          log.info(`association from ${e.callingAet} (${e.remoteAddress}) accepted, ${e.accepted} presentation contexts${e.services === "storage" ? " (storage only)" : ""}`);
          break;
        case "rejected":
          log.warn(`association from ${e.callingAet} (${e.remoteAddress}) rejected: ${e.reason}`);
          break;
        case "closed":
          if (/idle timeout|Protocol error|larger than/.test(e.reason)) log.warn(`association from ${e.callingAet} (${e.remoteAddress}) ended: ${e.reason}`);
          else log.debug(`association from ${e.callingAet} (${e.remoteAddress}) ended: ${e.reason}`);
          break;
        case "error":
          log.warn(`${e.remoteAddress ? `association from ${e.callingAet ?? "?"} (${e.remoteAddress})` : "serve"}: ${e.message}`);
          break;
        case "store-failed": {
          const line = `object ${e.sopInstanceUid || "?"} from ${e.callingAet} (${e.remoteAddress}), status 0x${e.status.toString(16).toUpperCase().padStart(4, "0")}: ${e.message}`;
          if (e.warning) log.warn(`Stored with a warning: ${line}`);
          else ctx.reporter.failed(`Cannot store ${line}`);
          break;
        }
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
          const rec: FileRecord = { type: "file", path: e.path, bytes: e.bytes, sha256: e.sha256, ...e.fields };
          if (e.replaced) log.info(`replaced the stored copy of ${e.sopInstanceUid} (--overwrite)`);
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
      allow,
      allowStoreAny: o.allowStoreAny === true,
      overwrite: o.overwrite === true,
      acceptUnknownSopClasses: o.acceptUnknown === true,
      acceptSopClasses: o.acceptSopClass as string[] | undefined,
      moveDestinations,
      tls,
      timeouts: { dimse: (o.idleTimeout as number) * 1000 },
      limits: {
        maxAssociations: o.maxAssociations,
        maxAssociationsPerPeer: o.maxAssociationsPerPeer,
        maxPdu: o.maxPdu,
        maxAssociatePdu: o.maxAssociatePdu,
        maxCommand: o.maxCommand,
        maxIdentifier: o.maxIdentifier,
      },
      maxFindMatches: o.maxFindResults,
      onEvent,
    });
    const s = node.scan;
    if (s) {
      log.info(`indexed ${o.dir}: ${s.added} new, ${s.updated} changed, ${s.unchanged} unchanged, ${s.removed} removed, ${s.failed.length} not DICOM`);
      if (s.conflicts > 0) {
        log.warn(`${s.conflicts} study or series UIDs in ${o.dir} are held under more than one PatientID; they are kept apart (query with PatientID to tell them apart)`);
      }
    }
    if (node.cleaned.length) log.info(`removed ${node.cleaned.length} temporary files left by a previous run in ${o.dir}/.incoming`);
    const who = allow.length ? `allowing ${allow.map(formatAllowEntry).join(", ")}` : "allowing nobody to query";
    const extra = o.acceptUnknown ? ", storing unknown SOP classes too" : o.acceptSopClass?.length ? `, storing SOP classes ${o.acceptSopClass.join(", ")} too` : "";
    log.info(`listening on ${node.host}:${node.port} as ${node.aeTitle}${tls ? " (TLS)" : ""}, serving ${node.index.dir}, ${who}${o.allowStoreAny ? ", storage from anyone" : ""}${extra}${forwardTo ? `, forwarding to ${forwardTo.calledAet}@${forwardTo.host}:${forwardTo.port}` : ""}`);
    await untilStopped(ctx.signal);
    log.info("stopping");
    await node.close();
    await Promise.all(pending);
    if (forward) {
      // What arrived is forwarded before the command ends.
      forward.close();
      await forwarding;
    }
    // Exit 3 when something could not be forwarded (a later push over DIR sends it).
    return forwardFailures > 0 ? 3 : 0;
  },
});

runMain(import.meta, main);
