// copy-files, push and anonymize over a listed input with one PostgreSQL ledger (issue 17): three
// processes started with the same command line split the patients; one is frozen while it holds a
// patient, then kill -9ed, and its patient is taken over once its lease runs out; it is restarted
// late and finds everything done. The result equals a single-process run (tree hashes; for push,
// the set of objects `serve` received), every file is done once (ledger rows, the receiver's
// count), `status` shows the dead worker. `--workers 3` in one process does the same.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { cliCommand, records, sh } from "./_run.ts";
import { treeHashes } from "./_tree.ts";
import { freezeHolder, type PostgresServer, startPostgres } from "./_postgres.ts";
import { type ServeChild, startServe } from "./_hostile.ts";

// deno-lint-ignore no-explicit-any -- records are JSON
type Json = any;

const KEY = "claims-test-key-0123456789abcdef";
const PATIENTS = 8;
/** One item per patient, and one for the clinic's manifest.json (no patient: grouped by its folder). */
const ITEMS = PATIENTS + 1;
let dir: string;
let clinic: string;
let pg: PostgresServer;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtx-claims-"));
  chmodSync(dir, 0o755);
  clinic = join(dir, "clinic");
  await generateClinic({ out: clinic, patients: PATIENTS, slices: 12, size: 32, seed: 23 });
  pg = await startPostgres();
});
after(() => {
  pg?.stop();
  if (!process.env.RTX_KEEP) rmSync(dir, { recursive: true, force: true });
});

interface Worker {
  child: ChildProcess;
  closed: boolean;
  out: string;
  err: string;
  done: Promise<number | null>;
}

function startWorker(args: string[]): Worker {
  const [cmd, ...rest] = [...cliCommand(), ...args];
  const child = spawn(cmd, rest, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1", TCP_NODELAY: "1" } });
  const w: Worker = { child, out: "", err: "", closed: false, done: new Promise((r) => child.on("close", (code) => ((w.closed = true), r(code)))) };
  child.stdout!.setEncoding("utf8").on("data", (d: string) => (w.out += d));
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (w.err += d));
  return w;
}

function signal(w: Worker, sig: NodeJS.Signals): void {
  try {
    process.kill(w.child.pid!, sig);
  } catch { /* ended */ }
}

