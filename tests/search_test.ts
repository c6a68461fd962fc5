// `search`: the tag expression parser and DICOM matching (table-driven), then end to end on the
// synthetic clinic: matches, sequence paths, private tags, --stats, --dirs, stdin records, bad input
// (damaged DICOM fails, a file that is not DICOM is a counted skip), and the library stage.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { main as searchMain } from "../commands/search.ts";
import { type ClinicManifest, generateClinic } from "../lib/fixtures/clinic.ts";
import { parseTagExpression, type TagExpression } from "../lib/search/expression.ts";
import { matchValue, wildcardMatch } from "../lib/search/match.ts";
import { searchFiles } from "../lib/search/search.ts";
import type { StageEvent } from "../lib/stage/stage.ts";
import { runCliSync } from "./_run.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

const runCli = runCliSync;

/** Runs search in this process (fast); stdout is not a terminal, so it writes NDJSON. */
async function run(args: string[], input?: string): Promise<{ status: number; stdout: string; stderr: string }> {
  let stdout = "", stderr = "";
  const out = new Writable({
    write(chunk, _enc, cb) {
      stdout += chunk.toString();
      cb();
    },
  });
  const stdin = Object.assign((async function* () {
    if (input !== undefined) yield input;
  })(), { isTTY: input === undefined });
  const status = await searchMain(args, { stdout: out, stderr: { write: (t: string) => (stderr += t) }, stdin, env: {}, cwd: ROOT });
  return { status, stdout, stderr };
}

/** The summary line runStage writes, up to the figures (bytes and time vary). */
function summary(done: number, rest: string): RegExp {
  const esc = rest.replace(/[()]/g, "\\$&");
  return new RegExp(`^search: ${done} files done, ${esc} \\(\\d+ patients?, [\\d.]+ [kMG]?B in \\d+s\\)\n$`);
}

/** The number of files under `d` (recursively) whose name matches `re`. */
function fileCount(d: string, re: RegExp): number {
  return readdirSync(d, { recursive: true, encoding: "utf8" }).filter((f) => re.test(f.split("/").at(-1)!)).length;
}

// deno-lint-ignore no-explicit-any -- test records are checked field by field against the manifest
function records(stdout: string): Record<string, any>[] {
  return stdout.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));
}

