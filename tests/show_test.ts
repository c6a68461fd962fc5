// `show` end to end on the synthetic clinic: every plan with its structure set, image series, doses,
// records, RT images and registrations as the generator's manifest says; the MR unconnected; deleted
// objects reported as missing; damaged files as one stderr line each and exit 3; files that are not
// DICOM (and the tool's own .rtexport folder) counted as skipped, exit 0.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { main as showMain } from "../commands/show.ts";
import { type ClinicManifest, generateClinic } from "../lib/fixtures/clinic.ts";
import { Prng } from "../lib/fixtures/_prng.ts";
import { scanDicomSync } from "../lib/fs/scan.ts";
import { summarizeObject } from "../lib/rt/summary.ts";
import { renderTree } from "../lib/rt/render.ts";
import { ReferenceTreeBuilder, type ShowPlanRecord, treeRecords, type UnconnectedRecord } from "../lib/rt/tree.ts";
import { showRecords } from "../lib/rt/show.ts";
import { Ledger } from "../lib/ledger/ledger.ts";
import type { StageEvent } from "../lib/stage/stage.ts";
import { DEFAULT_CHARSET } from "../lib/dicom/charset.ts";
import type { DataSet } from "../lib/dicom/dataset.ts";
import { parseDicom } from "../lib/dicom/reader.ts";
import { encodeFile } from "../lib/dicom/writer.ts";
import { dataSet, type ElementValue, item, put } from "../lib/fixtures/_build.ts";
import { buildReferenceTree } from "../lib/rt/tree.ts";
import { parseTagExpression } from "../lib/search/expression.ts";
import { searchFile } from "../lib/search/search.ts";
import { runCliSync } from "./_run.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

const runCli = runCliSync;

/** The number of files under `d` (recursively) whose name ends with `.dcm`. */
function dcmCount(d: string): number {
  return readdirSync(d, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".dcm")).length;
}

/** The summary line runStage writes, up to the figures (bytes and time vary). */
function summary(done: number, rest: string, patients: number): RegExp {
  const esc = rest.replace(/[()]/g, "\\$&");
  return new RegExp(`^show: ${done} files done, ${esc} \\(${patients} patients?, [\\d.]+ [kMG]?B in \\d+s\\)\n$`);
}

function records(stdout: string): Record<string, unknown>[] {
  return stdout.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
}

/** Runs show in this process with a terminal-like stdout, for the human views. */
async function runHuman(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "", stderr = "";
  const out = Object.assign(
    new Writable({
      write(chunk, _enc, cb) {
        stdout += chunk.toString();
        cb();
      },
    }),
    { isTTY: true },
  );
  const code = await showMain(args, {
    stdout: out,
    stderr: { write: (t: string) => (stderr += t) },
    stdin: Object.assign((async function* () {})(), { isTTY: true }),
    env: {},
    cwd: ROOT,
  });
  return { code, stdout, stderr };
}

let dir: string;
let clinic: string;
let damaged: string;
let manifest: ClinicManifest;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtexport-show-"));
  clinic = join(dir, "clinic");
  manifest = await generateClinic({ out: clinic, patients: 5, slices: 4, size: 16, seed: 7 });
  damaged = join(dir, "damaged");
  cpSync(clinic, damaged, { recursive: true });
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The transfer syntax the clinic wrote a file in (by its path in the manifest). */
function tsOf(path: string): string {
  for (const p of manifest.patients) {
    for (const st of p.studies) for (const se of st.series) for (const i of se.instances) if (i.path === path) return i.transferSyntaxUid;
  }
  throw new Error(`${path} is not in the manifest`);
}

/** The transfer syntaxes of a series' instances, sorted (the clinic writes some series in several). */
function seriesTs(seriesUid: string): string[] {
  const out = new Set<string>();
  for (const p of manifest.patients) {
    for (const st of p.studies) for (const se of st.series) if (se.seriesUid === seriesUid) for (const i of se.instances) out.add(i.transferSyntaxUid);
  }
  return [...out].sort();
}

