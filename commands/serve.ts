/** `rtexport serve`: the project's own DICOM node (Verification, Storage, Q/R) over a folder. */
import process from "node:process";
import type { Command } from "commander";
import { InvalidArgumentError, Option } from "commander";
import { defineCommand, errorMessage, parseAeTitle, parsePort, runMain, UsageError } from "../cli/mod.ts";
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
  ].join(" "),
  examples: [
    "rtexport serve --dir ./pacs --port 11112 --aet RTEXPORT",
    "rtexport serve --dir ./pacs --port 11112 --allow MIM --allow ARIA --move-dest MIM=10.0.0.5:104",
    "rtexport serve --dir ./pacs --port 2762 --tls --cert server.pem --key server.key --ca clients.pem",
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
    const moveDestinations = Object.fromEntries((o.moveDest as string[] | undefined ?? []).map((d) => parseMoveDestination(d)));
    const log = ctx.log;
    const pending = new Set<Promise<void>>();
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
        case "stored": {
          const rec: FileRecord = {
            type: "file", path: e.path, bytes: e.bytes, sha256: sha256File(e.path), category: "dicom",
            sopClassUid: e.sopClassUid, sopInstanceUid: e.sopInstanceUid, transferSyntaxUid: e.transferSyntaxUid,
          };
          if (e.modality) rec.modality = e.modality;
          if (e.patientId !== undefined) rec.patientId = e.patientId;
          if (e.studyUid) rec.studyUid = e.studyUid;
          if (e.seriesUid) rec.seriesUid = e.seriesUid;
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
    log.info(`listening on ${node.host}:${node.port} as ${node.aeTitle}${tls ? " (TLS)" : ""}, serving ${node.index.dir}`);
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
    return 0;
  },
});

runMain(import.meta, main);
