import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataSet, textElement } from "../lib/dicom/dataset.ts";
import { lookupKeyword } from "../lib/dicom/dictionary.ts";
import { encodeFile } from "../lib/dicom/writer.ts";
import { FolderIndex } from "../lib/index/index.ts";
import { matchValue } from "../lib/qr/match.ts";
import { findMatches, QueryError, selectInstances } from "../lib/qr/find.ts";

// ---- matching, table-driven (PS3.4 C.2.2.2) ----
const cases: [vr: string, query: string, candidate: string | null, expected: boolean][] = [
  ["LO", "", null, true], // universal
  ["LO", "", "X", true],
  ["LO", "*", null, true],
  ["LO", "PAT1", "PAT1", true], // single value
  ["LO", "PAT1", "PAT10", false],
  ["LO", "PAT1 ", "PAT1", true], // padding ignored
  ["LO", "pat1", "PAT1", false], // case-sensitive outside PN
  ["PN", "doe^john", "DOE^JOHN", true], // PN case-insensitive
  ["PN", "DOE*", "DOE^JOHN", true],
  ["PN", "D?E^*", "DOE^JOHN", true],
  ["PN", "D?E", "DOE^JOHN", false],
  ["PN", "Müller*", "MÜLLER^Anna", true],
  ["SH", "Pro*t?te", "Prostate", true],
  ["SH", "a.b", "axb", false], // regexp characters are literal
  ["CS", "CT\\MR", "MR", true], // value list
  ["CS", "CT", "CT\\RTPLAN", true], // multi-valued candidate
  ["CS", "RTDOSE", "CT\\RTPLAN", false],
  ["UI", "1.2.3", "1.2.3", true],
  ["UI", "1.2.3\\1.2.4", "1.2.4", true], // UID list
  ["UI", "1.2.*", "1.2.3", false], // no wildcards in UI
  ["DA", "20240115", "20240115", true],
  ["DA", "20240101-20240131", "20240115", true],
  ["DA", "20240101-20240131", "20240201", false],
  ["DA", "-20231231", "20240115", false],
  ["DA", "20240115-", "20240115", true],
  ["DA", "2024.01.15", "20240115", true],
  ["DA", "20240101-", null, false],
  ["TM", "10", "103000", true], // hour names the whole hour
  ["TM", "0900-1030", "103059.5", true],
  ["TM", "0900-1030", "103100", false],
  ["TM", "-0800", "075959", true],
  ["DT", "20240101-20240102", "20240102123000", true],
  ["IS", "3", "3", true],
];
test("matchValue: universal, single value, wildcard, list, range", () => {
  for (const [vr, q, c, expected] of cases) {
    assert.equal(matchValue(vr, q, c), expected, `${vr} ${JSON.stringify(q)} vs ${JSON.stringify(c)}`);
  }
});

// ---- an indexed folder ----
const enc = new TextEncoder();
function dataset(values: Record<string, string | DataSet[]>): DataSet {
  const ds = new DataSet();
  ds.set({ tag: 0x00080005, vr: "CS", value: enc.encode("ISO_IR 192"), offset: 0, length: 10 });
  for (const [kw, v] of Object.entries(values)) {
    const e = lookupKeyword(kw);
    if (!e) throw new Error(kw);
    const vr = e.vr.split(/[ /]/)[0];
    if (Array.isArray(v)) {
      ds.set({ tag: e.tag, vr: "SQ", items: v, offset: 0, length: 0 });
      continue;
    }
    ds.set(textElement(e.tag, vr, v));
  }
  return ds;
}
function ref(uid: string, cls = "1.2.840.10008.5.1.4.1.1.481.5"): DataSet[] {
  return [dataset({ ReferencedSOPClassUID: cls, ReferencedSOPInstanceUID: uid })];
}
const CT = "1.2.840.10008.5.1.4.1.1.2", PLAN = "1.2.840.10008.5.1.4.1.1.481.5", DOSE = "1.2.840.10008.5.1.4.1.1.481.2";
const P = (id: string, name: string, birth: string) => ({ PatientID: id, PatientName: name, PatientBirthDate: birth, PatientSex: "O" });