function expectedPlan(p: ClinicManifest["patients"][number], plan: ClinicManifest["patients"][number]["plans"][number], base: string) {
  return {
    type: "plan",
    patientId: p.patientId,
    patientName: p.name,
    sopInstanceUid: plan.planUid,
    planUid: plan.planUid,
    label: plan.label,
    name: plan.name,
    approval: plan.approval,
    machines: plan.machines,
    beams: plan.beams.length,
    path: join(base, plan.path),
    transferSyntaxUid: tsOf(plan.path),
    structureSet: {
      sopInstanceUid: plan.structureSetUid,
      label: p.structureSet.label,
      transferSyntaxUid: tsOf(p.structureSet.path),
      imageSeries: plan.imageSeries.map((s) => ({ ...s, referenced: s.count, transferSyntaxUids: seriesTs(s.seriesUid) })),
      path: join(base, p.structureSet.path),
    },
    doses: plan.doses.map((d) => ({
      sopInstanceUid: d.sopInstanceUid,
      summation: d.doseSummationType,
      ...(d.referencedBeamNumber !== undefined ? { beams: [d.referencedBeamNumber] } : {}),
      transferSyntaxUid: tsOf(d.path),
      path: join(base, d.path),
    })),
    records: plan.records.map((r) => r.sopInstanceUid),
    images: plan.rtImages.map((i) => ({ sopInstanceUid: i.sopInstanceUid, label: i.label, beams: [i.referencedBeamNumber], transferSyntaxUid: tsOf(i.path), path: join(base, i.path) })),
    registrations: plan.registrations.map((r) => ({
      sopInstanceUid: r.sopInstanceUid,
      kind: "Spatial Registration",
      frameOfReferenceUids: r.frameOfReferenceUids,
      transferSyntaxUid: tsOf(r.path),
      path: join(base, r.path),
    })),
    missing: [],
  };
}

