/**
 * export benchmark (not a test): `rtexport list-patients --from dicom | rtexport export-plan`
 * against DCMTK `getscu` / `movescu` fetching the same objects, from our `serve` and from Orthanc,
 * side by side in one run.
 *
 *   node_modules/.bin/node bench/export_bench.ts [--patients 20] [--slices 180] [--size 512]
 *     [--runs 1] [--small 5,10] [--peers serve,orthanc] [--modes get,move] [--workers 1,2,4] [--procs 2x2]
 *     [--runtime node|deno] [--settle 61] [--keep]
 *
 * - Corpus: the synthetic clinic (`scripts/make_fixtures.ts`), generated into
 *   bench/.corpus/export-PxSxZ when missing. `serve` serves a hard-linked copy of it (its index
 *   goes there); Orthanc (TCP_NODELAY=1) gets every file by `storescu +sd +r` before the runs.
 * - Ours: `list-patients --from dicom … > L; export-plan --get|--move-port P --workers N --out DIR < L`,
 *   the whole timed (bash), peak RSS of export-plan by GNU time. C-GET with each --workers N, and
 *   with --procs PxW: P export-plan processes at once on the same listing, tree and ledger, W
 *   workers each (the multi-machine mode, on one machine); C-MOVE with each --workers N (one
 *   receiver port per process, so not with --procs). The output is a
 *   fresh folder each time; its ledger and staging are included (ours also writes the ledger,
 *   claims each patient in it, hashes every file and verifies every copy).
 * - Theirs: the unique objects our export put in its tree, fetched with one DCMTK association:
 *   one query file per image series (SERIES level) and one per RT object (IMAGE level), Study Root,
 *   `getscu -S -od DIR q…` or `movescu -S -aem MOVESCU q…` with DCMTK `storescp -od DIR` as the receiver. DCMTK is given the
 *   list: it does not query for patients, plans or references as ours does.
 * - Memory in patient count: export-plan --get --workers (the largest N) from serve over the first
 *   --small patients (5 and 10) and over all of them; peak RSS of each.
 * - Warm-up: one untimed getscu of everything from each peer. --runs rounds of every case, the
 *   median reported; outputs are removed between rounds, then --settle seconds of rest (61: see
 *   `settle`), never during one.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { dcmtkEnv, freePort, startOrthanc, waitForPort } from "../tests/_peers.ts";
import { objectKind } from "../lib/dicom/rt.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const PATIENTS = Number(arg("patients", "20"));
const SLICES = Number(arg("slices", "180"));
const SIZE = Number(arg("size", "512"));
const RUNS = Number(arg("runs", "1"));
/** Seconds to wait after removing a round's outputs (see `settle`). */
const SETTLE = Number(arg("settle", "61"));
const SMALL = arg("small", "5,10").split(",").map(Number);
const PEERS = arg("peers", "serve,orthanc").split(",");
const MODES = arg("modes", "get,move").split(",");
const RUNTIME = arg("runtime", "node");
/** export-plan --workers N for each N (C-GET and C-MOVE: the workers share the process's receiver). */
const WORKERS = arg("workers", "1,2,4").split(",").map(Number);
/** Several export-plan processes on this machine sharing one ledger: PROCSxWORKERS (e.g. 2x2), or none. */
const PROCS = arg("procs", "2x2").split(",").filter(Boolean).map((s) => s.split("x").map(Number) as [number, number]);
const KEEP = process.argv.includes("--keep");

// DCMTK (and Orthanc, built on it) wait on Nagle + delayed ACK for every object without this.
process.env.TCP_NODELAY = "1";
const env = dcmtkEnv();
const node = join(root, "node_modules/.bin/node");
const rt = RUNTIME === "deno" ? [join(root, "node_modules/.bin/deno"), "run", "-A", `--config=${join(root, "deno.json")}`, join(root, "cli.ts")] : [node, join(root, "cli.ts")];
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const RT = rt.map(q).join(" ");

interface Timed { seconds: number; rssKb: number; cpu: number; code: number; stderr: string }

