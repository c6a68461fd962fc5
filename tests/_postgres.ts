// A throwaway PostgreSQL server on a free loopback port, for catalog and ledger tests.
import { execFileSync, spawnSync } from "node:child_process";
import { appendFileSync, chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./_peers.ts";

export interface PostgresServer {
  port: number;
  /** postgres://postgres@127.0.0.1:PORT/DB */
  url(db?: string): string;
  psql(sql: string, db?: string): string;
  stop(): void;
}

function pgBin(tool: string): string {
  const versions = readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const p = `/usr/lib/postgresql/${v}/bin/${tool}`;
    if (existsSync(p)) return p;
  }
  throw new Error(`Cannot find PostgreSQL's ${tool}: install the Debian package postgresql`);
}

/** PostgreSQL refuses to run as root; as root the server runs as the `postgres` user. */
function asPostgres(argv: string[]): string[] {
  return process.getuid?.() === 0 ? ["runuser", "-u", "postgres", "--", ...argv] : argv;
}

/**
 * Starts the server. `listen`: addresses besides 127.0.0.1 (e.g. the host side of network
 * namespaces the tests made), each trusted from its /24.
 */
export async function startPostgres(opts: { listen?: string[] } = {}): Promise<PostgresServer> {
  const dir = mkdtempSync(join(tmpdir(), "rtx-pg-"));
  chmodSync(dir, 0o777);
  const data = join(dir, "data");
  const port = await freePort();
  const run = (argv: string[]) => {
    const [cmd, ...args] = asPostgres(argv);
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60_000 });
    if (r.status !== 0) throw new Error(`${argv.join(" ")} failed: ${r.stderr || r.stdout}`);
  };
  run([pgBin("initdb"), "-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
  const listen = ["127.0.0.1", ...(opts.listen ?? [])];
  for (const a of opts.listen ?? []) appendFileSync(join(data, "pg_hba.conf"), `host all all ${a.replace(/\.\d+$/, ".0")}/24 trust\n`);
  run([pgBin("pg_ctl"), "-D", data, "-l", join(dir, "log"), "-w", "-t", "30", "-o",
    `-p ${port} -k ${dir} -c listen_addresses=${listen.join(",")} -c fsync=off -c max_connections=200`, "start"]);
  const psql = (sql: string, db = "postgres") =>
    execFileSync(pgBin("psql"), ["-h", "127.0.0.1", "-p", String(port), "-U", "postgres", "-d", db, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return {
    port,
    url: (db = "postgres") => `postgres://postgres@127.0.0.1:${port}/${db}`,
    psql,
    stop() {
      spawnSync(asPostgres([pgBin("pg_ctl"), "-D", data, "-m", "immediate", "stop"])[0], asPostgres([pgBin("pg_ctl"), "-D", data, "-m", "immediate", "stop"]).slice(1), { timeout: 30_000 });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Freezes (SIGSTOP) the first of `pids` seen holding a claimed work item in database `db` (of
 * `job` when given) and returns its pid, its run and how many items it holds. A process may finish
 * its item between the look and the freeze: it is then let go on (SIGCONT) and the next one seen
 * holding is taken, at most `attempts` times.
 */
export async function freezeHolder(
  pg: PostgresServer, db: string, pids: number[], opts: { job?: string; attempts: number },
): Promise<{ pid: number; run: string; holding: number }> {
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(pid, sig);
    } catch { /* ended */ }
  };
  const ofJob = opts.job === undefined ? "" : ` and w.job = '${opts.job.replaceAll("'", "''")}'`;
  for (let attempt = 0; attempt < opts.attempts; attempt++) {
    let pid: number | undefined;
    for (const end = Date.now() + 60_000; pid === undefined;) {
      if (Date.now() > end) throw new Error("timed out waiting for a worker holding an item");
      try {
        const rows = pg.psql(
          `select r.pid from rtx_ledger_work w join rtx_ledger_runs r on r.id = w.owner where w.status = 'claimed'${ofJob} and r.finished_at is null`,
          db,
        ).trim().split("\n").filter(Boolean);
        pid = rows.map(Number).find((p) => pids.includes(p));
      } catch { /* the workers are still creating the schema */ }
      if (pid === undefined) await new Promise((r) => setTimeout(r, 10));
    }
    signal(pid, "SIGSTOP");
    const run = pg.psql(`select id from rtx_ledger_runs where pid = ${pid} and finished_at is null`, db).trim();
    const holding = Number(pg.psql(`select count(*) from rtx_ledger_work where owner = '${run}' and status = 'claimed'`, db).trim());
    if (holding > 0) return { pid, run, holding };
    signal(pid, "SIGCONT");
  }
  throw new Error("no worker could be frozen holding an item");
}
