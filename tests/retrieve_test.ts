import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateClinic, type ClinicManifest } from "../lib/fixtures/mod.ts";
import { FolderIndex } from "../lib/index/index.ts";
import { findMatches, selectInstances } from "../lib/qr/find.ts";
import { ArrivalStore } from "../lib/retrieve/arrivals.ts";
import type { ReceivedFile } from "../lib/net/association.ts";
import { type RetrieveTransport, retrievePlans } from "../lib/retrieve/planner.ts";
import { sha256File } from "../lib/fs/hash.ts";
import { placeObject } from "../lib/retrieve/output.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { main as retrieveMain } from "../commands/retrieve.ts";
import { retrieveRecords } from "../lib/retrieve/stage.ts";
import { ledgerItems, replacePaths, runLibraryStage } from "./_stage_compare.ts";
import { compareRows, runDcmdump } from "./_dcmdump.ts";
import { startQrScp } from "../lib/qr/scp.ts";
import { type DcmqrscpPeer, freePort, makeTlsCert, type OrthancPeer, runDcmtk, runMainCaptured, startDcmqrscp, startOrthanc } from "./_peers.ts";
import { mkdirSync } from "node:fs";
import { spawnSync } from "node:child_process";

const root = mkdtempSync(join(tmpdir(), "rtexport-retrieve-"));
const clinicDir = join(root, "clinic");
let manifest: ClinicManifest;
let index: FolderIndex;

before(async () => {
  manifest = await generateClinic({ out: clinicDir, patients: 2, slices: 4, size: 32 });
  index = await FolderIndex.open(clinicDir, { dbPath: join(root, "index.sqlite") });
  await index.indexFolder();
});
after(async () => {
  await index?.close();
  rmSync(root, { recursive: true, force: true });
});

/** Q/R over the real folder index, without a network: what the planner asks for, and nothing else, "arrives". */
function localTransport(arrivals: ArrivalStore, opts: { indexRtAttributes: boolean }): RetrieveTransport & { asked: string[] } {
  let n = 0;
  const asked: string[] = [];
  return {
    asked,
    async find(identifier) {
      const answers = await findMatches(index, identifier, "STUDY");
      if (!opts.indexRtAttributes) {
        // A peer like dcmqrscp: RT attributes and sequences unknown, returned empty or not at all.
        for (const a of answers) {
          a.delete("RTPlanLabel");
          a.delete("ApprovalStatus");
          a.delete("ReferencedRTPlanSequence");
        }
      }
      return answers;
    },
    async retrieve(identifier) {
      asked.push(`${identifier.string("QueryRetrieveLevel")} ${identifier.string("SOPInstanceUID") ?? identifier.string("SeriesInstanceUID")}`);
      const files = await selectInstances(index, identifier, "STUDY");
      for (const f of files) {
        const tmp = join(arrivals.dir, `incoming-${n++}`);
        copyFileSync(f.path, tmp);
        arrivals.accept({ path: tmp, sopClassUid: f.sopClassUid, sopInstanceUid: f.sopInstanceUid, transferSyntaxUid: f.transferSyntaxUid, size: f.bytes });
      }
      return { status: 0, completed: files.length, failed: 0, warning: 0 };
    },
  };
}

/**
 * What a plan's selective retrieval keeps: the plan, its structure set, the CT series, doses,
 * records and RT images, the registration relating the CT to the MR, and that MR series.
 */
function expectedUids(m: ClinicManifest, patient: number, label: string): string[] {
  const p = m.patients[patient];
  const plan = p.plans.find((x) => x.label === label)!;
  const series = p.studies.flatMap((s) => s.series);
  const ct = series.filter((s) => plan.imageSeries.some((i) => i.seriesUid === s.seriesUid)).flatMap((s) => s.instances.map((i) => i.sopInstanceUid));
  const registered = series.filter((s) => p.unreferenced.some((u) => u.seriesUid === s.seriesUid)).flatMap((s) => s.instances.map((i) => i.sopInstanceUid));
  return [
    plan.planUid, plan.structureSetUid, ...ct, ...plan.doses.map((d) => d.sopInstanceUid), ...plan.records.map((r) => r.sopInstanceUid),
    ...plan.rtImages.map((r) => r.sopInstanceUid), ...plan.registrations.map((r) => r.sopInstanceUid), ...registered,
  ].sort();
}