/** Runs `cmd args` (or `bash -c script`) and measures wall time; GNU time gives peak RSS and CPU. */
function run(cmd: string, args: string[], timeFile?: string): Promise<Timed> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    execFile(cmd, args, { env, maxBuffer: 1 << 30, timeout: 1_800_000 }, (err, _out, stderr) => {
      const seconds = (performance.now() - t0) / 1000;
      const text = timeFile && existsSync(timeFile) ? readFileSync(timeFile, "utf8") : String(stderr);
      const m = /RSS_KB=(\d+) CPU=([\d.]+)\+([\d.]+)/.exec(text);
      resolve({ seconds, rssKb: m ? Number(m[1]) : NaN, cpu: m ? Number(m[2]) + Number(m[3]) : NaN, code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr: String(stderr) });
    });
  });
}
const TIME = ["-f", "RSS_KB=%M CPU=%U+%S"];

function walk(dir: string, skip?: (name: string) => boolean): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    skip?.(e.name) ? [] : e.isDirectory() ? walk(join(dir, e.name), skip) : e.isFile() ? [join(dir, e.name)] : []
  );
}
/** DICOM files of an output (our tree without its .rtexport folder; getscu/movescu's flat folder). */
function outputFiles(dir: string): { files: number; bytes: number } {
  const files = walk(dir, (n) => n === ".rtexport");
  return { files: files.length, bytes: files.reduce((s, f) => s + statSync(f).size, 0) };
}

// ---- corpus ------------------------------------------------------------------------------------
const corpus = join(root, "bench", ".corpus", `export-${PATIENTS}x${SLICES}x${SIZE}`);
if (!existsSync(join(corpus, "manifest.json"))) {
  console.error(`generating ${PATIENTS} patients, ${SLICES} CT slices of ${SIZE}² into ${corpus}`);
  const g = await run(node, [join(root, "scripts/make_fixtures.ts"), "--out", corpus, "--patients", String(PATIENTS), "--slices", String(SLICES), "--size", String(SIZE)]);
  if (g.code !== 0) throw new Error(`make_fixtures failed: ${g.stderr.slice(-1000)}`);
}
const manifest = JSON.parse(readFileSync(join(corpus, "manifest.json"), "utf8"));
const work = join(root, "bench", ".corpus", "export-work");
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const served = join(work, "served");
const cpl = await run("cp", ["-al", corpus, served]);
if (cpl.code !== 0) throw new Error(`cp -al failed: ${cpl.stderr}`);
rmSync(join(served, "manifest.json"));
for (const f of walk(served)) readFileSync(f); // warm the page cache
console.error(`corpus: ${manifest.files} files, ${(manifest.bytes / 1e6).toFixed(0)} MB, ${JSON.stringify(manifest.counts)}`);

// ---- peers -------------------------------------------------------------------------------------
const ourMovePort = await freePort();
const dcmtkMovePort = await freePort();
const destinations = [
  { aeTitle: "RTEXPORT", host: "127.0.0.1", port: ourMovePort },
  { aeTitle: "MOVESCU", host: "127.0.0.1", port: dcmtkMovePort },
];
interface PeerInfo { name: string; port: number; aet: string; stop(): Promise<void> }
const peers: PeerInfo[] = [];

async function startServe(): Promise<PeerInfo> {
  const port = await freePort();
  const child = spawn(rt[0], [...rt.slice(1), "serve", "--dir", served, "--port", String(port), "--aet", "RTXSCP", "--host", "127.0.0.1",
    ...["RTEXPORT", "GETSCU", "MOVESCU"].flatMap((ae) => ["--allow", `${ae}@127.0.0.1`]),
    ...destinations.flatMap((d) => ["--move-dest", `${d.aeTitle}=${d.host}:${d.port}`]), "-q"], { env, stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (b) => (err = (err + b).slice(-4000)));
  await waitForPort(port, "127.0.0.1", 300_000, child).catch((e) => {
    throw new Error(`serve did not start: ${(e as Error).message} ${err}`);
  });
  return {
    name: "serve", port, aet: "RTXSCP",
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
      child.once("exit", () => (clearTimeout(t), resolve()));
      child.kill("SIGTERM");
    }),
  };
}

