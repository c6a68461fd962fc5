/**
 * A small coverage-guided mutational fuzzer for the parsers a peer feeds: the PDU decoder
 * (lib/net/pdu.ts), the DIMSE command decoder (lib/net/dimse.ts) and the DICOM reader
 * (lib/dicom/reader.ts). Run with Node (it needs node:inspector):
 *
 *   node scripts/fuzz.ts [--target pdu|command|reader|all] [--seconds 60] [--max-execs N] [--seed 1] [--out fuzz-out] [--blind]
 *
 * (`--blind` keeps no new inputs: plain random mutation, to compare; `--target selftest` runs a
 * planted bug only guidance finds quickly, scripts/_fuzz_selftest.ts.)
 *
 * Why our own: @jazzer.js/core cannot be installed here (4.0.0's prebuilt addon needs glibc
 * 2.38, Debian 12 has 2.36; 2.1.0 fails to build). V8 already counts block executions for code
 * coverage; node:inspector's Profiler hands them out per input (`takePreciseCoverage` resets the
 * counters), which is all a greybox fuzzer needs: an input that reaches a new block, or a block a
 * new number of times (AFL's buckets), joins the corpus and is mutated further. About 300–600
 * inputs a second on this 2-CPU machine (each coverage read costs ~1.7 ms): slow next to a
 * compiled fuzzer, enough for parsers whose inputs are small.
 *
 * A crash is any exception other than the parser's own error class, an input that takes longer
 * than 1 s, or the process growing past 1.5 GiB; a watchdog thread catches a hang (5 s without
 * progress) and kills the process after saving the input. Crashing inputs go to `--out`. Exit 0
 * when nothing crashed; the last stdout line is a JSON summary per target.
 */
import { Session } from "node:inspector";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { Worker } from "node:worker_threads";
import { type DataSet } from "../lib/dicom/dataset.ts";
import { DicomParseError, parseDicom } from "../lib/dicom/reader.ts";
import { plantedBug } from "./_fuzz_selftest.ts";
import { decodeCommand, encodeCommand } from "../lib/net/dimse.ts";
import {
  decodePdu, encodeAbort, encodeAssociate, encodeAssociateRj, encodeReleaseRp, encodeReleaseRq, fragment, PDU_ASSOCIATE_AC,
  PDU_ASSOCIATE_RQ, PduError,
} from "../lib/net/pdu.ts";

const MAX_LEN = 64 * 1024;
const SLOW_MS = 1000;
const HANG_MS = 5000;
const RSS_LIMIT = 1.5 * 1024 * 1024 * 1024;

interface Target {
  name: string;
  /** Source files whose coverage guides this target (path fragments). */
  files: string[];
  seeds(): Uint8Array[];
  /** Runs one input; throws only for a crash (expected parse errors are caught here). */
  run(input: Uint8Array): void;
}

function touch(ds: DataSet): void {
  for (const el of ds.elements.values()) {
    ds.values(el.tag);
    for (const item of el.items ?? []) touch(item);
  }
}

/** True for the errors a parser is meant to throw on bad input (not TypeError, RangeError, …). */
function expected(e: unknown, cls: new (...a: never[]) => Error): boolean {
  return e instanceof cls || (e instanceof Error && e.constructor === Error);
}

