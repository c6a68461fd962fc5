// show never mixes patients (issue 12 item 5): objects are keyed by (patient, UID), the same UID
// with other content is a warning naming both files, and objects are classified by SOP class
// (Modality only as a fallback). Every file here is written by DCMTK's dump2dcm, not by rtexport.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { showRecords } from "../lib/rt/show.ts";
import type { ShowPlanRecord, UnconnectedRecord } from "../lib/rt/tree.ts";
import type { StageEvent } from "../lib/stage/stage.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { records, runCliSync, sh } from "./_run.ts";

const PLAN = "1.2.840.10008.5.1.4.1.1.481.5";
const DOSE = "1.2.840.10008.5.1.4.1.1.481.2";
const STRUCT = "1.2.840.10008.5.1.4.1.1.481.3";
const U = "1.2.826.0.1.3680043.9.7778";
const tmp = mkdtempSync(join(tmpdir(), "rtexport-show-patients-"));
let n = 0;

/** dcmdump-style lines of a one-item sequence referencing `uid` of class `cls`. */
function ref(seqTag: string, cls: string, uid: string): string[] {
  return [
    `(${seqTag}) SQ (Sequence with undefined length)`, "(fffe,e000) na (Item with undefined length)",
    `(0008,1150) UI [${cls}]`, `(0008,1155) UI [${uid}]`, "(fffe,e00d) na (ItemDelimitationItem)", "(fffe,e0dd) na (SequenceDelimitationItem)",
  ];
}

/** Writes one object with DCMTK dump2dcm into `dir` and returns its path. */
function dcm(dir: string, o: { cls: string; uid: string; modality: string; patient: string; series: string; extra?: string[] }): string {
  mkdirSync(dir, { recursive: true });
  const lines = [
    `(0008,0016) UI [${o.cls}]`, `(0008,0018) UI [${o.uid}]`, `(0008,0060) CS [${o.modality}]`,
    `(0010,0010) PN [Patient^${o.patient}]`, `(0010,0020) LO [${o.patient}]`,
    `(0020,000d) UI [${U}.1]`, `(0020,000e) UI [${o.series}]`, ...(o.extra ?? []),
  ];
  const txt = join(tmp, `${++n}.dump`);
  const out = join(dir, `${n}.dcm`);
  writeFileSync(txt, lines.join("\n") + "\n");
  execFileSync("dump2dcm", ["--write-xfer-little", txt, out]);
  return out;
}

const plan = (dir: string, patient: string, uid: string, label: string, ss?: string) =>
  dcm(dir, {
    cls: PLAN, uid, modality: "RTPLAN", patient, series: `${U}.2.${patient}`,
    extra: [`(300a,0002) SH [${label}]`, ...(ss ? ref("300c,0060", STRUCT, ss) : [])],
  });
const dose = (dir: string, patient: string, uid: string, series: string, planUid: string) =>
  dcm(dir, { cls: DOSE, uid, modality: "RTDOSE", patient, series, extra: [`(3004,000a) CS [PLAN]`, ...ref("300c,0002", PLAN, planUid)] });

async function show(paths: string[]) {
  const warnings: string[] = [];
  const out = [];
  const onEvent = (e: StageEvent) => {
    if (e.type === "message" && e.level === "warn") warnings.push(e.text);
  };
  for await (const r of showRecords(paths, { onEvent })) out.push(r);
  const plans = out.filter((r) => r.type === "plan") as unknown as ShowPlanRecord[];
  const unconnected = out.filter((r) => r.type === "unconnected") as unknown as UnconnectedRecord[];
  return { plans, unconnected, warnings };
}

after(() => rmSync(tmp, { recursive: true, force: true }));