async function startLoadedOrthanc(): Promise<PeerInfo> {
  const o = await startOrthanc({ aeTitle: "ORTHANC", modalities: destinations });
  console.error(`loading the corpus into Orthanc (storescu +sd +r)`);
  const t = await run("storescu", ["-aet", "LOADER", "-aec", o.aeTitle, "+sd", "+r", "+sp", "*.dcm", "127.0.0.1", String(o.port), served]);
  if (t.code !== 0) {
    await o.stop();
    throw new Error(`storescu into Orthanc failed: ${t.stderr.slice(-1000)}`);
  }
  const stats = await o.rest("/statistics");
  console.error(`Orthanc holds ${stats.CountInstances} instances (loaded in ${t.seconds.toFixed(1)} s)`);
  if (stats.CountInstances !== manifest.files) throw new Error(`Orthanc holds ${stats.CountInstances} instances, expected ${manifest.files}`);
  return { name: "Orthanc", port: o.port, aet: o.aeTitle, stop: () => o.stop() };
}

// ---- the cases ---------------------------------------------------------------------------------
interface Row {
  peer: string; tool: string; mode: string; files: number; objects: number; bytes: number; seconds: number; rssKb: number; cpu: number;
  /** Claimers in all (processes × workers), for ours. */
  workers?: number;
}
const OURS = "rtexport list-patients → export-plan";
const oursLabel = (workers: number, procs: number) =>
  procs > 1 ? `${OURS} ×${procs} processes --workers ${workers}` : `${OURS} --workers ${workers}`;
const rows: Row[] = [];
const notes = new Set<string>();

/** Our pipeline; returns the measurement and the unique objects the tree holds (for DCMTK). */
async function ours(p: PeerInfo, mode: string, patientIds?: string[], workers = 1, procs = 1): Promise<{ t: Timed; out: string; recordsFile: string }> {
  const out = join(work, `out-ours-${p.name}-${mode}`);
  rmSync(out, { recursive: true, force: true });
  const recordsFile = join(work, `records-${p.name}-${mode}.ndjson`);
  const listing = join(work, `listing-${p.name}.ndjson`);
  const peer = `--host 127.0.0.1 --port ${p.port} --called-aet ${p.aet} --calling-aet RTEXPORT`;
  const how = mode === "get" ? "--get" : `--move-port ${ourMovePort}`;
  const only = patientIds ? patientIds.map((id) => `--patient ${q(id)}`).join(" ") : "";
  // The listing, then `procs` export-plan processes on it at once (one ledger, the tree's SQLite),
  // each with `workers` claimers: timed as a whole, peak RSS the largest process's, CPU their sum.
  const timeFiles = Array.from({ length: procs }, (_, i) => join(work, `time-${i}.txt`));
  for (const f of timeFiles) rmSync(f, { force: true });
  const exports = timeFiles.map((f, i) =>
    `/usr/bin/time ${TIME.map(q).join(" ")} -o ${q(f)} ${RT} export-plan ${peer} ${how} --workers ${workers} --out ${q(out)} -q < ${q(listing)} > ${q(`${recordsFile}.${i}`)} &`
  ).join(" ");
  const script = `set -o pipefail; ${RT} list-patients --from dicom ${peer} ${only} -q > ${q(listing)} && { ${exports} wait; } && ` +
    `for p in $(jobs -p); do wait $p || exit 1; done; cat ${timeFiles.map((_, i) => q(`${recordsFile}.${i}`)).join(" ")} > ${q(recordsFile)}`;
  const t = await run("bash", ["-c", script]);
  const times = timeFiles.map((f) => existsSync(f) ? /RSS_KB=(\d+) CPU=([\d.]+)\+([\d.]+)/.exec(readFileSync(f, "utf8")) : null);
  if (t.code !== 0 || times.some((m) => !m || /Command exited with non-zero status/.test(readFileSync(timeFiles[times.indexOf(m)], "utf8")))) {
    throw new Error(`rtexport ${mode} from ${p.name} failed (exit ${t.code}): ${t.stderr.slice(-2000)}`);
  }
  t.rssKb = Math.max(...times.map((m) => Number(m![1])));
  t.cpu = times.reduce((sum, m) => sum + Number(m![2]) + Number(m![3]), 0);
  return { t, out, recordsFile };
}