describe("show --json on the synthetic clinic", () => {
  let out: Record<string, unknown>[];
  before(() => {
    const r = runCli(["show", "--json", "--pattern", "*.dcm", clinic]);
    assert.match(r.stderr, summary(dcmCount(clinic), "0 failed", manifest.patients.length));
    assert.equal(r.status, 0);
    out = records(r.stdout);
  });

  test("one plan record per plan, matching the manifest, then one unconnected record per patient", () => {
    const expected: unknown[] = [];
    for (const p of manifest.patients) {
      const plans = [...p.plans].sort((a, b) => (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
      for (const plan of plans) expected.push(expectedPlan(p, plan, clinic));
      expected.push({ type: "unconnected", patientId: p.patientId, patientName: p.name, objects: p.unreferenced.map(({ seriesUid, modality, count }) => ({ seriesUid, modality, count, transferSyntaxUids: seriesTs(seriesUid) })), missing: [] });
    }
    const got = out.map((r) => r.type === "plan" ? { ...r, records: (r as unknown as ShowPlanRecord).records.map((x) => x.sopInstanceUid) } : r);
    assert.deepEqual(got, expected);
  });

  test("treatment records carry date, fraction and machine", () => {
    for (const p of manifest.patients) {
      for (const plan of p.plans) {
        const rec = out.find((r) => r.sopInstanceUid === plan.planUid) as unknown as ShowPlanRecord;
        assert.deepEqual(rec.records.map((r) => ({ sopInstanceUid: r.sopInstanceUid, fraction: r.fraction, machine: r.machine, kind: r.kind })),
          plan.records.map((r) => ({ sopInstanceUid: r.sopInstanceUid, fraction: r.fraction, machine: r.machine, kind: "RT Beams Treatment Record" })));
        for (const r of rec.records) assert.match(r.date!, /^\d{4}-\d{2}-\d{2}$/);
      }
    }
  });

  test("the skeleton plan's machine comes from its private element", () => {
    const ck = manifest.patients.flatMap((p) => p.plans).find((p) => p.kind === "cyberknife")!;
    const rec = out.find((r) => r.sopInstanceUid === ck.planUid) as unknown as ShowPlanRecord;
    assert.equal(ck.machinesFrom, "private (3253,1010)");
    assert.deepEqual(rec.machines, ck.machines);
    assert.equal(rec.beams, 0);
  });
});

describe("show with objects missing and bad files", () => {
  let r: ReturnType<typeof runCli>;
  let deletedSlice: { uid: string; seriesUid: string };
  before(() => {
    // Delete one CT slice of the first patient and the structure set of the second; add garbage.
    const p0 = manifest.patients[0];
    const ct = p0.studies.flatMap((s) => s.series).find((s) => s.modality === "CT")!;
    const slice = ct.instances[1];
    deletedSlice = { uid: slice.sopInstanceUid, seriesUid: ct.seriesUid };
    unlinkSync(join(damaged, slice.path));
    unlinkSync(join(damaged, manifest.patients[1].structureSet.path));
    writeFileSync(join(damaged, "garbage.dcm"), new Uint8Array(3000).map((_, i) => (i * 7919) % 251));
    const plan = readFileSync(join(damaged, p0.plans[0].path));
    writeFileSync(join(damaged, "truncated.dcm"), plan.subarray(0, Math.floor(plan.length / 2)));
    r = runCli(["show", "--json", "--pattern", "*.dcm", damaged]);
  });

  test("exit 3: a damaged DICOM file is one stderr line naming it; a file that is not DICOM is a counted skip", () => {
    assert.equal(r.status, 3);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0], /^show: Cannot read DICOM file ".*truncated\.dcm": .*(at offset \d+|extends beyond)/);
    assert.match(lines[1] + "\n", summary(dcmCount(damaged) - 2, "1 skipped (1 not DICOM), 1 failed", manifest.patients.length));
  });

  test("a deleted CT slice shows as missing, with its UID and series", () => {
    const out = records(r.stdout);
    const p0 = manifest.patients[0];
    for (const plan of p0.plans) {
      const rec = out.find((x) => x.sopInstanceUid === plan.planUid) as unknown as ShowPlanRecord;
      assert.deepEqual(rec.structureSet!.imageSeries, [{ seriesUid: deletedSlice.seriesUid, modality: "CT", count: 3, referenced: 4, transferSyntaxUids: seriesTs(deletedSlice.seriesUid) }]);
      assert.deepEqual(rec.missing, [{ kind: "image", seriesUid: deletedSlice.seriesUid, sopInstanceUids: [deletedSlice.uid], referencedBy: plan.structureSetUid }]);
    }
  });

  test("a deleted RTSTRUCT shows as missing, and its CT becomes unconnected", () => {
    const out = records(r.stdout);
    const p1 = manifest.patients[1];
    for (const plan of p1.plans) {
      const rec = out.find((x) => x.sopInstanceUid === plan.planUid) as unknown as ShowPlanRecord;
      assert.deepEqual(rec.structureSet, { sopInstanceUid: plan.structureSetUid, missing: true, imageSeries: [] });
      assert.deepEqual(rec.missing, [{ kind: "RTSTRUCT", sopInstanceUid: plan.structureSetUid, referencedBy: plan.planUid }]);
      // Doses, records and images still hang off the plan.
      assert.equal(rec.doses.length, plan.doses.length);
      assert.equal(rec.records.length, plan.records.length);
    }
    const u = out.find((x) => x.type === "unconnected" && x.patientId === p1.patientId) as unknown as UnconnectedRecord;
    const ct = p1.studies.flatMap((s) => s.series).find((s) => s.modality === "CT")!;
    assert.deepEqual(u.objects, [
      { seriesUid: ct.seriesUid, modality: "CT", count: ct.instances.length, transferSyntaxUids: seriesTs(ct.seriesUid) },
      ...p1.unreferenced.map(({ seriesUid, modality, count }) => ({ seriesUid, modality, count, transferSyntaxUids: seriesTs(seriesUid) })),
    ]);
  });
});

