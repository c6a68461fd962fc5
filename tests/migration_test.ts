// One migration, several workers, one ledger (issue 17), as users run it: export-plan processes
// (each in its own network namespace and UTS namespace, i.e. its own "host", when the suite runs
// as root; plain processes otherwise) sharing one PostgreSQL ledger and one tree, one of them
// kill -9ed while it holds work; `status` after kill -9, after a full disk (the tree on a small
// tmpfs, the ledger elsewhere and on it too) and after a clean run; a changed source, a flipped
// byte in the tree, a read-only catalog and a read-only export; a rerun of a peer export that
// must not retrieve anything (counted in Orthanc's log).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { generateClinic } from "../lib/fixtures/mod.ts";
import type { ClinicManifest } from "../lib/fixtures/clinic.ts";
import { buildDemoCatalog } from "../lib/catalog/demo.ts";
import { Ledger, type LedgerSchema } from "../lib/ledger/ledger.ts";
import { openSqlite } from "../lib/db/sqlite.ts";
import { cliCommand, records, type Run, sh } from "./_run.ts";
import { freezeHolder, type PostgresServer, startPostgres } from "./_postgres.ts";
import { runDcmtk, startOrthanc, type OrthancPeer } from "./_peers.ts";

let dir: string;
let manifest: ClinicManifest;
let listing: string;
let ref: Map<string, string>;
const PATIENTS = 10;

function treeHashes(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== ".rtexport") walk(p);
      } else out.set(relative(root, p), createHash("sha256").update(readFileSync(p)).digest("hex"));
    }
  };
  walk(root);
  return out;
}

function assertSameTree(actual: Map<string, string>, expected: Map<string, string>): void {
  const missing = [...expected.keys()].filter((k) => !actual.has(k));
  const extra = [...actual.keys()].filter((k) => !expected.has(k));
  const differ = [...expected.keys()].filter((k) => actual.has(k) && actual.get(k) !== expected.get(k));
  assert.deepEqual({ missing: missing.slice(0, 5), extra: extra.slice(0, 5), differ: differ.slice(0, 5) }, { missing: [], extra: [], differ: [] });
}

/** Names under `root` (the .rtexport folder included) that are temporary copies or staged objects. */
function leftovers(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => /\.part$|^\..*rtexport-part$/.test(e.name) || (e.isDirectory() && /^staging-/.test(e.name)))
    .map((e) => e.name);
}

// deno-lint-ignore no-explicit-any -- status records are JSON, read field by field
type Json = Record<string, any>;

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** `rtexport status … --json` → its one record. */
async function status(args: string): Promise<Json> {
  const r = await sh(`"\${RT[@]}" status ${args} --json`);
  assert.equal(r.status, 0, r.stderr);
  return records(r.stdout)[0];
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtx-migration-"));
  chmodSync(dir, 0o755);
  manifest = await generateClinic({ out: join(dir, "clinic"), patients: PATIENTS, slices: 6, seed: 17 });
  await buildDemoCatalog({ clinic: join(dir, "clinic"), manifest, catalogPath: join(dir, "catalog.db"), vault: join(dir, "vault") });
  const l = await sh(`"\${RT[@]}" list-patients --from catalog --db 'sqlite:${join(dir, "catalog.db")}' --vault '${join(dir, "vault")}'`);
  assert.equal(l.status, 0, l.stderr);
  listing = join(dir, "listing.ndjson");
  writeFileSync(listing, l.stdout);
  // The reference: one process, the default SQLite ledger.
  const r = await sh(`"\${RT[@]}" export-plan --out '${join(dir, "ref")}' < '${listing}'`);
  assert.equal(r.status, 0, r.stderr);
  ref = treeHashes(join(dir, "ref"));
  assert.ok(ref.size > 300, `reference tree of ${ref.size} files`);
});
after(() => process.env.RTX_KEEP || rmSync(dir, { recursive: true, force: true }));

// ---- hosts: network + UTS namespaces ------------------------------------------------------------

interface Host {
  /** Namespace name, or undefined for a plain process on this machine. */
  ns?: string;
  name: string;
  /** This machine's address on the link to the namespace (PostgreSQL listens there). */
  hostIp: string;
}

