/**
 * copy-files benchmark (not a test): `rtexport copy-files --to DST SRC` against
 * `cp -r SRC DST && sha256sum` of every copy, on the same 2 GB of mixed file sizes, same run.
 *
 *   node_modules/.bin/node bench/copy_bench.ts [--runs 3] [--small 10000] [--medium 800] [--large 10]
 *     [--runtime node|deno] [--only NAME,…]
 *
 * - Corpus (deterministic, generated into bench/.corpus/copy-S-M-L when missing): --small files of
 *   1–64 KiB, --medium files of 512 KiB, --large files of 50–200 MB; unique names (copy-files
 *   without records puts files that are not DICOM under Not_DICOM/<name>). Default ≈ 2 GB.
 * - Warm cache: every source file is read once before the runs; after every case `sync` runs
 *   (outside the timing) so that no case pays for the previous one's dirty pages.
 * - Each case is one process (bash -c for the cp pipeline) under GNU time: wall time including
 *   start-up, CPU (user+sys), peak RSS. Best of --runs; cases interleaved within a run.
 * - What each side does: ours reads and hashes each source, writes a temporary file, fsyncs it,
 *   reads it back to verify (unless --no-verify), links it into place, keeps mtimes, records every
 *   file in its SQLite ledger and prints a file record per file (to /dev/null here). cp writes into
 *   the page cache only (no fsync); sha256sum then reads every copy back (from the page cache).
 *   The `cp -r && sync && sha256sum` row shows what flushing costs cp.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const RUNS = Number(arg("runs", "3"));
const SMALL = Number(arg("small", "10000"));
const MEDIUM = Number(arg("medium", "800"));
const LARGE = Number(arg("large", "10"));
const RUNTIME = arg("runtime", "node");
const ONLY = process.argv.includes("--only") ? arg("only", "").split(",") : undefined;

const node = join(root, "node_modules/.bin/node");
const rt = RUNTIME === "deno" ? [join(root, "node_modules/.bin/deno"), "run", "-A", `--config=${join(root, "deno.json")}`, join(root, "cli.ts")] : [node, join(root, "cli.ts")];
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

// ---- corpus ------------------------------------------------------------------------------------
/** xorshift32 from a seed: deterministic bytes, different for every file. */
function fill(buf: Uint8Array, seed: number): void {
  const w = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >>> 2);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < w.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    w[i] = x;
  }
  for (let i = w.length * 4; i < buf.length; i++) buf[i] = i & 0xff;
}

function writeFile(path: string, size: number, seed: number): void {
  const fd = openSync(path, "w");
  try {
    const chunk = new Uint8Array(Math.min(size, 4 << 20));
    let left = size;
    let n = 0;
    while (left > 0) {
      fill(chunk, seed * 1000 + n++);
      const len = Math.min(left, chunk.length);
      writeSync(fd, chunk, 0, len);
      left -= len;
    }
  } finally {
    closeSync(fd);
  }
}

const corpus = join(root, "bench", ".corpus", `copy-${SMALL}-${MEDIUM}-${LARGE}`);
const src = join(corpus, "src");
if (!existsSync(join(corpus, "complete"))) {
  console.error(`generating ${SMALL} + ${MEDIUM} + ${LARGE} files into ${src}`);
  rmSync(corpus, { recursive: true, force: true });
  let seed = 1;
  for (let i = 0; i < SMALL; i++) {
    const dir = join(src, "small", `d${String(i % 100).padStart(2, "0")}`);
    if (i < 100) mkdirSync(dir, { recursive: true });
    // 1–64 KiB, deterministic
    const size = 1024 + ((i * 7919) % (63 * 1024 + 1));
    writeFile(join(dir, `s${String(i).padStart(6, "0")}.bin`), size, seed++);
  }
  mkdirSync(join(src, "medium"), { recursive: true });
  for (let i = 0; i < MEDIUM; i++) writeFile(join(src, "medium", `m${String(i).padStart(5, "0")}.bin`), 512 * 1024, seed++);
  mkdirSync(join(src, "large"), { recursive: true });
  for (let i = 0; i < LARGE; i++) {
    const size = (50 + Math.round((150 * i) / Math.max(1, LARGE - 1))) * 1_000_000; // 50 … 200 MB
    writeFile(join(src, "large", `l${String(i).padStart(3, "0")}.bin`), size, seed++);
  }
  mkdirSync(corpus, { recursive: true });
  writeSync(openSync(join(corpus, "complete"), "w"), "ok\n");
}

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(join(dir, e.name)) : e.isFile() ? [join(dir, e.name)] : []);
}
const files = walk(src);
let bytes = 0;
for (const f of files) bytes += readFileSync(f).length; // counts and warms the page cache
console.error(`corpus: ${files.length} files, ${(bytes / 1e6).toFixed(0)} MB`);

