/**
 * Claim benchmark (not a test): how many work items per second one ledger hands out, with the
 * work itself taken away, so the ledger is all that is measured. Each item costs what it costs in
 * a migration: one claim (UPDATE of a locked, skipped-if-held row), and on completion the work
 * row, the worker's counters and the item's ledger row.
 *
 *   node_modules/.bin/node bench/claim_bench.ts [--items 20000] [--procs 1,2,4,8] [--workers 4] [--sqlite]
 *
 * - PostgreSQL: a throwaway server from tests/_postgres.ts (fsync off, as in the tests; a
 *   production server with fsync on pays a WAL flush per commit). For each --procs P, P worker
 *   processes with --workers claimers each (each process its own ledger connection pool) seed the
 *   same items into one job and claim until the pass is done.
 * - SQLite: one process with --workers claimers (one writer), when --sqlite is given.
 * - Rate: items / (last completion − first claim) over all processes; start-up is not counted.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};

if (process.argv[2] === "--child") {
  // One worker process: join the job, seed, claim until done; print first-claim and last-completion times.
  const [, , , url, job, items, workers] = process.argv;
  const { Ledger } = await import("../lib/ledger/ledger.ts");
  const { runClaimed } = await import("../lib/ledger/work.ts");
  const ledger = await Ledger.open(url, "claim-bench", { poolSize: Number(workers) + 2 });
  let first = 0;
  let last = 0;
  let n = 0;
  const input = (async function* () {
    for (let i = 0; i < Number(items); i++) yield { type: "patient", patientId: `P${i}` };
  })();
  const out = runClaimed(input, {
    itemOf: (r) => ({ key: `patient|${r.patientId}`, patientId: String(r.patientId) }),
    // deno-lint-ignore require-yield -- no records: the work is taken away
    async *work() {
      first ||= performance.timeOrigin + performance.now();
      n++;
    },
    outcome: () => {
      last = performance.timeOrigin + performance.now();
      return { status: "done", files: 1, bytes: 1 };
    },
  }, { ledger, job, workers: Number(workers) });
  for await (const _ of out) { /* none */ }
  last = performance.timeOrigin + performance.now();
  await ledger.finish("ok");
  await ledger.close();
  process.stdout.write(JSON.stringify({ first, last, n }) + "\n");
  process.exit(0);
}

const ITEMS = Number(arg("items", "20000"));
const PROCS = arg("procs", "1,2,4,8").split(",").map(Number);
const WORKERS = Number(arg("workers", "4"));
const self = fileURLToPath(import.meta.url);

function child(url: string, job: string): Promise<{ first: number; last: number; n: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [self, "--child", url, job, String(ITEMS), String(WORKERS)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    p.on("close", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`claim-bench child exited ${code}`))));
  });
}

async function round(url: string, procs: number, label: string): Promise<string> {
  const job = `bench-${label}-${procs}`;
  const rs = await Promise.all(Array.from({ length: procs }, () => child(url, job)));
  const n = rs.reduce((s, r) => s + r.n, 0);
  if (n !== ITEMS) throw new Error(`${label}: ${n} items claimed, expected ${ITEMS} (no item twice, none lost)`);
  const seconds = (Math.max(...rs.map((r) => r.last)) - Math.min(...rs.map((r) => r.first))) / 1000;
  const line = `| ${label} | ${procs} | ${WORKERS} | ${procs * WORKERS} | ${ITEMS} | ${seconds.toFixed(2)} | ${Math.round(ITEMS / seconds)} | ${rs.map((r) => r.n).join(" / ")} |`;
  console.error(line);
  return line;
}

const lines = [
  `${ITEMS} items, ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}, ${new Date().toISOString().slice(0, 16)}Z`,
  "",
  "| ledger | processes | claimers each | claimers | items | seconds | items/s | items per process |",
  "|---|---:|---:|---:|---:|---:|---:|---|",
];
const { startPostgres } = await import("../tests/_postgres.ts");
const pg = await startPostgres();
try {
  for (const procs of PROCS) {
    const db = `claims_${procs}`;
    pg.psql(`create database ${db}`);
    lines.push(await round(pg.url(db), procs, "PostgreSQL"));
  }
} finally {
  pg.stop();
}
if (process.argv.includes("--sqlite")) {
  const dir = mkdtempSync(join(tmpdir(), "rtx-claim-bench-"));
  try {
    lines.push(await round(`sqlite:${join(dir, "ledger.sqlite")}`, 1, "SQLite"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
process.stdout.write(lines.join("\n") + "\n");