/** Three "machines": network namespaces joined to this one by veth links, each with its own host name. */
function makeHosts(): Host[] | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const tag = `rx${process.pid % 100000}`;
  const hosts: Host[] = [];
  const ip = (...args: string[]) => {
    const r = spawnSync("ip", args, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr}`);
  };
  try {
    for (let i = 1; i <= 3; i++) {
      const ns = `${tag}n${i}`;
      const net = `10.${200 + (process.pid % 50)}.${i}`;
      ip("netns", "add", ns);
      hosts.push({ ns, name: `rtx-worker-${i}`, hostIp: `${net}.1` });
      ip("link", "add", `${tag}h${i}`, "type", "veth", "peer", "name", `${tag}v${i}`, "netns", ns);
      ip("addr", "add", `${net}.1/24`, "dev", `${tag}h${i}`);
      ip("link", "set", `${tag}h${i}`, "up");
      ip("-n", ns, "addr", "add", `${net}.2/24`, "dev", `${tag}v${i}`);
      ip("-n", ns, "link", "set", `${tag}v${i}`, "up");
      ip("-n", ns, "link", "set", "lo", "up");
    }
    return hosts;
  } catch (e) {
    removeHosts(hosts);
    process.stderr.write(`migration_test: network namespaces unavailable (${(e as Error).message.trim()}); workers run as plain processes\n`);
    return undefined;
  }
}

function removeHosts(hosts: Host[] | undefined): void {
  for (const h of hosts ?? []) if (h.ns) spawnSync("ip", ["netns", "del", h.ns]);
}

interface Worker {
  child: ChildProcess;
  /** True once the process has ended (a stopped process is not ended). */
  closed: boolean;
  out: string;
  err: string;
  done: Promise<number | null>;
}

/** `rtexport ARGS < listing` as a worker on `host` (its own namespace and host name) or as a plain process. */
function startWorker(args: string[], host?: Host, input = listing): Worker {
  const argv = [...cliCommand(), ...args];
  const [cmd, ...rest] = host?.ns
    ? ["ip", "netns", "exec", host.ns, "unshare", "--uts", "sh", "-c", `hostname ${host.name} && exec "$@"`, "sh", ...argv]
    : argv;
  return watch(spawn(cmd, rest, { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } }), readFileSync(input));
}

/** A started process as a Worker: its output collected, `input` (if any) written to its stdin. */
function watch(child: ChildProcess, input?: Uint8Array): Worker {
  const w: Worker = {
    child, out: "", err: "", closed: false,
    done: new Promise((r) => child.on("close", (code) => ((w.closed = true), r(code)))),
  };
  child.stdout?.setEncoding("utf8").on("data", (d: string) => (w.out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (w.err += d));
  if (input) child.stdin!.end(input);
  return w;
}

/**
 * Sends a signal by process id: Deno's child_process takes a process that was sent one signal
 * (SIGSTOP) as killed and sends it no other (the SIGKILL after it never arrived).
 */
function signal(w: Worker, sig: NodeJS.Signals): void {
  try {
    process.kill(w.child.pid!, sig);
  } catch { /* ended */ }
}

async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// deno-lint-ignore no-explicit-any -- records are JSON
const files = (w: { out: string }) => records(w.out).filter((r: any) => r.type === "file");

describe("several workers, one PostgreSQL ledger, one tree", () => {
  let pg: PostgresServer;
  let hosts: Host[] | undefined;
  before(async () => {
    hosts = makeHosts();
    pg = await startPostgres({ listen: hosts?.map((h) => h.hostIp) });
  });
  after(() => {
    pg?.stop();
    removeHosts(hosts);
  });

  /**
   * Three workers export the clinic into one tree; the first to hold a patient is frozen and
   * kill -9ed; the others take its patient over when its lease runs out. Then it is restarted.
   */
  async function migrate(db: string): Promise<void> {
    const url = (i: number) => hosts ? `postgres://postgres@${hosts[i].hostIp}:${pg.port}/${db}` : pg.url(db);
    const tree = join(dir, `tree-${db}`);
    const args = (i: number) => ["export-plan", "--out", tree, "--ledger", url(i), "--lease", "4", "--parallel", "2"];
    const workers = [0, 1, 2].map((i) => startWorker(args(i), hosts?.[i]));
    const pids = workers.map((w) => w.child.pid);
    let victim: Worker | undefined;
    try {
      // The first worker seen holding a patient is the victim, frozen (it then holds what it holds)
      // and later killed.
      const frozen = await freezeHolder(pg, db, pids.map(Number), { attempts: 50 });
      victim = workers[pids.indexOf(frozen.pid)];
      const { run: victimRun, holding } = frozen;
      // The other two are in the victim's pass (they started with it).
      await until("the other workers in the pass", () =>
        Number(pg.psql(`select count(*) from rtx_ledger_runs where pass = (select pass from rtx_ledger_runs where id = '${victimRun}')`, db).trim()) === 3 || undefined);
      signal(victim, "SIGKILL");
      const others = workers.filter((w) => w !== victim);
      const codes = await Promise.all(others.map((w) => w.done));
      for (const [i, c] of codes.entries()) assert.equal(c, 0, others[i].err);
      await victim.done;

      // status from this machine: the victim is dead and its patients were taken over; nothing pending.
      const s = await status(`--ledger '${pg.url(db)}'`);
      const runs = s.runs.filter((r: { job: string | null }) => r.job === `export-plan to ${tree}`);
      const dead = runs.filter((r: { state: string }) => r.state === "dead");
      assert.equal(dead.length, 1);
      assert.equal(dead[0].id, victimRun);
      assert.equal(dead[0].reclaimed, holding, "the dead worker's patients were taken over");
      assert.deepEqual(runs.filter((r: { state: string }) => r.state === "finished").map((r: { outcome: string }) => r.outcome), ["ok", "ok"]);
      if (hosts) assert.equal(new Set(runs.map((r: { host: string }) => r.host)).size, 3, "three hosts");
      assert.deepEqual(s.jobs[0].items, { total: PATIENTS, pending: 0, running: 0, done: PATIENTS, failed: 0 });
      assert.equal(s.jobs[0].reclaimed, holding);
      assert.deepEqual([s.kinds.patient.done, s.kinds.patient.pending, s.kinds.patient.failed], [PATIENTS, 0, 0]);
      assert.deepEqual([s.kinds.plan.pending, s.kinds.plan.failed], [0, 0]);
      assert.deepEqual([s.kinds.file.done, s.kinds.file.failed], [ref.size, 0]);
      // Every patient claimed once, except the ones taken over: twice, the second time from the victim.
      const attempts = pg.psql("select attempts, coalesce(previous_owner, '-') from rtx_ledger_work order by 1", db).trim().split("\n");
      assert.deepEqual(attempts, [...Array(PATIENTS - holding).fill("1|-"), ...Array(holding).fill(`2|${victimRun}`)]);

      // The tree is the single-process tree, hash for hash, with no temporary file or staging left.
      assertSameTree(treeHashes(tree), ref);
      assert.deepEqual(leftovers(tree), []);
      // Every file was copied exactly once: by one worker, or by the victim before it was frozen (the
      // worker that took its patient over then found it in place, "identical").
      const copied = new Map<string, number>();
      for (const w of workers) for (const f of files(w)) if (f.copy === "copied") copied.set(f.path, (copied.get(f.path) ?? 0) + 1);
      assert.deepEqual([...copied.values()].filter((n) => n > 1), [], "no file copied twice");
      const identical = others.flatMap((w) => files(w).filter((f) => f.copy === "identical").map((f) => f.path));
      const victimPatients = new Set(pg.psql(`select patient_id from rtx_ledger_work where previous_owner = '${victimRun}'`, db).trim().split("\n"));
      for (const p of identical) assert.ok([...victimPatients].some((id) => p.includes(id)), `"${p}" found in place belongs to a patient taken over`);
      const accounted = new Set([...copied.keys(), ...identical].map((p) => relative(tree, p)));
      assert.deepEqual([...ref.keys()].filter((k) => !accounted.has(k)), [], "every file copied by someone");

      // The victim restarted late: a new pass, in which everything is already done.
      const again = startWorker(args(workers.indexOf(victim)), hosts?.[workers.indexOf(victim)]);
      assert.equal(await again.done, 0, again.err);
      const redo = files(again);
      assert.equal(redo.length, ref.size);
      assert.deepEqual(redo.filter((f) => f.copy !== "done-before"), []);
      const after = await status(`--ledger '${pg.url(db)}'`);
      assert.equal(after.runs.filter((r: { state: string }) => r.state === "dead").length, 1);
      assert.deepEqual(after.jobs[0].items, { total: PATIENTS, pending: 0, running: 0, done: PATIENTS, failed: 0 });
      assertSameTree(treeHashes(tree), ref);
    } finally {
      for (const w of workers) if (!w.closed) signal(w, "SIGKILL");
    }
  }

  test("three workers, one killed mid-run and restarted late, from an empty database (the schema created by one of them)", async () => {
    pg.psql("create database empty_start");
    await migrate("empty_start");
  });

  test("the same on a database prepared beforehand", async () => {
    pg.psql("create database prepared");
    await (await Ledger.open(pg.url("prepared"), "prepare")).close();
    await migrate("prepared");
  });
});

