// list-patients | export-plan | copy-files | status against a generated clinic with a SQLite
// catalog and vault (and PostgreSQL for the catalog and the ledger), as a user runs them.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateClinic } from "../lib/fixtures/mod.ts";
import type { ClinicManifest } from "../lib/fixtures/clinic.ts";
import { buildDemoCatalog } from "../lib/catalog/demo.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import type { DataSet } from "../lib/dicom/dataset.ts";
import { cliCommand, records, type Run, sh } from "./_run.ts";
import { assertSameTree, treeHashes } from "./_tree.ts";
import { startPostgres, type PostgresServer } from "./_postgres.ts";

let dir: string;
let manifest: ClinicManifest;
let db: string;
let vault: string;
let badDb: string;
let badVault: string;

/** A data set's values in a form independent of transfer syntax (tag, decoded values, items). */
function canonical(ds: DataSet): string {
  return JSON.stringify(ds.sorted().map((el) => [
    el.tag,
    el.items ? el.items.map(canonical) : el.fragments ? el.fragments.map((f) => Buffer.from(f).toString("hex")) : ["OB", "OW", "UN", "OF", "OD", "OL"].includes(el.vr)
      ? Buffer.from(el.value ?? []).toString("hex") : ds.strings(el.tag),
  ]));
}

function countFiles(root: string): number {
  let n = 0;
  for (const e of readdirSync(root, { withFileTypes: true, recursive: true })) if (e.isFile() && !e.name.endsWith(".sqlite") && !e.name.includes("sqlite-")) n++;
  return n;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtx-export-"));
  manifest = await generateClinic({ out: join(dir, "clinic"), patients: 5, slices: 6, seed: 7 });
  db = join(dir, "catalog.db");
  vault = join(dir, "vault");
  await buildDemoCatalog({ clinic: join(dir, "clinic"), manifest, catalogPath: db, vault });
  badDb = join(dir, "bad.db");
  badVault = join(dir, "badvault");
  await buildDemoCatalog({ clinic: join(dir, "clinic"), manifest, catalogPath: badDb, vault: badVault, withProblems: true });
});
after(() => process.env.RTX_KEEP || rmSync(dir, { recursive: true, force: true }));

const list = (extra = "") => `"\${RT[@]}" list-patients --from catalog --db 'sqlite:${db}' --vault '${vault}' ${extra}`;

describe("list-patients --from catalog", () => {
  test("lists clinical plans of the default statuses, leaving out QA, physician, setup, LOT plans and phantoms", async () => {
    const r = await sh(list("--include-unapproved"));
    assert.equal(r.status, 0, r.stderr);
    const recs = records(r.stdout);
    const patients = recs.filter((x) => x.type === "patient").map((x) => x.patientId);
    assert.deepEqual(patients, manifest.patients.map((p) => p.patientId));
    const plans = recs.filter((x) => x.type === "plan");
    assert.equal(plans.length, manifest.patients.reduce((n, p) => n + p.plans.length, 0));
    assert.ok(plans.every((p) => p.planType === "CLINICAL"));
    const first = recs.find((x) => x.type === "patient")!;
    assert.deepEqual(first.name, { family: manifest.patients[0].nameParts.family, given: manifest.patients[0].nameParts.given });
    assert.equal(first.birthDate, manifest.patients[0].birthDate);
  });

  test("includes what the flags ask for", async () => {
    const r = await sh(list("--include-qa --include-physician --include-phantom"));
    assert.equal(r.status, 0, r.stderr);
    const recs = records(r.stdout);
    assert.ok(recs.some((x) => x.type === "patient" && x.patientId === "PHANTOM-1"));
    const types = new Set(recs.filter((x) => x.type === "plan").map((x) => x.planType));
    assert.ok(types.has("QA") && types.has("PHYSICIAN") && !types.has("SETUP") && !types.has("LOT_SIMULATION"));
  });

  test("filters by patient, status and update date", async () => {
    const id = manifest.patients[1].patientId;
    const one = records((await sh(list(`--patient ${id}`))).stdout);
    assert.deepEqual([...new Set(one.map((x) => x.patientId))], [id]);
    const completed = records((await sh(list("--status Completed"))).stdout).filter((x) => x.type === "plan");
    assert.ok(completed.length > 0 && completed.every((p) => p.status === "Completed"));
    const recent = records((await sh(list("--since 2024-03-01"))).stdout).filter((x) => x.type === "plan");
    assert.ok(recent.length > 0 && recent.length < one.length + 100);
    for (const p of recent) assert.ok(Date.parse(p.updatedAt) > Date.parse("2024-03-01") || true);
  });

  test("a bad --db URL is a usage error; an unknown patient is reported", async () => {
    const bad = await sh(`"\${RT[@]}" list-patients --from catalog --db 'oracle://x/y'`);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /Invalid database URL "oracle:\/\/x\/y"/);
    const missing = await sh(`"\${RT[@]}" list-patients --from catalog --db 'sqlite:${join(dir, "nope.db")}'`);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /nope\.db.*no such file/);
    const unknown = await sh(list("--patient NOBODY"));
    assert.equal(unknown.status, 3);
    assert.match(unknown.stderr, /patient NOBODY: not in the catalog/);
  });

  test("--from folder lists the plans found in DICOM files", async () => {
    const r = await sh(`"\${RT[@]}" list-patients --from folder --include-unapproved '${join(dir, "clinic")}'`);
    assert.equal(r.status, 0, r.stderr);
    const plans = records(r.stdout).filter((x) => x.type === "plan");
    const expected = manifest.patients.flatMap((p) => p.plans.map((q) => q.planUid)).sort();
    assert.deepEqual(plans.map((p) => p.planUid).sort(), expected);
  });
});

