// serve ← DCMTK: storescu stores the synthetic clinic, findscu/movescu/getscu get what they ask
// for, and what was stored equals the source element for element (dcmdump).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type ClinicManifest, generateClinic } from "../lib/fixtures/mod.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { storagePath } from "../lib/layout/sanitize.ts";
import { type QrScp, startQrScp } from "../lib/qr/scp.ts";
import { compareRows, runDcmdump } from "./_dcmdump.ts";
import { dcmtkEnv, freePort, runDcmtk, startStorescp, type StorescpPeer } from "./_peers.ts";
import { cliCommand, root as repoRoot } from "./_run.ts";

const tmp = mkdtempSync(join(tmpdir(), "rtexport-serve-"));
const src = join(tmp, "clinic");
const served = join(tmp, "served");
let manifest: ClinicManifest;
let node: QrScp;
let storescp: StorescpPeer;

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && !e.name.startsWith("."))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
}

function sourcePath(sopInstanceUid: string): string {
  for (const p of manifest.patients) {
    for (const s of p.studies) for (const se of s.series) for (const i of se.instances) if (i.sopInstanceUid === sopInstanceUid) return join(src, i.path);
  }
  throw new Error(`not in manifest: ${sopInstanceUid}`);
}

/** dcmdump of the data sets (meta headers differ by design: source AE, implementation). */
function assertSameDataset(a: string, b: string) {
  const diff = compareRows(runDcmdump(a).dataset, runDcmdump(b).dataset);
  assert.deepEqual(diff, [], `${b} differs from ${a}`);
}