const dir = mkdtempSync(join(tmpdir(), "rtexport-qr-"));
let index: FolderIndex;
function write(rel: string, ds: DataSet) {
  const p = join(dir, rel);
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, encodeFile(ds));
  return p;
}
before(async () => {
  const files: [string, DataSet][] = [
    ["a/ct1.dcm", dataset({ ...P("PAT1", "DOE^JOHN", "19500101"), StudyInstanceUID: "1.1", StudyDate: "20240110", StudyTime: "083000", StudyDescription: "Pelvis", SeriesInstanceUID: "1.1.1", Modality: "CT", SeriesNumber: "1", SOPClassUID: CT, SOPInstanceUID: "1.1.1.1", InstanceNumber: "1" })],
    ["a/ct2.dcm", dataset({ ...P("PAT1", "DOE^JOHN", "19500101"), StudyInstanceUID: "1.1", StudyDate: "20240110", StudyTime: "083000", StudyDescription: "Pelvis", SeriesInstanceUID: "1.1.1", Modality: "CT", SeriesNumber: "1", SOPClassUID: CT, SOPInstanceUID: "1.1.1.2", InstanceNumber: "2" })],
    ["a/plan1.dcm", dataset({ ...P("PAT1", "DOE^JOHN", "19500101"), StudyInstanceUID: "1.1", StudyDate: "20240110", SeriesInstanceUID: "1.1.2", Modality: "RTPLAN", SOPClassUID: PLAN, SOPInstanceUID: "1.1.2.1", RTPlanLabel: "Prostate", ApprovalStatus: "APPROVED" })],
    ["a/plan2.dcm", dataset({ ...P("PAT1", "DOE^JOHN", "19500101"), StudyInstanceUID: "1.1", StudyDate: "20240110", SeriesInstanceUID: "1.1.2", Modality: "RTPLAN", SOPClassUID: PLAN, SOPInstanceUID: "1.1.2.2", RTPlanLabel: "Boost", ApprovalStatus: "UNAPPROVED" })],
    ["a/dose1.dcm", dataset({ ...P("PAT1", "DOE^JOHN", "19500101"), StudyInstanceUID: "1.1", StudyDate: "20240110", SeriesInstanceUID: "1.1.3", Modality: "RTDOSE", SOPClassUID: DOSE, SOPInstanceUID: "1.1.3.1", ReferencedRTPlanSequence: ref("1.1.2.1") })],
    ["b/mr.dcm", dataset({ ...P("PAT2", "MÜLLER^ANNA", "19700202"), StudyInstanceUID: "2.1", StudyDate: "20240301", SeriesInstanceUID: "2.1.1", Modality: "MR", SOPClassUID: "1.2.840.10008.5.1.4.1.1.4", SOPInstanceUID: "2.1.1.1" })],
  ];
  for (const [rel, ds] of files) write(rel, ds);
  writeFileSync(join(dir, "notes.txt"), "not dicom");
  index = await FolderIndex.open(dir);
  const report = await index.indexFolder();
  assert.equal(report.added, 6);
  assert.equal(report.failed.length, 1);
  assert.match(report.failed[0].path, /notes\.txt$/);
});
after(async () => {
  await index?.close();
  rmSync(dir, { recursive: true, force: true });
});

function q(level: string, keys: Record<string, string | DataSet[]>): DataSet {
  return dataset({ QueryRetrieveLevel: level, ...keys });
}
async function find(model: "PATIENT" | "STUDY", level: string, keys: Record<string, string | DataSet[]>, out: string[]) {
  const res = await findMatches(index, q(level, keys), model);
  return res.map((r) => Object.fromEntries(out.map((k) => [k, r.strings(k).join("\\")])));
}

test("C-FIND PATIENT level (Patient Root): wildcard name, computed counts, non-ASCII answers in UTF-8", async () => {
  assert.deepEqual(await find("PATIENT", "PATIENT", { PatientName: "m*", PatientID: "", NumberOfPatientRelatedStudies: "" }, ["PatientID", "PatientName", "NumberOfPatientRelatedStudies"]), [
    { PatientID: "PAT2", PatientName: "MÜLLER^ANNA", NumberOfPatientRelatedStudies: "1" },
  ]);
  const all = await findMatches(index, q("PATIENT", { PatientID: "" }), "PATIENT");
  assert.deepEqual(all.map((r) => r.string("PatientID")).sort(), ["PAT1", "PAT2"]);
});

test("C-FIND STUDY level: date range, patient keys in Study Root, ModalitiesInStudy", async () => {
  assert.deepEqual(await find("STUDY", "STUDY", { StudyDate: "20240101-20240131", PatientID: "", StudyInstanceUID: "", ModalitiesInStudy: "", NumberOfStudyRelatedInstances: "" }, ["PatientID", "StudyInstanceUID", "ModalitiesInStudy", "NumberOfStudyRelatedInstances"]), [
    { PatientID: "PAT1", StudyInstanceUID: "1.1", ModalitiesInStudy: "CT\\RTDOSE\\RTPLAN", NumberOfStudyRelatedInstances: "5" },
  ]);
  assert.deepEqual(await find("STUDY", "STUDY", { ModalitiesInStudy: "MR", StudyInstanceUID: "" }, ["StudyInstanceUID"]), [{ StudyInstanceUID: "2.1" }]);
  assert.deepEqual(await find("PATIENT", "STUDY", { PatientID: "PAT1", StudyInstanceUID: "", StudyTime: "08-09" }, ["StudyInstanceUID"]), [{ StudyInstanceUID: "1.1" }]);
});