/** One DCMTK query file per image series and per RT object our export wrote (unique SOP instances). */
function queryFiles(recordsFile: string, dir: string): string[] {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const series = new Map<string, string>();
  const instances = new Map<string, { study: string; series: string }>();
  for (const line of readFileSync(recordsFile, "utf8").split("\n")) {
    if (!line.trim()) continue;
    const r = JSON.parse(line);
    if (r.type !== "file" || !r.sopInstanceUid || !r.studyUid || !r.seriesUid) continue;
    if (objectKind(r.sopClassUid, r.modality) === "image") series.set(r.seriesUid, r.studyUid);
    else instances.set(r.sopInstanceUid, { study: r.studyUid, series: r.seriesUid });
  }
  const files: string[] = [];
  let n = 0;
  const write = (lines: string[]) => {
    const dump = join(dir, `q${n}.txt`);
    const dcm = join(dir, `q${n++}.dcm`);
    writeFileSync(dump, lines.join("\n") + "\n");
    // dump2dcm is quick; the query files are made once per peer, outside the timing.
    if (spawnSync("dump2dcm", [dump, dcm], { env }).status !== 0) throw new Error(`dump2dcm ${dump} failed`);
    files.push(dcm);
  };
  for (const [s, study] of series) write(["(0008,0052) CS [SERIES]", `(0020,000d) UI [${study}]`, `(0020,000e) UI [${s}]`]);
  for (const [sop, i] of instances) {
    write(["(0008,0052) CS [IMAGE]", `(0020,000d) UI [${i.study}]`, `(0020,000e) UI [${i.series}]`, `(0008,0018) UI [${sop}]`]);
  }
  return files;
}

