// The zx migration scripts in scripts/migrations, run for real as a user runs them (under Node,
// whatever runtime runs this suite: zx is a Node tool), against real peers:
//   idms_to_pacs.mjs: a synthetic iDMS-style catalog → export tree → our `serve` as the PACS
//   aria_to_research.mjs: Orthanc (loaded with the synthetic clinic) as the ARIA-like Q/R source
//     → anonymized research set
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import process from "node:process";
import { generateClinic } from "../lib/fixtures/mod.ts";
import type { ClinicManifest } from "../lib/fixtures/clinic.ts";
import { buildDemoCatalog } from "../lib/catalog/demo.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { freePort, type OrthancPeer, runDcmtk, startOrthanc, waitForPort } from "./_peers.ts";
import { cliCommand, records, root, sh } from "./_run.ts";

const node = join(root, "node_modules", ".bin", "node");
const script = (name: string) => join(root, "scripts", "migrations", name);

let dir: string;
let manifest: ClinicManifest;

interface ScriptRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a migration script (no RTEXPORT_* or RTEXPORT from the environment), 120 s bound:
 * `node script.mjs` by default; `zx: true` runs it with the zx command instead; `path` runs a copy
 * placed elsewhere (then rtexport must come from PATH or RTEXPORT, given in `env`).
 */
function runScript(name: string, args: string[], opts: { zx?: boolean; path?: string; env?: Record<string, string> } = {}): Promise<ScriptRun> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("RTEXPORT")) env[k] = v;
  const file = opts.path ?? script(name);
  const [cmd, argv] = opts.zx ? [join(root, "node_modules", ".bin", "zx"), [file, ...args]] : [node, [file, ...args]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { cwd: dir, env: { ...env, NO_COLOR: "1", TCP_NODELAY: "1", ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "", stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} timed out:\n${stderr}`));
    }, 120_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/**
 * A copy of a script outside the checkout, as a user keeps it (with _rtexport.mjs beside it and zx
 * resolvable), and a PATH whose `rtexport` is the checkout's CLI (as `npm install -g` provides).
 */
function installedElsewhere(name: string): { path: string; env: Record<string, string> } {
  const base = join(dir, "elsewhere");
  mkdirSync(join(base, "migrations"), { recursive: true });
  mkdirSync(join(base, "bin"), { recursive: true });
  for (const f of [name, "_rtexport.mjs"]) copyFileSync(script(f), join(base, "migrations", f));
  if (!existsSync(join(base, "node_modules"))) symlinkSync(join(root, "node_modules"), join(base, "node_modules"));
  const shim = join(base, "bin", "rtexport");
  writeFileSync(shim, `#!/bin/sh\nexec '${node}' '${join(root, "cli.ts")}' "$@"\n`);
  chmodSync(shim, 0o755);
  return { path: join(base, "migrations", name), env: { PATH: `${join(base, "bin")}:${process.env.PATH}` } };
}

function filesUnder(d: string, skip = ".rtexport"): string[] {
  if (!existsSync(d)) return [];
  const out: string[] = [];
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) {
      if (e.name !== skip) out.push(...filesUnder(p, skip));
    } else out.push(p);
  }
  return out.sort();
}

/** SOP Instance UIDs of the DICOM files under `d` (other files ignored). */
function sopUids(d: string): string[] {
  const uids: string[] = [];
  for (const f of filesUnder(d)) {
    if (!f.endsWith(".dcm")) continue;
    uids.push(readDicomFile(f).dataset.string("SOPInstanceUID")!);
  }
  return uids.sort();
}

const sha = (f: string) => createHash("sha256").update(readFileSync(f)).digest("hex");

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtx-migrations-"));
  manifest = await generateClinic({ out: join(dir, "clinic"), patients: 3, slices: 3, seed: 11 });
});
after(() => process.env.RTX_KEEP || rmSync(dir, { recursive: true, force: true }));

