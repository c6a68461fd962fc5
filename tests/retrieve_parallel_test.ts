// retrieve --parallel N: a series split over N associations (IMAGE-level requests with lists of
// SOP Instance UIDs), against Orthanc (C-GET and C-MOVE), DCMTK's dcmqrscp (C-MOVE) and our serve.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateClinic, type ClinicManifest } from "../lib/fixtures/mod.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { type QrScpEvent, startQrScp } from "../lib/qr/scp.ts";
import { createScp, storeSourceFromFile } from "../lib/net/mod.ts";
import { identifier } from "../lib/qr/identifier.ts";
import { chunked, PARALLEL_MIN_PER_ASSOCIATION, splitEvenly, UIDS_PER_REQUEST } from "../lib/retrieve/session.ts";
import { main as retrieveMain } from "../commands/retrieve.ts";
import { compareRows, runDcmdump } from "./_dcmdump.ts";
import { type DcmqrscpPeer, freePort, type OrthancPeer, runDcmtk, runMainCaptured, startDcmqrscp, startOrthanc } from "./_peers.ts";

const root = mkdtempSync(join(tmpdir(), "rtexport-retrieve-parallel-"));
const clinicDir = join(root, "clinic");
const SLICES = 40;
let manifest: ClinicManifest;
let ct: { studyUid: string; seriesUid: string; instances: { sopInstanceUid: string; path: string }[] };
let files: string[];

before(async () => {
  manifest = await generateClinic({ out: clinicDir, patients: 1, slices: SLICES, size: 16 });
  const p = manifest.patients[0];
  const st = p.studies.find((s) => s.series.some((x) => x.modality === "CT"))!;
  const se = st.series.find((x) => x.modality === "CT")!;
  ct = { studyUid: st.studyUid, seriesUid: se.seriesUid, instances: se.instances };
  files = p.studies.flatMap((s) => s.series.flatMap((x) => x.instances.map((i) => join(clinicDir, i.path))));
  assert.ok(SLICES >= 4 * PARALLEL_MIN_PER_ASSOCIATION, "the series is large enough to be split in four");
});
after(() => rmSync(root, { recursive: true, force: true }));

