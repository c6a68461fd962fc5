// export-plan --workers N by C-MOVE: one receiver port shared by every worker, each arriving
// object routed to the worker whose request it answers (lib/retrieve/move_receiver.ts), against
// Orthanc and DCMTK's dcmqrscp, and a C-STORE nobody asked for arriving during a run.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { buildDemoCatalog } from "../lib/catalog/demo.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { identifier } from "../lib/qr/identifier.ts";
import { connect, storageContexts, store, storeSourceFromFile } from "../lib/net/mod.ts";
import { ArrivalStore } from "../lib/retrieve/arrivals.ts";
import { MoveReceiver, type RefusedObject } from "../lib/retrieve/move_receiver.ts";
import { cliCommand, records, sh } from "./_run.ts";
import { assertSameTree, treeHashes } from "./_tree.ts";
import { type DcmqrscpPeer, freePort, type OrthancPeer, runDcmtk, startDcmqrscp, startOrthanc } from "./_peers.ts";

let dir: string;
let clinicDir: string;
let files: string[];
let movePort: number;
let catalog: string;
let vault: string;
/** An object of a patient the clinic does not have (pydicom's test data: written by another tool). */
const STRANGER = "/usr/lib/python3/dist-packages/pydicom/data/test_files/CT_small.dcm";
const strangerUid = () => readDicomFile(STRANGER).dataset.string(0x00080018)!;

function dicomFiles(root: string): string[] {
  return readdirSync(root, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".dcm"))
    .map((e) => join(e.parentPath, e.name));
}

/** SOP Instance UID → PatientID of every DICOM file of an export tree (its .rtexport folder left out). */
function treeObjects(root: string): Map<string, { patientId: string; path: string }[]> {
  const out = new Map<string, { patientId: string; path: string }[]>();
  for (const path of treeHashes(root).keys()) {
    if (!path.endsWith(".dcm")) continue;
    const ds = readDicomFile(join(root, path)).dataset;
    const uid = ds.string(0x00080018)!;
    out.set(uid, [...(out.get(uid) ?? []), { patientId: ds.string(0x00100020) ?? "", path }]);
  }
  return out;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtx-move-workers-"));
  clinicDir = join(dir, "clinic");
  // Six patients for three workers: each worker has two, and several C-MOVEs are in flight at once.
  const manifest = await generateClinic({ out: clinicDir, patients: 6, slices: 4, size: 16, seed: 17 });
  catalog = join(dir, "catalog.db");
  vault = join(dir, "vault");
  await buildDemoCatalog({ clinic: clinicDir, manifest, catalogPath: catalog, vault });
  files = dicomFiles(clinicDir);
  movePort = await freePort();
});
after(() => process.env.RTX_KEEP || rmSync(dir, { recursive: true, force: true }));

/**
 * Lists the plans (`list`), exports them by C-MOVE with one worker (the reference) and with
 * `--workers 3`, and checks the trees are equal hash for hash, no object is under another
 * patient's folder or there twice, every file record is one object, and the ledger says done.
 */