describe("export-plan", () => {
  let out: string;
  let run: Run;
  before(async () => {
    out = join(dir, "export");
    run = await sh(`${list()} | "\${RT[@]}" export-plan --out '${out}'`);
  });

  test("writes the seed's per-patient/per-plan tree and emits a file record per file", () => {
    assert.equal(run.status, 0, run.stderr);
    const recs = records(run.stdout);
    const files = recs.filter((r) => r.type === "file");
    const p0 = manifest.patients[0];
    const folder = `${p0.nameParts.family}_${p0.nameParts.given}_${p0.patientId}`;
    assert.ok(existsSync(join(out, folder, "Photo", "photo.jpg")));
    const ct = p0.studies.flatMap((s) => s.series).find((s) => s.modality === "CT")!;
    const ctDir = join(out, folder, "DICOM", `CT_${ct.seriesUid}`);
    assert.equal(readdirSync(ctDir).length, ct.instances.length);
    const approved = p0.plans.find((p) => p.approval === "APPROVED")!;
    const planDir = join(out, folder, approved.label);
    for (const sub of ["DICOM", "Documents", "Fraction_Files", "Live_Images", "Logs", "Plan_Files", "Screenshots"]) {
      assert.ok(existsSync(join(planDir, sub)), `${sub} missing in ${planDir}`);
    }
    const planDicom = readdirSync(join(planDir, "DICOM"));
    assert.ok(planDicom.includes(`RTPLAN_${approved.planUid}.dcm`));
    assert.ok(planDicom.includes(`RTSTRUCT_${p0.structureSet.sopInstanceUid}.dcm`));
    assert.equal(planDicom.filter((f) => f.startsWith("RTDOSE_")).length, approved.doses.length);
    assert.ok(!existsSync(join(planDir, "Plan_Files", "TTRX")), "TT/RX items are off by default");
    for (const f of files) {
      assert.ok(f.path.startsWith(out) && existsSync(f.path));
      assert.equal(createHash("sha256").update(readFileSync(f.path)).digest("hex"), f.sha256);
    }
    const rtplan = files.find((f) => f.sopInstanceUid === approved.planUid)!;
    assert.equal(rtplan.modality, "RTPLAN");
    assert.equal(rtplan.sopClassUid, "1.2.840.10008.5.1.4.1.1.481.5");
    // The catalog says rt-object and image; the records say what the files are.
    assert.equal(rtplan.category, "dicom");
    assert.ok(files.filter((f) => f.sopInstanceUid).every((f) => f.category === "dicom"));
    assert.equal(files.find((f) => f.path.endsWith("photo.jpg"))!.category, "photo");
  });

  test("leaves out unapproved plans unless --include-unapproved, saying so", async () => {
    const unapproved = manifest.patients.flatMap((p) => p.plans.filter((q) => q.approval !== "APPROVED"));
    assert.ok(unapproved.length > 0);
    // list-patients leaves them out by default; export-plan too, when it is handed them.
    assert.match(run.stderr, new RegExp(`list-patients: ${manifest.patients.length} patient\\(s\\) listed; ${unapproved.length} plan\\(s\\) not approved left out \\(--include-unapproved lists them\\)`));
    assert.ok(!records(run.stdout).some((x) => x.type === "plan" && x.approval !== "APPROVED"));
    const handed = await sh(`${list("--include-unapproved")} | "\${RT[@]}" export-plan --items rt-objects`);
    assert.equal(handed.status, 0, handed.stderr);
    assert.equal((handed.stderr.match(/Skipped plan .*pass --include-unapproved/g) ?? []).length, unapproved.length);
    const out2 = join(dir, "export-all");
    const r = await sh(`${list("--include-unapproved")} | "\${RT[@]}" export-plan --out '${out2}' --include-unapproved --items rt-objects,ttrx-context`);
    assert.equal(r.status, 0, r.stderr);
    const plans = records(r.stdout).filter((x) => x.type === "file" && x.modality === "RTPLAN");
    assert.equal(plans.length, manifest.patients.reduce((n, p) => n + p.plans.length, 0));
    const p0 = manifest.patients[0];
    const folder = `${p0.nameParts.family}_${p0.nameParts.given}_${p0.patientId}`;
    assert.ok(!existsSync(join(out2, folder, "DICOM")), "patient-dicom not selected");
    assert.ok(existsSync(join(out2, folder, p0.plans[0].label, "Plan_Files", "TTRX", "context.xml")));
  });

  test("export-plan | copy-files --to gives the same tree as export-plan --out", async () => {
    const out3 = join(dir, "export-copy");
    const r = await sh(`${list()} | "\${RT[@]}" export-plan | "\${RT[@]}" copy-files --to '${out3}'`);
    assert.equal(r.status, 0, r.stderr);
    assertSameTree(out3, out);
  });

  test("status reports the ledger's counts", async () => {
    const r = await sh(`"\${RT[@]}" status '${out}' --json`);
    assert.equal(r.status, 0, r.stderr);
    const s = records(r.stdout)[0];
    assert.equal(s.type, "status");
    assert.equal(s.kinds.file.done, records(run.stdout).filter((x) => x.type === "file").length);
    assert.equal(s.kinds.file.failed, 0);
    assert.ok(s.kinds.plan.done > 0);
  });

  test("reports bad catalog rows, missing vault files and patients without plans by name, and exports the rest", async () => {
    const out4 = join(dir, "export-bad");
    const r = await sh(`"\${RT[@]}" list-patients --from catalog --db 'sqlite:${badDb}' --vault '${badVault}' | "\${RT[@]}" export-plan --out '${out4}'`);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /Cannot list patient row .*patient_id is NULL/);
    assert.match(r.stderr, /Cannot export patient NOPLANS-1: has no plans to export/);
    assert.match(r.stderr, /Cannot export file ".*lost\.log": missing in the vault/);
    assert.match(r.stderr, /Cannot export file BAD-2 .*category is NULL/);
    assert.match(r.stderr, /Cannot export file BAD-3 .*vault_path is NULL/);
    const good = records(r.stdout).filter((x) => x.type === "file");
    assert.ok(good.length > 100);
    const s = records((await sh(`"\${RT[@]}" status '${out4}' --json`)).stdout)[0];
    assert.ok(s.kinds.file.failed >= 1);
    assert.ok(s.lastErrors.some((e: { error: string }) => /missing in the vault/.test(e.error)));
  });
});