describe("idms_to_pacs.mjs: catalog → tree → PACS (our serve)", () => {
  let serve: ChildProcess;
  let port: number;
  let served = ""; // serve's stdout: one file record per object it stored
  let db: string, vault: string, out: string, pacsDir: string;

  before(async () => {
    db = join(dir, "catalog.db");
    vault = join(dir, "vault");
    out = join(dir, "export");
    pacsDir = join(dir, "pacs");
    await buildDemoCatalog({ clinic: join(dir, "clinic"), manifest, catalogPath: db, vault });
    port = await freePort();
    const [cmd, ...args] = cliCommand();
    // --overwrite: the last test sends objects this PACS already holds (the same tree, exported
    // twice) and counts what it stored; by default serve would keep the first copies.
    serve = spawn(cmd, [...args, "serve", "--dir", pacsDir, "--port", String(port), "--host", "127.0.0.1", "--aet", "PACS", "--allow", "RTEXPORT", "--overwrite", "-q"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    serve.stdout!.setEncoding("utf8").on("data", (d: string) => (served += d));
    await waitForPort(port, "127.0.0.1", 30_000, serve);
  });
  after(async () => {
    if (serve && serve.exitCode === null) {
      const exited = new Promise((r) => serve.once("exit", r));
      serve.kill("SIGTERM");
      const t = setTimeout(() => serve.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    }
  });

  const args = () => ["--db", `sqlite:${db}`, "--vault", vault, "--out", out, "--pacs-host", "127.0.0.1", "--pacs-port", String(port), "--pacs-aet", "PACS"];
  const storedByServe = () => records(served).filter((r) => r.type === "file").map((r) => r.sopInstanceUid as string);

  test("exports the approved plans into the tree and sends each of their DICOM objects to the PACS once", async () => {
    const r = await runScript("idms_to_pacs.mjs", args());
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /idms_to_pacs: done\n$/);

    // The tree: a folder per patient, a folder per approved plan with its DICOM.
    const folders = readdirSync(out).filter((n) => n !== ".rtexport").sort();
    assert.equal(folders.length, manifest.patients.length);
    for (const p of manifest.patients) {
      const folder = folders.find((f) => f.endsWith(`_${p.patientId}`));
      assert.ok(folder, `no folder for ${p.patientId} in ${folders.join(", ")}`);
      for (const plan of p.plans) {
        const rtplan = join(out, folder, plan.label, "DICOM", `RTPLAN_${plan.planUid}.dcm`);
        assert.equal(existsSync(rtplan), plan.approval === "APPROVED", `${rtplan} (${plan.approval})`);
      }
    }

    // The PACS holds exactly the tree's DICOM objects, each stored once.
    const inTree = [...new Set(sopUids(out))].sort();
    await waitFor(() => storedByServe().length >= inTree.length);
    assert.deepEqual(sopUids(pacsDir), inTree);
    assert.deepEqual(storedByServe().sort(), inTree);
    const approvedPlans = manifest.patients.flatMap((p) => p.plans.filter((x) => x.approval === "APPROVED"));
    for (const plan of approvedPlans) {
      for (const uid of [plan.planUid, plan.structureSetUid, ...plan.doses.map((d) => d.sopInstanceUid), ...plan.records.map((x) => x.sopInstanceUid)]) {
        assert.ok(inTree.includes(uid), `${uid} of plan ${plan.label} is not in the PACS`);
      }
    }
    const notApproved = manifest.patients.flatMap((p) => p.plans.filter((x) => x.approval !== "APPROVED").map((x) => x.planUid));
    assert.ok(notApproved.length > 0);
    for (const uid of notApproved) assert.ok(!inTree.includes(uid), `unapproved plan ${uid} was sent`);
    assert.match(r.stderr, new RegExp(`PACS PACS@127\\.0\\.0\\.1:${port}: ${inTree.length} DICOM object\\(s\\) \\(${inTree.length} stored\\)`));

    // `status` output (NDJSON: stdout is not a terminal) says the export is complete.
    const status = records(r.stdout).find((x) => x.type === "status");
    assert.equal(status?.kinds?.file?.failed, 0);
    assert.equal(status?.kinds?.file?.pending, 0);
    assert.deepEqual([status?.kinds?.push?.done, status?.kinds?.push?.failed], [inTree.length, 0]);
  });

  test("a rerun resumes: no file copied again, no object sent twice (run by zx, a copy of the script, rtexport from PATH)", async () => {
    const treeBefore = new Map(filesUnder(out).map((f) => [f, sha(f)]));
    const storedBefore = storedByServe().length;
    const r = await runScript("idms_to_pacs.mjs", args(), { zx: true, ...installedElsewhere("idms_to_pacs.mjs") });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(storedByServe().length, storedBefore, "the PACS received objects again");
    const pushed = records(readFileSync(join(out, ".rtexport", "migration", "pushed.ndjson"), "utf8")).filter((x) => x.type === "file");
    assert.equal(pushed.length, storedBefore);
    assert.deepEqual([...new Set(pushed.map((x) => x.push.status))], ["skipped"]);
    const exported = records(readFileSync(join(out, ".rtexport", "migration", "exported.ndjson"), "utf8")).filter((x) => x.type === "file");
    assert.deepEqual([...new Set(exported.map((x) => x.copy))], ["done-before"]);
    assert.deepEqual(new Map(filesUnder(out).map((f) => [f, sha(f)])), treeBefore);
  });

  test("a wrong flag is a usage error (exit 2) naming it, and nothing runs", async () => {
    const r = await runScript("idms_to_pacs.mjs", [...args(), "--pacs-aec", "X"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^idms_to_pacs: Unknown option '--pacs-aec'/);
  });

  test("an unreachable PACS: push says so once per try (exit 1), the script stops there, the tree complete; a rerun sends everything", async () => {
    const deadPort = await freePort();
    const out2 = join(dir, "export-dead-pacs");
    const args2 = (p: number) => ["--db", `sqlite:${db}`, "--vault", vault, "--out", out2, "--pacs-host", "127.0.0.1", "--pacs-port", String(p), "--pacs-aet", "PACS"];
    // One retry (push's default is 5, with back-off up to 16 s: half a minute of waiting here).
    const r = await runScript("idms_to_pacs.mjs", [...args2(deadPort), "--retries", "1"]);
    assert.equal(r.status, 1, r.stderr);
    const objects = [...new Set(sopUids(out2))].sort();
    assert.deepEqual(objects, [...new Set(sopUids(out))].sort());
    // One line per try for the peer, not one per object; the script checks the step's exit status and stops.
    assert.deepEqual(r.stderr.split("\n").filter((l) => l.startsWith("push: ")).map((l) => l.replace(/ in [\d.]+ s /, " in T s ")), [
      `push: warning: Cannot connect to 127.0.0.1:${deadPort}: connection refused; nothing sent yet, retry 1 of 1 in T s (connection refused)`,
      `push: Cannot connect to 127.0.0.1:${deadPort}: connection refused; nothing was sent`,
    ]);
    assert.match(r.stderr, new RegExp(`idms_to_pacs: stopped: sending DICOM objects to PACS@127\\.0\\.0\\.1:${deadPort} failed \\(exit status 1\\)\n`));

    const storedBefore = storedByServe().length;
    const again = await runScript("idms_to_pacs.mjs", args2(port));
    assert.equal(again.status, 0, again.stderr);
    await waitFor(() => storedByServe().length >= storedBefore + objects.length);
    assert.deepEqual(storedByServe().slice(storedBefore).sort(), objects);
  });
});

describe("aria_to_research.mjs: Q/R peer (Orthanc) → anonymized research set", () => {
  let orthanc: OrthancPeer;
  let keyFile: string;
  const instances = () => manifest.patients.flatMap((p) => p.studies.flatMap((s) => s.series.flatMap((se) => se.instances.map((i) => join(dir, "clinic", i.path)))));

  before(async () => {
    orthanc = await startOrthanc({ aeTitle: "ARIA" });
    const r = await runDcmtk("storescu", ["-aec", "ARIA", "-aet", "LOADER", "127.0.0.1", String(orthanc.port), ...instances()]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await orthanc.rest("/instances")).length, instances().length);
    keyFile = join(dir, "site.key");
    writeFileSync(keyFile, "migration-test-key-0123456789abcdef\n");
  });
  after(() => orthanc?.stop());

  const args = (out: string, staging: string, extra: string[] = []) => [
    "--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", "ARIA", "--get",
    "--key-file", keyFile, "--staging", staging, "--out", out, ...extra,
  ];

  /** What each plan has, without names and UIDs (from `show --json` records). */
  interface ShowPlan {
    type: string;
    approval: string;
    beams: number;
    structureSet: { imageSeries: { modality: string; count: number; referenced: number }[] };
    doses: { summation: string; beams?: number[] }[];
    records: unknown[];
    images: unknown[];
    registrations: unknown[];
    missing: unknown[];
  }
  function shapes(recs: Record<string, unknown>[]): string[] {
    return (recs as unknown as ShowPlan[]).filter((r) => r.type === "plan").map((r) => JSON.stringify({
      approval: r.approval,
      beams: r.beams,
      imageSeries: r.structureSet.imageSeries.map((s) => [s.modality, s.count, s.referenced]),
      doses: r.doses.map((d) => [d.summation, d.beams ?? []]).map(String).sort(),
      records: r.records.length,
      images: r.images.length,
      registrations: r.registrations.length,
      missing: r.missing.length,
    })).sort();
  }

  test("retrieves each approved plan, anonymizes it keyed, and the plan trees are unchanged", async () => {
    const out = join(dir, "research");
    const staging = join(dir, "identified");
    const map = join(dir, "ids.csv");
    const r = await runScript("aria_to_research.mjs", args(out, staging, ["--write-map", map]));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /plan tree\(s\) unchanged; \d+ research file\(s\) scanned, 0 with a source ID or name/);

    // No source patient ID or name, in any encoding written, in any research file or path.
    const needles: Buffer[] = [];
    for (const p of manifest.patients) {
      needles.push(Buffer.from(p.patientId), Buffer.from(p.nameBytesHex, "hex"));
      for (const part of [p.nameParts.family, p.nameParts.given]) needles.push(Buffer.from(part, "utf8"), Buffer.from(part, "latin1"));
    }
    const files = filesUnder(out);
    assert.ok(files.length > 0);
    for (const f of files) {
      const bytes = readFileSync(f);
      for (const n of needles) {
        assert.ok(!bytes.includes(n), `${relative(out, f)} contains ${JSON.stringify(n.toString("utf8"))}`);
        assert.ok(!relative(out, f).includes(n.toString("utf8")), `path ${relative(out, f)} contains PHI`);
      }
    }

    // Every approved plan is there (by count: its UID is remapped) and the trees have the same shape.
    const approved = manifest.patients.flatMap((p) => p.plans.filter((x) => x.approval === "APPROVED"));
    const identified = await sh(`"\${RT[@]}" show --json < '${join(staging, ".rtexport", "migration", "identified.ndjson")}'`);
    const research = await sh(`"\${RT[@]}" show --json '${out}'`);
    assert.equal(identified.status, 0, identified.stderr);
    assert.equal(research.status, 0, research.stderr);
    const before = shapes(records(identified.stdout)), afterAnon = shapes(records(research.stdout));
    assert.equal(afterAnon.length, approved.length);
    assert.deepEqual(afterAnon, before);
    for (const plan of records(research.stdout).filter((x) => x.type === "plan")) {
      assert.ok(plan.structureSet?.sopInstanceUid, "plan without its structure set");
      assert.ok(plan.doses.length > 0, "plan without doses");
      assert.deepEqual(plan.missing, []);
    }
    const sourceUids = new Set(instances().map((f) => readDicomFile(f).dataset.string("SOPInstanceUID")));
    for (const uid of sopUids(out)) assert.ok(!sourceUids.has(uid), `source UID ${uid} kept`);

    // The mapping was asked for: one line per patient, old id → the pseudonym in the research set.
    const lines = readFileSync(map, "utf8").trim().split("\n").filter((l) => !/^old/i.test(l));
    const researchIds = new Set(readdirSync(out));
    for (const p of manifest.patients) {
      const line = lines.find((l) => l.startsWith(`${p.patientId},`));
      assert.ok(line, `no mapping for ${p.patientId}: ${lines.join(" | ")}`);
      assert.ok(researchIds.has(line.split(",")[1]), `${line} does not name a research folder (${[...researchIds].join(", ")})`);
    }
  });

  test("a second run for one patient resumes in the staging, writes no mapping, and gives the same research files (keyed)", async () => {
    const first = join(dir, "research");
    const out = join(dir, "research-2");
    const staging = join(dir, "identified");
    const patient = manifest.patients[1];
    const r = await runScript("aria_to_research.mjs", args(out, staging, ["--patient", patient.patientId]));
    assert.equal(r.status, 0, r.stderr);
    const exported = records(readFileSync(join(staging, ".rtexport", "migration", "exported.ndjson"), "utf8")).filter((x) => x.type === "file");
    assert.ok(exported.length > 0);
    assert.ok(exported.every((x) => x.patientId === patient.patientId && x.copy !== "copied"), "files fetched again into the staging");
    const written = filesUnder(out);
    assert.ok(written.length > 0);
    for (const f of written) assert.equal(sha(f), sha(join(first, relative(out, f))), `${relative(out, f)} differs from the first run`);
    const csv = [...filesUnder(dir, "clinic")].filter((f) => f.endsWith(".csv"));
    assert.deepEqual(csv.map((f) => relative(dir, f)), ["ids.csv"]);
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}