describe("retrievePlans (selective retrieval planner over the real index)", () => {
  for (const indexRtAttributes of [true, false]) {
    test(`only the selected plan's objects are kept (peer ${indexRtAttributes ? "indexes" : "does not index"} RT attributes)`, async () => {
      const arrivals = new ArrivalStore(join(root, `staging-${indexRtAttributes}`));
      const transport = localTransport(arrivals, { indexRtAttributes });
      const p = manifest.patients[0];
      const result = await retrievePlans(transport, arrivals, { patientId: p.patientId, planLabels: ["Plan1"] });
      const kept = result.objects.map((o) => o.object.sopInstanceUid).sort();
      assert.deepEqual(kept, expectedUids(manifest, 0, "Plan1"));
      assert.equal(result.summary.complete, true);
      assert.equal(result.summary.plans.length, 1);
      const plan = p.plans.find((x) => x.label === "Plan1")!;
      assert.deepEqual({ ...result.summary.plans[0], missing: result.summary.plans[0].missing.length }, {
        planUid: plan.planUid, label: "Plan1", approval: "APPROVED", expected: kept.length, arrived: kept.length, missing: 0,
      });
      // Never the whole study: no STUDY-level request; the series asked for whole are the plan's
      // CT and the MR the registration relates it to, nothing else.
      assert.ok(transport.asked.every((a) => a.startsWith("IMAGE") || a.startsWith("SERIES")));
      const plan1 = p.plans.find((x) => x.label === "Plan1")!;
      assert.deepEqual(transport.asked.filter((a) => a.startsWith("SERIES")).sort(), [
        ...plan1.imageSeries.map((s) => `SERIES ${s.seriesUid}`), ...p.unreferenced.map((u) => `SERIES ${u.seriesUid}`),
      ].sort());
      if (indexRtAttributes) assert.equal(result.summary.inspectedAndDropped, 0);
      else assert.ok(result.summary.inspectedAndDropped > 0); // other plans and their doses were read, then dropped
      // Dropped objects leave nothing behind in staging.
      assert.equal(readdirSync(arrivals.dir).length, kept.length);
      arrivals.cleanup();
    });
  }

  test("--only-approved selects approved plans; a label of unapproved plans is left out as such; a missing label is a gap", async () => {
    const arrivals = new ArrivalStore(join(root, "staging-approved"));
    const p = manifest.patients[0];
    const result = await retrievePlans(localTransport(arrivals, { indexRtAttributes: true }), arrivals, { patientId: p.patientId, onlyApproved: true, planLabels: ["Plan1", "Plan2_Alt", "NoSuchPlan"] });
    assert.deepEqual(result.summary.plans.map((x) => x.label), ["Plan1"]);
    assert.deepEqual(result.summary.missingLabels, ["NoSuchPlan"]);
    assert.deepEqual(result.summary.unapprovedLabels, ["Plan2_Alt"]); // the patient has it, not approved
    assert.equal(result.summary.complete, false);
    arrivals.cleanup();
  });

  test("objects that never arrive are reported per plan", async () => {
    const arrivals = new ArrivalStore(join(root, "staging-gaps"));
    const inner = localTransport(arrivals, { indexRtAttributes: true });
    const p = manifest.patients[1];
    const plan = p.plans.find((x) => x.label === "Plan1")!;
    const lostDose = plan.doses[0].sopInstanceUid;
    const transport: RetrieveTransport = {
      find: inner.find,
      async retrieve(identifier) {
        if (identifier.string("SOPInstanceUID") === lostDose) return { status: 0xa702, completed: 0, failed: 1, warning: 0 };
        return await inner.retrieve(identifier);
      },
    };
    const result = await retrievePlans(transport, arrivals, { patientId: p.patientId, planLabels: ["Plan1"] });
    assert.equal(result.summary.complete, false);
    const r = result.summary.plans[0];
    assert.equal(r.arrived, r.expected - 1);
    assert.deepEqual(r.missing, [{ kind: "RTDOSE", sopInstanceUid: lostDose, reason: "retrieve status 0xa702" }]);
    arrivals.cleanup();
  });

  test("placeObject writes the layout, hashes, and rewrites only PatientID/PatientName", async () => {
    const arrivals = new ArrivalStore(join(root, "staging-place"));
    const p = manifest.patients[0];
    const result = await retrievePlans(localTransport(arrivals, { indexRtAttributes: true }), arrivals, { patientId: p.patientId, planLabels: ["Plan1"] });
    const out = join(root, "out");
    const plan = result.objects.find((o) => o.object.modality === "RTPLAN")!;
    const source = readDicomFile(join(clinicDir, p.plans[0].path), { full: true });
    const rec = placeObject(plan.object, out, plan.planUids[0], { patientId: "ANON1", patientName: "Anon^One" });
    assert.equal(rec.path, join(out, "ANON1", plan.object.studyUid, plan.object.seriesUid, `${plan.object.sopInstanceUid}.dcm`));
    assert.match(rec.sha256!, /^[0-9a-f]{64}$/);
    assert.equal(rec.planUid, p.plans[0].planUid);
    const copy = readDicomFile(rec.path, { full: true });
    assert.equal(copy.dataset.string("PatientID"), "ANON1");
    assert.equal(copy.dataset.string("PatientName"), "Anon^One");
    for (const el of source.dataset.sorted()) {
      if (el.tag === 0x00100010 || el.tag === 0x00100020) continue;
      assert.ok(copy.dataset.has(el.tag), `element ${el.tag.toString(16)} kept`);
      if (el.value) assert.deepEqual(copy.dataset.get(el.tag)!.value, el.value);
    }
    assert.equal(plan.object.path, rec.path);
    arrivals.cleanup();
  });
});