describe("one machine", () => {
  test("--workers 3 in one process splits the patients like three processes: the same tree, every file copied once", async () => {
    const tree = join(dir, "workers3");
    const r = await sh(`"\${RT[@]}" export-plan --out '${tree}' --workers 3 < '${listing}'`);
    assert.equal(r.status, 0, r.stderr);
    assertSameTree(treeHashes(tree), ref);
    const fs = records(r.stdout).filter((x) => x.type === "file");
    assert.equal(fs.length, ref.size);
    assert.ok(fs.every((f) => f.copy === "copied"));
    const s = await status(`'${tree}'`);
    assert.deepEqual([s.runs[0].workers, s.runs[0].items, s.runs[0].state], [3, PATIENTS, "finished"]);
  });

  test("status after kill -9: the patients not done are pending, the run is dead; after the rerun nothing is pending", async () => {
    const tree = join(dir, "killed");
    const w = startWorker(["export-plan", "--out", tree, "--parallel", "1"]);
    const ledgerPath = join(tree, ".rtexport", "ledger.sqlite");
    let done = 0;
    try {
      done = await until("two patients done", async () => {
        if (!existsSync(ledgerPath)) return undefined;
        const db = openSqlite<LedgerSchema>(ledgerPath, { readOnly: true });
        try {
          const r = await db.selectFrom("rtx_ledger_work").select((eb) => eb.fn.countAll().as("n")).where("status", "=", "done").executeTakeFirst();
          return Number(r?.n) >= 2 ? Number(r?.n) : undefined;
        } catch {
          return undefined; // the schema is being created
        } finally {
          await db.destroy();
        }
      });
      signal(w, "SIGSTOP");
      // Frozen: what the ledger holds now is final for this run.
      const db = openSqlite<LedgerSchema>(ledgerPath, { readOnly: true });
      done = Number((await db.selectFrom("rtx_ledger_work").select((eb) => eb.fn.countAll().as("n")).where("status", "=", "done").executeTakeFirst())?.n);
      await db.destroy();
    } finally {
      signal(w, "SIGKILL");
    }
    await w.done;
    assert.ok(done >= 2 && done < PATIENTS, `killed after ${done} of ${PATIENTS} patients`);
    const s = await status(`'${tree}'`);
    assert.deepEqual(s.jobs[0].items, { total: PATIENTS, pending: PATIENTS - done, running: 0, done, failed: 0 });
    assert.deepEqual([s.kinds.patient.done, s.kinds.patient.pending, s.kinds.patient.failed], [done, PATIENTS - done, 0]);
    assert.ok(s.kinds.plan.pending > 0);
    assert.equal(s.kinds.file.failed, 0);
    assert.deepEqual(s.runs.map((r: { state: string }) => r.state), ["dead"]);
    const rerun = await sh(`"\${RT[@]}" export-plan --out '${tree}' < '${listing}'`);
    assert.equal(rerun.status, 0, rerun.stderr);
    const after = await status(`'${tree}'`);
    assert.deepEqual(after.jobs[0].items, { total: PATIENTS, pending: 0, running: 0, done: PATIENTS, failed: 0 });
    assert.deepEqual([after.kinds.patient.pending, after.kinds.plan.pending, after.kinds.file.failed], [0, 0, 0]);
    assert.deepEqual(after.runs.map((r: { state: string; outcome: string }) => `${r.state}/${r.outcome}`), ["finished/ok", "dead/null"]);
    assertSameTree(treeHashes(tree), ref);
    assert.deepEqual(leftovers(tree), []);
  });
});