describe("parseTagExpression", () => {
  const valid: [string, TagExpression][] = [
    ["(0010,0020)=Phantom-1", { key: "(0010,0020)", path: [0x00100020], op: "match", value: "Phantom-1" }],
    ["(0008,0060)=?", { key: "(0008,0060)", path: [0x00080060], op: "report" }],
    ["PatientID=?", { key: "PatientID", path: [0x00100020], op: "report" }],
    ["PatientID", { key: "PatientID", path: [0x00100020], op: "report" }],
    ["Modality=RT*", { key: "Modality", path: [0x00080060], op: "match", value: "RT*" }],
    ["(300A,00B0)/(300A,00B2)=?", { key: "(300A,00B0)/(300A,00B2)", path: [0x300a00b0, 0x300a00b2], op: "report" }],
    ["(300a,00b0)/(300a,00b2)=TrueBeam1", { key: "(300a,00b0)/(300a,00b2)", path: [0x300a00b0, 0x300a00b2], op: "match", value: "TrueBeam1" }],
    ["BeamSequence/TreatmentMachineName=?", { key: "BeamSequence/TreatmentMachineName", path: [0x300a00b0, 0x300a00b2], op: "report" }],
    ["BeamSequence/ControlPointSequence/GantryAngle=180", {
      key: "BeamSequence/ControlPointSequence/GantryAngle", path: [0x300a00b0, 0x300a0111, 0x300a011e], op: "match", value: "180",
    }],
    ["(3253,1010)=CyberKnife*", { key: "(3253,1010)", path: [0x32531010], op: "match", value: "CyberKnife*" }],
    ["(3253,1002)/(3253,1001)=?", { key: "(3253,1002)/(3253,1001)", path: [0x32531002, 0x32531001], op: "report" }],
    ["00100010=Doe^*", { key: "00100010", path: [0x00100010], op: "match", value: "Doe^*" }],
    ["PatientName=", { key: "PatientName", path: [0x00100010], op: "match", value: "" }],
    ["ImageType=ORIGINAL\\PRIMARY*", { key: "ImageType", path: [0x00080008], op: "match", value: "ORIGINAL\\PRIMARY*" }],
    ["StudyDescription=a=b", { key: "StudyDescription", path: [0x00081030], op: "match", value: "a=b" }],
  ];
  for (const [text, expected] of valid) {
    test(`parses ${text}`, () => assert.deepEqual(parseTagExpression(text), expected));
  }

  const invalid: [string, string][] = [
    ["Foo=bar", `Invalid tag expression "Foo=bar": unknown keyword "Foo"`],
    ["=CT", `Invalid tag expression "=CT": no tag before "="`],
    ["(0010,002G)=x", `Invalid tag expression "(0010,002G)=x": "(0010,002G)" is not a tag; write (gggg,eeee) in hexadecimal`],
    ["(0010,0020=x", `Invalid tag expression "(0010,0020=x": "(0010,0020" is not a tag; write (gggg,eeee) in hexadecimal`],
    ["BeamSequence//TreatmentMachineName=?", `Invalid tag expression "BeamSequence//TreatmentMachineName=?": empty step in the tag path`],
    ["PatientID/Modality=?", `Invalid tag expression "PatientID/Modality=?": PatientID (0010,0020) is not a sequence`],
    ["Patient ID=x", `Invalid tag expression "Patient ID=x": "Patient ID" is neither a tag (gggg,eeee) nor a DICOM keyword`],
  ];
  for (const [text, message] of invalid) {
    test(`rejects ${text}`, () => assert.throws(() => parseTagExpression(text), { name: "TagExpressionError", message }));
  }
});

describe("wildcardMatch (PS3.4 C.2.2.2.4)", () => {
  const cases: [string, string, boolean, boolean?][] = [
    ["*", "", true],
    ["*", "anything", true],
    ["?", "", false],
    ["?", "a", true],
    ["RT*", "RTPLAN", true],
    ["RT*", "CT", false],
    ["*PLAN", "RTPLAN", true],
    ["R?PLAN", "RTPLAN", true],
    ["R?PLAN", "RTTPLAN", false],
    ["*a*b*c*", "xxaxxbxxcxx", true],
    ["*a*b*c*", "xxaxxcxxbxx", false],
    ["TrueBeam?", "TrueBeam1", true],
    ["TRUEBEAM?", "TrueBeam1", false],
    ["TRUEBEAM?", "TrueBeam1", true, true],
    ["M?ller*", "Müller^Jörg", true],
    ["山田*", "山田^太郎", true],
    ["*?", "", false],
    ["a*a*a*a*a*a*b", "a".repeat(60), false],
  ];
  for (const [pattern, value, expected, ignoreCase] of cases) {
    test(`${JSON.stringify(pattern)} ${expected ? "matches" : "does not match"} ${JSON.stringify(value)}${ignoreCase ? " ignoring case" : ""}`, () => {
      assert.equal(wildcardMatch(pattern, value, ignoreCase), expected);
    });
  }
});

