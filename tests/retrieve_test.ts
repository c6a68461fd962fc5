import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateClinic, type ClinicManifest } from "../lib/fixtures/mod.ts";
import { FolderIndex } from "../lib/index/index.ts";
import { findMatches, selectInstances } from "../lib/qr/find.ts";
import { ArrivalStore } from "../lib/retrieve/arrivals.ts";
import { type RetrieveTransport, retrievePlans } from "../lib/retrieve/planner.ts";
import { placeObject } from "../lib/retrieve/output.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";

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

function expectedUids(m: ClinicManifest, patient: number, label: string): string[] {
  const p = m.patients[patient];
  const plan = p.plans.find((x) => x.label === label)!;
  const ct = p.studies.flatMap((s) => s.series).filter((s) => plan.imageSeries.some((i) => i.seriesUid === s.seriesUid)).flatMap((s) => s.instances.map((i) => i.sopInstanceUid));
  return [plan.planUid, plan.structureSetUid, ...ct, ...plan.doses.map((d) => d.sopInstanceUid), ...plan.records.map((r) => r.sopInstanceUid), ...plan.rtImages.map((r) => r.sopInstanceUid)].sort();
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
      // Never the whole study: no STUDY-level request, and the MR/REG series are never asked for.
      assert.ok(transport.asked.every((a) => a.startsWith("IMAGE") || a.startsWith("SERIES")));
      const mr = p.unreferenced.map((u) => u.seriesUid);
      assert.ok(!transport.asked.some((a) => mr.some((u) => a.endsWith(u))));
      if (indexRtAttributes) assert.equal(result.summary.inspectedAndDropped, 0);
      else assert.ok(result.summary.inspectedAndDropped > 0); // other plans and their doses were read, then dropped
      // Dropped objects leave nothing behind in staging.
      assert.equal(readdirSync(arrivals.dir).length, kept.length);
      arrivals.cleanup();
    });
  }

  test("--only-approved selects approved plans; a missing label is a gap", async () => {
    const arrivals = new ArrivalStore(join(root, "staging-approved"));
    const p = manifest.patients[0];
    const result = await retrievePlans(localTransport(arrivals, { indexRtAttributes: true }), arrivals, { patientId: p.patientId, onlyApproved: true, planLabels: ["Plan1", "Plan2_Alt", "NoSuchPlan"] });
    assert.deepEqual(result.summary.plans.map((x) => x.label), ["Plan1"]);
    assert.deepEqual(result.summary.missingLabels, ["Plan2_Alt", "NoSuchPlan"]);
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
    assert.equal(existsSync(plan.object.path), false);
    arrivals.cleanup();
  });
});
