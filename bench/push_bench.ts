/**
 * push benchmark (not a test): 500 CT 512×512 files → DCMTK `storescp --ignore --fork`
 * (TCP_NODELAY=1 on both sides), side by side in one run:
 *   DCMTK storescu (one association) | rtexport push, one association | rtexport push --parallel 4
 * Reports files/s, MB/s, ratio to storescu and peak RSS (GNU time), best of --runs (default 3).
 *
 *   node_modules/.bin/node bench/push_bench.ts [--files 500] [--runs 3] [--runtime node|deno]
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { DataSet, textElement } from "../lib/dicom/dataset.ts";
import { encodeFile } from "../lib/dicom/writer.ts";
import { startStorescp } from "../tests/_peers.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const N = Number(arg("files", "500"));
const RUNS = Number(arg("runs", "3"));
const RUNTIME = arg("runtime", "node");

function put(ds: DataSet, tag: number, vr: string, text: string): void {
  ds.set(textElement(tag, vr, text));
}

function us(ds: DataSet, tag: number, v: number): void {
  const b = Uint8Array.of(v & 0xff, v >> 8);
  ds.set({ tag, vr: "US", value: b, offset: 0, length: 2 });
}

/** 500 CT slices 512×512×16 bit (deterministic pixels), explicit VR little endian. */
function generate(dir: string): string[] {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const study = "1.2.826.0.1.3680043.10.1467.9.1";
  const series = `${study}.1`;
  let seed = 12345;
  const px = new Uint8Array(512 * 512 * 2);
  for (let i = 0; i < px.length; i += 2) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const v = 1000 + (seed >>> 22);
    px[i] = v & 0xff;
    px[i + 1] = v >> 8;
  }
  for (let n = 1; n <= N; n++) {
    const path = join(dir, `CT${String(n).padStart(4, "0")}.dcm`);
    files.push(path);
    if (existsSync(path)) continue;
    const ds = new DataSet();
    put(ds, 0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2");
    put(ds, 0x00080018, "UI", `${series}.${n}`);
    put(ds, 0x00080060, "CS", "CT");
    put(ds, 0x00100010, "PN", "Bench^Patient");
    put(ds, 0x00100020, "LO", "BENCH1");
    put(ds, 0x0020000d, "UI", study);
    put(ds, 0x0020000e, "UI", series);
    put(ds, 0x00200013, "IS", String(n));
    put(ds, 0x00280004, "CS", "MONOCHROME2");
    us(ds, 0x00280002, 1);
    us(ds, 0x00280010, 512);
    us(ds, 0x00280011, 512);
    us(ds, 0x00280100, 16);
    us(ds, 0x00280101, 16);
    us(ds, 0x00280102, 15);
    us(ds, 0x00280103, 0);
    ds.set({ tag: 0x7fe00010, vr: "OW", value: px, offset: 0, length: px.length });
    writeFileSync(path, encodeFile(ds));
  }
  return files;
}

function timed(cmd: string, args: string[], cwd: string, extraEnv: Record<string, string> = {}): Promise<{ seconds: number; cpu: number; rssKb: number; code: number; stderr: string }> {
  return new Promise((resolve) => {
    const start = performance.now();
    execFile("/usr/bin/time", ["-f", "RSSKB=%M CPU=%U+%S", cmd, ...args], {
      cwd,
      env: { ...process.env, TCP_NODELAY: "1", ...extraEnv },
      maxBuffer: 256 * 1024 * 1024,
      timeout: 600000,
    }, (err, _stdout, stderr) => {
      const seconds = (performance.now() - start) / 1000;
      const m = /RSSKB=(\d+) CPU=([\d.]+)\+([\d.]+)/.exec(String(stderr));
      const cpu = m ? Number(m[2]) + Number(m[3]) : 0;
      resolve({ seconds, cpu, rssKb: m ? Number(m[1]) : 0, code: err ? 1 : 0, stderr: String(stderr) });
    });
  });
}

const dir = join(tmpdir(), `rtexport-push-bench-${N}`);
const files = generate(dir);
const bytes = readdirSync(dir).reduce((s, n) => s + statSync(join(dir, n)).size, 0);
const peer = await startStorescp({ ignore: true, args: ["--fork"] });
const runtime = RUNTIME === "deno"
  ? [join(root, "node_modules/.bin/deno"), "run", "-A", join(root, "commands/push.ts")]
  : [join(root, "node_modules/.bin/node"), join(root, "commands/push.ts")];