describe("show on an export tree with documents, images and the tool's own .rtexport folder", () => {
  let tree: string;
  let patientDir: string;
  before(async () => {
    const p = manifest.patients[2];
    tree = join(dir, "export");
    patientDir = join(tree, p.patientId);
    cpSync(join(clinic, p.patientId), patientDir, { recursive: true });
    mkdirSync(join(patientDir, "Plan1", "Documents"), { recursive: true });
    writeFileSync(join(patientDir, "Plan1", "Documents", "report.pdf"), "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n");
    writeFileSync(join(patientDir, "Plan1", "Documents", "photo.png"), new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, ...new Array(200).fill(7)]));
    writeFileSync(join(patientDir, "Plan1", "plan.xml"), `<?xml version="1.0"?>\n<plan label="Plan1"/>\n`);
    // What export-plan and copy-files leave in a tree: the ledger, and staging. A damaged DICOM
    // file there fails the run if the folder is ever scanned.
    const ledger = await Ledger.open(`sqlite:${join(tree, ".rtexport", "ledger.sqlite")}`, "show-test");
    await ledger.record({ kind: "file", key: "x", status: "done", bytes: 1 });
    await ledger.close();
    mkdirSync(join(tree, ".rtexport", "staging"), { recursive: true });
    const plan = readFileSync(join(clinic, p.plans[0].path));
    writeFileSync(join(tree, ".rtexport", "staging", "part.dcm"), plan.subarray(0, 700));
  });

  test("files that are not DICOM are counted, named with -v, and the exit status is 0", () => {
    const r = runCli(["show", "--json", tree]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, summary(dcmCount(patientDir), "3 skipped (3 not DICOM), 0 failed", 1));
    const alone = runCli(["show", "--json", "--pattern", "*.dcm", patientDir]);
    assert.equal(r.stdout, alone.stdout);
    const v = runCli(["show", "--json", "-v", tree]);
    assert.equal(v.status, 0);
    const skipped = v.stderr.split("\n").filter((l) => l.startsWith("show: debug: Skipped"));
    assert.deepEqual(skipped.map((l) => /file "(.*?)"/.exec(l)![1]).sort(), ["photo.png", "report.pdf"].map((f) => join(patientDir, "Plan1", "Documents", f)).concat(join(patientDir, "Plan1", "plan.xml")).sort());
    for (const l of skipped) assert.match(l, /: Cannot read DICOM file ".*": not a DICOM file: /);
    assert.ok(!v.stderr.includes(".rtexport"), v.stderr);
  });

  test("a .rtexport folder named on the command line is read like any other", () => {
    const r = runCli(["show", "--json", join(tree, ".rtexport")]);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /^show: Cannot read DICOM file ".*part\.dcm": /);
    assert.match(r.stderr, /1 skipped \(1 not DICOM\), 1 failed/);
  });
});