/**
 * Runs a bash script in a mount namespace of its own (so it may mount a tmpfs or make a folder
 * read-only without touching this machine), as root there.
 */
function inMountNamespace(script: string, env: Record<string, string> = {}): Promise<Run> {
  return sh(`unshare --mount --map-root-user --propagation private bash -c ${quote(`set -e -o pipefail; RT=(${cliCommand().map(quote).join(" ")}); ${script}`)}`, {
    env, timeoutMs: 180_000,
  });
}

describe("a full disk", () => {
  /** Tree files present, and the ledger's status, of an export into a 1.5 MB tmpfs. */
  async function fullDisk(ledgerOnTmpfs: boolean): Promise<{ present: Map<string, string>; code: number; status: Json; stderr: string }> {
    const mnt = join(dir, `full-${ledgerOnTmpfs}`);
    const journal = join(dir, `journal-${ledgerOnTmpfs}`);
    mkdirSync(mnt, { recursive: true });
    mkdirSync(journal, { recursive: true });
    // A short job name (the default names the tree's path): the 1.5 MB holds the tree and, in the
    // second test, the ledger, whose rows repeat the job; with the long name the ledger fills first.
    const statusLedger = ledgerOnTmpfs ? "" : `--ledger 'sqlite:${join(dir, `full-ledger-${ledgerOnTmpfs}.sqlite`)}'`;
    const ledger = `${statusLedger} --job full-disk`;
    // The tree lives only in the namespace: its listing and the status are taken there.
    const r = await inMountNamespace(
      `mount -t tmpfs -o size=1500k tmpfs '${mnt}'; ` +
        `set +e; "\${RT[@]}" export-plan --out '${mnt}/tree' ${ledger} < '${listing}' > '${dir}/full.out' 2> '${dir}/full-${ledgerOnTmpfs}.err'; code=$?; set -e; ` +
        `echo "EXIT $code"; (cd '${mnt}/tree' && find . -path ./.rtexport -prune -o -type f -print0 | xargs -0 -r sha256sum) | sed 's/^/FILE /'; ` +
        `echo "LEFT $(find '${mnt}/tree' -name '*.part' | wc -l)"; ` +
        `"\${RT[@]}" status '${mnt}/tree' ${statusLedger} --json | sed 's/^/STATUS /'`,
      { TMPDIR: journal },
    );
    assert.equal(r.status, 0, r.stderr);
    const present = new Map<string, string>();
    let code = -1;
    let st: Json = {};
    for (const line of r.stdout.split("\n")) {
      if (line.startsWith("EXIT ")) code = Number(line.slice(5));
      if (line.startsWith("FILE ")) {
        const [hash, path] = line.slice(5).split(/\s+\.\//);
        present.set(path, hash);
      }
      if (line.startsWith("LEFT ")) assert.equal(line, "LEFT 0", "no temporary file left on the full disk");
      if (line.startsWith("STATUS ")) st = JSON.parse(line.slice(7));
    }
    return { present, code, status: st, stderr: readFileSync(join(dir, `full-${ledgerOnTmpfs}.err`), "utf8") };
  }

  /**
   * The counts a full disk must give, from what the export printed (not from the ledger): files
   * in the tree are done (and whole), each "Cannot export file" line is a failed file, a patient
   * with one is failed, a patient the export never reached is pending.
   */
  function expected(present: Map<string, string>, stderr: string) {
    for (const [k, h] of present) assert.equal(h, ref.get(k), `"${k}" on the full disk is whole`);
    const failedLines = stderr.split("\n").filter((l) => /^export-plan: Cannot (export file|copy) "/.test(l));
    // A tree path names the patient (…_RTX0004/…), a vault path its folder (Patients/00004/…).
    const patientOf = (s: string) => /RTX\d{4}/.exec(s)?.[0] ?? `RTX${/Patients\/0(\d{4})\//.exec(s)?.[1]}`;
    const failedPatients = new Set(failedLines.map(patientOf));
    const reached = new Set([...failedPatients, ...[...present.keys()].map(patientOf)]);
    return { filesDone: present.size, filesFailed: failedLines.length, patientsFailed: failedPatients.size, patientsPending: PATIENTS - reached.size };
  }

  test("the tree on a full tmpfs, the ledger elsewhere: every file that did not fit is failed, nothing pending, the run ended", async () => {
    const { present, code, status: s, stderr } = await fullDisk(false);
    const e = expected(present, stderr);
    assert.ok(e.filesFailed > 0 && e.filesDone > 0, `${e.filesDone} files fit, ${e.filesFailed} did not`);
    assert.equal(e.filesDone + e.filesFailed, ref.size);
    assert.equal(code, 3);
    assert.deepEqual([s.kinds.file.done, s.kinds.file.failed, s.kinds.file.pending], [e.filesDone, e.filesFailed, 0]);
    assert.deepEqual([s.kinds.patient.failed, s.kinds.patient.done, s.kinds.patient.pending], [e.patientsFailed, PATIENTS - e.patientsFailed, 0]);
    assert.deepEqual(s.jobs[0].items, { total: PATIENTS, pending: 0, running: 0, done: PATIENTS - e.patientsFailed, failed: e.patientsFailed });
    assert.deepEqual(s.runs.map((r: { state: string; outcome: string }) => `${r.state}/${r.outcome}`), ["finished/partial"]);
    assert.deepEqual(s.unwritten, []);
  });

  test("the ledger on the full tmpfs too: it stops at the first patient it cannot claim; what it could not record is journaled elsewhere and counted", async () => {
    const { present, code, status: s, stderr } = await fullDisk(true);
    const e = expected(present, stderr);
    assert.ok(e.filesFailed > 0, `${e.filesFailed} files did not fit`);
    assert.equal(code, 1);
    assert.match(stderr, /export-plan: Cannot claim work in the ledger sqlite:.*: database or disk is full/);
    assert.match(stderr, /could not be written to the ledger .*kept in/);
    assert.ok(s.unwritten.length === 1 && s.unwritten[0].entries > 0, JSON.stringify(s.unwritten));
    assert.deepEqual([s.kinds.file.done, s.kinds.file.failed, s.kinds.file.pending], [e.filesDone, e.filesFailed, 0]);
    assert.deepEqual(
      [s.kinds.patient.failed, s.kinds.patient.pending, s.kinds.patient.done],
      [e.patientsFailed, e.patientsPending, PATIENTS - e.patientsFailed - e.patientsPending],
    );
    assert.deepEqual(s.jobs[0].items, {
      total: PATIENTS, pending: e.patientsPending, running: 0, done: PATIENTS - e.patientsFailed - e.patientsPending, failed: e.patientsFailed,
    });
    assert.deepEqual(s.runs.map((r: { state: string; outcome: string }) => `${r.state}/${r.outcome}`), ["finished/failed"]);
  });
});

describe("what changed since the export", () => {
  let tree: string;
  before(async () => {
    tree = join(dir, "changes");
    const r = await sh(`"\${RT[@]}" export-plan --out '${tree}' < '${listing}'`);
    assert.equal(r.status, 0, r.stderr);
  });

  test("a source changed since (same size, or 4 bytes more) is never done-before: the tree's older copy is a conflict; a touched source is identical", async () => {
    // Three logs the export copied (their plans are approved), by the ledger's record of their sources.
    const db = openSqlite<LedgerSchema>(join(tree, ".rtexport", "ledger.sqlite"), { readOnly: true });
    const logs = (await db.selectFrom("rtx_ledger_items").select("source").where("kind", "=", "file").where("source", "like", "%treatment.log")
      .orderBy("source").limit(3).execute()).map((r) => r.source!);
    await db.destroy();
    assert.equal(logs.length, 3);
    const [sameSize, longer, touched] = logs;
    const original = [readFileSync(sameSize), readFileSync(longer)];
    const bytes = Buffer.from(original[0]);
    bytes[0] ^= 0x20;
    writeFileSync(sameSize, bytes);
    appendFileSync(longer, "more");
    const later = new Date(Date.now() + 5000);
    utimesSync(touched, later, later);
    utimesSync(sameSize, later, later);
    let r: Run;
    try {
      r = await sh(`"\${RT[@]}" export-plan --out '${tree}' < '${listing}'`);
    } finally {
      writeFileSync(sameSize, original[0]);
      writeFileSync(longer, original[1]);
    }
    assert.equal(r.status, 3, r.stderr);
    const changed = r.stderr.split("\n").filter((l) => /the source changed since it was exported/.test(l));
    assert.equal(changed.length, 2, r.stderr);
    const fs = records(r.stdout).filter((x) => x.type === "file");
    assert.ok(fs.every((f) => f.copy !== "done-before" || f.sha256 === undefined), "no record carries a hash it did not compute");
    assert.ok(fs.some((f) => f.copy === "identical"), "the touched source, compared byte for byte");
    assertSameTree(treeHashes(tree), ref); // nothing overwritten
    const s = await status(`'${tree}'`);
    assert.equal(s.kinds.file.failed, 2);
  });

  test("a byte flipped in the tree: done-before without --verify (the record says ledgerSha256), reported with --verify and by status --verify", async () => {
    const victim = [...ref.keys()].find((k) => k.endsWith(".dcm"))!;
    const path = join(tree, victim);
    const bytes = readFileSync(path);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(path, bytes);
    const plain = await sh(`"\${RT[@]}" export-plan --out '${tree}' < '${listing}'`);
    const rec = records(plain.stdout).find((x) => x.type === "file" && x.path === path)!;
    assert.equal(rec.copy, "done-before");
    assert.equal(rec.sha256, undefined);
    assert.equal(rec.ledgerSha256, ref.get(victim));
    const verified = await sh(`"\${RT[@]}" export-plan --out '${tree}' --verify < '${listing}'`);
    assert.equal(verified.status, 3);
    assert.match(verified.stderr, new RegExp(`changed in the tree since it was exported \\(sha256 ${createHash("sha256").update(bytes).digest("hex")}, the ledger recorded ${ref.get(victim)}\\); not overwritten`));
    assert.ok(records(verified.stdout).filter((x) => x.type === "file" && x.copy === "done-before").every((x) => /^[0-9a-f]{64}$/.test(x.sha256)));
    const removed = [...ref.keys()].find((k) => k.endsWith(".log"))!;
    rmSync(join(tree, removed));
    const st = await sh(`"\${RT[@]}" status '${tree}' --verify --json`);
    assert.equal(st.status, 3);
    const v = records(st.stdout)[0].verify;
    assert.deepEqual([v.changed, v.missing, v.ok + v.changed + v.missing], [0, 1, v.checked]);
    // The flipped file's row is failed now (the ledger keeps what the rerun found); the removed one is missing.
    assert.deepEqual(v.problems.map((p: { state: string; key: string }) => `${p.state} ${p.key}`), [`missing ${removed}`]);
  });
});

describe("read-only sources and exports", () => {
  test("a read-only catalog (WAL mode, on a read-only mount) is listed and exported; its bytes do not change and nothing appears beside it", async () => {
    const cat = join(dir, "ro-catalog");
    mkdirSync(cat, { recursive: true });
    const file = join(cat, "catalog.db");
    writeFileSync(file, readFileSync(join(dir, "catalog.db")));
    const db = openSqlite(file); // switches it to WAL, as a vendor system may keep it
    await db.destroy();
    const before = createHash("sha256").update(readFileSync(file)).digest("hex");
    const names = readdirSync(cat).sort();
    chmodSync(file, 0o444);
    const out = join(dir, "ro-catalog-export");
    const r = await inMountNamespace(
      `mount --bind '${cat}' '${cat}'; mount -o remount,bind,ro '${cat}'; ` +
        `"\${RT[@]}" list-patients --from catalog --db 'sqlite:${file}' --vault '${join(dir, "vault")}' | "\${RT[@]}" export-plan --out '${out}'`,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(createHash("sha256").update(readFileSync(file)).digest("hex"), before);
    assert.deepEqual(readdirSync(cat).sort(), names);
    assertSameTree(treeHashes(out), ref);
    // Also without the read-only mount (a writable catalog): read without a single write.
    chmodSync(file, 0o644);
    const l = await sh(`"\${RT[@]}" list-patients --from catalog --db 'sqlite:${file}' --vault '${join(dir, "vault")}' > /dev/null`);
    assert.equal(l.status, 0, l.stderr);
    assert.equal(createHash("sha256").update(readFileSync(file)).digest("hex"), before);
    assert.deepEqual(readdirSync(cat).sort(), names);
  });

  test("status of a read-only export (the tree and its ledger on a read-only mount)", async () => {
    const r = await inMountNamespace(
      `mount --bind '${join(dir, "ref")}' '${join(dir, "ref")}'; mount -o remount,bind,ro '${join(dir, "ref")}'; ` +
        `touch '${join(dir, "ref", "probe")}' 2>/dev/null && echo WRITABLE; "\${RT[@]}" status '${join(dir, "ref")}' --verify --json`,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /WRITABLE/);
    const s = records(r.stdout)[0];
    assert.deepEqual([s.kinds.file.done, s.kinds.patient.done, s.verify.ok], [ref.size, PATIENTS, ref.size]);
  });
});

describe("a peer export", () => {
  let orthanc: OrthancPeer;
  /** Requests Orthanc logged (it runs with --verbose): associations by calling AE title, C-GETs, objects sent. */
  const seen = { associations: [] as string[], gets: 0, sent: 0 };
  before(async () => {
    orthanc = await startOrthanc({ verbose: true });
    let partial = "";
    const count = (d: Uint8Array) => {
      const lines = (partial + new TextDecoder().decode(d)).split("\n");
      partial = lines.pop()!;
      for (const l of lines) {
        const a = /Association Received from AET (\S+)/.exec(l);
        if (a) seen.associations.push(a[1]);
        if (/C-GET-SCU request received/.test(l)) seen.gets++;
        if (/Store SCU RQ: MsgID/.test(l)) seen.sent++;
      }
    };
    orthanc.process.stdout?.on("data", count);
    orthanc.process.stderr?.on("data", count);
    const load = await runDcmtk("storescu", ["-aec", orthanc.aeTitle, "+sd", "+r", "+sp", "*.dcm", "127.0.0.1", String(orthanc.port), join(dir, "clinic")], 120_000);
    assert.equal(load.code, 0, load.stderr);
  });
  after(() => orthanc?.stop());
  const peerFlags = () => `--host 127.0.0.1 --port ${orthanc.port} --called-aet ${orthanc.aeTitle} --calling-aet RTXEXPORT`;
  let listedAt: string | undefined;
  /** The peer's patients and plans (list-patients --from dicom), listed once. */
  async function peerListing(): Promise<string> {
    if (listedAt) return listedAt;
    const l = await sh(`"\${RT[@]}" list-patients --from dicom ${peerFlags()}`);
    assert.equal(l.status, 0, l.stderr);
    writeFileSync(listedAt = join(dir, "peer-listing.ndjson"), l.stdout);
    return listedAt;
  }
  /** The complete --out export of the peer, as a map of hashes (the first test makes it). */
  let peerExport: Map<string, string> | undefined;
  /** Requests Orthanc logged since `from`, up to a marker association (so that nothing is still in its log buffer). */
  async function seenSince(from: { associations: number; gets: number; sent: number }, marker: string) {
    const echo = await runDcmtk("echoscu", ["-aet", marker, "-aec", orthanc.aeTitle, "127.0.0.1", String(orthanc.port)]);
    assert.equal(echo.code, 0, echo.stderr);
    await until(`Orthanc's log of ${marker}`, () => seen.associations.includes(marker) ? true : undefined, 10_000);
    return { associations: seen.associations.slice(from.associations), gets: seen.gets - from.gets, sent: seen.sent - from.sent };
  }
  const counts = () => ({ associations: seen.associations.length, gets: seen.gets, sent: seen.sent });

  test("a killed run's staged objects are removed by the next run; a rerun of the complete export retrieves nothing", async () => {
    const peer = peerFlags();
    const listed = await peerListing();
    const tree = join(dir, "peer-tree");
    const staged = () => readdirSync(join(tree, ".rtexport"), { recursive: true }).map(String).filter((n) => /^staging-[^/]+\/./.test(n));
    // Killed while objects are staged: identifiable DICOM left in .rtexport/staging-<host>-<pid>-0.
    const w = startWorker(["export-plan", ...peer.split(" "), "--get", "--out", tree, "--parallel", "1"], undefined, listed);
    try {
      await until("objects in staging", () => existsSync(join(tree, ".rtexport")) && staged().length > 0 ? true : undefined);
    } finally {
      signal(w, "SIGKILL");
    }
    await w.done;
    assert.ok(staged().length > 0, "the killed run left staged objects");
    const finish = await sh(`"\${RT[@]}" export-plan ${peer} --get --out '${tree}' < '${listed}'`);
    assert.equal(finish.status, 0, finish.stderr);
    assert.deepEqual(leftovers(tree), [], "no staging and no temporary file after the successful final run");
    const complete = treeHashes(tree);
    // The rerun: not one association, let alone a C-GET, reaches the peer.
    const before = { associations: seen.associations.length, gets: seen.gets, sent: seen.sent };
    assert.ok(before.gets > 0 && before.sent > 0, "the counts see the first runs");
    const again = await sh(`"\${RT[@]}" export-plan ${peer} --get --out '${tree}' < '${listed}'`);
    assert.equal(again.status, 0, again.stderr);
    const echo = await runDcmtk("echoscu", ["-aet", "MARKER", "-aec", orthanc.aeTitle, "127.0.0.1", String(orthanc.port)]);
    assert.equal(echo.code, 0, echo.stderr);
    await until("Orthanc's log of the marker", () => seen.associations.includes("MARKER") ? true : undefined, 10_000);
    assert.deepEqual(
      { associations: seen.associations.slice(before.associations), gets: seen.gets - before.gets, sent: seen.sent - before.sent },
      { associations: ["MARKER"], gets: 0, sent: 0 },
    );
    const fs = records(again.stdout).filter((x) => x.type === "file");
    assert.ok(fs.length > 0 && fs.every((f) => f.copy === "done-before" && f.ledgerSha256 && f.sha256 === undefined));
    // The ledger and the tree agree after the kill and the finishing run: every file in the tree
    // has a row, with the hash of its bytes (hashed as they arrived, never read back).
    assert.deepEqual(new Map(fs.map((f) => [f.dest, f.ledgerSha256])), complete);
    assertSameTree(treeHashes(tree), complete);
    peerExport = complete;
  });

  test("export-plan --to T | copy-files --to T: killed (copy-files, then export-plan) and rerun, the tree is the --out export's, staging is empty, and a rerun retrieves nothing", async () => {
    const peer = peerFlags();
    // Two of the patients: small enough to stay quick, two patients' series and plans to kill between.
    const all = records(readFileSync(await peerListing(), "utf8"));
    const ids = [...new Set(all.map((r) => r.patientId))].slice(0, 2);
    const listed = join(dir, "pipe-listing.ndjson");
    writeFileSync(listed, all.filter((r) => ids.includes(r.patientId)).map((r) => JSON.stringify(r) + "\n").join(""));
    const tree = join(dir, "pipe-tree");
    const staging = join(dir, "pipe-staging");
    // The --out export of the same patients: from the first test's when it ran, else made here.
    let expected = peerExport && new Map([...peerExport].filter(([k]) => ids.some((id) => k.split("/")[0].endsWith(`_${id}`))));
    if (!expected) {
      const ref = await sh(`"\${RT[@]}" export-plan ${peer} --get --out '${join(dir, "pipe-ref")}' < '${listed}'`);
      assert.equal(ref.status, 0, ref.stderr);
      expected = treeHashes(join(dir, "pipe-ref"));
    }
    assert.ok(expected.size > 20, `${expected.size} files expected`);
    const epArgs = ["export-plan", ...peer.split(" "), "--get", "--to", tree, "--staging", staging];
    const cfArgs = ["copy-files", "--to", tree];
    const copied = () => existsSync(tree) ? readdirSync(tree, { recursive: true }).map(String).filter((n) => n.endsWith(".dcm") && !n.startsWith(".rtexport")).length : 0;
    const handed = () => existsSync(staging) ? readdirSync(staging).filter((n) => n.endsWith(".dcm")).length : 0;
    // 1. copy-files killed mid-run, once export-plan has recorded a plan or series as handed on whole
    // that copy-files has not copied: those records die in the pipe, and must be retrieved again.
    let run = startPipeline(epArgs, [...cfArgs, "--parallel", "1"], listed);
    try {
      await until("a hand-off not yet copied", async () => copied() > 5 && (await handedNotCopied(tree)) > 0 ? true : undefined);
    } finally {
      signal(run.cf, "SIGKILL");
    }
    await run.cf.done;
    assert.ok(copied() < expected.size, `copy-files was killed before the end (${copied()} copied)`);
    // export-plan stops on its own once its reader is gone.
    await run.ep.done;
    // 2. export-plan killed mid-run: what it staged stays behind, identifiable.
    const before2 = copied();
    run = startPipeline(epArgs, [...cfArgs, "--parallel", "1"], listed);
    try {
      await until("more copies and objects in staging", () => copied() > before2 + 3 && handed() > 0 ? true : undefined);
    } finally {
      signal(run.ep, "SIGKILL");
    }
    await Promise.all([run.ep.done, run.cf.done]);
    assert.ok(readdirSync(staging).length > 0, "the killed export-plan left staged objects");
    assert.ok(copied() < expected.size, `export-plan was killed before the end (${copied()} copied)`);
    // 3. The final run: the tree complete and equal to the --out export, nothing left in staging.
    const from3 = counts();
    const finish = await sh(`"\${RT[@]}" export-plan ${peer} --get --to '${tree}' --staging '${staging}' < '${listed}' | "\${RT[@]}" copy-files --to '${tree}'`);
    assert.equal(finish.status, 0, finish.stderr);
    assertSameTree(treeHashes(tree), expected);
    assert.deepEqual(existsSync(staging) ? readdirSync(staging, { recursive: true }) : [], [], "nothing left in staging after the successful final run");
    assert.deepEqual(leftovers(tree), []);
    const third = await seenSince(from3, "MARKER3");
    assert.ok(third.sent < expected.size, `the final run retrieved only what was missing (${third.sent} of ${expected.size} objects sent)`);
    // 4. A rerun of the complete pipeline: not one association reaches the peer; every file done-before.
    const from4 = counts();
    const again = await sh(`"\${RT[@]}" export-plan ${peer} --get --to '${tree}' --staging '${staging}' < '${listed}' | "\${RT[@]}" copy-files --to '${tree}'`);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(await seenSince(from4, "MARKER4"), { associations: ["MARKER4"], gets: 0, sent: 0 });
    const fs = records(again.stdout).filter((x) => x.type === "file");
    assert.equal(fs.length, expected.size);
    assert.ok(fs.every((f) => f.copy?.status === "done-before" && /^[0-9a-f]{64}$/.test(f.ledgerSha256) && f.sha256 === undefined), JSON.stringify(fs.find((f) => f.copy?.status !== "done-before")));
    assertSameTree(treeHashes(tree), expected);
    assert.deepEqual(existsSync(staging) ? readdirSync(staging, { recursive: true }) : [], []);
  });
});

/** Objects export-plan --to recorded as handed on (`handoff` rows) that copy-files has neither copied into the tree nor recorded as copied. */
async function handedNotCopied(tree: string): Promise<number> {
  const file = join(tree, ".rtexport", "ledger.sqlite");
  if (!existsSync(file)) return 0;
  const db = openSqlite<LedgerSchema>(file, { readOnly: true });
  try {
    const items = db.selectFrom("rtx_ledger_items");
    const handedOn = (await items.select("dest").where("kind", "=", "handoff").where("dest", "is not", null).execute()).map((r) => r.dest!);
    const done = new Set((await items.select("key").where("kind", "=", "file").where("status", "=", "done").execute()).map((r) => r.key));
    return handedOn.filter((d) => !done.has(d) && !existsSync(join(tree, d))).length;
  } catch {
    return 0; // not created yet
  } finally {
    await db.destroy();
  }
}

/**
 * `export-plan … < input | copy-files …` as two processes joined by a named pipe (a real pipe: the
 * writer sees EPIPE when the reader dies), either of which can be killed by its pid.
 */
let pipes = 0;
function startPipeline(epArgs: string[], cfArgs: string[], input: string): { ep: Worker; cf: Worker } {
  const fifo = join(dir, `pipe-${pipes++}`);
  const made = spawnSync("mkfifo", [fifo]);
  assert.equal(made.status, 0, String(made.stderr));
  const run = (redirect: string, args: string[]) =>
    watch(spawn("bash", ["-c", `exec "$@" ${redirect}`, "bash", ...cliCommand(), ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } }));
  // bash opens the pipe, then becomes rtexport (same pid)
  return { cf: run(`< ${quote(fifo)}`, cfArgs), ep: run(`< ${quote(input)} > ${quote(fifo)}`, epArgs) };
}