const rq = {
  type: PDU_ASSOCIATE_RQ, protocolVersion: 1, calledAet: "RTSERVE", callingAet: "FUZZER", applicationContext: "1.2.840.10008.3.1.1.1",
  contexts: [
    { id: 1, abstractSyntax: "1.2.840.10008.1.1", transferSyntaxes: ["1.2.840.10008.1.2"] },
    { id: 3, abstractSyntax: "1.2.840.10008.5.1.4.1.2.2.1", transferSyntaxes: ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"] },
  ],
  user: { maxPduLength: 16384, implementationClassUid: "1.2.3.4", implementationVersionName: "FUZZ", roles: [{ sopClassUid: "1.2.840.10008.5.1.4.1.1.2", scu: false, scp: true }], other: [{ type: 0x58, value: Uint8Array.of(1, 0, 0, 2, 0x41, 0x42, 0, 0) }] },
} as const;

const commands = [
  { commandField: 0x0001, messageId: 1, affectedSopClassUid: "1.2.840.10008.5.1.4.1.1.2", affectedSopInstanceUid: "1.2.3.4.5", priority: 0, hasDataSet: true, moveOriginatorAet: "MOVER", moveOriginatorMessageId: 3 },
  { commandField: 0x8021, messageIdBeingRespondedTo: 2, affectedSopClassUid: "1.2.840.10008.5.1.4.1.2.2.2", status: 0xff00, remaining: 4, completed: 1, failed: 0, warning: 0, hasDataSet: false },
  { commandField: 0x0021, messageId: 9, affectedSopClassUid: "1.2.840.10008.5.1.4.1.2.2.2", priority: 0, moveDestination: "DEST", hasDataSet: true },
  { commandField: 0x8001, messageIdBeingRespondedTo: 1, status: 0xa900, errorComment: "Refused", offendingElement: [0x00100020, 0x0020000d], hasDataSet: false },
];

/** Small DICOM files other tools wrote (pydicom's test data from Debian), plus one of ours. */
function dicomSeeds(): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const dir of ["/usr/lib/python3/dist-packages/pydicom/data/test_files", resolve(import.meta.dirname ?? ".", "../fixtures")]) {
    let names: string[] = [];
    try {
      names = readdirSync(dir, { recursive: true }) as string[];
    } catch { /* not installed */ }
    for (const n of names.sort()) {
      const p = join(dir, n);
      try {
        if (!/\.dcm$/i.test(n) || statSync(p).size > MAX_LEN) continue;
        out.push(new Uint8Array(readFileSync(p)));
      } catch { /* unreadable */ }
      if (out.length >= 40) break;
    }
  }
  return out;
}

const TARGETS: Record<string, Target> = {
  pdu: {
    name: "pdu",
    files: ["/lib/net/pdu.ts"],
    seeds: () => [
      encodeAssociate(structuredClone(rq) as never),
      encodeAssociate({ ...structuredClone(rq), type: PDU_ASSOCIATE_AC, contexts: [{ id: 1, result: 0, transferSyntax: "1.2.840.10008.1.2" }] } as never),
      encodeAssociateRj(1, 1, 3), encodeReleaseRq(), encodeReleaseRp(), encodeAbort(2, 6),
      ...fragment(1, true, encodeCommand({ ...commands[0] }), 64), ...fragment(3, false, Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), 16384),
    ],
    run(input) {
      try {
        decodePdu(input);
      } catch (e) {
        if (!expected(e, PduError)) throw e;
      }
    },
  },
  command: {
    name: "command",
    files: ["/lib/net/dimse.ts"],
    seeds: () => commands.map((c) => encodeCommand({ ...c })),
    run(input) {
      try {
        decodeCommand(input);
      } catch (e) {
        if (!expected(e, Error)) throw e;
      }
    },
  },
  reader: {
    name: "reader",
    files: ["/lib/dicom/"],
    seeds: dicomSeeds,
    run(input) {
      try {
        const f = parseDicom(input);
        touch(f.dataset);
      } catch (e) {
        if (!expected(e, DicomParseError)) throw e;
      }
    },
  },
  // Proves the guidance works (scripts/_fuzz_selftest.ts): only a guided search finds this in seconds.
  selftest: {
    name: "selftest",
    files: ["/scripts/_fuzz_selftest.ts"],
    seeds: () => [new Uint8Array(8)],
    run: plantedBug,
  },
};

