// Header-scan benchmark: rtexport's reader (raw loop, `search`, `show`) against DCMTK's dcmdump
// and pydicom on the same files, warm cache, same run. Not a test: it prints a Markdown table.
//
//   node_modules/.bin/node bench/scan_bench.ts [--corpus DIR] [--runs 3] [--sizes 1000,5000]
//
// The corpus is the synthetic clinic at benchmark scale (CT 512×512 plus RT objects); it is
// generated into DIR/clinic when missing (20 patients × 240 slices, ≈2.6 GB). Subsets of N files
// are evenly spaced picks from the sorted file list, hard-linked into DIR/nN/ so every tool sees
// a plain directory holding exactly those files (hard links share the page cache).
// Each measurement runs in its own process under GNU time (`/usr/bin/time -f "%e %M"`): wall
// seconds and peak RSS (for xargs, the largest dcmdump it ran). The median of --runs is shown.
import { spawnSync } from "node:child_process";
import { existsSync, linkSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import module from "node:module";
import process from "node:process";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const NODE = join(ROOT, "node_modules/.bin/node");
const DENO = join(ROOT, "node_modules/.bin/deno");

interface Measure {
  seconds: number;
  /** User + system CPU seconds (less sensitive than wall time to other load on the machine). */
  cpu: number;
  rssKiB: number;
}

function timed(cmd: string, args: string[], opts: { shell?: boolean; env?: Record<string, string> } = {}): Measure {
  const r = spawnSync("/usr/bin/time", ["-f", "TIME %e %M %U %S", cmd, ...args], {
    encoding: "utf8",
    maxBuffer: 1 << 30,
    timeout: 30 * 60_000,
    env: { ...process.env, ...opts.env },
  });
  const m = /TIME ([\d.]+) (\d+) ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr ?? "");
  if (r.status !== 0 || !m) throw new Error(`${cmd} ${args.slice(0, 6).join(" ")} … failed (${r.status}): ${(r.stderr ?? "").slice(-500)}`);
  return { seconds: Number(m[1]), rssKiB: Number(m[2]), cpu: Number(m[3]) + Number(m[4]) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function listDicom(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith(".dcm")).sort();
}

function subset(clinic: string, all: string[], n: number, into: string): string {
  const done = `${into}.complete`; // beside the directory: the tools must see only DICOM files
  if (existsSync(done)) return into;
  const step = all.length / n;
  for (let i = 0; i < n; i++) {
    const rel = all[Math.floor(i * step)];
    const to = join(into, rel);
    mkdirSync(dirname(to), { recursive: true });
    if (!existsSync(to)) linkSync(join(clinic, rel), to);
  }
  writeFileSync(done, "");
  return into;
}

// The raw reader loop, run as a child: `scan_bench.ts --loop DIR`. Node's compile cache is on,
// as cli.ts turns it on for every command.
async function loop(dir: string): Promise<void> {
  (module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
  const { readDicomFile } = await import("../lib/dicom/reader.ts");
  let n = 0, ids = 0;
  for (const rel of listDicom(dir)) {
    const f = readDicomFile(join(dir, rel));
    if (f.dataset.string("PatientID") !== undefined && f.dataset.string("Modality") !== undefined) ids++;
    n++;
  }
  if (ids !== n) throw new Error(`only ${ids} of ${n} files had PatientID and Modality`);
}

const PYDICOM = `
import os, sys
from pydicom import dcmread
root = sys.argv[1]
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".dcm"))
n = 0
for p in paths:
    ds = dcmread(p, stop_before_pixels=True)
    ds.get("PatientID"); ds.get("Modality")
    n += 1
assert n == len(paths)
`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      corpus: { type: "string", default: "/tmp/rtexport-bench" },
      runs: { type: "string", default: "3" },
      sizes: { type: "string", default: "1000,5000" },
      loop: { type: "string" },
      only: { type: "string" },
    },
  });
  if (values.loop) return await loop(values.loop);
  const corpus = resolve(values.corpus!);
  const clinic = join(corpus, "clinic");
  if (!existsSync(join(clinic, "manifest.json"))) {
    console.error(`Generating the corpus into ${clinic} …`);
    const r = spawnSync(NODE, [join(ROOT, "scripts/make_fixtures.ts"), "--out", clinic, "--patients", "20", "--slices", "240", "--size", "512"], { stdio: "inherit" });
    if (r.status !== 0) throw new Error("corpus generation failed");
  }
  const all = listDicom(clinic);
  const sizes = values.sizes!.split(",").map(Number);
  const runs = Number(values.runs);
  const py = join(corpus, "pydicom_scan.py");
  writeFileSync(py, PYDICOM);

  type Tool = { name: string; run: (dir: string, files: string[]) => Measure };
  const xargsDcmdump = (extra: string[]) => (dir: string) =>
    timed("sh", ["-c", `cd "$1" && find . -name '*.dcm' -print0 | sort -z | xargs -0 dcmdump -q -s ${extra.join(" ")} --search PatientID --search Modality > /dev/null`, "sh", dir]);
  const allTools: Tool[] = [
    { name: "reader loop (Node 24, readDicomFile)", run: (dir) => timed(NODE, [join(ROOT, "bench/scan_bench.ts"), "--loop", dir]) },
    { name: "reader loop (Deno 2, readDicomFile)", run: (dir) => timed(DENO, ["run", "-A", join(ROOT, "bench/scan_bench.ts"), "--loop", dir]) },
    { name: "rtexport search --tag PatientID=? --tag Modality=? (Node)", run: (dir) => timed("sh", ["-c", `"$0" "$1" search --json --pattern "*.dcm" --tag PatientID=? --tag Modality=? "$2" > /dev/null`, NODE, join(ROOT, "cli.ts"), dir]) },
    { name: "rtexport search … (Deno)", run: (dir) => timed("sh", ["-c", `"$0" run -A "$1" search --json --pattern "*.dcm" --tag PatientID=? --tag Modality=? "$2" > /dev/null`, DENO, join(ROOT, "cli.ts"), dir]) },
    { name: "rtexport show (Node)", run: (dir) => timed("sh", ["-c", `"$0" "$1" show --json --pattern "*.dcm" "$2" > /dev/null`, NODE, join(ROOT, "cli.ts"), dir]) },
    { name: "dcmdump -q -s --search PatientID --search Modality (xargs)", run: xargsDcmdump([]) },
    { name: "dcmdump … +sb PixelData (stops before pixel data; xargs)", run: xargsDcmdump(["+sb", "7fe0,0010"]) },
    { name: "pydicom 2.3 dcmread(stop_before_pixels=True)", run: (dir) => timed("/usr/bin/python3", [py, dir]) },
  ];
  const tools = allTools.filter((t) => !values.only || t.name.includes(values.only));

  const rows: string[] = [];
  const reference = new Map<number, number>();
  const wall = new Map<string, Map<number, { files: number; seconds: number; cpu: number }>>();
  for (const n of sizes) {
    const dir = n >= all.length ? clinic : subset(clinic, all, n, join(corpus, `n${n}`));
    const files = listDicom(dir);
    // Warm the page cache: read every file once.
    spawnSync("sh", ["-c", `cd "$1" && find . -name '*.dcm' -print0 | xargs -0 cat > /dev/null`, "sh", dir]);
    for (const tool of tools) {
      const ms: Measure[] = [];
      try {
        for (let i = 0; i < runs; i++) ms.push(tool.run(dir, files));
      } catch (e) {
        rows.push(`| ${files.length} | ${tool.name} | failed: ${(e as Error).message.split("\n")[0].slice(0, 120)} | | | | |`);
        continue;
      }
      const secs = median(ms.map((m) => m.seconds));
      const rate = files.length / secs;
      const rss = median(ms.map((m) => m.rssKiB)) / 1024;
      const cpu = median(ms.map((m) => m.cpu));
      if (tool.name.startsWith("dcmdump -q -s --search")) reference.set(n, rate);
      if (!wall.has(tool.name)) wall.set(tool.name, new Map());
      wall.get(tool.name)!.set(n, { files: files.length, seconds: secs, cpu });
      rows.push(`| ${files.length} | ${tool.name} | ${secs.toFixed(2)} s | ${Math.round(rate)} | ${cpu.toFixed(2)} s | ${Math.round(files.length / cpu)} | ${rss.toFixed(0)} MiB |`);
      console.error(rows[rows.length - 1]);
    }
  }
  const bytes = Number(JSON.parse(readFileSync(join(clinic, "manifest.json"), "utf8")).bytes);
  console.log(`Corpus: ${relative(process.cwd(), clinic) || clinic}, ${all.length} files, ${(bytes / 2 ** 30).toFixed(2)} GiB; runs: ${runs} (median)\n`);
  console.log("| files | tool | wall | files/s (wall) | CPU (user+sys) | files per CPU-second | peak RSS |");
  console.log("|---:|---|---:|---:|---:|---:|---:|");
  for (const r of rows) console.log(r);
  for (const [n, rate] of reference) console.log(`\ndcmdump reference at ${n} files: ${Math.round(rate)} files/s`);
  // Start-up (runtime, TypeScript stripping, module loading) is paid once per process; the rate
  // between the two sizes is what a long scan runs at.
  if (sizes.length >= 2) {
    const [a, b] = [Math.min(...sizes), Math.max(...sizes)];
    console.log(`\n| tool | files/s between ${a} and ${b} files, wall (start-up excluded) | same, per CPU-second | start-up CPU estimate |`);
    console.log("|---|---:|---:|---:|");
    for (const [name, m] of wall) {
      const x = m.get(a), y = m.get(b);
      if (!x || !y || y.seconds <= x.seconds || y.cpu <= x.cpu) continue;
      const rate = (y.files - x.files) / (y.seconds - x.seconds);
      const cpuRate = (y.files - x.files) / (y.cpu - x.cpu);
      console.log(`| ${name} | ${Math.round(rate)} | ${Math.round(cpuRate)} | ${Math.max(0, x.cpu - x.files / cpuRate).toFixed(2)} s |`);
    }
  }
}

await main();
