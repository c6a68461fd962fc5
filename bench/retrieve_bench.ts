/**
 * `retrieve --get` from Orthanc vs DCMTK `getscu`, same Orthanc, same CT series, one run.
 *
 *   node_modules/.bin/node bench/retrieve_bench.ts [--slices 500] [--size 512] [--runs 3] [--scratch DIR]
 *
 * The corpus (one synthetic patient: a CT series of N slices plus its plans, doses, records)
 * is generated into bench/.corpus and uploaded to a temporary Orthanc. rtexport retrieves one
 * CT series with `retrieve --get --series UID` (like for like with getscu at SERIES level), and
 * one plan with `--plan LABEL` (its CT series plus the RT objects that reference it, found by
 * C-FIND and read references: more requests than getscu makes, shown for information). Both run as child processes under /usr/bin/time for peak RSS.
 * Orthanc (started with TCP_NODELAY=1, as DCMTK needs) is warmed up by one untimed getscu of the
 * series first; then the two tools alternate, `--runs` times each; the best run of each counts.
 * With `--serve` (default on; `--no-serve` skips it) the same series is also fetched by both tools
 * from our own `serve` (lib/qr, in this process, over the corpus folder): that separates the
 * source's cost from the receiver's.
 */
import { execFile, execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { type ClinicManifest, generateClinic } from "../lib/fixtures/mod.ts";
import { startQrScp } from "../lib/qr/scp.ts";
import { dcmtkEnv, startOrthanc } from "../tests/_peers.ts";
import { cliCommand, root } from "../tests/_run.ts";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const slices = arg("slices", 500);
const size = arg("size", 512);
const runs = arg("runs", 3);
const withServe = !process.argv.includes("--no-serve");

function timed(cmd: string, args: string[], env: Record<string, string>): Promise<{ ms: number; rssKb: number; cpuS: number; code: number; stderr: string }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    execFile("/usr/bin/time", ["-f", "RSS_KB=%M CPU=%U+%S", cmd, ...args], { env, maxBuffer: 256 << 20, timeout: 600000 }, (err, _stdout, stderr) => {
      const ms = performance.now() - t0;
      const m = /RSS_KB=(\d+) CPU=([\d.]+)\+([\d.]+)/.exec(String(stderr));
      resolve({ ms, rssKb: m ? Number(m[1]) : NaN, cpuS: m ? Number(m[2]) + Number(m[3]) : NaN, code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr: String(stderr) });
    });
  });
}

function countFiles(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith(".dcm") || e.isFile() && /^(CT|RT)/.test(e.name)).length;
}

const corpus = join(root, "bench", ".corpus", `retrieve-${slices}x${size}`);
if (!existsSync(join(corpus, "manifest.json"))) {
  console.error(`generating ${slices} CT slices of ${size}² into ${corpus}`);
  await generateClinic({ out: corpus, patients: 1, slices, size, seed: 7 });
}
const manifest: ClinicManifest = JSON.parse(readFileSync(join(corpus, "manifest.json"), "utf8"));
const patient = manifest.patients[0];
const plan = patient.plans[0];
const ct = patient.studies.flatMap((study) => study.series.map((series) => ({ study, series }))).find((x) => x.series.modality === "CT")!;