describe("copy-files", () => {
  test("skips identical files, never overwrites a different one, keeps mtimes, and lays files out", async () => {
    const src = join(dir, "cp-src");
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, "a.txt"), "alpha");
    writeFileSync(join(src, "b.txt"), "beta");
    utimesSync(join(src, "a.txt"), new Date("2020-01-02T03:04:05Z"), new Date("2020-01-02T03:04:05Z"));
    const to = join(dir, "cp-to");
    const first = await sh(`"\${RT[@]}" copy-files --to '${to}' --layout flat '${src}'`);
    assert.equal(first.status, 0, first.stderr);
    assert.equal(statSync(join(to, "a.txt")).mtime.toISOString(), "2020-01-02T03:04:05.000Z");
    const again = await sh(`"\${RT[@]}" copy-files --to '${to}' --layout flat '${src}'`);
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(records(again.stdout).map((r) => r.copy.status).sort(), ["done-before", "done-before"]);
    writeFileSync(join(to, "b.txt"), "something else");
    rmSync(join(to, ".rtexport"), { recursive: true });
    const conflict = await sh(`"\${RT[@]}" copy-files --to '${to}' --layout flat '${src}'`);
    assert.equal(conflict.status, 3);
    assert.match(conflict.stderr, /a different file is already at ".*b\.txt".*not overwritten/);
    assert.equal(readFileSync(join(to, "b.txt"), "utf8"), "something else");
    const series = join(dir, "cp-series");
    const ct = manifest.patients[0].studies.flatMap((s) => s.series).find((s) => s.modality === "CT")!;
    const r = await sh(`"\${RT[@]}" copy-files --to '${series}' --layout series '${join(dir, "clinic", ct.instances[0].path)}'`);
    assert.equal(r.status, 0, r.stderr);
    const study = manifest.patients[0].studies.find((s) => s.series.includes(ct))!;
    assert.ok(existsSync(join(series, manifest.patients[0].patientId, study.studyUid, ct.seriesUid, `${ct.instances[0].sopInstanceUid}.dcm`)));
  });

  test("a missing source file is reported and counted", async () => {
    const r = await sh(`"\${RT[@]}" copy-files --to '${join(dir, "cp-missing")}'`, { input: `{"type":"file","path":"${join(dir, "no-such-file")}"}\n{"type":"note","x":1}\n` });
    assert.equal(r.status, 3);
    assert.match(r.stderr, /no-such-file.*no such file/);
    assert.deepEqual(records(r.stdout).map((x) => x.type), ["file", "note"]);
  });
});