// ---- cases -------------------------------------------------------------------------------------
interface Timed { seconds: number; rssKb: number; cpu: number; code: number; stderr: string }
function run(cmd: string, args: string[]): Promise<Timed> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    execFile("/usr/bin/time", ["-f", "RSS_KB=%M CPU=%U+%S", cmd, ...args], { maxBuffer: 1 << 30, timeout: 3_600_000 }, (err, _out, stderr) => {
      const seconds = (performance.now() - t0) / 1000;
      const m = /RSS_KB=(\d+) CPU=([\d.]+)\+([\d.]+)/.exec(String(stderr));
      resolve({ seconds, rssKb: m ? Number(m[1]) : NaN, cpu: m ? Number(m[2]) + Number(m[3]) : NaN, code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr: String(stderr) });
    });
  });
}

const dst = join(root, "bench", ".corpus", "copy-dst");
const RT = rt.map(q).join(" ");
const hashAll = `find ${q(dst)} -type f -print0 | xargs -0 sha256sum > /dev/null`;
const cases: { name: string; script: string }[] = [
  { name: "cp -r && sha256sum (copies)", script: `cp -r ${q(src)} ${q(dst)} && ${hashAll}` },
  { name: "rtexport copy-files (--parallel 4, default)", script: `${RT} copy-files --to ${q(dst)} -q ${q(src)} > /dev/null` },
  { name: "rtexport copy-files --parallel 1", script: `${RT} copy-files --to ${q(dst)} --parallel 1 -q ${q(src)} > /dev/null` },
  { name: "rtexport copy-files --no-verify", script: `${RT} copy-files --to ${q(dst)} --no-verify -q ${q(src)} > /dev/null` },
  { name: "cp -r && sync && sha256sum (copies)", script: `cp -r ${q(src)} ${q(dst)} && sync && ${hashAll}` },
].filter((c) => !ONLY || ONLY.some((o) => c.name.includes(o)));

function copiedFiles(): { files: number; bytes: number } {
  const all = walk(dst).filter((f) => !f.includes("/.rtexport/"));
  return { files: all.length, bytes: all.reduce((s, f) => s + statSync(f).size, 0) };
}

interface Row { name: string; seconds: number; rssKb: number; cpu: number; files: number; bytes: number }
const best = new Map<string, Row>();
try {
  for (let i = 0; i < RUNS; i++) {
    for (const c of cases) {
      rmSync(dst, { recursive: true, force: true });
      await run("sync", []);
      const t = await run("bash", ["-c", `set -o pipefail; ${c.script}`]);
      if (t.code !== 0) throw new Error(`${c.name} failed (exit ${t.code}): ${t.stderr.slice(-2000)}`);
      const out = copiedFiles();
      if (out.files !== files.length || out.bytes !== bytes) throw new Error(`${c.name}: ${out.files} files, ${out.bytes} bytes in the copy; expected ${files.length}, ${bytes}`);
      console.error(`${c.name}: ${t.seconds.toFixed(1)} s, CPU ${t.cpu.toFixed(1)} s, peak RSS ${(t.rssKb / 1024).toFixed(0)} MB`);
      const b = best.get(c.name);
      const row = { name: c.name, seconds: t.seconds, rssKb: Math.max(t.rssKb, b?.rssKb ?? 0), cpu: t.cpu, ...out };
      if (!b || t.seconds < b.seconds) best.set(c.name, row);
      else b.rssKb = Math.max(b.rssKb, t.rssKb);
    }
  }
} finally {
  rmSync(dst, { recursive: true, force: true });
}

const base = best.get(cases[0]?.name ?? "");
const mb = bytes / 1e6;
const lines = [
  `${files.length} files, ${mb.toFixed(0)} MB (${SMALL} × 1–64 KiB, ${MEDIUM} × 512 KiB, ${LARGE} × 50–200 MB), warm cache, runtime ${RUNTIME}, best of ${RUNS}, ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}, ${new Date().toISOString().slice(0, 16)}Z`,
  "",
  "| case | seconds | files/s | MB/s | × cp+sha256sum | CPU s (user+sys) | peak RSS |",
  "|---|---:|---:|---:|---:|---:|---:|",
];
for (const r of best.values()) {
  lines.push(`| ${r.name} | ${r.seconds.toFixed(1)} | ${(files.length / r.seconds).toFixed(0)} | ${(mb / r.seconds).toFixed(0)} | ${base ? (base.seconds / r.seconds).toFixed(2) : "–"} | ${r.cpu.toFixed(1)} | ${(r.rssKb / 1024).toFixed(0)} MB |`);
}
process.stdout.write(lines.join("\n") + "\n");
