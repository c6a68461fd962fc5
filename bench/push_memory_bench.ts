/**
 * push memory benchmark (not a test): memory of `rtexport push` against the number of patients
 * it sends, to DCMTK `storescp --ignore --fork` (TCP_NODELAY=1), for this checkout's streaming
 * push and, side by side, another checkout given with --baseline (e.g. one whose push read the
 * whole input before sending). Two figures per case: the command's peak RSS (GNU time), and the
 * live heap of the library stage (largest `heapUsed` right after a full GC, sampled every 500
 * objects, in a process of its own run with --expose-gc). Corpora: the synthetic clinic with
 * small images, so the number of objects (records) grows and the bytes stay small.
 *
 *   node_modules/.bin/node bench/push_memory_bench.ts [--patients 25,100,400] [--baseline /path/to/other/checkout]
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { startStorescp } from "../tests/_peers.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const PATIENTS = arg("patients", "25,100,400").split(",").map(Number);
const BASELINE = arg("baseline", "");

function count(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith(".dcm")).length;
}

function timed(args: string[]): Promise<{ seconds: number; rssKb: number; code: number; stderr: string }> {
  return new Promise((resolve) => {
    const start = performance.now();
    execFile("/usr/bin/time", ["-f", "RSSKB=%M", ...args], { env: { ...process.env, TCP_NODELAY: "1" }, maxBuffer: 512 * 1024 * 1024, timeout: 1_800_000 }, (err, _o, stderr) => {
      const m = /RSSKB=(\d+)/.exec(String(stderr));
      resolve({ seconds: (performance.now() - start) / 1000, rssKb: m ? Number(m[1]) : 0, code: err ? 1 : 0, stderr: String(stderr).slice(-2000) });
    });
  });
}

/** A script that runs a checkout's push stage over `dir` and prints its largest live heap (MiB). */
function heapProbe(checkout: string): string {
  const path = join(tmpdir(), `rtexport-push-heap-probe-${Buffer.from(checkout).toString("hex").slice(-24)}.ts`);
  writeFileSync(path, `
import { pushRecords } from ${JSON.stringify(join(checkout, "lib/push/push.ts"))};
import { pathRecords } from ${JSON.stringify(join(checkout, "lib/fs/walk.ts"))};
const [dir, port, aec] = process.argv.slice(2);
const gc = globalThis.gc;
let n = 0, max = 0;
for await (const _ of pushRecords(pathRecords([dir], { pattern: "*.dcm" }), { peer: { host: "127.0.0.1", port: Number(port), callingAet: "BENCH", calledAet: aec } })) {
  if (++n % 500 === 0) { gc(); max = Math.max(max, process.memoryUsage().heapUsed); }
}
console.log((max / 1048576).toFixed(1));
`);
  return path;
}

function heap(checkout: string, dir: string, port: number, aec: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(node, ["--expose-gc", heapProbe(checkout), dir, String(port), aec], { env: { ...process.env, TCP_NODELAY: "1" }, timeout: 1_800_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(String(stderr)));
      else resolve(String(stdout).trim());
    });
  });
}

const node = join(root, "node_modules/.bin/node");
const peer = await startStorescp({ ignore: true, args: ["--fork"] });
const rows: string[] = [];
try {
  for (const p of PATIENTS) {
    const dir = join(tmpdir(), `rtexport-push-memory-${p}`);
    if (!existsSync(join(dir, "manifest.json"))) await generateClinic({ out: dir, patients: p, slices: 4, size: 16 });
    const objects = count(dir);
    const target = ["--host", "127.0.0.1", "--port", String(peer.port), "--aec", peer.aeTitle, "--json", "-q", "--pattern", "*.dcm", dir];
    const cases: [string, string][] = [["this checkout (streaming)", root], ...(BASELINE ? [["baseline " + BASELINE, BASELINE] as [string, string]] : [])];
    for (const [name, checkout] of cases) {
      const r = await timed([node, join(checkout, "cli.mjs"), "push", ...target]);
      if (r.code !== 0) throw new Error(`${name} failed: ${r.stderr}`);
      const live = await heap(checkout, dir, peer.port, peer.aeTitle);
      rows.push(`| ${p} | ${objects} | ${name} | ${r.seconds.toFixed(1)} s | ${Math.round(r.rssKb / 1024)} MiB | ${live} MiB |`);
      console.error(rows[rows.length - 1]);
    }
  }
} finally {
  await peer.stop();
}
console.log(`Load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}\n`);
console.log("| patients | objects | push | wall | peak RSS | live heap |\n|---:|---:|---|---:|---:|---:|");
console.log(rows.join("\n"));