/** mulberry32: deterministic for a seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INTERESTING = [0, 1, 2, 4, 6, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];

function mutate(src: Uint8Array, corpus: Uint8Array[], rnd: () => number): Uint8Array {
  const pick = (n: number) => Math.floor(rnd() * n);
  let b = src.slice();
  const rounds = 1 + pick(4);
  for (let r = 0; r < rounds; r++) {
    const at = b.length ? pick(b.length) : 0;
    switch (pick(9)) {
      case 0: if (b.length) b[at] ^= 1 << pick(8); break;
      case 1: if (b.length) b[at] = pick(256); break;
      case 2: if (b.length) b[at] = INTERESTING[pick(8)] & 0xff; break;
      case 3: { // a 16- or 32-bit field, either byte order, set to an interesting value
        const v = INTERESTING[pick(INTERESTING.length)];
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        if (at + 4 <= b.length && rnd() < 0.5) dv.setUint32(at, v >>> 0, rnd() < 0.5);
        else if (at + 2 <= b.length) dv.setUint16(at, v & 0xffff, rnd() < 0.5);
        break;
      }
      case 4: { // delete a run
        const n = 1 + pick(Math.min(64, Math.max(1, b.length - at)));
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + n)]);
        break;
      }
      case 5: { // insert random bytes
        const n = 1 + pick(32);
        b = Uint8Array.from([...b.subarray(0, at), ...Array.from({ length: n }, () => pick(256)), ...b.subarray(at)]);
        break;
      }
      case 6: { // duplicate a run
        const n = 1 + pick(Math.min(256, Math.max(1, b.length - at)));
        b = Uint8Array.from([...b.subarray(0, at + n), ...b.subarray(at, at + n), ...b.subarray(at + n)]);
        break;
      }
      case 7: { // splice in a piece of another corpus entry
        const o = corpus[pick(corpus.length)];
        if (!o.length) break;
        const from = pick(o.length), n = 1 + pick(Math.min(512, o.length - from));
        b = Uint8Array.from([...b.subarray(0, at), ...o.subarray(from, from + n), ...b.subarray(at)]);
        break;
      }
      default: b = b.subarray(0, at); // truncate
    }
  }
  return b.length > MAX_LEN ? b.subarray(0, MAX_LEN) : b;
}

function bucket(count: number): number {
  return count <= 3 ? count : count <= 7 ? 4 : count <= 15 ? 5 : count <= 31 ? 6 : count <= 127 ? 7 : 8;
}

interface RangeCoverage {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface ScriptCoverage {
  url: string;
  functions: { ranges: RangeCoverage[] }[];
}

/** The watchdog: shares the current input and a heartbeat; kills the process when the heartbeat stops. */
function watchdog(out: string): { beat(input: Uint8Array): void; stop(): void } {
  const sab = new SharedArrayBuffer(8 + MAX_LEN);
  const head = new Int32Array(sab, 0, 2);
  const data = new Uint8Array(sab, 8);
  const worker = new Worker(
    `const { workerData } = require("node:worker_threads");
     const fs = require("node:fs");
     const head = new Int32Array(workerData.sab, 0, 2), data = new Uint8Array(workerData.sab, 8);
     let last = -1, since = Date.now();
     setInterval(() => {
       const now = Atomics.load(head, 0);
       if (now !== last) { last = now; since = Date.now(); return; }
       if (Date.now() - since < ${HANG_MS}) return;
       fs.mkdirSync(workerData.out, { recursive: true });
       fs.writeFileSync(workerData.out + "/hang.bin", data.slice(0, Atomics.load(head, 1)));
       process.stderr.write("fuzz: an input ran for more than ${HANG_MS / 1000} s (a hang); saved as " + workerData.out + "/hang.bin\\n");
       process.kill(process.pid, "SIGKILL");
     }, 250);`,
    { eval: true, workerData: { sab, out } },
  );
  worker.unref();
  let n = 0;
  return {
    beat(input) {
      data.set(input.subarray(0, MAX_LEN));
      Atomics.store(head, 1, Math.min(input.length, MAX_LEN));
      Atomics.store(head, 0, ++n);
    },
    stop: () => void worker.terminate(),
  };
}

interface Summary {
  target: string;
  execs: number;
  corpus: number;
  features: number;
  crashes: number;
  slowestMs: number;
  rssMiB: number;
}