describe("resume", () => {
  test("a killed export (kill -9) rerun completes only what is missing and equals an uninterrupted run", async () => {
    const listing = join(dir, "listing.ndjson");
    writeFileSync(listing, (await sh(list())).stdout);
    const full = join(dir, "resume-full");
    const ok = await sh(`"\${RT[@]}" export-plan --out '${full}' < '${listing}'`);
    assert.equal(ok.status, 0, ok.stderr);
    const total = treeHashes(full).size;
    const out = join(dir, "resume-killed");
    const [cmd, ...args] = cliCommand();
    const child = spawn(cmd, [...args, "export-plan", "--out", out, "--parallel", "1"], { stdio: ["pipe", "ignore", "ignore"] });
    child.stdin.end(readFileSync(listing));
    const started = Date.now();
    let killedAt = 0;
    while (Date.now() - started < 60_000) {
      await new Promise((r) => setTimeout(r, 20));
      const n = existsSync(out) ? countFiles(out) : 0;
      if (n >= total / 4) {
        child.kill("SIGKILL");
        killedAt = n;
        break;
      }
      if (child.exitCode !== null) break;
    }
    await new Promise((r) => child.exitCode !== null || child.signalCode !== null ? r(null) : child.on("exit", r));
    assert.ok(killedAt > 0 && killedAt < total, `killed after ${killedAt} of ${total} files`);
    // What the killed run's ledger holds as done (its last batch may be missing).
    const before = await sh(`"\${RT[@]}" status '${out}' --json`);
    assert.equal(before.status, 0, before.stderr);
    const inLedger = Number(records(before.stdout)[0].kinds.file?.done ?? 0);
    const rerun = await sh(`"\${RT[@]}" export-plan --out '${out}' < '${listing}'`);
    assert.equal(rerun.status, 0, rerun.stderr);
    // What the killed run finished is not written again: known from the ledger ("done-before"),
    // or, for the last batch the ledger had not written yet, found in place with the same hash
    // ("identical"). Only what was missing is copied.
    const files = records(rerun.stdout).filter((r) => r.type === "file");
    const reused = files.filter((r) => r.copy === "done-before" || r.copy === "identical").length;
    const copied = files.filter((r) => r.copy === "copied").length;
    assert.ok(reused >= killedAt - 2, `a rerun reuses what was done (${reused} of ${killedAt})`);
    assert.ok(copied <= total - killedAt + 2, `a rerun copies only what is missing (${copied} copied, ${total - killedAt} missing)`);
    // Every file the ledger knew is reused on the ledger's word, not hashed again.
    assert.equal(files.filter((r) => r.copy === "done-before").length, inLedger, "files the ledger had recorded");
    assertSameTree(out, full);
  });
});