async function exportBothWays(list: string, peer: string, name: string, during?: () => Promise<void>): Promise<{ stderr: string; moved: string }> {
  const listed = await sh(list);
  assert.equal(listed.status, 0, listed.stderr);
  assert.equal(records(listed.stdout).filter((r) => r.type === "patient").length, 6);
  const reference = join(dir, `${name}-move1`);
  const g = await sh(`"\${RT[@]}" export-plan ${peer} --move-port ${movePort} --out '${reference}' -q`, { input: listed.stdout });
  assert.equal(g.status, 0, g.stderr);
  const moved = join(dir, `${name}-move3`);
  writeFileSync(`${moved}.in`, listed.stdout);
  const [cmd, ...args] = cliCommand();
  const child = spawn("bash", ["-c", `"$0" "$@" export-plan ${peer} --move-port ${movePort} --workers 3 --out '${moved}' > '${moved}.out' 2> '${moved}.err' < '${moved}.in'`, cmd, ...args], {
    stdio: "ignore",
  });
  const exited = new Promise<number>((resolve) => child.on("exit", (code) => resolve(code ?? -1)));
  if (during) await during();
  const code = await exited;
  const stdout = readFileSync(`${moved}.out`, "utf8");
  const stderr = readFileSync(`${moved}.err`, "utf8");
  assert.equal(code, 0, stderr);
  assertSameTree(moved, reference);
  // Every object under its own patient's folder only (one patient per folder, each folder one patient).
  const folders = new Map<string, string>();
  for (const at of treeObjects(moved).values()) {
    for (const { path, patientId } of at) {
      const folder = path.split("/")[0];
      folders.set(folder, folders.get(folder) ?? patientId);
      assert.equal(patientId, folders.get(folder), `${path} is in the folder of patient ${folders.get(folder)}`);
    }
  }
  assert.equal(new Set(folders.values()).size, 6);
  // One file record per tree file, each copied once; as many objects as one worker fetched.
  const fileRecords = records(stdout).filter((r) => r.type === "file");
  assert.equal(fileRecords.length, treeHashes(moved).size);
  assert.equal(new Set(fileRecords.map((r) => r.path)).size, fileRecords.length);
  assert.ok(fileRecords.every((r) => r.copy === "copied"), JSON.stringify(fileRecords.find((r) => r.copy !== "copied")));
  const uids = (rs: Record<string, unknown>[]) => new Set(rs.filter((r) => r.type === "file" && r.sopInstanceUid).map((r) => r.sopInstanceUid)).size;
  assert.equal(uids(fileRecords), uids(records(g.stdout)));
  // Nothing asked for twice: no retry, no fallback, no object turned away or dropped as another patient's.
  assert.ok(!/one by one|retry|another patient|did not arrive/i.test(stderr), stderr);
  const s = await sh(`"\${RT[@]}" status '${moved}' --json`);
  assert.equal(s.status, 0, s.stderr);
  const st = records(s.stdout)[0];
  assert.deepEqual(st.jobs[0].items, { total: 6, pending: 0, running: 0, done: 6, failed: 0 });
  return { stderr, moved };
}