function fuzz(
  target: Target, seconds: number, seed: number, out: string, session: Session, dog: ReturnType<typeof watchdog>, blind = false, maxExecs = Infinity,
): Summary {
  const take = (): ScriptCoverage[] => {
    let res: { result: ScriptCoverage[] } | undefined;
    session.post("Profiler.takePreciseCoverage", (err, r) => {
      if (err) throw err;
      res = r as never;
    });
    return res!.result;
  };
  const seen = new Set<string>();
  /** Runs an input; returns how many new features it reached, or throws the crash. */
  const exec = (input: Uint8Array): { fresh: number; ms: number; crash?: unknown } => {
    dog.beat(input);
    // The counters were reset by the previous take; what ran in between (mutation) is in other files.
    const t0 = performance.now();
    let crash: unknown;
    try {
      target.run(input);
    } catch (e) {
      crash = e;
    }
    const ms = performance.now() - t0;
    let fresh = 0;
    for (const s of take()) {
      if (!target.files.some((f) => s.url.includes(f))) continue;
      for (const fn of s.functions) {
        // V8 reports a nested block only where its count differs from its parent's: when a
        // deeper block runs, the zero-count range reported below it moves. Zero ranges are
        // therefore features too (they mark how far execution got).
        for (const r of fn.ranges) {
          const key = `${s.url}:${r.startOffset}:${r.endOffset}:${bucket(r.count)}`;
          if (!seen.has(key)) {
            seen.add(key);
            fresh++;
          }
        }
      }
    }
    return { fresh, ms, crash };
  };
  const rnd = prng(seed);
  const corpus: Uint8Array[] = [];
  let execs = 0, crashes = 0, slowest = 0;
  const report = (input: Uint8Array, why: string) => {
    crashes++;
    mkdirSync(out, { recursive: true });
    const file = join(out, `${target.name}-crash-${crashes}.bin`);
    writeFileSync(file, input);
    process.stderr.write(`fuzz: ${target.name}: ${why} (input saved as ${file})\n`);
  };
  const check = (input: Uint8Array, r: ReturnType<typeof exec>) => {
    execs++;
    slowest = Math.max(slowest, r.ms);
    if (r.crash !== undefined) report(input, `${(r.crash as Error)?.name ?? "throw"}: ${(r.crash as Error)?.message ?? r.crash}`);
    else if (r.ms > SLOW_MS) report(input, `an input took ${r.ms.toFixed(0)} ms`);
  };
  take(); // start from zero
  for (const s of target.seeds()) {
    const r = exec(s);
    check(s, r);
    corpus.push(s);
  }
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline && crashes === 0 && execs < maxExecs) {
    // Newer entries first, as AFL favours them: they hold the latest progress.
    const parent = corpus[rnd() < 0.5 ? corpus.length - 1 - Math.floor(rnd() * Math.min(8, corpus.length)) : Math.floor(rnd() * corpus.length)];
    const child = mutate(parent, corpus, rnd);
    const r = exec(child);
    check(child, r);
    if (r.fresh > 0 && !blind) corpus.push(child);
    if (execs % 500 === 0 && process.memoryUsage().rss > RSS_LIMIT) {
      report(child, `the process grew past ${RSS_LIMIT >> 20} MiB`);
      break;
    }
  }
  return { target: target.name, execs, corpus: corpus.length, features: seen.size, crashes, slowestMs: Math.round(slowest), rssMiB: Math.round(process.memoryUsage().rss / 2 ** 20) };
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

if (import.meta.main ?? resolve(process.argv[1] ?? "") === resolve(new URL(import.meta.url).pathname)) {
  const which = arg("target", "all");
  const seconds = Number(arg("seconds", "60"));
  const seed = Number(arg("seed", "1"));
  const out = resolve(arg("out", "fuzz-out"));
  const names = which === "all" ? ["pdu", "command", "reader"] : which.split(",");
  for (const n of names) if (!TARGETS[n]) throw new Error(`Unknown fuzz target "${n}": expected ${Object.keys(TARGETS).join(", ")} or all`);
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.startPreciseCoverage", { callCount: true, detailed: true });
  const dog = watchdog(out);
  const blind = process.argv.includes("--blind");
  const maxExecs = Number(arg("max-execs", "Infinity"));
  const summaries = names.map((n) => fuzz(TARGETS[n], seconds, seed, out, session, dog, blind, maxExecs));
  dog.stop();
  for (const s of summaries) {
    process.stderr.write(`fuzz: ${s.target}: ${s.execs} inputs in ${seconds} s, corpus ${s.corpus}, ${s.features} coverage features, ${s.crashes} crashes, slowest ${s.slowestMs} ms, RSS ${s.rssMiB} MiB\n`);
  }
  process.stdout.write(JSON.stringify({ type: "fuzz-summary", seconds, seed, targets: summaries }) + "\n");
  process.exit(summaries.some((s) => s.crashes > 0) ? 1 : 0);
}