before(async () => {
  manifest = await generateClinic({ out: src, patients: 2, slices: 4, size: 32 });
  storescp = await startStorescp({ aeTitle: "DEST" });
  node = await startQrScp({
    dir: served,
    aeTitle: "RTSERVE",
    host: "127.0.0.1",
    port: 0,
    allowedCallingAets: ["STORESCU", "FINDSCU", "MOVESCU", "GETSCU", "ECHOSCU"],
    moveDestinations: { DEST: { host: "127.0.0.1", port: storescp.port } },
  });
  const files = filesUnder(src).filter((f) => f.endsWith(".dcm"));
  const r = await runDcmtk("storescu", ["-aet", "STORESCU", "-aec", "RTSERVE", "127.0.0.1", String(node.port), ...files]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.equal(files.length, manifest.files);
});
after(async () => {
  await node?.close();
  await storescp?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe("serve ← DCMTK", () => {
  test("storescu: every object (RT included) stored in the layout, identical element for element", () => {
    const stored = filesUnder(served);
    assert.equal(stored.length, manifest.files);
    for (const p of manifest.patients) {
      for (const s of p.studies) {
        for (const se of s.series) {
          for (const i of se.instances) {
            const dest = storagePath(served, { patientId: p.patientId, studyUid: s.studyUid, seriesUid: se.seriesUid, sopInstanceUid: i.sopInstanceUid });
            assert.ok(existsSync(dest), `${se.modality} ${dest}`);
          }
        }
      }
    }
    // Fidelity on one object of each modality (private tags and sequences included).
    const seen = new Set<string>();
    for (const f of stored) {
      const ds = readDicomFile(f).dataset;
      const modality = ds.string("Modality")!;
      if (seen.has(modality)) continue;
      seen.add(modality);
      assertSameDataset(sourcePath(ds.string("SOPInstanceUID")!), f);
    }
    assert.deepEqual([...seen].sort(), Object.keys(manifest.counts).sort());
    // Nothing left in the incoming folder.
    assert.deepEqual(readdirSync(join(served, ".incoming")), []);
  });

  test("findscu: Patient Root PATIENT and Study Root SERIES/IMAGE answers match the clinic", async () => {
    const od = join(tmp, "find1");
    mkdirSync(od);
    let r = await runDcmtk("findscu", ["-aet", "FINDSCU", "-aec", "RTSERVE", "-P", "-X", "-od", od, "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID", "-k", "PatientName", "127.0.0.1", String(node.port)]);
    assert.equal(r.code, 0, r.stderr);
    const ids = readdirSync(od).map((f) => readDicomFile(join(od, f)).dataset.string("PatientID")).sort();
    assert.deepEqual(ids, manifest.patients.map((p) => p.patientId).sort());

    const p = manifest.patients[0];
    const plan = p.plans[0];
    const od2 = join(tmp, "find2");
    mkdirSync(od2);
    r = await runDcmtk("findscu", ["-aet", "FINDSCU", "-aec", "RTSERVE", "-S", "-X", "-od", od2, "-k", "QueryRetrieveLevel=IMAGE", "-k", `StudyInstanceUID=${plan.studyUid}`, "-k", `SeriesInstanceUID=${plan.seriesUid}`, "-k", "SOPInstanceUID", "-k", `RTPlanLabel=${plan.label}`, "-k", "ApprovalStatus", "127.0.0.1", String(node.port)]);
    assert.equal(r.code, 0, r.stderr);
    const answers = readdirSync(od2).map((f) => readDicomFile(join(od2, f)).dataset);
    assert.deepEqual(answers.map((a) => [a.string("SOPInstanceUID"), a.string("RTPlanLabel"), a.string("ApprovalStatus")]), [[plan.planUid, plan.label, plan.approval]]);
  });

  test("movescu: a CT series goes to the configured destination, and only it", async () => {
    const p = manifest.patients[1];
    const ct = p.studies.flatMap((s) => s.series.map((se) => ({ s, se }))).find((x) => x.se.modality === "CT")!;
    const r = await runDcmtk("movescu", ["-aet", "MOVESCU", "-aec", "RTSERVE", "-aem", "DEST", "-S", "-k", "QueryRetrieveLevel=SERIES", "-k", `StudyInstanceUID=${ct.s.studyUid}`, "-k", `SeriesInstanceUID=${ct.se.seriesUid}`, "127.0.0.1", String(node.port)]);
    assert.equal(r.code, 0, r.stderr);
    const got = readdirSync(storescp.outDir).map((f) => readDicomFile(join(storescp.outDir, f)).dataset.string("SOPInstanceUID")).sort();
    assert.deepEqual(got, ct.se.instances.map((i) => i.sopInstanceUid).sort());
    for (const f of readdirSync(storescp.outDir)) {
      assertSameDataset(sourcePath(readDicomFile(join(storescp.outDir, f)).dataset.string("SOPInstanceUID")!), join(storescp.outDir, f));
    }
  });

  test("movescu to an unknown destination: refused with 0xA801 (move destination unknown)", async () => {
    const r = await runDcmtk("movescu", ["-v", "-aet", "MOVESCU", "-aec", "RTSERVE", "-aem", "NOWHERE", "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", `StudyInstanceUID=${manifest.patients[0].studies[0].studyUid}`, "127.0.0.1", String(node.port)]);
    assert.match(r.stdout + r.stderr, /Final Move Response \(Refused: MoveDestinationUnknown\)/);
    assert.equal(readdirSync(storescp.outDir).filter((f) => f.startsWith("RT")).length, 0);
  });

  test("getscu: an RT plan comes back on the same association, identical", async () => {
    const od = join(tmp, "get");
    mkdirSync(od);
    const plan = manifest.patients[0].plans[1];
    const r = await runDcmtk("getscu", ["-aet", "GETSCU", "-aec", "RTSERVE", "-S", "-od", od, "-k", "QueryRetrieveLevel=IMAGE", "-k", `StudyInstanceUID=${plan.studyUid}`, "-k", `SeriesInstanceUID=${plan.seriesUid}`, "-k", `SOPInstanceUID=${plan.planUid}`, "127.0.0.1", String(node.port)]);
    assert.equal(r.code, 0, r.stderr);
    const files = readdirSync(od);
    assert.equal(files.length, 1);
    assertSameDataset(join(src, plan.path), join(od, files[0]));
  });

  test("a calling AE title not in --allow is rejected (calling AE title not recognized)", async () => {
    const r = await runDcmtk("echoscu", ["-aet", "INTRUDER", "-aec", "RTSERVE", "127.0.0.1", String(node.port)]);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /Calling AE Title Not Recognized/i);
    const ok = await runDcmtk("echoscu", ["-aet", "ECHOSCU", "-aec", "RTSERVE", "127.0.0.1", String(node.port)]);
    assert.equal(ok.code, 0, ok.stderr);
  });
});

describe("serve command", () => {
  let proc: ChildProcess | undefined;
  after(() => {
    if (proc && proc.exitCode === null) proc.kill("SIGKILL");
  });
  test("prints where it listens, indexes what is already there, stops on SIGTERM with exit 0", async () => {
    const port = await freePort();
    const [cmd, ...args] = cliCommand();
    proc = spawn(cmd, [...args, "serve", "--dir", served, "--port", String(port), "--host", "127.0.0.1", "--aet", "RTSERVE", "--allow", "ANY@127.0.0.1", "--overwrite"], { cwd: repoRoot, env: { ...process.env, ...dcmtkEnv() }, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    let stdout = "";
    proc.stderr!.on("data", (b) => (stderr += b));
    proc.stdout!.on("data", (b) => (stdout += b));
    const deadline = Date.now() + 20000;
    while (!/listening on/.test(stderr) && Date.now() < deadline && proc.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    assert.match(stderr, new RegExp(`listening on 127\\.0\\.0\\.1:${port} as RTSERVE`));
    assert.match(stderr, new RegExp(`indexed .*: 0 new, 0 changed, ${manifest.files} unchanged`));
    const echo = await runDcmtk("echoscu", ["-aet", "ANY", "-aec", "RTSERVE", "127.0.0.1", String(port)]);
    assert.equal(echo.code, 0, echo.stderr);
    // A stored object comes out on stdout as a file record.
    const plan = manifest.patients[1].plans[0];
    const store = await runDcmtk("storescu", ["-aet", "ANY", "-aec", "RTSERVE", "127.0.0.1", String(port), join(src, plan.path)]);
    assert.equal(store.code, 0, store.stderr);
    while (!stdout.includes("\n") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const rec = JSON.parse(stdout.split("\n")[0]);
    assert.deepEqual({ ...rec, sha256: typeof rec.sha256, bytes: typeof rec.bytes }, {
      type: "file", path: storagePath(served, { patientId: manifest.patients[1].patientId, studyUid: plan.studyUid, seriesUid: plan.seriesUid, sopInstanceUid: plan.planUid }),
      bytes: "number", sha256: "string", category: "dicom", sopClassUid: "1.2.840.10008.5.1.4.1.1.481.5", sopInstanceUid: plan.planUid,
      transferSyntaxUid: "1.2.840.10008.1.2.1", modality: "RTPLAN", patientId: manifest.patients[1].patientId, studyUid: plan.studyUid, seriesUid: plan.seriesUid,
    });
    const exited = new Promise<number | null>((resolve) => proc!.once("exit", (code) => resolve(code)));
    // process.kill, not proc.kill: Deno's ChildProcess reports a child it signalled as killed
    // (exit code null) even when the child handled the signal and exited 0.
    process.kill(proc.pid!, "SIGTERM");
    const timer = setTimeout(() => proc!.kill("SIGKILL"), 10000);
    assert.equal(await exited, 0, stderr);
    clearTimeout(timer);
    assert.doesNotMatch(stderr, /\n\s+at /); // no stack trace
  });
});