const target = ["--host", "127.0.0.1", "--port", String(peer.port), "--aec", peer.aeTitle];
// Node's compile cache keeps the type-stripped modules between runs (startup 0.7 s → 0.05 s here);
// rows marked "cached" set NODE_COMPILE_CACHE, as `cli.ts` could do with module.enableCompileCache().
// Rows marked "bundled" run commands/push.ts bundled to one ESM file by esbuild (dependencies
// inlined), which is what the npm package and the binary run: no type stripping at start-up.
const cache = { NODE_COMPILE_CACHE: join(tmpdir(), "rtexport-push-bench-compile-cache") };
const bundle = join(tmpdir(), "rtexport-push-bench-push.mjs");
await new Promise<void>((resolve, reject) =>
  execFile(join(root, "node_modules/.bin/esbuild"), [
    join(root, "commands/push.ts"), "--bundle", "--platform=node", "--format=esm", "--target=node22", `--outfile=${bundle}`,
    "--log-level=warning", "--banner:js=import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);",
  ], (err) => (err ? reject(err) : resolve()))
);
const node = join(root, "node_modules/.bin/node");
// The single binary (Node SEA with V8's code cache; what the README tells a hospital to install),
// built from this checkout when older than the sources.
const bin = join(root, "dist", "rtexport-linux-x64");
if (RUNTIME === "node") execFileSync(node, [join(root, "scripts/build_bin.ts"), "--target", "linux", "--if-stale"], { stdio: ["ignore", "ignore", "inherit"] });
const p4 = ["--parallel", "4"];
const cases: { name: string; cmd: string; args: string[]; env?: Record<string, string> }[] = [
  { name: "storescu (DCMTK), 1 association", cmd: "storescu", args: ["-aec", peer.aeTitle, "127.0.0.1", String(peer.port), ...files] },
  { name: `rtexport push (${RUNTIME}, .ts), 1 association`, cmd: runtime[0], args: [...runtime.slice(1), ...target, "--json", dir] },
  ...(RUNTIME === "node"
    ? [
      { name: "rtexport push (node, .ts cached), 1 association", cmd: runtime[0], args: [...runtime.slice(1), ...target, "--json", dir], env: cache },
      { name: "rtexport push (node, bundled), 1 association", cmd: node, args: [bundle, ...target, "--json", dir] },
      { name: "rtexport push (node cli.mjs, checkout), 1 association", cmd: node, args: [join(root, "cli.mjs"), "push", ...target, "--json", dir] },
      { name: "rtexport push (single binary), 1 association", cmd: bin, args: ["push", ...target, "--json", dir] },
    ]
    : []),
  { name: `rtexport push (${RUNTIME}, .ts) --parallel 4`, cmd: runtime[0], args: [...runtime.slice(1), ...target, "--json", ...p4, dir] },
  ...(RUNTIME === "node"
    ? [
      { name: "rtexport push (node, .ts cached) --parallel 4", cmd: runtime[0], args: [...runtime.slice(1), ...target, "--json", ...p4, dir], env: cache },
      { name: "rtexport push (node, bundled) --parallel 4", cmd: node, args: [bundle, ...target, "--json", ...p4, dir] },
      { name: "rtexport push (node cli.mjs, checkout) --parallel 4", cmd: node, args: [join(root, "cli.mjs"), "push", ...target, "--json", ...p4, dir] },
      { name: "rtexport push (single binary) --parallel 4", cmd: bin, args: ["push", ...target, "--json", ...p4, dir] },
    ]
    : []),
];
const best = new Map<string, { seconds: number; cpu: number; rssKb: number }>();
const all = new Map<string, number[]>();
try {
  for (let run = 0; run < RUNS; run++) {
    for (const c of cases) {
      const r = await timed(c.cmd, c.args, root, c.env);
      if (r.code !== 0) throw new Error(`${c.name} failed: ${r.stderr.slice(-1000)}`);
      all.set(c.name, [...(all.get(c.name) ?? []), r.seconds]);
      const b = best.get(c.name);
      if (!b || r.seconds < b.seconds) best.set(c.name, { seconds: r.seconds, cpu: r.cpu, rssKb: Math.max(r.rssKb, b?.rssKb ?? 0) });
      else b.rssKb = Math.max(b.rssKb, r.rssKb);
    }
  }
} finally {
  await peer.stop();
}
const base = best.get(cases[0].name)!;
const mb = bytes / 1e6;
const lines = [
  `${N} CT 512×512 files, ${mb.toFixed(0)} MB → storescp --ignore --fork, TCP_NODELAY=1, best of ${RUNS}, ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}, ${new Date().toISOString().slice(0, 16)}Z`,
  "",
  "| sender | seconds | files/s | MB/s | × storescu | median s | × storescu (medians) | sender CPU s (user+sys) | peak RSS |",
  "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
];
const median = (v: number[]) => {
  const s = [...v].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const baseMedian = median(all.get(cases[0].name)!);
for (const c of cases) {
  const b = best.get(c.name)!;
  const m = median(all.get(c.name)!);
  lines.push(`| ${c.name} | ${b.seconds.toFixed(2)} | ${(N / b.seconds).toFixed(0)} | ${(mb / b.seconds).toFixed(0)} | ${(base.seconds / b.seconds).toFixed(2)} | ${m.toFixed(2)} | ${(baseMedian / m).toFixed(2)} | ${b.cpu.toFixed(2)} | ${(b.rssKb / 1024).toFixed(0)} MB |`);
}
process.stdout.write(lines.join("\n") + "\n");