describe("show input and output forms", () => {
  test("the library stage yields what the command writes; per-file outcomes are events", async () => {
    const p = manifest.patients[1];
    const cli = runCli(["show", "--json", join(clinic, p.patientId)]);
    assert.equal(cli.status, 0);
    const got: unknown[] = [];
    for await (const r of showRecords([join(clinic, p.patientId)])) got.push(r);
    assert.deepEqual(got, records(cli.stdout));
    const bad = join(dir, "bad-lib.dcm");
    writeFileSync(bad, "nope");
    const damagedPlan = join(dir, "damaged-lib.dcm");
    writeFileSync(damagedPlan, readFileSync(join(clinic, p.plans[0].path)).subarray(0, 600));
    const events: StageEvent[] = [];
    const withBad: unknown[] = [];
    const input = [{ type: "file", path: bad }, { type: "note", text: "kept" }, { type: "file", path: damagedPlan }, join(clinic, p.patientId)];
    for await (const r of showRecords(input, { onEvent: (e) => events.push(e) })) withBad.push(r);
    assert.deepEqual(withBad, [{ type: "note", text: "kept" }, ...got]);
    assert.deepEqual(events.filter((e) => e.type === "skipped"), [{
      type: "skipped", stage: "show", item: `file "${bad}"`, why: "not-dicom", reason: `Cannot read DICOM file "${bad}": not a DICOM file: too short`,
    }]);
    const failed = events.filter((e) => e.type === "failed");
    assert.equal(failed.length, 1);
    assert.match((failed[0] as { reason: string }).reason, new RegExp(`^Cannot read DICOM file "${damagedPlan}": `));
    const finished = events.at(-1) as Extract<StageEvent, { type: "finished" }>;
    assert.equal(finished.type, "finished");
    assert.deepEqual({ ...finished.counts, bytes: 0 }, { done: got.length > 0 ? dcmCount(join(clinic, p.patientId)) : 0, skipped: 1, failed: 1, bytes: 0, patients: 1, skippedBy: { "not-dicom": 1 } });
    assert.equal(events[0].type, "started");
  });

  test("an aborted signal stops the stage at the next file, with no tree of half the input", async () => {
    const controller = new AbortController();
    const events: StageEvent[] = [];
    const out: unknown[] = [];
    const onEvent = (e: StageEvent) => {
      events.push(e);
      if (e.type === "done" && events.filter((x) => x.type === "done").length === 3) controller.abort();
    };
    for await (const r of showRecords([clinic], { signal: controller.signal, onEvent })) out.push(r);
    assert.deepEqual(out, []);
    const finished = events.at(-1) as Extract<StageEvent, { type: "finished" }>;
    assert.deepEqual([finished.type, finished.interrupted, finished.counts.done], ["finished", true, 3]);
  });

  test("file records on stdin; other records pass through unchanged", () => {
    const p = manifest.patients[3];
    const lines = [
      JSON.stringify({ type: "patient", patientId: "X1", source: "test" }),
      ...p.studies.flatMap((s) => s.series.flatMap((se) => se.instances.map((i) => JSON.stringify({ type: "file", path: join(clinic, i.path), category: "dicom" })))),
      JSON.stringify({ type: "file", path: join(clinic, "manifest.json"), category: "document" }),
      JSON.stringify({ type: "note", text: "kept" }),
    ];
    const r = runCli(["show"], lines.join("\n") + "\n");
    assert.match(r.stderr, summary(lines.length - 3, "1 skipped (1 not DICOM), 0 failed", 1));
    assert.equal(r.status, 0);
    const out = records(r.stdout);
    assert.deepEqual(out.slice(0, 2), [{ type: "patient", patientId: "X1", source: "test" }, { type: "note", text: "kept" }]);
    assert.deepEqual(out.slice(2).map((x) => x.type), [...p.plans.map(() => "plan"), "unconnected"]);
  });

  test("a terminal gets a tree", async () => {
    const p = manifest.patients[4];
    const { code, stdout, stderr } = await runHuman(["--pattern", "*.dcm", join(clinic, p.patientId)]);
    assert.match(stderr, summary(dcmCount(join(clinic, p.patientId)), "0 failed", 1));
    assert.equal(code, 0);
    const lines = stdout.split("\n");
    assert.equal(lines[0], `Patient ${p.patientId} · ${p.name}`);
    const ck = p.plans.find((x) => x.kind === "cyberknife")!;
    assert.ok(lines.includes(`├── RTPLAN "${ck.label}" (${ck.name}) APPROVED · machine CyberKnife M6 · 0 beams · ${ck.planUid}`), stdout);
    const ct = p.plans[0].imageSeries[0];
    assert.ok(lines.includes(`│   │   └── CT series ${ct.seriesUid}: ${ct.count} found, ${ct.count} referenced`), stdout);
    const mr = p.unreferenced[0];
    assert.equal(lines.at(-3), "└── Unconnected (no plan references these)");
    assert.equal(lines.at(-2), `    └── MR series ${mr.seriesUid}: ${mr.count} objects`);
  });

  test("--format flat writes one tab-separated line per object", async () => {
    const p = manifest.patients[0];
    const { code, stdout } = await runHuman(["--format", "flat", "--pattern", "*.dcm", join(clinic, p.patientId)]);
    assert.equal(code, 0);
    const rows = stdout.trim().split("\n").map((l) => l.split("\t"));
    const plan = p.plans[0];
    assert.deepEqual(rows.find((r) => r[2] === "RTPLAN" && r[3] === plan.planUid), [p.patientId, plan.label, "RTPLAN", plan.planUid, `APPROVED ${plan.machines[0]}`]);
    assert.deepEqual(rows.at(-1), [p.patientId, "(unconnected)", "MR series", p.unreferenced[0].seriesUid, String(p.unreferenced[0].count)]);
  });

  test("a bad --format is a usage error, exit 2", async () => {
    const { code, stderr } = await runHuman(["--format", "fancy", clinic]);
    assert.equal(code, 2);
    assert.match(stderr, /fancy/);
  });
});