test("C-FIND SERIES and IMAGE levels: RT plan label and approval per instance, referenced plan", async () => {
  const series = await find("STUDY", "SERIES", { StudyInstanceUID: "1.1", SeriesInstanceUID: "", Modality: "", NumberOfSeriesRelatedInstances: "" }, ["SeriesInstanceUID", "Modality", "NumberOfSeriesRelatedInstances"]);
  assert.deepEqual(series.sort((a, b) => a.SeriesInstanceUID.localeCompare(b.SeriesInstanceUID)), [
    { SeriesInstanceUID: "1.1.1", Modality: "CT", NumberOfSeriesRelatedInstances: "2" },
    { SeriesInstanceUID: "1.1.2", Modality: "RTPLAN", NumberOfSeriesRelatedInstances: "2" },
    { SeriesInstanceUID: "1.1.3", Modality: "RTDOSE", NumberOfSeriesRelatedInstances: "1" },
  ]);
  assert.deepEqual(await find("STUDY", "IMAGE", { StudyInstanceUID: "1.1", SeriesInstanceUID: "1.1.2", SOPInstanceUID: "", RTPlanLabel: "Pro*", ApprovalStatus: "" }, ["SOPInstanceUID", "RTPlanLabel", "ApprovalStatus"]), [
    { SOPInstanceUID: "1.1.2.1", RTPlanLabel: "Prostate", ApprovalStatus: "APPROVED" },
  ]);
  assert.deepEqual(await find("STUDY", "IMAGE", { ApprovalStatus: "UNAPPROVED", SOPInstanceUID: "" }, ["SOPInstanceUID"]), [{ SOPInstanceUID: "1.1.2.2" }]);
  const doses = await findMatches(index, q("IMAGE", { StudyInstanceUID: "1.1", Modality: "RTDOSE", SOPInstanceUID: "", ReferencedRTPlanSequence: [] }), "STUDY");
  assert.equal(doses.length, 1);
  assert.equal(doses[0].items("ReferencedRTPlanSequence")[0].string("ReferencedSOPInstanceUID"), "1.1.2.1");
  const byRef = await findMatches(index, q("IMAGE", { SOPInstanceUID: "", ReferencedRTPlanSequence: [dataset({ ReferencedSOPInstanceUID: "1.1.2.2" })] }), "STUDY");
  assert.equal(byRef.length, 0);
});

test("C-FIND: unknown keys come back empty; bad levels are refused with A900", async () => {
  const r = await findMatches(index, q("STUDY", { StudyInstanceUID: "2.1", InstitutionName: "x" }), "STUDY");
  assert.equal(r.length, 1);
  assert.equal(r[0].get("InstitutionName")?.length, 0);
  await assert.rejects(findMatches(index, q("PATIENT", {}), "STUDY"), (e: unknown) => e instanceof QueryError && e.status === 0xa900);
  await assert.rejects(findMatches(index, q("FRAME", {}), "PATIENT"), (e: unknown) => e instanceof QueryError && e.status === 0xa900);
});

test("C-MOVE/C-GET selection: study, series list, instance", async () => {
  const uids = async (level: string, keys: Record<string, string>) =>
    (await selectInstances(index, q(level, keys), "STUDY")).map((f) => f.sopInstanceUid).sort();
  assert.deepEqual(await uids("STUDY", { StudyInstanceUID: "2.1" }), ["2.1.1.1"]);
  assert.deepEqual(await uids("SERIES", { StudyInstanceUID: "1.1", SeriesInstanceUID: "1.1.1\\1.1.3" }), ["1.1.1.1", "1.1.1.2", "1.1.3.1"]);
  assert.deepEqual(await uids("IMAGE", { StudyInstanceUID: "1.1", SeriesInstanceUID: "1.1.2", SOPInstanceUID: "1.1.2.2" }), ["1.1.2.2"]);
  const files = await selectInstances(index, q("PATIENT", { PatientID: "PAT2" }), "PATIENT");
  assert.equal(files.length, 1);
  assert.equal(files[0].path, join(dir, "b", "mr.dcm"));
  assert.equal(files[0].transferSyntaxUid, "1.2.840.10008.1.2.1");
});

test("indexFolder is incremental: unchanged files are not re-read, changed and removed ones are", async () => {
  const again = await index.indexFolder();
  assert.deepEqual({ ...again, failed: again.failed.length }, { scanned: 7, added: 0, updated: 0, unchanged: 6, removed: 0, failed: 1, conflicts: 0 });
  const p = write("b/mr.dcm", dataset({ ...P("PAT2", "MÜLLER^ANNA", "19700202"), StudyInstanceUID: "2.1", StudyDate: "20240302", SeriesInstanceUID: "2.1.1", Modality: "MR", SOPClassUID: "1.2.840.10008.5.1.4.1.1.4", SOPInstanceUID: "2.1.1.1" }));
  utimesSync(p, new Date(), new Date(Date.now() + 5000));
  unlinkSync(join(dir, "a", "dose1.dcm"));
  const third = await index.indexFolder();
  assert.deepEqual({ ...third, failed: third.failed.length }, { scanned: 6, added: 0, updated: 1, unchanged: 4, removed: 1, failed: 1, conflicts: 0 });
  assert.deepEqual(await find("STUDY", "STUDY", { StudyInstanceUID: "2.1", StudyDate: "" }, ["StudyDate"]), [{ StudyDate: "20240302" }]);
  assert.deepEqual(await find("STUDY", "SERIES", { StudyInstanceUID: "1.1", SeriesInstanceUID: "" }, ["SeriesInstanceUID"]).then((r) => r.map((x) => x.SeriesInstanceUID).sort()), ["1.1.1", "1.1.2"]);
});