async function until<T>(what: string, f: () => T | undefined, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function status(db: string): Promise<Json> {
  const r = await sh(`"\${RT[@]}" status --ledger '${pg.url(db)}' --json`);
  assert.equal(r.status, 0, r.stderr);
  return records(r.stdout)[0];
}

/** The input paths of the items a run held when its lease ran out (taken over by another worker). */
function reclaimedPaths(db: string, victimRun: string): Set<string> {
  const rows = pg.psql(`select payload from rtx_ledger_work where previous_owner = '${victimRun}'`, db).trim().split("\n").filter(Boolean);
  return new Set(rows.flatMap((p) => (JSON.parse(p) as { path: string }[]).map((r) => resolve(r.path))));
}

interface Split {
  workers: Worker[];
  victim: Worker;
  victimRun: string;
  /** Outputs of the workers that were not killed. */
  others: Worker[];
  /** Input paths of the items taken over from the killed worker (the restart's new pass forgets who held what). */
  reclaimed: Set<string>;
  restarted: Worker;
}

/**
 * Three workers with `args` (a PostgreSQL ledger in `db`, job `job`); the first seen holding an
 * item is frozen, its lease runs out, the others take its item over and finish; it is killed and
 * restarted late. Asserts the exit codes and what `status` says.
 */
async function splitRun(db: string, job: string, args: string[]): Promise<Split> {
  pg.psql(`create database ${db}`);
  const workers = [0, 1, 2].map(() => startWorker(args));
  const pids = workers.map((w) => w.child.pid);
  try {
    const frozen = await freezeHolder(pg, db, pids.map(Number), { job, attempts: 100 });
    const victim = workers[pids.indexOf(frozen.pid)];
    const { run: victimRun, holding } = frozen;
    await until("the three workers in one pass", () =>
      Number(pg.psql(`select count(*) from rtx_ledger_runs where pass = (select pass from rtx_ledger_runs where id = '${victimRun}')`, db).trim()) === 3 || undefined);
    const others = workers.filter((w) => w !== victim);
    const codes = await Promise.all(others.map((w) => w.done));
    for (const [i, c] of codes.entries()) assert.equal(c, 0, others[i].err);
    signal(victim, "SIGKILL");
    await victim.done;

    const s = await status(db);
    const runs = s.runs.filter((r: Json) => r.job === job);
    assert.deepEqual(runs.filter((r: Json) => r.state === "dead").map((r: Json) => r.id), [victimRun], "the killed worker is dead");
    assert.deepEqual(runs.filter((r: Json) => r.state === "finished").map((r: Json) => r.outcome), ["ok", "ok"]);
    const jobStatus = s.jobs.find((j: Json) => j.job === job);
    assert.ok(jobStatus, `status lists job "${job}"`);
    assert.equal(jobStatus.items.total, ITEMS, "one item per patient, one for the file of no patient");
    assert.deepEqual(jobStatus.items, { total: ITEMS, pending: 0, running: 0, done: ITEMS, failed: 0 });
    assert.equal(jobStatus.reclaimed, holding, "the dead worker's items were taken over");
    assert.deepEqual([s.kinds.group.done, s.kinds.group.pending, s.kinds.group.failed], [ITEMS, 0, 0]);
    const attempts = pg.psql(`select attempts from rtx_ledger_work where job = '${job}' order by 1`, db).trim().split("\n").map(Number);
    assert.deepEqual(attempts, [...Array(ITEMS - holding).fill(1), ...Array(holding).fill(2)], "each item claimed once, a taken-over one twice");

    const reclaimed = reclaimedPaths(db, victimRun);
    assert.ok(reclaimed.size > 0);
    const restarted = startWorker(args);
    assert.equal(await restarted.done, 0, restarted.err);
    const again = await status(db);
    assert.equal(again.runs.filter((r: Json) => r.job === job && r.state === "dead").length, 1);
    assert.deepEqual(again.jobs.find((j: Json) => j.job === job).items, { total: ITEMS, pending: 0, running: 0, done: ITEMS, failed: 0 });
    return { workers, victim, victimRun, others, reclaimed, restarted };
  } finally {
    for (const w of workers) if (!w.closed) signal(w, "SIGKILL");
  }
}

/** How many times each key was done across outputs, and the keys done more than once outside `allowed`. */
function doneTwice(keys: string[], allowed: (k: string) => boolean): string[] {
  const n = new Map<string, number>();
  for (const k of keys) n.set(k, (n.get(k) ?? 0) + 1);
  return [...n].filter(([k, c]) => c > 1 && !allowed(k)).map(([k]) => k);
}

const fileRecords = (w: { out?: string; stdout?: string }) => records(w.out ?? w.stdout ?? "").filter((r: Json) => r.type === "file");

describe("copy-files over a listed input", () => {
  let ref: Map<string, string>;
  before(async () => {
    const r = await sh(`"\${RT[@]}" copy-files --to '${join(dir, "copy-ref")}' '${clinic}'`);
    assert.equal(r.status, 0, r.stderr);
    ref = treeHashes(join(dir, "copy-ref"));
    assert.ok(ref.size > PATIENTS * 10, `reference tree of ${ref.size} files`);
  });

  test("three processes, one killed and restarted: the single-process tree, every file copied once", async () => {
    const tree = join(dir, "copy-split");
    const split = await splitRun("copy_split", `copy-files to ${tree}`, ["copy-files", "--to", tree, "--ledger", pg.url("copy_split"), "--lease", "2", "--parallel", "1", clinic]);
    assert.deepEqual(treeHashes(tree), ref);
    const reclaimed = split.reclaimed;
    const copied = split.workers.flatMap((w) => fileRecords(w).filter((f: Json) => f.copy?.status === "copied").map((f: Json) => f.copy.from));
    assert.deepEqual(doneTwice(copied, (k) => reclaimed.has(k)), [], "no file copied twice (but for the dead worker's last, unrecorded ones)");
    // The workers left alive copied each file they reported once, and every file is accounted for.
    const seen = new Set(split.workers.flatMap((w) => fileRecords(w).filter((f: Json) => ["copied", "identical"].includes(f.copy?.status)).map((f: Json) => f.copy.from)));
    assert.equal(seen.size, ref.size, "every file copied by someone");
    assert.equal(pg.psql("select count(*) from rtx_ledger_items where kind = 'file' and status = 'done'", "copy_split").trim(), String(ref.size));
    const redo = fileRecords(split.restarted);
    assert.equal(redo.length, ref.size);
    assert.deepEqual(redo.filter((f: Json) => f.copy?.status !== "done-before"), [], "the late restart finds everything done");
  });

  test("--workers 3 in one process: the same tree, every file copied exactly once", async () => {
    pg.psql("create database copy_workers");
    const tree = join(dir, "copy-workers");
    const r = await sh(`"\${RT[@]}" copy-files --to '${tree}' --ledger '${pg.url("copy_workers")}' --workers 3 '${clinic}'`);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(treeHashes(tree), ref);
    const copied = fileRecords(r).map((f: Json) => f.copy?.status);
    assert.equal(copied.length, ref.size);
    assert.ok(copied.every((s: string) => s === "copied"));
    const s = await status("copy_workers");
    const run = s.runs.find((x: Json) => x.job === `copy-files to ${tree}`);
    assert.deepEqual([run.workers, run.items, run.state], [3, ITEMS, "finished"]);
  });
});

describe("runs that differ, on one ledger", () => {
  /** Every file under `paths` (files or folders), as absolute paths. */
  const filesUnder = (paths: string[]) =>
    paths.flatMap((p) => statSync(p).isDirectory() ? readdirSync(p, { recursive: true }).map((n) => join(p, String(n))).filter((f) => statSync(f).isFile()) : [p]);
  const hashOf = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");

  test("other inputs and other destinations: each run's tree holds its own patients only (never the other run's)", async () => {
    pg.psql("create database two_dest");
    const patients = readdirSync(clinic).filter((n) => n.startsWith("RTX")).sort();
    const inputs = [patients.slice(0, PATIENTS / 2), patients.slice(PATIENTS / 2)].map((ps) => ps.map((p) => join(clinic, p)));
    const trees = [join(dir, "two-dest-a"), join(dir, "two-dest-b")];
    const runs = inputs.map((input, i) => startWorker(["copy-files", "--to", trees[i], "--ledger", pg.url("two_dest"), "--parallel", "1", ...input]));
    const codes = await Promise.all(runs.map((w) => w.done));
    for (const [i, c] of codes.entries()) assert.equal(c, 0, runs[i].err);
    for (const [i, input] of inputs.entries()) {
      const expected = new Set(filesUnder(input).map(hashOf));
      const got = [...treeHashes(trees[i]).values()];
      assert.equal(got.length, expected.size, `tree ${i} holds as many files as its input`);
      assert.deepEqual(got.filter((h) => !expected.has(h)), [], `tree ${i} holds only its own input's files`);
    }
  });

  test("a run whose input has more files of a patient than the item the pass holds: those files are copied too", async () => {
    pg.psql("create database grown");
    const tree = join(dir, "grown");
    const all = filesUnder([clinic]).filter((f) => !f.endsWith("manifest.json")).sort();
    const late = all.filter((f) => f.includes(`${join("RTX0001", "CT")}`)).slice(0, 3);
    assert.equal(late.length, 3);
    const common = ["copy-files", "--to", tree, "--ledger", pg.url("grown"), "--lease", "2", "--parallel", "1"];
    // The first run lists every file but three of RTX0001's; it is stopped while it holds an item.
    const first = startWorker([...common, ...all.filter((f) => !late.includes(f))]);
    await until("the first run holding an item", () => {
      try {
        return Number(pg.psql("select count(*) from rtx_ledger_work where status = 'claimed'", "grown").trim()) > 0 || undefined;
      } catch {
        return undefined; // the schema is still being made
      }
    });
    signal(first, "SIGSTOP");
    try {
      // The second lists them all: it joins the same job and pass (the first's lease still runs).
      const second = startWorker([...common, ...all]);
      assert.equal(await second.done, 0, second.err);
    } finally {
      signal(first, "SIGCONT");
    }
    await first.done;
    const inTree = new Set(treeHashes(tree).values());
    assert.deepEqual(late.filter((f) => !inTree.has(hashOf(f))), [], "the files only the second run listed are in the tree");
    assert.equal(inTree.size, new Set(all.map(hashOf)).size);
  });
});

describe("push over a listed input, to serve", () => {
  let serve: ServeChild;
  let dicomFiles: number;
  before(async () => {
    serve = await startServe(["--dir", join(dir, "received"), "--aet", "RTSERVE", "--allow-store-any", "--overwrite"]);
    // Every file of the generated clinic but its manifest is DICOM.
    dicomFiles = readdirSync(clinic, { recursive: true }).map(String).filter((n) => n.endsWith(".dcm")).length;
    assert.ok(dicomFiles > PATIENTS * 10);
  });
  after(() => serve?.stop());
  /** SOP Instance UIDs serve stored since `from` records of its output. */
  const stored = (from: number) => records(serve.stdout()).slice(from).map((r: Json) => r.sopInstanceUid as string);
  const peer = () => ["--host", serve.host, "--port", String(serve.port), "--aec", "RTSERVE"];

  test("three processes, one killed and restarted: every object at the peer, each sent once", async () => {
    const from = records(serve.stdout()).length;
    const split = await splitRun("push_split", `push to RTSERVE@${serve.host}:${serve.port}`, ["push", ...peer(), "--ledger", pg.url("push_split"), "--lease", "2", "--max-rate", "200/s", clinic]);
    await new Promise((r) => setTimeout(r, 300)); // serve's last records
    const got = stored(from);
    assert.equal(new Set(got).size, dicomFiles, "every object reached the peer");
    // The dead worker's objects that were acknowledged but not yet in the ledger are sent again by the one that took them over.
    const reclaimed = split.reclaimed;
    const uidPath = new Map<string, string>();
    for (const w of split.workers) for (const f of fileRecords(w)) uidPath.set(f.sopInstanceUid, resolve(f.path));
    const twice = doneTwice(got, (uid) => reclaimed.has(uidPath.get(uid) ?? ""));
    const who = (uid: string) => [...split.workers, split.restarted].map((w, i) => `${i}${w === split.victim ? "(killed)" : ""}: ${fileRecords(w).filter((f: Json) => f.sopInstanceUid === uid).map((f: Json) => f.push?.status).join(",")}`);
    assert.deepEqual(twice, [], `no object sent twice (but for the dead worker's last, unrecorded ones): ${twice.map((u) => `${uidPath.get(u)} ${who(u).join("; ")}`).join(" | ")}`);
    assert.equal(pg.psql("select count(*) from rtx_ledger_items where kind = 'push' and status = 'done'", "push_split").trim(), String(dicomFiles));
    const redo = fileRecords(split.restarted).filter((f: Json) => f.push && f.sopInstanceUid);
    assert.equal(redo.length, dicomFiles);
    assert.deepEqual(redo.filter((f: Json) => f.push.status !== "skipped"), [], "the late restart sends nothing");
  });

  test("--workers 3 in one process: every object sent exactly once", async () => {
    pg.psql("create database push_workers");
    const from = records(serve.stdout()).length;
    const r = await sh(`"\${RT[@]}" push ${peer().join(" ")} --ledger '${pg.url("push_workers")}' --workers 3 '${clinic}'`);
    assert.equal(r.status, 0, r.stderr);
    await new Promise((r) => setTimeout(r, 300));
    const got = stored(from);
    assert.equal(got.length, dicomFiles, "each object sent once");
    assert.equal(new Set(got).size, dicomFiles);
    const run = (await status("push_workers")).runs.find((x: Json) => x.job === `push to RTSERVE@${serve.host}:${serve.port}`);
    assert.deepEqual([run.workers, run.items, run.state], [3, ITEMS, "finished"]);
  });
});

describe("anonymize over a listed input", () => {
  let ref: Map<string, string>;
  before(async () => {
    const r = await sh(`"\${RT[@]}" anonymize --key '${KEY}' --out '${join(dir, "anon-ref")}' '${clinic}'`);
    assert.equal(r.status, 0, r.stderr);
    ref = treeHashes(join(dir, "anon-ref"));
    assert.ok(ref.size > PATIENTS * 10, `reference tree of ${ref.size} files`);
  });

  test("three processes, one killed and restarted: the single-process tree, every file written once; no patient ID in the work items", async () => {
    const out = join(dir, "anon-split");
    const split = await splitRun("anon_split", `anonymize to ${out}`, ["anonymize", "--key", KEY, "--out", out, "--ledger", pg.url("anon_split"), "--lease", "2", clinic]);
    assert.deepEqual(treeHashes(out), ref);
    const reclaimed = split.reclaimed;
    const written = split.workers.flatMap((w) => fileRecords(w).map((f: Json) => resolve(f.anonymized?.from ?? "")));
    assert.deepEqual(doneTwice(written, (k) => reclaimed.has(k)), [], "no file anonymized twice (but for the dead worker's last, unrecorded ones)");
    assert.equal(pg.psql("select count(*) from rtx_ledger_items where kind = 'anonymize' and status = 'done'", "anon_split").trim(), String(ref.size));
    assert.equal(pg.psql("select count(*) from rtx_ledger_work where patient_id is not null or key like '%|patient|%'", "anon_split").trim(), "0");
    const redo = split.restarted.err;
    assert.match(redo, /0 files done/);
  });

  test("--workers 3 in one process: the same tree, every file written once", async () => {
    pg.psql("create database anon_workers");
    const out = join(dir, "anon-workers");
    const r = await sh(`"\${RT[@]}" anonymize --key '${KEY}' --out '${out}' --ledger '${pg.url("anon_workers")}' --workers 3 '${clinic}'`);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(treeHashes(out), ref);
    const from = fileRecords(r).map((f: Json) => f.anonymized?.from);
    assert.equal(from.length, ref.size);
    assert.equal(new Set(from).size, ref.size);
    const run = (await status("anon_workers")).runs.find((x: Json) => x.job === `anonymize to ${out}`);
    assert.deepEqual([run.workers, run.items, run.state], [3, ITEMS, "finished"]);
  });
});