describe("show keys everything by (patient, UID)", () => {
  const oneSeries = join(tmp, "one-series");
  const DOSES = `${U}.3`;
  const shared = join(tmp, "shared-plan");
  const sharedPlans: string[] = [];
  before(() => {
    // Three patients' doses in one series (a TPS that writes all doses of a day into one series):
    // P1 and P2 with their plans, P3's plan absent.
    plan(oneSeries, "P1", `${U}.10.1`, "P1-plan");
    plan(oneSeries, "P2", `${U}.10.2`, "P2-plan");
    dose(oneSeries, "P1", `${U}.20.1`, DOSES, `${U}.10.1`);
    dose(oneSeries, "P2", `${U}.20.2`, DOSES, `${U}.10.2`);
    dose(oneSeries, "P3", `${U}.20.3`, DOSES, `${U}.10.3`);
    dose(oneSeries, "P3", `${U}.20.4`, DOSES, `${U}.10.3`);
    // Two patients whose plans share a SOP Instance UID, each with a dose referencing it.
    sharedPlans.push(plan(shared, "A", `${U}.11`, "A-plan"), plan(shared, "B", `${U}.11`, "B-plan"));
    dose(shared, "A", `${U}.21.1`, `${U}.4.A`, `${U}.11`);
    dose(shared, "B", `${U}.21.2`, `${U}.4.B`, `${U}.11`);
  });

  test("doses of several patients in one series: each under its own patient and plan", async () => {
    const { plans, unconnected, warnings } = await show([oneSeries]);
    assert.deepEqual(warnings, []);
    assert.deepEqual(plans.map((p) => [p.patientId, p.label, p.doses.map((d) => d.sopInstanceUid)]), [
      ["P1", "P1-plan", [`${U}.20.1`]],
      ["P2", "P2-plan", [`${U}.20.2`]],
    ]);
    assert.deepEqual(unconnected.map((u) => [u.patientId, u.objects, u.missing.map((m) => m.referencedBy)]), [
      ["P1", [], []],
      ["P2", [], []],
      ["P3", [{ seriesUid: DOSES, modality: "RTDOSE", count: 2, transferSyntaxUids: ["1.2.840.10008.1.2.1"] }], [`${U}.20.3`, `${U}.20.4`]],
    ]);
  });

  test("a plan UID two patients share, with other content: in both trees, each with its own dose, and a warning naming both files", async () => {
    const [a, b] = sharedPlans;
    const { plans, warnings } = await show([a, b, shared]);
    assert.deepEqual(plans.map((p) => [p.patientId, p.label, p.path, p.doses.map((d) => d.sopInstanceUid)]), [
      ["A", "A-plan", a, [`${U}.21.1`]],
      ["B", "B-plan", b, [`${U}.21.2`]],
    ]);
    assert.equal(warnings.length, 1, warnings.join("\n"));
    assert.match(warnings[0], new RegExp(`${U.replace(/\./g, "\\.")}\\.11 is in "${a}" and in "${b}", which belong to different patients`));
  });

  test("the same UID in one patient: a copy is silent, other content is a warning and the first is shown", async () => {
    const dir = join(tmp, "same-patient");
    const first = plan(join(dir, "a"), "C", `${U}.12`, "first");
    const copy = join(dir, "copy.dcm");
    copyFileSync(first, copy);
    const other = plan(join(dir, "b"), "C", `${U}.12`, "second");
    let r = await show([first, copy]);
    assert.deepEqual([r.plans.map((p) => p.label), r.warnings], [["first"], []]);
    r = await show([first, copy, other]);
    assert.deepEqual(r.plans.map((p) => p.label), ["first"]);
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], /is in ".*a\/\d+\.dcm" and in ".*b\/\d+\.dcm" with different content: the first is shown/);
  });

  test("a structure set whose Modality says RTDOSE is a structure set (SOP class first)", async () => {
    const dir = join(tmp, "bad-modality");
    const ss = dcm(dir, { cls: STRUCT, uid: `${U}.30`, modality: "RTDOSE", patient: "D", series: `${U}.5`, extra: ["(3006,0002) SH [Body]"] });
    plan(dir, "D", `${U}.13`, "D-plan", `${U}.30`);
    const lone = dcm(join(tmp, "lone"), { cls: STRUCT, uid: `${U}.31`, modality: "RTDOSE", patient: "D", series: `${U}.6` });
    const { plans, unconnected } = await show([dir, lone]);
    assert.deepEqual([plans[0].structureSet?.sopInstanceUid, plans[0].structureSet?.label, plans[0].structureSet?.path, plans[0].missing], [`${U}.30`, "Body", ss, []]);
    assert.deepEqual(unconnected[0].objects.map((o) => o.modality), ["RTSTRUCT"]);
  });

  test("list-patients --from folder | export-plan: each patient's tree holds its own plan of the shared UID, nothing of the other", async () => {
    const out = join(tmp, "shared-export");
    const r = await sh(`"\${RT[@]}" list-patients --from folder '${shared}' | "\${RT[@]}" export-plan --include-unapproved --out '${out}'`);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(records(r.stdout).filter((x) => x.type === "plan").map((x) => x.patientId), ["A", "B"]);
    const files = readdirSync(out, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".dcm"));
    const byPatient = new Map<string, string[]>();
    for (const f of files) {
      const top = f.split(/[\\/]/)[0];
      const ds = readDicomFile(join(out, f)).dataset;
      const list = byPatient.get(top) ?? [];
      list.push(`${ds.string(0x00100020)}:${ds.string(0x300a0002) ?? ds.string(0x00080060)}`);
      byPatient.set(top, list);
    }
    assert.deepEqual([...byPatient.values()].map((l) => l.sort()).sort(), [["A:A-plan", "A:RTDOSE"], ["B:B-plan", "B:RTDOSE"]]);
  });

  test("rtexport show: the warning on stderr names both files, exit 0", () => {
    const r = runCliSync(["show", "--json", shared]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /SOP Instance UID [\d.]+ is in ".*" and in ".*", which belong to different patients/);
    assert.equal(r.stdout.trim().split("\n").map((l) => JSON.parse(l)).filter((x) => x.type === "plan").length, 2);
  });
});