describe("matchValue", () => {
  const cases: [string, string, string, boolean][] = [
    ["CT", "CT", "CS", true],
    ["ct", "CT", "CS", false],
    ["doe^john", "DOE^JOHN", "PN", true],
    ["DOE*", "Doe^John", "PN", true],
    ["", "", "LO", true],
    ["", "x", "LO", false],
    ["1.2.3\\1.2.4", "1.2.4", "UI", true],
    ["1.2.3\\1.2.4", "1.2.5", "UI", false],
    ["1.2.3", "1.2.3.4", "UI", false],
    ["20240101-20241231", "20240615", "DA", true],
    ["20240101-20241231", "20250101", "DA", false],
    ["-20240101", "20231231", "DA", true],
    ["20240101-", "20231231", "DA", false],
    ["0800-0900", "081500", "TM", true],
    ["0800-0900", "090030", "TM", true],
    ["0800-0900", "091000", "TM", false],
    ["2.5", "2.50", "DS", true],
    ["180", "180", "FD", true],
    ["18*", "180", "DS", true],
    ["1-2", "1-2", "LO", true],
    ["1.50", "1.5", "UN", true],
    ["abc", "abc", "UN", true],
    ["1.50", "1.5", "LO", false],
  ];
  for (const [pattern, value, vr, expected] of cases) {
    test(`${vr}: ${JSON.stringify(pattern)} ${expected ? "matches" : "does not match"} ${JSON.stringify(value)}`, () => {
      assert.equal(matchValue(pattern, value, vr), expected);
    });
  }
});

let dir: string;
let clinic: string;
let manifest: ClinicManifest;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtexport-search-"));
  clinic = join(dir, "clinic");
  manifest = await generateClinic({ out: clinic, patients: 5, slices: 4, size: 16, seed: 3 });
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function allInstances() {
  return manifest.patients.flatMap((p) =>
    p.studies.flatMap((s) => s.series.flatMap((se) => se.instances.map((i) => ({ ...i, modality: se.modality, seriesUid: se.seriesUid, studyUid: s.studyUid, patientId: p.patientId }))))
  );
}