/** Runs retrieve --series CT --parallel n; checks every instance arrived once, unchanged (dcmdump, a sample), and the summary is complete. */
async function retrieveSeries(peer: { port: number; aeTitle: string }, extra: string[], out: string, n: number) {
  const r = await runMainCaptured(retrieveMain, [
    "--host", "127.0.0.1", "--port", String(peer.port), "--aec", peer.aeTitle, "--aet", "RTX",
    "--patient-id", manifest.patients[0].patientId, "--series", ct.seriesUid, "--parallel", String(n), "--out", out, ...extra,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const got = r.records.filter((x) => x.type === "file");
  assert.deepEqual(got.map((f) => f.sopInstanceUid).sort(), ct.instances.map((i) => i.sopInstanceUid).sort());
  const summary = r.records.find((x) => x.type === "retrieve-summary")!;
  assert.equal(summary.complete, true);
  assert.deepEqual(summary.series[0].missing, []);
  assert.equal(summary.series[0].arrived, SLICES);
  const source = new Map(ct.instances.map((i) => [i.sopInstanceUid, join(clinicDir, i.path)]));
  for (const f of got.filter((_, i) => i % 9 === 0)) {
    assert.deepEqual(compareRows(runDcmdump(source.get(String(f.sopInstanceUid))!).dataset, runDcmdump(String(f.path)).dataset), [], String(f.path));
  }
  return { r, got };
}

describe("retrieve --parallel ← Orthanc", () => {
  let orthanc: OrthancPeer;
  let movePort: number;
  before(async () => {
    movePort = await freePort();
    orthanc = await startOrthanc({ modalities: [{ aeTitle: "RTX", host: "127.0.0.1", port: movePort }] });
    const r = await runDcmtk("storescu", ["-aec", orthanc.aeTitle, "127.0.0.1", String(orthanc.port), ...files]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await orthanc?.stop();
  });

  test("C-GET --parallel 3: the series arrives whole and unchanged", async () => {
    await retrieveSeries(orthanc, ["--get"], join(root, "orthanc-get"), 3);
  });

  test("C-MOVE --parallel 2 --plan: the plan's series is split, the plan's RT objects come as before", async () => {
    const out = join(root, "orthanc-move-plan");
    const r = await runMainCaptured(retrieveMain, [
      "--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle, "--aet", "RTX",
      "--move-port", String(movePort), "--move-host", "127.0.0.1",
      "--patient-id", manifest.patients[0].patientId, "--plan", "Plan1", "--parallel", "2", "--out", out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const got = r.records.filter((x) => x.type === "file");
    const plan = manifest.patients[0].plans.find((p) => p.label === "Plan1")!;
    const uids = new Set(got.map((f) => f.sopInstanceUid));
    for (const i of ct.instances) assert.ok(uids.has(i.sopInstanceUid), `CT ${i.sopInstanceUid} arrived`);
    assert.ok(uids.has(plan.planUid) && uids.has(plan.structureSetUid));
    assert.equal(r.records.find((x) => x.type === "retrieve-summary")!.complete, true);
  });
});

describe("retrieve --parallel ← serve (our own node)", () => {
  test("C-GET --parallel 4 opens four associations, each asking for a quarter of the instances", async () => {
    const events: QrScpEvent[] = [];
    const node = await startQrScp({ dir: join(root, "served"), aeTitle: "RTSERVE", host: "127.0.0.1", port: 0, allow: ["RTX@127.0.0.1"], onEvent: (e) => events.push(e) });
    try {
      for (const f of files) copyFileSync(f, join(node.index.dir, `${readDicomFile(f).dataset.string("SOPInstanceUID")}.dcm`));
      await node.index.indexFolder();
      const { r } = await retrieveSeries({ port: node.port, aeTitle: "RTSERVE" }, ["--get"], join(root, "serve-get"), 4);
      // The planner's study and series look-ups (the latter gives the series' count), then the
      // listing of its instances; one request per association.
      assert.deepEqual(r.records.find((x) => x.type === "retrieve-summary")!.requests, { find: 3, retrieve: 4 });
      assert.equal(events.filter((e) => e.type === "association").length, 4, "four associations");
      assert.deepEqual(events.filter((e) => e.type === "get").map((e) => (e as { instances: number }).instances), [10, 10, 10, 10]);
      // Uneven: 40 over 3 associations.
      events.length = 0;
      await retrieveSeries({ port: node.port, aeTitle: "RTSERVE" }, ["--get"], join(root, "serve-get-3"), 3);
      assert.deepEqual(events.filter((e) => e.type === "get").map((e) => (e as { instances: number }).instances).sort(), [13, 13, 14]);
    } finally {
      await node.close();
    }
  });
});

describe("retrieve --parallel ← a peer that reads a UID list literally", () => {
  test("its list requests bring nothing (Success, 0 sub-operations): the whole series comes in one request", async () => {
    const p = manifest.patients[0];
    const byUid = new Map(ct.instances.map((i) => [i.sopInstanceUid, join(clinicDir, i.path)]));
    const gets: string[] = [];
    const scp = await createScp({
      aeTitle: "LITERAL", host: "127.0.0.1", port: 0,
      handlers: {
        *find(rq) {
          const id = rq.identifier;
          if (rq.level === "STUDY") yield identifier({ QueryRetrieveLevel: "STUDY", PatientID: p.patientId, StudyInstanceUID: ct.studyUid });
          if (rq.level === "SERIES" && id.string("SeriesInstanceUID") === ct.seriesUid) {
            yield identifier({ QueryRetrieveLevel: "SERIES", StudyInstanceUID: ct.studyUid, SeriesInstanceUID: ct.seriesUid, Modality: "CT", NumberOfSeriesRelatedInstances: String(SLICES) });
          }
          if (rq.level === "IMAGE") {
            for (const uid of byUid.keys()) yield identifier({ QueryRetrieveLevel: "IMAGE", StudyInstanceUID: ct.studyUid, SeriesInstanceUID: ct.seriesUid, SOPInstanceUID: uid });
          }
        },
        get(rq) {
          const uids = rq.identifier.strings("SOPInstanceUID");
          gets.push(`${rq.level} ${uids.length > 1 ? "list" : uids.length ? "one" : "series"}`);
          if (rq.level === "SERIES") return { instances: [...byUid.values()].map(storeSourceFromFile) };
          // Matches the list as one value: no instance has that UID.
          const literal = uids.join("\\");
          return { instances: byUid.has(literal) ? [storeSourceFromFile(byUid.get(literal)!)] : [] };
        },
      },
    });
    try {
      await retrieveSeries({ port: scp.port, aeTitle: "LITERAL" }, ["--get"], join(root, "literal-get"), 2);
      assert.deepEqual(gets, ["IMAGE list", "IMAGE list", "SERIES series"]);
    } finally {
      await scp.close();
    }
  });
});

describe("splitting a series", () => {
  test("splitEvenly: contiguous parts, sizes within one, none empty, nothing lost", () => {
    for (let n = 0; n <= 120; n++) {
      const items = Array.from({ length: n }, (_, i) => i);
      for (let k = 1; k <= 16; k++) {
        const parts = splitEvenly(items, k);
        assert.deepEqual(parts.flat(), items, `n=${n} k=${k}`);
        assert.equal(parts.length, Math.max(1, Math.min(k, n)));
        if (n > 0) {
          const sizes = parts.map((p) => p.length);
          assert.ok(Math.min(...sizes) >= 1 && Math.max(...sizes) - Math.min(...sizes) <= 1, `n=${n} k=${k}: ${sizes}`);
        }
      }
    }
    // The case that left a part empty with ceil-sized parts: 81 over 10.
    assert.deepEqual(splitEvenly(Array.from({ length: 81 }, (_, i) => i), 10).map((p) => p.length), [8, 8, 8, 8, 8, 8, 8, 8, 8, 9]);
  });
  test("chunked: consecutive chunks of at most the size", () => {
    assert.deepEqual(chunked([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
    assert.deepEqual(chunked([], 3), []);
    assert.equal(chunked(Array.from({ length: 1000 }), UIDS_PER_REQUEST).length, 4);
  });
});

describe("retrieve --parallel ← dcmqrscp (DCMTK)", () => {
  let qr: DcmqrscpPeer;
  let movePort: number;
  before(async () => {
    movePort = await freePort();
    qr = await startDcmqrscp({ forking: true, moveDestinations: [{ aeTitle: "RTX", host: "127.0.0.1", port: movePort }] });
    const r = await runDcmtk("storescu", ["-aec", qr.aeTitle, "127.0.0.1", String(qr.port), ...files]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => {
    await qr?.stop();
  });

  test("C-MOVE --parallel 2: the series arrives whole and unchanged", async () => {
    await retrieveSeries(qr, ["--move-port", String(movePort), "--move-host", "127.0.0.1"], join(root, "dcmqrscp-move"), 2);
  });
});