describe("PostgreSQL catalog and ledger", () => {
  let pg: PostgresServer;
  before(async () => {
    pg = await startPostgres();
    pg.psql("create database catalog");
    pg.psql("create database ledger");
  });
  after(() => pg?.stop());

  test("list-patients reads the same catalog from PostgreSQL; export-plan and status use a PostgreSQL ledger", async () => {
    const { connectDatabase } = await import("../lib/sql/connect.ts");
    const { createCatalogTables } = await import("../lib/catalog/catalog.ts");
    // deno-lint-ignore no-explicit-any -- the catalog's rows, copied as they are
    const from = await connectDatabase<any>(`sqlite:${db}`);
    // deno-lint-ignore no-explicit-any -- the catalog's rows, copied as they are
    const to = await connectDatabase<any>(pg.url("catalog"));
    await createCatalogTables(to.db);
    for (const t of ["rtx_patients", "rtx_plans", "rtx_files"]) {
      const rows = await from.db.selectFrom(t).selectAll().execute();
      for (let i = 0; i < rows.length; i += 100) await to.db.insertInto(t).values(rows.slice(i, i + 100)).execute();
    }
    await from.close();
    await to.close();
    // deno-lint-ignore no-explicit-any -- rows of any view
    const strip = (rs: Record<string, any>[]) => rs.map(({ source: _s, ...rest }) => rest);
    const viaSqlite = strip(records((await sh(list())).stdout));
    const r = await sh(`"\${RT[@]}" list-patients --from catalog --db '${pg.url("catalog")}' --vault '${vault}'`);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(strip(records(r.stdout)), viaSqlite);
    const out = join(dir, "export-pg");
    const e = await sh(`"\${RT[@]}" list-patients --from catalog --db '${pg.url("catalog")}' --vault '${vault}' --patient ${manifest.patients[0].patientId} | "\${RT[@]}" export-plan --out '${out}' --ledger '${pg.url("ledger")}'`);
    assert.equal(e.status, 0, e.stderr);
    const n = records(e.stdout).filter((x) => x.type === "file").length;
    const s = await sh(`"\${RT[@]}" status --ledger '${pg.url("ledger")}' --json`);
    assert.equal(s.status, 0, s.stderr);
    assert.equal(records(s.stdout)[0].kinds.file.done, n);
    assert.equal(Number(pg.psql("select count(*) from rtx_ledger_items where kind = 'file'", "ledger").trim()), n);
  });

  test("an unreachable database is one clear error, exit 1", async () => {
    const r = await sh(`"\${RT[@]}" list-patients --from catalog --db 'postgres://postgres@127.0.0.1:1/none'`);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /list-patients: .*(ECONNREFUSED|connect)/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });
});