describe("bounded fuzz: mutated, truncated and random files through the scan, show and search", () => {
  // Every input must end in a result or a one-line per-file error; a hang fails on the test's timeout.
  test("300 deterministic mutations of clinic files", { timeout: 60_000 }, () => {
    const fuzz = join(dir, "fuzz");
    mkdirSync(fuzz, { recursive: true });
    const rng = new Prng("show-search-fuzz");
    const p = manifest.patients[2]; // its RTSTRUCT is implicit VR; its MR has big endian and implicit slices
    const sources = p.studies.flatMap((s) => s.series.flatMap((se) => se.instances.map((i) => i.path)));
    let n = 0;
    for (const src of sources) {
      const bytes = new Uint8Array(readFileSync(join(clinic, src)));
      for (let k = 0; k < Math.ceil(300 / sources.length); k++) {
        let out: Uint8Array;
        const kind = k % 3;
        if (kind === 0) out = bytes.subarray(0, rng.int(0, bytes.length - 1));
        else if (kind === 1) {
          out = bytes.slice();
          for (let f = rng.int(1, 8); f > 0; f--) out[rng.int(128, out.length - 1)] = rng.int(0, 255);
        } else out = Uint8Array.from({ length: rng.int(0, 2048) }, () => rng.int(0, 255));
        writeFileSync(join(fuzz, `f${String(n++).padStart(4, "0")}.dcm`), out);
      }
    }
    const exprs = ["PatientID=?", "BeamSequence/TreatmentMachineName=?", "PatientName=*", "(3253,1010)=?"].map(parseTagExpression);
    const builder = new ReferenceTreeBuilder();
    let files = 0, errors = 0;
    for (const r of scanDicomSync([fuzz])) {
      if (r.error !== undefined) {
        errors++;
        assert.match(r.error, /^Cannot read DICOM file ".*f\d{4}\.dcm": \S/);
        assert.ok(!r.error.includes("\n"));
        continue;
      }
      files++;
      const res = searchFile(r.path, r.file, exprs);
      if (res?.error !== undefined) assert.match(res.error, /^Cannot read DICOM file /);
      try {
        builder.add(summarizeObject(r.file, r.path));
      } catch (e) {
        assert.match((e as Error).message, /\S/); // show reports these as per-file errors
      }
    }
    assert.equal(files + errors, n);
    assert.ok(errors > 0 && files > 0, `${files} read, ${errors} errors`);
    for (const rec of treeRecords(builder.build())) assert.ok(rec.type === "plan" || rec.type === "unconnected");
  });
});