// ---- interop: retrieve ← real Q/R peers ----

function dicomFilesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".dcm"))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
}

function sourceOf(uid: string): string {
  for (const p of manifest.patients) {
    for (const st of p.studies) for (const se of st.series) for (const i of se.instances) if (i.sopInstanceUid === uid) return join(clinicDir, i.path);
  }
  throw new Error(`not in the clinic: ${uid}`);
}

/** Runs `retrieve` and checks: exit 0, exactly the plan's objects written, each identical to its source. */
async function retrieveAndCheck(peer: { port: number; aeTitle: string }, extra: string[], out: string, patient = 0, label = "Plan1") {
  const p = manifest.patients[patient];
  const r = await runMainCaptured(retrieveMain, [
    "--host", "127.0.0.1", "--port", String(peer.port), "--aec", peer.aeTitle, "--aet", "RTX",
    "--patient-id", p.patientId, "--plan", label, "--out", out, "--dimse-timeout", "20", ...extra,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const files = r.records.filter((x) => x.type === "file");
  const want = expectedUids(manifest, patient, label);
  assert.deepEqual(files.map((f) => f.sopInstanceUid).sort(), want);
  // Only those files are on disk: nothing else of the patient arrived or was left behind.
  const onDisk = dicomFilesUnder(out);
  assert.deepEqual(onDisk.map((f) => readDicomFile(f).dataset.string("SOPInstanceUID")).sort(), want);
  assert.deepEqual(readdirSync(out).filter((n) => n.startsWith(".rtexport-staging")), []); // staging removed
  assert.ok(existsSync(join(out, ".rtexport", "ledger.sqlite")), "the ledger records what arrived");
  const summary = r.records.find((x) => x.type === "retrieve-summary")!;
  assert.equal(summary.complete, true);
  assert.equal(summary.plans[0].expected, want.length);
  assert.equal(summary.plans[0].arrived, want.length);
  const plan = p.plans.find((x) => x.label === label)!;
  for (const f of files) {
    assert.equal(f.planUid, plan.planUid);
    assert.equal(f.sha256, sha256File(f.path));
    assert.equal(f.bytes, readFileSync(f.path).length);
  }
  assert.match(r.stderr, new RegExp(`plan "${label}" \\(APPROVED\\): ${want.length} of ${want.length} expected objects arrived`));
  return { files, summary, stderr: r.stderr };
}

/**
 * Each file has the data set of its source (dcmdump, every element). A peer may send an object
 * in another transfer syntax than it was stored in (Orthanc sends the clinic's implicit VR MR
 * slice as explicit VR little endian by C-GET, its unknown private sequence as UN): such a file
 * is compared with its source converted by DCMTK's dcmconv to that syntax. Private elements of
 * an implicit VR source are left out either way (their VR is the peer's guess: Orthanc's C-MOVE
 * re-encodes the undefined-length private sequence as one UN value); pixel data byte for byte.
 */
function assertIdentical(files: Record<string, unknown>[]) {
  const flags: Record<string, string> = { "1.2.840.10008.1.2": "+ti", "1.2.840.10008.1.2.1": "+te", "1.2.840.10008.1.2.2": "+tb" };
  for (const f of files) {
    const path = String(f.path);
    let source = sourceOf(String(f.sopInstanceUid));
    const got = readDicomFile(path).transferSyntaxUid;
    const sourceTs = readDicomFile(source).transferSyntaxUid;
    const transcoded = got !== sourceTs;
    const loosePrivate = transcoded || sourceTs === "1.2.840.10008.1.2";
    if (transcoded) {
      assert.ok(flags[got], `${path}: sent as ${got}`);
      const converted = join(root, `converted-${f.sopInstanceUid}.dcm`);
      const r = spawnSync("dcmconv", [flags[got], source, converted]);
      assert.equal(r.status, 0, String(r.stderr));
      source = converted;
    }
    const pixels = (file: string) => readDicomFile(file, { full: true }).dataset.get(0x7fe00010)?.value;
    assert.deepEqual(pixels(path), pixels(source), `${path}: pixel data`);
    const diff = compareRows(runDcmdump(source).dataset, runDcmdump(path).dataset)
      .filter((d) => !loosePrivate || !/^\([0-9A-F]{3}[13579BDF],/i.test(d));
    assert.deepEqual(diff, [], path);
  }
}

describe("ArrivalStore with in-memory copies (ReceivedFile.bytes)", () => {
  test("hashes and parses each object from its copy, gives every copy back exactly once (replaced and damaged objects too), and reads back what has none", async () => {
    const store = new ArrivalStore(join(root, "arrivals-copies"), { hash: true });
    const files = readdirSync(clinicDir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && e.name.endsWith(".dcm")).map((e) => join(e.parentPath, e.name)).sort();
    // RT objects (no Pixel Data) whose header runs past the first 4 KB: parsed from a longer prefix.
    assert.ok(files.some((f) => !readDicomFile(f).dataset.get(0x7fe00010) && statSync(f).size > 4096), "an RT object over 4 KB");
    const released = new Map<string, number>();
    let n = 0;
    const arrive = (src: string, uid: string, opts: { copy: boolean; bytes?: Uint8Array }) => {
      const path = join(store.dir, `in-${n++}.part`);
      const bytes = opts.bytes ?? new Uint8Array(readFileSync(src));
      if (opts.bytes) writeFileSync(path, opts.bytes);
      else copyFileSync(src, path);
      const file: ReceivedFile = { path, sopClassUid: "", sopInstanceUid: uid, transferSyntaxUid: "", size: bytes.length };
      if (opts.copy) {
        file.bytes = bytes;
        file.release = () => {
          released.set(path, (released.get(path) ?? 0) + 1);
          file.bytes = undefined;
        };
      }
      return store.accept(file);
    };
    const uids = files.map((f) => readDicomFile(f).dataset.string(0x00080018)!);
    for (const [i, f] of files.entries()) arrive(f, uids[i], { copy: i % 5 !== 4 }); // every fifth has no copy
    arrive(files[1], uids[1], { copy: true }); // the same object again: it replaces the first copy
    arrive(files[0], "2.25.999", { copy: true, bytes: new TextEncoder().encode("not DICOM at all") });
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    const withCopy = files.filter((_, i) => i % 5 !== 4).length + 2;
    assert.equal(released.size, withCopy, "every copy given back");
    assert.ok([...released.values()].every((k) => k === 1), "each exactly once");
    for (const [i, f] of files.entries()) {
      const o = store.get(uids[i])!;
      assert.ok(o, uids[i]);
      assert.equal(o.sha256, sha256File(f), `sha256 of ${f}`);
      assert.equal(o.seriesUid, readDicomFile(f).dataset.string(0x0020000e), `series of ${f}`);
      assert.deepEqual([...o.dataset.elements.keys()], [...readDicomFile(f).dataset.elements.keys()], `header of ${f}`);
    }
    assert.equal(store.get("2.25.999"), undefined, "the damaged object is not kept");
    assert.equal(store.rejected.length, 1);
    store.cleanup();
  });
});

describe("retrieve ← Orthanc", () => {
  let orthanc: OrthancPeer;
  let movePort: number;
  before(async () => {
    movePort = await freePort();
    orthanc = await startOrthanc({ modalities: [{ aeTitle: "RTX", host: "127.0.0.1", port: movePort }] });
    for (const f of dicomFilesUnder(clinicDir)) {
      const r = await fetch(`http://127.0.0.1:${orthanc.httpPort}/instances`, { method: "POST", body: readFileSync(f) });
      assert.ok(r.ok, `upload ${f}: HTTP ${r.status}`);
      await r.body?.cancel();
    }
    const n = (await orthanc.rest("/instances")).length;
    assert.equal(n, manifest.files);
  });
  after(async () => {
    await orthanc?.stop();
  });

  test("C-MOVE: only Plan1's plan, structure set, CT series, doses, records and RT image arrive, unchanged", async () => {
    const out = join(root, "orthanc-move");
    const { files } = await retrieveAndCheck(orthanc, ["--move-port", String(movePort), "--move-host", "127.0.0.1"], out);
    assertIdentical(files);
  });

  test("C-GET: the same selection on the query association, unchanged", async () => {
    const out = join(root, "orthanc-get");
    const { files } = await retrieveAndCheck(orthanc, ["--get"], out, 1, "Tomo_HN");
    assertIdentical(files);
  });

  test("--series: a whole series by UID (the MR no plan references), counted against NumberOfSeriesRelatedInstances", async () => {
    const p = manifest.patients[0];
    const mr = p.unreferenced.find((u) => u.modality === "MR")!;
    const out = join(root, "orthanc-series");
    const r = await runMainCaptured(retrieveMain, [
      "--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle, "--aet", "RTX", "--get",
      "--patient-id", p.patientId, "--series", mr.seriesUid, "--out", out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const files = r.records.filter((x) => x.type === "file");
    assert.equal(files.length, mr.count);
    assert.ok(files.every((f) => f.seriesUid === mr.seriesUid && f.modality === "MR"));
    const summary = r.records.find((x) => x.type === "retrieve-summary")!;
    assert.deepEqual(summary.series, [{ seriesUid: mr.seriesUid, studyUid: mr.studyUid, modality: "MR", expected: mr.count, arrived: mr.count, missing: [] }]);
    assertIdentical(files);
    const bad = await runMainCaptured(retrieveMain, [
      "--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle, "--aet", "RTX", "--get",
      "--patient-id", p.patientId, "--series", "1.2.3.4.5.404", "--out", join(root, "orthanc-series-404"),
    ]);
    assert.equal(bad.code, 3);
    // The gap report's headline, then the gap as a failed item (counted: 1 failed).
    assert.match(bad.stderr, new RegExp(`series 1\\.2\\.3\\.4\\.5\\.404: 0 instances arrived\\nretrieve: Cannot retrieve series 1\\.2\\.3\\.4\\.5\\.404: series not found for patient "${p.patientId}" \\(C-FIND\\)\\n`));
    assert.match(bad.stderr, /0 objects done, 1 failed/);
  });

  test("the library stage and the command give the same records and ledger rows (C-GET, a plan and a missing label)", async () => {
    const p = manifest.patients[0];
    const cliOut = join(root, "orthanc-same-cli");
    const libOut = join(root, "orthanc-same-lib");
    const cli = await runMainCaptured(retrieveMain, [
      "--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle, "--aet", "RTX", "--get",
      "--patient-id", p.patientId, "--plan", "Plan1", "--plan", "NoSuchPlan", "--out", cliOut,
    ]);
    assert.equal(cli.code, 3, cli.stderr);
    const peer = { host: "127.0.0.1", port: orthanc.port, callingAet: "RTX", calledAet: orthanc.aeTitle };
    const lib = await runLibraryStage(retrieveRecords, [], {
      peer, patientId: p.patientId, plans: ["Plan1", "NoSuchPlan"], get: true, out: libOut,
    }, `sqlite:${join(libOut, ".rtexport", "ledger.sqlite")}`, "retrieve");
    const files = lib.records.filter((r) => r.type === "file");
    assert.deepEqual(files.map((f) => f.sopInstanceUid).sort(), expectedUids(manifest, 0, "Plan1"));
    assert.equal(lib.records.at(-1)!.type, "retrieve-summary");
    assert.deepEqual(replacePaths(lib.records, [[libOut, "OUT"]]), replacePaths(cli.records, [[cliOut, "OUT"]]));
    const rows = await ledgerItems(`sqlite:${join(libOut, ".rtexport", "ledger.sqlite")}`);
    assert.equal(rows.filter((r) => r.kind === "file" && r.status === "done").length, files.length);
    assert.deepEqual(rows.filter((r) => r.kind === "retrieval"), [{
      kind: "retrieval", key: `${p.patientId}|label|NoSuchPlan`, status: "failed", patient_id: p.patientId, plan_key: null,
      source: `dicom:${orthanc.aeTitle}@127.0.0.1:${orthanc.port}`, dest: null, bytes: null, sha256: null,
      error: `no plan labelled "NoSuchPlan" found for patient "${p.patientId}"`,
    }]);
    assert.deepEqual(replacePaths(rows, [[libOut, "OUT"]]), replacePaths(await ledgerItems(`sqlite:${join(cliOut, ".rtexport", "ledger.sqlite")}`), [[cliOut, "OUT"]]));
    // The events count what the summary says: every object written done, the missing label failed.
    const finished = lib.events.at(-1)!;
    assert.ok(finished.type === "finished");
    assert.deepEqual([finished.counts.done, finished.counts.failed], [files.length, 1]);
    assert.match(cli.stderr, new RegExp(`${files.length} objects done, 1 failed`));
  });

  test("a label the patient does not have: exit 3 and the gap in the summary", async () => {
    const r = await runMainCaptured(retrieveMain, [
      "--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle, "--aet", "RTX", "--get",
      "--patient-id", manifest.patients[0].patientId, "--plan", "NoSuchPlan", "--out", join(root, "orthanc-none"),
    ]);
    assert.equal(r.code, 3, r.stderr);
    const summary = r.records.find((x) => x.type === "retrieve-summary")!;
    assert.deepEqual(summary.missingLabels, ["NoSuchPlan"]);
    assert.equal(r.records.filter((x) => x.type === "file").length, 0);
    assert.match(r.stderr, /no plan labelled "NoSuchPlan" found/);
  });
});

/**
 * dcmqrscp in its default (forking) mode: tests/_peers.ts starts it with --single-process, in
 * which DCMTK 3.6.7 here segfaults when the first association ends (measured: echoscu twice →
 * the second is refused). Our own temporary config, our receiving AE in its host table.
 */
describe("retrieve ← dcmqrscp (DCMTK)", () => {
  let qr: DcmqrscpPeer;
  let movePort: number;
  before(async () => {
    movePort = await freePort();
    qr = await startDcmqrscp({ forking: true, moveDestinations: [{ aeTitle: "RTX", host: "127.0.0.1", port: movePort }] });
    const r = await runDcmtk("storescu", ["-aec", qr.aeTitle, "127.0.0.1", String(qr.port), ...dicomFilesUnder(clinicDir)]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await qr?.stop();
  });

  test("C-MOVE from a peer that does not index RT attributes: plans are read to select them; only Plan1's objects are kept", async () => {
    const out = join(root, "dcmqrscp-move");
    const { files, summary } = await retrieveAndCheck(qr, ["--move-port", String(movePort), "--move-host", "127.0.0.1"], out);
    assert.ok(summary.inspectedAndDropped > 0);
    assertIdentical(files);
  });

  test("--new-patient-id/--new-patient-name rewrite only those two elements", async () => {
    const out = join(root, "dcmqrscp-rename");
    const p = manifest.patients[1];
    const r = await runMainCaptured(retrieveMain, [
      "--host", "127.0.0.1", "--port", String(qr.port), "--aec", qr.aeTitle, "--aet", "RTX", "--move-port", String(movePort),
      "--move-host", "127.0.0.1", "--patient-id", p.patientId, "--plan", "CK_Lung", "--out", out,
      "--new-patient-id", "RES001", "--new-patient-name", "Research^One",
    ]);
    assert.equal(r.code, 0, r.stderr);
    const files = r.records.filter((x) => x.type === "file");
    assert.deepEqual(files.map((f) => f.sopInstanceUid).sort(), expectedUids(manifest, 1, "CK_Lung"));
    for (const f of files) {
      assert.equal(f.patientId, "RES001");
      assert.ok(f.path.startsWith(join(out, "RES001")));
      const diff = compareRows(runDcmdump(sourceOf(f.sopInstanceUid), { utf8: true }).dataset, runDcmdump(f.path, { utf8: true }).dataset);
      assert.deepEqual(diff.filter((d) => !/\(0010,00[12]0\)/.test(d)), [], f.path);
      const ds = readDicomFile(f.path).dataset;
      assert.equal(ds.string("PatientID"), "RES001");
      assert.equal(ds.string("PatientName"), "Research^One");
    }
  });
});

describe("retrieve ← serve (our own node) over TLS", () => {
  test("C-GET with --tls --ca: the plan's objects arrive; without --ca the certificate is refused", async () => {
    const certDir = join(root, "tls");
    mkdirSync(certDir, { recursive: true });
    const tls = await makeTlsCert(certDir);
    const node = await startQrScp({ dir: join(root, "served-tls"), aeTitle: "RTSERVE", host: "127.0.0.1", port: 0, allow: ["RTX"], tls: { cert: tls.cert, key: tls.key } });
    try {
      for (const f of dicomFilesUnder(clinicDir)) copyFileSync(f, join(node.index.dir, `${readDicomFile(f).dataset.string("SOPInstanceUID")}.dcm`));
      await node.index.indexFolder();
      const out = join(root, "serve-tls");
      const { files } = await retrieveAndCheck({ port: node.port, aeTitle: "RTSERVE" }, ["--get", "--tls", "--ca", tls.certPath], out, 1, "Plan1");
      assertIdentical(files);
      const r = await runMainCaptured(retrieveMain, [
        "--host", "127.0.0.1", "--port", String(node.port), "--aec", "RTSERVE", "--aet", "RTX", "--get", "--tls",
        "--patient-id", manifest.patients[1].patientId, "--out", join(root, "serve-tls-untrusted"),
      ]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /TLS|certificate/i);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    } finally {
      await node.close();
    }
  });
});

describe("retrieve faults", () => {
  test("peer down: exit 1, one line naming the peer; rejected association: the reason", async () => {
    const port = await freePort();
    const down = await runMainCaptured(retrieveMain, [
      "--host", "127.0.0.1", "--port", String(port), "--aec", "NOBODY", "--get", "--patient-id", "X", "--retries", "0", "--out", join(root, "down"),
    ]);
    assert.equal(down.code, 1);
    assert.equal(down.stderr.trim().split("\n").length, 1, down.stderr);
    assert.match(down.stderr, new RegExp(`127\\.0\\.0\\.1:${port}.*connection refused`, "i"));
    const node = await startQrScp({ dir: join(root, "served-reject"), aeTitle: "RTSERVE", host: "127.0.0.1", port: 0, allowedCallingAets: ["FRIEND"] });
    try {
      const rejected = await runMainCaptured(retrieveMain, [
        "--host", "127.0.0.1", "--port", String(node.port), "--aec", "RTSERVE", "--aet", "STRANGER", "--get", "--patient-id", "X", "--out", join(root, "rejected"),
      ]);
      assert.equal(rejected.code, 1);
      assert.match(rejected.stderr, /rejected.*calling AE title not recognized/i);
      assert.doesNotMatch(rejected.stderr, /\n\s+at /);
      // A patient the peer does not have: nothing selected, exit 3, nothing written.
      const none = await runMainCaptured(retrieveMain, [
        "--host", "127.0.0.1", "--port", String(node.port), "--aec", "RTSERVE", "--aet", "FRIEND", "--get", "--patient-id", "NOBODY", "--out", join(root, "nobody"),
      ]);
      assert.equal(none.code, 3, none.stderr);
      assert.match(none.stderr, /nothing found for patient "NOBODY" \(C-FIND\)/);
      assert.deepEqual(dicomFilesUnder(join(root, "nobody")), []);
    } finally {
      await node.close();
    }
  });
});