describe("export-plan --workers 3 by C-MOVE ← Orthanc", () => {
  let orthanc: OrthancPeer;
  before(async () => {
    // Orthanc is built on DCMTK: without this each object waits on Nagle + delayed ACK (~45 ms).
    process.env.TCP_NODELAY = "1";
    orthanc = await startOrthanc({ modalities: [{ aeTitle: "RTX", host: "127.0.0.1", port: movePort }] });
    const r = await runDcmtk("storescu", ["-aec", orthanc.aeTitle, "127.0.0.1", String(orthanc.port), ...files]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(() => orthanc?.stop());

  test("equals the one-worker tree hash for hash; a C-STORE nobody asked for, sent to the receiver during the run, is refused and reported", async () => {
    const peer = `--host 127.0.0.1 --port ${orthanc.port} --called-aet ${orthanc.aeTitle} --calling-aet RTX`;
    let sent: { code: number; stdout: string; stderr: string } | undefined;
    // Sent as the peer (its AE title, its address: what the receiver lets in) once the receiver listens.
    const during = async () => {
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        const open = await new Promise<boolean>((resolve) => {
          const s = tcpConnect(movePort, "127.0.0.1", () => (s.destroy(), resolve(true)));
          s.on("error", () => resolve(false));
        });
        if (open) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      sent = await runDcmtk("storescu", ["-v", "-aet", orthanc.aeTitle, "-aec", "RTX", "127.0.0.1", String(movePort), STRANGER]);
    };
    const { stderr, moved } = await exportBothWays(`"\${RT[@]}" list-patients --from dicom ${peer}`, peer, "orthanc", during);
    assert.ok(sent, "storescu ran");
    assert.match(sent.stdout + sent.stderr, /Status: 0x0?124\)/, "storescu was answered with the refusal");
    assert.ok(stderr.includes(`Refused object ${strangerUid()} from "ORTHANC" at the C-MOVE receiver`), stderr);
    assert.ok(!treeObjects(moved).has(strangerUid()), "the stranger's object is not in the tree");
  });
});

describe("export-plan --workers 3 by C-MOVE ← dcmqrscp (DCMTK)", () => {
  let qr: DcmqrscpPeer;
  before(async () => {
    qr = await startDcmqrscp({ forking: true, moveDestinations: [{ aeTitle: "RTX", host: "127.0.0.1", port: movePort }] });
    const r = await runDcmtk("storescu", ["-aec", qr.aeTitle, "127.0.0.1", String(qr.port), ...files]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(() => qr?.stop());

  test("equals the one-worker tree hash for hash, each object under its own patient, the ledger done", async () => {
    // dcmqrscp matches no RT Plan Label: the plans come from the catalog, their DICOM from the peer.
    const list = `"\${RT[@]}" list-patients --from catalog --db 'sqlite:${catalog}' --vault '${vault}'`;
    const { stderr } = await exportBothWays(list, `--host 127.0.0.1 --port ${qr.port} --called-aet ${qr.aeTitle} --calling-aet RTX`, "dcmqrscp");
    assert.ok(!/Refused object/.test(stderr), stderr);
  });
});

describe("MoveReceiver routing", () => {
  test("by the data set's UIDs without a Move Originator (storescu), by Message ID with one; the rest refused", async () => {
    const root = join(dir, "routing");
    const refused: RefusedObject[] = [];
    const receiver = new MoveReceiver(join(root, "incoming"), { onRefused: (r) => refused.push(r) });
    const port = await freePort();
    await receiver.acquire({ aeTitle: "RTX", port, host: "127.0.0.1", allow: ["PEER"], keepReceived: 1 << 20 });
    try {
      // Two patients' CT series, asked for by two "workers" at once, one at SERIES and one at IMAGE level.
      const byPatient = new Map<string, { series: string; study: string; uids: string[]; paths: string[] }>();
      for (const f of files) {
        const ds = readDicomFile(f).dataset;
        if (ds.string(0x00080060) !== "CT") continue;
        const p = ds.string(0x00100020)!;
        const e = byPatient.get(p) ?? { series: ds.string(0x0020000e)!, study: ds.string(0x0020000d)!, uids: [], paths: [] };
        if (e.series !== ds.string(0x0020000e)) continue;
        e.uids.push(ds.string(0x00080018)!);
        e.paths.push(f);
        byPatient.set(p, e);
      }
      const [a, b] = [...byPatient.values()];
      const storeA = new ArrivalStore(join(root, "a"));
      const storeB = new ArrivalStore(join(root, "b"));
      const moveA = receiver.expect(storeA, identifier({ QueryRetrieveLevel: "SERIES", StudyInstanceUID: a.study, SeriesInstanceUID: a.series }), "RTX");
      const moveB = receiver.expect(storeB, identifier({ QueryRetrieveLevel: "IMAGE", StudyInstanceUID: b.study, SeriesInstanceUID: b.series, SOPInstanceUID: b.uids.join("\\") }), "RTX");
      assert.notEqual(moveA.messageId, moveB.messageId);
      // DCMTK storescu sends no Move Originator: both series mixed on one association, and a stranger.
      const r = await runDcmtk("storescu", ["-v", "--no-halt", "-aet", "PEER", "-aec", "RTX", "127.0.0.1", String(port), b.paths[0], a.paths[0], STRANGER, a.paths[1], b.paths[1]]);
      assert.match(r.stdout + r.stderr, /Status: 0x0?124\)/); // the stranger, told so
      // Ours with a Move Originator naming B's request: B's object goes to B; A's object to A (the
      // message ID does not make it B's: B did not ask for it).
      const sources = [b.paths[2], a.paths[2], b.paths[3]].map((f) => storeSourceFromFile(f));
      const assoc = await connect({ host: "127.0.0.1", port, callingAet: "PEER", calledAet: "RTX", contexts: storageContexts(sources) });
      try {
        const named = { moveOriginatorAet: "RTX", moveOriginatorMessageId: moveB.messageId };
        assert.equal((await store(assoc, sources[0], named)).status, 0);
        assert.equal((await store(assoc, sources[1], named)).status, 0);
        // Once B's request ended, its objects are nobody's.
        moveB.end();
        assert.equal((await store(assoc, sources[2], named)).status, 0x0124);
      } finally {
        await assoc.release();
      }
      moveA.end();
      await new Promise((r) => setImmediate(r));
      assert.deepEqual(storeA.all().map((o) => o.sopInstanceUid).sort(), a.uids.slice(0, 3).sort());
      assert.deepEqual(storeB.all().map((o) => o.sopInstanceUid).sort(), b.uids.slice(0, 3).sort());
      assert.deepEqual(refused.map((x) => x.sopInstanceUid), [strangerUid(), b.uids[3]]);
      assert.equal(receiver.refusedCount, 2);
    } finally {
      await receiver.release();
      receiver.close();
    }
  });
});