async function theirs(p: PeerInfo, mode: string, queries: string[]): Promise<{ t: Timed; out: string }> {
  const out = join(work, `out-dcmtk-${p.name}-${mode}`);
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  // C-MOVE: DCMTK's receiver is storescp (started before, stopped after the timing). movescu's own
  // receiver (+P) polls: about 1 s per C-MOVE request here, so it is not the fair reference.
  let receiver: ReturnType<typeof spawn> | undefined;
  if (mode === "move") {
    receiver = spawn("storescp", ["-aet", "MOVESCU", "-od", out, String(dcmtkMovePort)], { env, stdio: "ignore" });
    await waitForPort(dcmtkMovePort, "127.0.0.1", 15_000, receiver);
  }
  const args = mode === "get"
    ? ["getscu", "-v", "-S", "-aet", "GETSCU", "-aec", p.aet, "-od", out, "127.0.0.1", String(p.port), ...queries]
    : ["movescu", "-S", "-aet", "MOVESCU", "-aec", p.aet, "-aem", "MOVESCU", "127.0.0.1", String(p.port), ...queries];
  const t = await run("/usr/bin/time", [...TIME, ...args]);
  if (receiver) {
    // The receiver's work is part of the C-MOVE: add its CPU, and take the larger peak RSS.
    try {
      const stat = readFileSync(`/proc/${receiver.pid}/stat`, "utf8").split(") ")[1].split(" ");
      t.cpu += (Number(stat[11]) + Number(stat[12])) / 100;
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${receiver.pid}/status`, "utf8"));
      if (hwm) t.rssKb = Math.max(t.rssKb, Number(hwm[1]));
    } catch { /* not Linux: movescu's figures only */ }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => receiver!.kill("SIGKILL"), 10_000);
      receiver!.once("exit", () => (clearTimeout(timer), resolve()));
      receiver!.kill("SIGTERM");
    });
  }
  // DCMTK 3.6.7 getscu segfaults on exit after the last of several query files has completed
  // (every C-GET answered Success, every object written): accept that, the file count is checked.
  const done = (t.stderr.match(/Received C-GET Response \(Success\)/g) ?? []).length;
  if (t.code === 139 && mode === "get" && done === queries.length) notes.add(`getscu (DCMTK 3.6.7) crashed with SIGSEGV on exit after all ${queries.length} C-GETs had completed with Success; counted as done, its files are counted`);
  else if (t.code !== 0) throw new Error(`${args[0]} from ${p.name} failed (exit ${t.code}): ${t.stderr.slice(-2000)}`);
  return { t, out };
}

/** Distinct SOP instances in our file records (an RT object shared by two plans is in both plan folders). */
function uniqueObjects(recordsFile: string): number {
  const uids = new Set<string>();
  for (const line of readFileSync(recordsFile, "utf8").split("\n")) {
    if (line.includes('"type":"file"')) uids.add(JSON.parse(line).sopInstanceUid);
  }
  return uids.size;
}

function record(peer: string, tool: string, mode: string, t: Timed, out: string, objects?: number, workers?: number): Row {
  const o = outputFiles(out);
  const row = { peer, tool, mode, files: o.files, objects: objects ?? o.files, bytes: o.bytes, seconds: t.seconds, rssKb: t.rssKb, cpu: t.cpu, workers };
  rows.push(row);
  console.error(`${peer} ${tool} (${mode}): ${o.files} files (${row.objects} objects), ${(o.bytes / 1e6).toFixed(0)} MB in ${t.seconds.toFixed(1)} s, peak RSS ${(t.rssKb / 1024).toFixed(0)} MB, CPU ${t.cpu.toFixed(1)} s`);
  // Kept until the round is over: see `settle`.
  if (!KEEP) leftovers.push(out);
  return row;
}

const leftovers: string[] = [];
/**
 * Removes the round's outputs, then waits SETTLE seconds before the next timed run. On ext4
 * without a journal (this VM's disk) the inode allocator skips every inode freed in the last
 * 60 s (360 s while its block is dirty, hence the sync), testing each one: a run that starts
 * right after a 2 GB tree was removed spent a tenth of the machine's CPU in that scan
 * (`recently_deleted`, perf), whichever tool it was. No output is removed during a round.
 */
async function settle(): Promise<void> {
  for (const d of leftovers.splice(0)) rmSync(d, { recursive: true, force: true });
  spawnSync("sync");
  if (SETTLE > 0) await new Promise((r) => setTimeout(r, SETTLE * 1000));
}

const memory: { patients: number; files: number; seconds: number; rssKb: number }[] = [];
try {
  for (const name of PEERS) peers.push(name === "serve" ? await startServe() : await startLoadedOrthanc());
  for (const p of peers) {
    // Warm-up and the reference object list: one untimed run of ours, one of getscu.
    const warm = await ours(p, "get");
    const queries = queryFiles(warm.recordsFile, join(work, `queries-${p.name}`));
    rmSync(warm.out, { recursive: true, force: true });
    leftovers.push((await theirs(p, "get", queries)).out);
    console.error(`${p.name}: ${queries.length} DCMTK query files`);
    for (let i = 0; i < RUNS; i++) {
      await settle();
      for (const mode of MODES) {
        const b = await theirs(p, mode, queries);
        const r = record(p.name, mode === "get" ? "getscu" : "movescu → storescp", mode, b.t, b.out);
        // C-MOVE: no --procs (every process would need a receiver port the peer knows).
        const cases: [number, number][] = [...WORKERS.map((w) => [w, 1] as [number, number]), ...(mode === "get" ? PROCS.map(([n, w]) => [w, n] as [number, number]) : [])];
        for (const [workers, procs] of cases) {
          const a = await ours(p, mode, undefined, workers, procs);
          const mine = record(p.name, oursLabel(workers, procs), mode, a.t, a.out, uniqueObjects(a.recordsFile), workers * procs);
          if (r.objects !== mine.objects) notes.add(`${p.name} ${mode}: rtexport fetched ${mine.objects} distinct objects, ${r.tool} ${r.objects}`);
        }
      }
    }
  }
  // Memory in patient count (serve, C-GET): the first SMALL patients, then all.
  await settle();
  const s = peers.find((p) => p.name === "serve") ?? peers[0];
  const ids = manifest.patients.map((p: { patientId: string }) => p.patientId);
  for (const subset of [...SMALL.filter((n) => n < ids.length).map((n) => ids.slice(0, n)), ids]) {
    const a = await ours(s, "get", subset, Math.max(...WORKERS));
    const o = outputFiles(a.out);
    memory.push({ patients: subset.length, files: o.files, seconds: a.t.seconds, rssKb: a.t.rssKb });
    console.error(`memory: ${subset.length} patients, ${o.files} files, peak RSS ${(a.t.rssKb / 1024).toFixed(0)} MB`);
    rmSync(a.out, { recursive: true, force: true });
  }
} finally {
  for (const p of peers) await p.stop().catch(() => {});
  if (!KEEP) rmSync(work, { recursive: true, force: true });
}

// ---- report ------------------------------------------------------------------------------------
// Each case's median run (wall time and CPU each their own median), its largest peak RSS.
const median = (xs: number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};
const byCase = new Map<string, Row[]>();
for (const r of rows) {
  const k = `${r.peer}|${r.tool}|${r.mode}`;
  byCase.set(k, [...(byCase.get(k) ?? []), r]);
}
const best = new Map<string, Row>();
for (const [k, rs] of byCase) {
  best.set(k, { ...rs[0], seconds: median(rs.map((r) => r.seconds)), cpu: median(rs.map((r) => r.cpu)), rssKb: Math.max(...rs.map((r) => r.rssKb)) });
}
const lines = [
  `${PATIENTS} patients (${manifest.files} objects, ${(manifest.bytes / 1e6).toFixed(0)} MB; CT ${SLICES}×${SIZE}²), runtime ${RUNTIME}, median of ${RUNS} rounds (outputs removed and ${SETTLE} s of rest between rounds), ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}, ${new Date().toISOString().slice(0, 16)}Z`,
  "",
  "| peer | tool | mode | objects | files written | MB written | seconds | objects/s | objects/s per worker | MB/s | × DCMTK | CPU s (user+sys) | peak RSS |",
  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
];
for (const r of best.values()) {
  const ref = [...best.values()].find((x) => x.peer === r.peer && x.mode === r.mode && !x.tool.startsWith(OURS));
  const ratio = ref ? (r.objects / r.seconds) / (ref.objects / ref.seconds) : NaN;
  const perWorker = r.workers ? (r.objects / r.seconds / r.workers).toFixed(0) : "";
  lines.push(`| ${r.peer} | ${r.tool} | ${r.mode === "get" ? "C-GET" : "C-MOVE"} | ${r.objects} | ${r.files} | ${(r.bytes / 1e6).toFixed(0)} | ${r.seconds.toFixed(1)} | ${(r.objects / r.seconds).toFixed(0)} | ${perWorker} | ${(r.bytes / 1e6 / r.seconds).toFixed(0)} | ${ratio.toFixed(2)} | ${r.cpu.toFixed(1)} | ${(r.rssKb / 1024).toFixed(0)} MB |`);
}
for (const n of notes) lines.push("", `Note: ${n}`);
lines.push("", `Memory of export-plan --workers ${Math.max(...WORKERS)} (serve, C-GET) in patient count:`, "", "| patients | files | seconds | peak RSS |", "|---:|---:|---:|---:|");
for (const m of memory) lines.push(`| ${m.patients} | ${m.files} | ${m.seconds.toFixed(1)} | ${(m.rssKb / 1024).toFixed(0)} MB |`);
process.stdout.write(lines.join("\n") + "\n");