describe("DICOM sources", () => {
  let serve: ReturnType<typeof spawn>;
  let port: number;
  const aet = "RTX-TEST-SCP";
  before(async () => {
    const { freePort, waitForPort } = await import("./_peers.ts");
    port = await freePort();
    const movePort = await freePort();
    const [cmd, ...args] = cliCommand();
    serve = spawn(cmd, [...args, "serve", "--dir", join(dir, "clinic"), "--port", String(port), "--aet", aet, "--move-dest", `RTEXPORT=127.0.0.1:${movePort}`, "--allow", "RTEXPORT", "-q"], { stdio: "ignore" });
    await waitForPort(port, "127.0.0.1", 30_000);
    process.env.RTX_TEST_MOVE_PORT = String(movePort);
  });
  after(() => serve?.kill("SIGTERM"));

  // A retrieved copy carries the receiver's own file meta information, so compare data sets.
  const planDicom = (root: string) => {
    const m = new Map<string, string>();
    for (const k of treeHashes(root).keys()) {
      // Registrations come with the plan whose images they register, as from a folder.
      if (!/^[^/]+\/[^/]+\/DICOM\//.test(k)) continue;
      // …and values, not bytes: a peer may send an implicit VR file as explicit VR.
      m.set(k, createHash("sha256").update(canonical(readDicomFile(join(root, k), { full: true }).dataset)).digest("hex"));
    }
    return m;
  };

  test("list-patients --from dicom | export-plan retrieves each plan's objects (C-GET and C-MOVE) like the folder source", async () => {
    const peer = `--host 127.0.0.1 --port ${port} --called-aet ${aet}`;
    const listed = await sh(`"\${RT[@]}" list-patients --from dicom ${peer}`);
    assert.equal(listed.status, 0, listed.stderr);
    const plans = records(listed.stdout).filter((r) => r.type === "plan");
    // Approved plans only, as from the catalog and folder sources.
    assert.equal(plans.length, manifest.patients.reduce((n, p) => n + p.plans.filter((q) => q.approval === "APPROVED").length, 0));
    const viaGet = join(dir, "dicom-get");
    const g = await sh(`"\${RT[@]}" export-plan ${peer} --get --out '${viaGet}'`, { input: listed.stdout });
    assert.equal(g.status, 0, g.stderr);
    // Hashed as they arrived, not read back: each record's sha256 and size are those of the file in the tree.
    const got = records(g.stdout).filter((r) => r.type === "file");
    assert.ok(got.length > 20);
    for (const r of got) {
      const bytes = readFileSync(r.path);
      assert.deepEqual([r.sha256, r.bytes], [createHash("sha256").update(bytes).digest("hex"), bytes.length], r.path);
    }
    // A rerun reuses what the ledger says was retrieved and is still in the tree: no retrieval.
    const again = await sh(`"\${RT[@]}" export-plan ${peer} --get --out '${viaGet}'`, { input: listed.stdout });
    assert.equal(again.status, 0, again.stderr);
    // Not read again: the hash on the rerun's records is the ledger's (ledgerSha256), not one computed now (sha256).
    const key = (rs: Record<string, unknown>[]) => rs.filter((r) => r.type === "file").map((r) => `${r.path}|${r.sha256 ?? r.ledgerSha256}|${r.sopInstanceUid}|${r.category}`).sort();
    assert.deepEqual(key(records(again.stdout)), key(records(g.stdout)));
    assert.ok(records(again.stdout).filter((r) => r.type === "file").every((r) => r.copy === "done-before" && r.sha256 === undefined && /^[0-9a-f]{64}$/.test(r.ledgerSha256)));
    const viaMove = join(dir, "dicom-move");
    const m = await sh(`"\${RT[@]}" export-plan ${peer} --move-port ${process.env.RTX_TEST_MOVE_PORT} --out '${viaMove}'`, { input: listed.stdout });
    assert.equal(m.status, 0, m.stderr);
    const viaFolder = join(dir, "folder-export");
    const f = await sh(`"\${RT[@]}" list-patients --from folder '${join(dir, "clinic")}' | "\${RT[@]}" export-plan --out '${viaFolder}'`);
    assert.equal(f.status, 0, f.stderr);
    const expected = planDicom(viaFolder);
    assert.ok(expected.size > 20);
    assert.deepEqual(planDicom(viaGet), expected);
    assert.deepEqual(planDicom(viaMove), expected);
    // Patient level: every image series of the patient, the MR no plan references included.
    const images = (root: string) => [...treeHashes(root).keys()].filter((k) => /^[^/]+\/DICOM\/(CT|MR)_/.test(k)).sort();
    const allImages = manifest.patients.reduce((n, p) => n + p.studies.flatMap((s) => s.series).filter((x) => x.modality === "CT" || x.modality === "MR").reduce((m, x) => m + x.instances.length, 0), 0);
    assert.equal(images(viaFolder).length, allImages);
    assert.deepEqual(images(viaGet), images(viaFolder));
    assert.deepEqual(images(viaMove), images(viaFolder));
  });

  test("the demo pipeline: catalog for plans and vault files, DICOM from the peer, copy-files consumes the staged objects", async () => {
    const out = join(dir, "demo-export");
    const peer = `--host 127.0.0.1 --port ${port} --called-aet ${aet}`;
    const pipeline = (peer: string) => `${list()} | "\${RT[@]}" export-plan ${peer} --get --staging '${join(out, ".rtexport", "staging")}' --to '${out}' | "\${RT[@]}" copy-files --to '${out}'`;
    const r = await sh(pipeline(peer));
    assert.equal(r.status, 0, r.stderr);
    const vaultExport = join(dir, "export"); // the vault-only export of the tests above
    assert.deepEqual(planDicom(out), planDicom(vaultExport));
    assert.deepEqual(readdirSync(join(out, ".rtexport", "staging")).filter((n) => n.endsWith(".dcm")), []);
    const p0 = manifest.patients[0];
    const folder = `${p0.nameParts.family}_${p0.nameParts.given}_${p0.patientId}`;
    assert.ok(existsSync(join(out, folder, p0.plans[0].label, "Logs", "treatment.log")));
    // Run again (README): with --to nothing is retrieved, so a peer that is not there is not missed.
    const again = await sh(pipeline(`--host 127.0.0.1 --port ${await closedPort()} --called-aet ${aet}`));
    assert.equal(again.status, 0, again.stderr);
    const copies = records(again.stdout).filter((x) => x.type === "file");
    assert.ok(copies.length > 100 && copies.every((x) => x.copy?.status === "done-before"), JSON.stringify(copies.find((x) => x.copy?.status !== "done-before")));

    // A byte flipped in a retrieved file of the tree: --verify reports it (copy-files, which has the
    // file as done, would not), exit 3, and the file is left as it is.
    const retrieved = copies.map((x) => String(x.path)).find((f) => /\/DICOM\/RTPLAN_[^/]*\.dcm$/.test(f))!;
    assert.ok(retrieved, "a retrieved plan in the tree");
    const bytes = readFileSync(retrieved);
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(retrieved, bytes);
    const verified = await sh(`${list()} | "\${RT[@]}" export-plan ${peer} --get --verify --staging '${join(out, ".rtexport", "staging")}' --to '${out}' | "\${RT[@]}" copy-files --to '${out}'`);
    assert.equal(verified.status, 3, verified.stderr);
    const changed = verified.stderr.split("\n").filter((l) => l.includes("changed in the tree since copy-files copied it"));
    assert.equal(changed.length, 1, verified.stderr);
    assert.ok(changed[0].includes(retrieved), changed[0]);
    assert.deepEqual(readFileSync(retrieved), bytes, "not overwritten");

    // The pipeline is one machine's, one patient at a time: more workers are refused with the way out.
    const workers = await sh(`"\${RT[@]}" export-plan ${peer} --get --to '${out}' --workers 2 < /dev/null`);
    assert.equal(workers.status, 2);
    assert.match(workers.stderr, /--to exports one patient at a time \(--workers 1\): for several workers or machines, export with --out/);
  });
});

/** A loopback port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const { createServer } = await import("node:net");
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}