describe("reference tree rules on hand-built objects (ion, brachy, summary record, deformable registration)", () => {
  const CLASS = {
    ct: "1.2.840.10008.5.1.4.1.1.2",
    ss: "1.2.840.10008.5.1.4.1.1.481.3",
    ionPlan: "1.2.840.10008.5.1.4.1.1.481.8",
    plan: "1.2.840.10008.5.1.4.1.1.481.5",
    ionRecord: "1.2.840.10008.5.1.4.1.1.481.9",
    summary: "1.2.840.10008.5.1.4.1.1.481.7",
    dose: "1.2.840.10008.5.1.4.1.1.481.2",
    deformable: "1.2.840.10008.5.1.4.1.1.66.3",
    reg: "1.2.840.10008.5.1.4.1.1.66.1",
  };
  const it = (fields: Record<string, ElementValue>) => item(DEFAULT_CHARSET, fields);
  /** Builds an object, encodes it as a file and reads it back, as show would. */
  function object(sopClass: string, uid: string, modality: string, series: string, fields: Record<string, ElementValue>) {
    const ds: DataSet = dataSet();
    put(ds, "SOPClassUID", sopClass);
    put(ds, "SOPInstanceUID", uid);
    put(ds, "Modality", modality);
    put(ds, "PatientID", "P1");
    put(ds, "PatientName", "Test^Hand");
    put(ds, "SeriesInstanceUID", series);
    for (const [k, v] of Object.entries(fields)) put(ds, k, v);
    return summarizeObject(parseDicom(encodeFile(ds)), `${uid}.dcm`);
  }
  const refPlan = (uid: string) => ({ ReferencedRTPlanSequence: [it({ ReferencedSOPClassUID: CLASS.ionPlan, ReferencedSOPInstanceUID: uid })] });

  test("plans, references and what is missing", () => {
    const objects = [
      object(CLASS.ct, "1.1", "CT", "9.1", { FrameOfReferenceUID: "5.1" }),
      object(CLASS.ct, "1.2", "CT", "9.1", { FrameOfReferenceUID: "5.1" }),
      // Older structure sets list contour images only per contour; 1.3 is not in the input.
      object(CLASS.ss, "2.1", "RTSTRUCT", "9.2", {
        StructureSetLabel: "SS",
        ReferencedFrameOfReferenceSequence: [it({ FrameOfReferenceUID: "5.1" })],
        ROIContourSequence: [it({
          ReferencedROINumber: 1,
          ContourSequence: ["1.1", "1.2", "1.3"].map((u) => it({ ContourImageSequence: [it({ ReferencedSOPClassUID: CLASS.ct, ReferencedSOPInstanceUID: u })] })),
        })],
      }),
      object(CLASS.ionPlan, "3.1", "RTPLAN", "9.3", {
        RTPlanLabel: "Proton",
        ApprovalStatus: "APPROVED",
        IonBeamSequence: [1, 2].map((n) => it({ BeamNumber: n, TreatmentMachineName: "ProtonGantry1" })),
        ReferencedStructureSetSequence: [it({ ReferencedSOPClassUID: CLASS.ss, ReferencedSOPInstanceUID: "2.1" })],
      }),
      object(CLASS.plan, "3.2", "RTPLAN", "9.4", {
        RTPlanLabel: "Brachy",
        ApprovalStatus: "UNAPPROVED",
        TreatmentMachineSequence: [it({ TreatmentMachineName: "Flexitron" })],
      }),
      object(CLASS.ionRecord, "4.1", "RTRECORD", "9.5", {
        ...refPlan("3.1"),
        TreatmentDate: "20250301",
        TreatmentMachineSequence: [it({ TreatmentMachineName: "ProtonGantry1" })],
        TreatmentSessionIonBeamSequence: [it({ CurrentFractionNumber: 3 })],
      }),
      object(CLASS.summary, "4.2", "RTRECORD", "9.6", refPlan("3.2")),
      object(CLASS.deformable, "6.1", "REG", "9.7", {
        FrameOfReferenceUID: "5.2",
        DeformableRegistrationSequence: [it({ SourceFrameOfReferenceUID: "5.1" })],
      }),
      object(CLASS.reg, "6.2", "REG", "9.8", { FrameOfReferenceUID: "5.9" }),
      object(CLASS.dose, "7.1", "RTDOSE", "9.9", { ...refPlan("3.9"), DoseSummationType: "PLAN" }),
    ];
    const tree = buildReferenceTree(objects);
    const E = "1.2.840.10008.1.2.1";
    assert.deepEqual([...treeRecords(tree)], [
      {
        type: "plan", patientId: "P1", patientName: "Test^Hand", sopInstanceUid: "3.2", planUid: "3.2", label: "Brachy",
        approval: "UNAPPROVED", machines: ["Flexitron"], beams: 0, path: "3.2.dcm", transferSyntaxUid: E, structureSet: null, doses: [],
        records: [{ sopInstanceUid: "4.2", kind: "RT Treatment Summary Record", transferSyntaxUid: E, path: "4.2.dcm" }],
        images: [], registrations: [], missing: [],
      },
      {
        type: "plan", patientId: "P1", patientName: "Test^Hand", sopInstanceUid: "3.1", planUid: "3.1", label: "Proton",
        approval: "APPROVED", machines: ["ProtonGantry1"], beams: 2, path: "3.1.dcm", transferSyntaxUid: E,
        structureSet: { sopInstanceUid: "2.1", label: "SS", transferSyntaxUid: E, imageSeries: [{ seriesUid: "9.1", modality: "CT", count: 2, referenced: 2, transferSyntaxUids: [E] }], path: "2.1.dcm" },
        doses: [],
        records: [{ sopInstanceUid: "4.1", kind: "RT Ion Beams Treatment Record", date: "2025-03-01", fraction: 3, machine: "ProtonGantry1", transferSyntaxUid: E, path: "4.1.dcm" }],
        images: [],
        registrations: [{ sopInstanceUid: "6.1", kind: "Deformable Spatial Registration", frameOfReferenceUids: ["5.2", "5.1"], transferSyntaxUid: E, path: "6.1.dcm" }],
        missing: [{ kind: "image", sopInstanceUids: ["1.3"], referencedBy: "2.1" }],
      },
      {
        type: "unconnected", patientId: "P1", patientName: "Test^Hand",
        objects: [{ seriesUid: "9.8", modality: "REG", count: 1, transferSyntaxUids: [E] }, { seriesUid: "9.9", modality: "RTDOSE", count: 1, transferSyntaxUids: [E] }],
        missing: [{ kind: "RTPLAN", sopInstanceUid: "3.9", referencedBy: "7.1" }],
      },
    ]);
    const text = renderTree(tree).join("\n");
    assert.match(text, /MISSING 1 image: 1\.3 \(referenced by 2\.1\)/);
    assert.match(text, /└── MISSING RTPLAN 3\.9 \(referenced by 7\.1\)/);
    assert.match(text, /RTPLAN "Brachy" UNAPPROVED · machine Flexitron · 0 beams · 3\.2\n│ {3}├── no structure set referenced/);
  });
});