// Orthanc is built on DCMTK's network layer: without TCP_NODELAY=1 every object it sends waits
// on Nagle + delayed ACK (measured here: getscu of 100 CT from Orthanc 4.8 s without, 0.2-0.6 s with).
process.env.TCP_NODELAY = "1";
const orthanc = await startOrthanc();
const serveDb = join(root, "bench", ".corpus", `retrieve-serve-index-${process.pid}.sqlite`);
const served = withServe ? await startQrScp({ dir: corpus, aeTitle: "RTSERVE", host: "127.0.0.1", port: 0, allow: ["RTX@127.0.0.1", "GETSCU@127.0.0.1"], dbPath: serveDb }) : undefined;
try {
  const files = readdirSync(corpus, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".dcm"))
    .map((e) => join(e.parentPath, e.name));
  console.error(`storing ${files.length} files into Orthanc with storescu`);
  await new Promise<void>((resolve, reject) => {
    execFile("storescu", ["-aec", orthanc.aeTitle, "127.0.0.1", String(orthanc.port), ...files], { env: dcmtkEnv(), timeout: 600000 }, (err, _o, stderr) =>
      err ? reject(new Error(`storescu into Orthanc failed: ${String(stderr).slice(-500)}`)) : resolve());
  });
  // Where both tools write (`--scratch DIR`, e.g. /dev/shm: on this VM's journal-less root ext4
  // every round's creates get slower after the previous round's deletes, for both tools).
  const scratchAt = process.argv.indexOf("--scratch");
  const scratch = scratchAt >= 0 ? join(process.argv[scratchAt + 1], `rtexport-retrieve-bench-${process.pid}`) : join(root, "bench", ".corpus", "retrieve-out");
  const env = dcmtkEnv();
  const [node, ...cliArgs] = cliCommand();
  // The single binary (what the README tells a hospital to install): built from this checkout
  // when older than the sources; it starts in ~0.05 s where `node cli.ts` needs ~0.2 s.
  execFileSync(node, [join(root, "scripts/build_bin.ts"), "--target", "linux", "--if-stale"], { stdio: ["ignore", "ignore", "inherit"] });
  const bin = join(root, "dist", "rtexport-linux-x64");
  const ours = (what: string[], peer: { port: number; aeTitle: string } = orthanc, cmd: string[] = [node, ...cliArgs]) => () => {
    rmSync(scratch, { recursive: true, force: true });
    return timed(cmd[0], [...cmd.slice(1), "retrieve", "--host", "127.0.0.1", "--port", String(peer.port), "--aec", peer.aeTitle, "--aet", "RTX", "--get",
      "--patient-id", patient.patientId, ...what, "--out", scratch, "--max-pdu", "131072", "-q"], env);
  };
  const SERIES = "rtexport retrieve --get --series (the CT series)";
  const SERIES_BIN = "rtexport retrieve --get --series, single binary";
  const SERIES_BIN_P2 = "rtexport retrieve --get --series --parallel 2, single binary";
  const PLAN = "rtexport retrieve --get --plan (CT series + the plan's RT objects, selective)";
  const theirs = (peer: { port: number; aeTitle: string } = orthanc) => () => {
    rmSync(scratch, { recursive: true, force: true });
    mkdirSync(scratch, { recursive: true });
    return timed("getscu", ["-aet", "GETSCU", "-aec", peer.aeTitle, "-S", "-od", scratch, "--max-pdu", "131072",
      "-k", "QueryRetrieveLevel=SERIES", "-k", `StudyInstanceUID=${ct.study.studyUid}`, "-k", `SeriesInstanceUID=${ct.series.seriesUid}`,
      "127.0.0.1", String(peer.port)], env);
  };
  const SERVE_SERIES = "rtexport retrieve --get --series ← our serve";
  const SERVE_GETSCU = "getscu ← our serve";
  await theirs()(); // warm-up: Orthanc's caches and the page cache
  if (served) await theirs({ port: served.port, aeTitle: "RTSERVE" })();
  const rows: { tool: string; files: number; ms: number; filesPerS: number; cpuS: number; rssMb: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const cases: [string, () => ReturnType<typeof timed>][] = [
      [SERIES, ours(["--series", ct.series.seriesUid])],
      ["getscu", theirs()],
      [SERIES_BIN, ours(["--series", ct.series.seriesUid], orthanc, [bin])],
      [SERIES_BIN_P2, ours(["--series", ct.series.seriesUid, "--parallel", "2"], orthanc, [bin])],
      [PLAN, ours(["--plan", plan.label])],
    ];
    if (served) {
      const peer = { port: served.port, aeTitle: "RTSERVE" };
      cases.push([SERVE_SERIES, ours(["--series", ct.series.seriesUid], peer)], [SERVE_GETSCU, theirs(peer)]);
    }
    for (const [tool, run] of cases) {
      const r = await run();
      if (r.code !== 0) throw new Error(`${tool} failed (exit ${r.code}): ${r.stderr.slice(-1000)}`);
      const n = countFiles(scratch);
      rows.push({ tool, files: n, ms: Math.round(r.ms), filesPerS: Math.round((n / r.ms) * 1000), cpuS: r.cpuS, rssMb: Math.round(r.rssKb / 1024) });
      console.error(`${tool}: ${n} files in ${Math.round(r.ms)} ms, CPU ${r.cpuS.toFixed(2)} s, peak RSS ${Math.round(r.rssKb / 1024)} MB`);
    }
  }
  const best = (tool: string) => Math.max(...rows.filter((r) => r.tool === tool).map((r) => r.filesPerS));
  const median = (tool: string) => {
    const v = rows.filter((r) => r.tool === tool).map((r) => r.filesPerS).sort((a, b) => a - b);
    return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  };
  const ratio = best(SERIES) / best("getscu");
  // Wall times on this shared VM vary ±50 % from run to run: the medians are printed too.
  const ratios = {
    checkoutBest: Number(ratio.toFixed(2)),
    checkoutMedian: Number((median(SERIES) / median("getscu")).toFixed(2)),
    binaryBest: Number((best(SERIES_BIN) / best("getscu")).toFixed(2)),
    binaryMedian: Number((median(SERIES_BIN) / median("getscu")).toFixed(2)),
    binaryParallel2Median: Number((median(SERIES_BIN_P2) / median("getscu")).toFixed(2)),
  };
  const serveRatio = served ? Number((best(SERVE_SERIES) / best(SERVE_GETSCU)).toFixed(2)) : undefined;
  const load = (await import("node:os")).loadavg()[0];
  console.log(JSON.stringify({ slices, size, runs, loadAverage1m: Number(load.toFixed(1)), cpus: (await import("node:os")).cpus().length, rows, ratios, bestFilesPerS: { series: best(SERIES), seriesBinary: best(SERIES_BIN), plan: best(PLAN), getscu: best("getscu"), ...(served ? { seriesFromServe: best(SERVE_SERIES), getscuFromServe: best(SERVE_GETSCU) } : {}) }, ratio: Number(ratio.toFixed(2)), serveRatio }, null, 2));
  rmSync(scratch, { recursive: true, force: true });
} finally {
  await served?.close();
  rmSync(serveDb, { force: true });
  await orthanc.stop();
}