describe("search end to end", () => {
  test("a value expression and a report expression AND together; records carry the file's identity", async () => {
    const r = await run(["--json", "--pattern", "*.dcm", "--tag", "Modality=RTPLAN", "--tag", "BeamSequence/TreatmentMachineName=?", clinic]);
    assert.match(r.stderr, summary(fileCount(clinic, /\.dcm$/), "0 failed"));
    assert.equal(r.status, 0);
    const plans = manifest.patients.flatMap((p) => p.plans.map((plan) => ({ p, plan }))).filter(({ plan }) => plan.beams.length > 0)
      .sort((a, b) => (a.plan.path < b.plan.path ? -1 : 1));
    const out = records(r.stdout);
    assert.deepEqual(out.map((x) => x.path), plans.map(({ plan }) => join(clinic, plan.path)));
    const first = out[0];
    const inst = allInstances().find((i) => i.sopInstanceUid === plans[0].plan.planUid)!;
    assert.deepEqual({ ...first, bytes: typeof first.bytes }, {
      type: "file",
      path: join(clinic, plans[0].plan.path),
      bytes: "number",
      category: "dicom",
      sopClassUid: inst.sopClassUid,
      sopInstanceUid: inst.sopInstanceUid,
      modality: "RTPLAN",
      patientId: inst.patientId,
      studyUid: inst.studyUid,
      seriesUid: inst.seriesUid,
      transferSyntaxUid: inst.transferSyntaxUid,
      tags: { "Modality": ["RTPLAN"], "BeamSequence/TreatmentMachineName": plans[0].plan.beams.map((b) => b.machine) },
    });
  });

  test("sequence paths by number and --stats count distinct values per file", async () => {
    const r = await run(["--json", "--pattern", "RP*.dcm", "--tag", "(300A,00B0)/(300A,00B2)=?", "--stats", clinic]);
    assert.equal(r.status, 0);
    const out = records(r.stdout);
    const stats = out.filter((x) => x.type === "stats");
    const expected = new Map<string, number>();
    for (const plan of manifest.patients.flatMap((p) => p.plans)) {
      if (plan.beams.length) expected.set(plan.machines[0], (expected.get(plan.machines[0]) ?? 0) + 1);
    }
    assert.deepEqual(stats, [{
      type: "stats",
      tag: "(300A,00B0)/(300A,00B2)",
      values: [...expected].map(([value, count]) => ({ value, count })).sort((a, b) => b.count - a.count || (a.value < b.value ? -1 : 1)),
    }]);
    assert.equal(out.filter((x) => x.type === "file").length, [...expected.values()].reduce((a, b) => a + b, 0));
  });

  test("private tags by number: the skeleton plan's machine, and a private sequence", async () => {
    const ck = manifest.patients.flatMap((p) => p.plans).find((p) => p.kind === "cyberknife")!;
    const r = await run(["--json", "--pattern", "*.dcm", "--tag", "(3253,1010)=CyberKnife*", clinic]);
    assert.equal(r.status, 0);
    assert.deepEqual(records(r.stdout).map((x) => [x.path, x.tags]), [[join(clinic, ck.path), { "(3253,1010)": ["CyberKnife M6"] }]]);
    const seq = await run(["--json", "--pattern", "CT0001.dcm", "--tag", `${manifest.private.sequence}=?`, clinic]);
    assert.equal(seq.status, 0);
    const out = records(seq.stdout);
    assert.equal(out.length, manifest.patients.length);
    for (const x of out) assert.match(x.tags[manifest.private.sequence][0], /^\(\d+ items?\)$/);
  });

  test("a private sequence at any depth, in big endian, implicit and explicit VR files", async () => {
    const p = manifest.patients[0];
    const mr = p.studies.flatMap((s) => s.series).find((s) => s.modality === "MR")!;
    const r = await run(["--json", "--pattern", "MR*.dcm", "--tag", "(3253,1002)/(3253,1004)/CodeValue=RTX001", "--tag", "(3253,1002)/(3253,1005)=1.50", join(clinic, p.patientId)]);
    assert.equal(r.status, 0);
    const out = records(r.stdout);
    assert.deepEqual(out.map((x) => [x.path, x.transferSyntaxUid]), mr.instances.map((i) => [join(clinic, i.path), i.transferSyntaxUid]));
    assert.deepEqual(new Set(out.map((x) => x.transferSyntaxUid)).size, 3);
    for (const x of out) assert.deepEqual(x.tags, { "(3253,1002)/(3253,1004)/CodeValue": ["RTX001"], "(3253,1002)/(3253,1005)": ["1.5"] });
  });

  test("TransferSyntaxUID (file meta information) matches and reports like any tag", async () => {
    const p = manifest.patients[0];
    const mr = p.studies.flatMap((s) => s.series).find((s) => s.modality === "MR")!;
    const big = mr.instances.filter((i) => i.transferSyntaxUid === "1.2.840.10008.1.2.2");
    assert.ok(big.length > 0 && big.length < mr.instances.length);
    const r = await run(["--json", "--tag", "TransferSyntaxUID=1.2.840.10008.1.2.2", join(clinic, p.patientId)]);
    assert.equal(r.status, 0, r.stderr);
    const out = records(r.stdout);
    assert.deepEqual(out.map((x) => x.path), big.map((i) => join(clinic, i.path)));
    for (const x of out) assert.deepEqual(x.tags, { TransferSyntaxUID: ["1.2.840.10008.1.2.2"] });
  });

  test("wild cards, person names ignoring case, and non-ASCII names", async () => {
    const p = manifest.patients[0];
    const family = p.nameParts.family;
    const r = await run(["--json", "--pattern", "*.dcm", "--tag", `PatientName=${family.toUpperCase()}^*`, "--tag", "Modality=R?STRUCT", clinic]);
    assert.equal(r.status, 0);
    assert.deepEqual(records(r.stdout).map((x) => [x.path, x.tags.PatientName]), [[join(clinic, p.structureSet.path), [p.name]]]);
  });

  test("--dirs lists matching directories with their counts", async () => {
    const r = await run(["--json", "--pattern", "*.dcm", "--tag", "Modality=CT", "--dirs", clinic]);
    assert.equal(r.status, 0);
    const ctDirs = new Map<string, number>();
    for (const i of allInstances().filter((i) => i.modality === "CT")) {
      const d = dirname(join(clinic, i.path));
      ctDirs.set(d, (ctDirs.get(d) ?? 0) + 1);
    }
    assert.deepEqual(records(r.stdout), [...ctDirs].sort().map(([path, files]) => ({ type: "directory", path, files })));
  });

  test("file records on stdin: matches keep their fields, other records pass through", async () => {
    const p = manifest.patients[2];
    const files = p.studies.flatMap((s) => s.series.flatMap((se) => se.instances));
    const input = [
      JSON.stringify({ type: "plan", patientId: p.patientId, label: "x" }),
      ...files.map((f) => JSON.stringify({ type: "file", path: join(clinic, f.path), sha256: "abc", category: "dicom" })),
      JSON.stringify({ type: "file", path: join(clinic, "manifest.json"), category: "document" }),
    ].join("\n") + "\n";
    const r = await run(["--tag", "Modality=RTDOSE", "--tag", "DoseSummationType=PLAN"], input);
    assert.match(r.stderr, summary(files.length, "1 skipped (1 not DICOM), 0 failed"));
    assert.equal(r.status, 0);
    const out = records(r.stdout);
    assert.deepEqual(out[0], { type: "plan", patientId: p.patientId, label: "x" });
    const planDoses = p.plans.flatMap((pl) => pl.doses).filter((d) => d.doseSummationType === "PLAN");
    assert.deepEqual(out.slice(1).map((x) => [x.path, x.sha256, x.tags]),
      planDoses.map((d) => [join(clinic, d.path), "abc", { Modality: ["RTDOSE"], DoseSummationType: ["PLAN"] }]));
  });

  test("damaged and missing files: one stderr line each, the others still found, exit 3; garbage is a counted skip", async () => {
    const r0 = await run(["--json", "--tag", "PatientID=?", join(clinic, manifest.patients[0].patientId, "RTPLAN")]);
    assert.equal(r0.status, 0);
    const good = records(r0.stdout);
    writeFileSync(join(dir, "garbage.dcm"), "this is not DICOM\n".repeat(20));
    const plan = readFileSync(join(clinic, manifest.patients[0].plans[0].path));
    writeFileSync(join(dir, "truncated.dcm"), plan.subarray(0, Math.floor(plan.length / 2)));
    const r = runCli(["search", "--json", "--tag", "PatientID=?", join(dir, "garbage.dcm"), join(dir, "truncated.dcm"), join(clinic, manifest.patients[0].patientId, "RTPLAN"), join(dir, "absent.dcm")]);
    assert.equal(r.status, 3);
    assert.deepEqual(records(r.stdout), good);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 3, r.stderr);
    assert.match(lines[0], /^search: Cannot read DICOM file ".*truncated\.dcm": .*(at offset \d+|extends beyond)/);
    assert.match(lines[1], /^search: Cannot read ".*absent\.dcm": no such file or directory$/);
    assert.match(lines[2] + "\n", summary(good.length, "1 skipped (1 not DICOM), 2 failed"));
  });

  test("a tree with documents and the tool's own .rtexport folder: skips counted, exit 0", async () => {
    const p = manifest.patients[1];
    const tree = join(dir, "export-tree");
    mkdirSync(join(tree, ".rtexport", "staging"), { recursive: true });
    mkdirSync(join(tree, "Documents"), { recursive: true });
    writeFileSync(join(tree, "Documents", "report.pdf"), "%PDF-1.4\n%%EOF\n");
    writeFileSync(join(tree, "Documents", "notes.xml"), "<?xml version=\"1.0\"?><notes/>\n");
    writeFileSync(join(tree, ".rtexport", "ledger.sqlite"), "SQLite format 3\0" + "\0".repeat(100));
    writeFileSync(join(tree, ".rtexport", "staging", "RP.dcm"), readFileSync(join(clinic, p.plans[0].path)).subarray(0, 500));
    writeFileSync(join(tree, "RP1.dcm"), readFileSync(join(clinic, p.plans[0].path)));
    const r = await run(["--json", "-v", "--tag", "Modality=RTPLAN", tree]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(records(r.stdout).map((x) => x.path), [join(tree, "RP1.dcm")]);
    const lines = r.stderr.trim().split("\n");
    assert.deepEqual(lines.slice(0, 2).map((l) => /^search: debug: Skipped file "(.*?)": Cannot read DICOM file ".*": not a DICOM file: /.exec(l)?.[1]),
      ["notes.xml", "report.pdf"].map((f) => join(tree, "Documents", f)));
    assert.match(lines[2] + "\n", summary(1, "2 skipped (2 not DICOM), 0 failed"));
  });

  test("paths on stdin, as find writes them (folders included): the files are searched, the folders skipped", async () => {
    const p = manifest.patients[3];
    const base = join(clinic, p.patientId);
    const lines = [base, ...readdirSync(base, { recursive: true, encoding: "utf8" }).sort().map((f) => join(base, f))];
    const folders = lines.filter((l) => !l.endsWith(".dcm")).length;
    const r = await run(["--tag", "Modality=RTPLAN"], lines.join("\n") + "\n");
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(records(r.stdout).map((x) => x.path), p.plans.map((x) => join(clinic, x.path)).sort());
    assert.match(r.stderr, summary(lines.length - folders, `${folders} skipped (${folders} not DICOM), 0 failed`));
  });

  test("the library stage: the same records as the command, outcomes as events, --dirs and --stats as options", async () => {
    const p = manifest.patients[0];
    const base = join(clinic, p.patientId);
    const cli = await run(["--json", "--tag", "Modality=CT", "--dirs", "--stats", base]);
    assert.equal(cli.status, 0);
    const events: StageEvent[] = [];
    const got: unknown[] = [];
    writeFileSync(join(dir, "lib-garbage.txt"), "plain text, not DICOM\n".repeat(5));
    const input = [{ type: "plan", patientId: p.patientId }, base, { type: "file", path: join(dir, "lib-garbage.txt") }];
    for await (const r of searchFiles(input, { tags: ["Modality=CT"], dirs: true, stats: true, onEvent: (e) => events.push(e) })) got.push(r);
    assert.deepEqual(got, [{ type: "plan", patientId: p.patientId }, ...records(cli.stdout)]);
    const finished = events.at(-1) as Extract<StageEvent, { type: "finished" }>;
    assert.deepEqual([finished.counts.done, finished.counts.skippedBy, finished.counts.failed], [fileCount(base, /\.dcm$/), { "not-dicom": 1 }, 0]);
    await assert.rejects(searchFiles([], { tags: ["Nope=1"] }).next(), { name: "TagExpressionError" });
  });

  test("a malformed expression or unknown keyword is a usage error naming it, exit 2", async () => {
    const spawned = runCli(["search", "--tag", "Foo=1", clinic]);
    assert.equal(spawned.status, 2);
    assert.equal(spawned.stdout, "");
    assert.equal(spawned.stderr, `search: Invalid tag expression "Foo=1": unknown keyword "Foo"\nTry 'rtexport search --help' for more information.\n`);
    for (const expr of ["(0010,00ZZ)=1", "PatientID/Modality=?", "(0010,0020=1"]) {
      const r = await run(["--tag", expr, clinic]);
      assert.equal(r.status, 2, expr);
      assert.equal(r.stdout, "");
      assert.ok(r.stderr.startsWith(`search: Invalid tag expression "${expr}"`), r.stderr);
    }
    const none = await run([clinic]);
    assert.equal(none.status, 2);
    assert.match(none.stderr, /^search: Missing --tag/);
  });
});
