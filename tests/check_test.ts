// `rtexport check`: a fixture set with one planted violation per rule (check flags exactly
// those), the built-in targets, --fix (dciodvfy finds no new errors, Orthanc stores the result),
// pydicom's character set files, and the target asked by C-FIND (Orthanc).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { main } from "../commands/check.ts";
import { main as push } from "../commands/push.ts";
import { textElement } from "../lib/dicom/dataset.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { encodeFile } from "../lib/dicom/writer.ts";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { checkRecords, loadProfile, toLatin1 } from "../lib/check/mod.ts";
import { pathRecords } from "../lib/fs/walk.ts";
import { type OrthancPeer, runMainCaptured, startOrthanc } from "./_peers.ts";

const CHARSET_FILES = "/usr/lib/python3/dist-packages/pydicom/data/charset_files";

function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith(".dcm"))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).sort();
}

type Edit = (ds: ReturnType<typeof readDicomFile>["dataset"]) => void;

/** A copy of `src` with a new SOP Instance UID and `edit` applied, written to `dest`. */
function plant(src: string, dest: string, uid: string, edit: Edit): void {
  const f = readDicomFile(src, { full: true });
  f.dataset.set(textElement(0x00080018, "UI", uid));
  f.meta.set(textElement(0x00020003, "UI", uid));
  edit(f.dataset);
  const cls = f.dataset.string(0x00080016);
  if (cls) f.meta.set(textElement(0x00020002, "UI", cls));
  writeFileSync(dest, encodeFile(f.dataset, { meta: f.meta, transferSyntaxUid: f.transferSyntaxUid }));
}

const us = (tag: number, v: number) => ({ tag, vr: "US", value: Uint8Array.of(v & 0xff, v >> 8), offset: 0, length: 2 });

/** Every rule on, the way a site's profile file would say it. */
const ALL_RULES = {
  name: "every-rule",
  rules: {
    ...loadProfile("idms").rules,
    ...loadProfile("aria").rules,
    ...loadProfile("orthanc").rules,
  },
};

/** dciodvfy's error lines for a file (its own words, not ours). */
function dciodvfyErrors(path: string): string[] {
  const r = spawnSync("dciodvfy", [path], { encoding: "utf8" });
  return `${r.stdout}\n${r.stderr}`.split("\n").filter((l) => /\bError\b/.test(l)).map((l) => l.trim()).sort();
}

describe("check", () => {
  let dir: string;
  let base: string;
  let planted: string;
  let profilePath: string;
  let orthanc: OrthancPeer;
  /** rule → planted file. */
  const plantedBy = new Map<string, string>();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "rtexport-check-"));
    const clinic = join(dir, "clinic");
    await generateClinic({ out: clinic, patients: 1, slices: 4 });
    base = join(dir, "base");
    planted = join(dir, "planted");
    mkdirSync(base);
    mkdirSync(planted);
    // One patient's CT, structure set, first plan and its dose: what an import needs, nothing iDMS refuses.
    const all = files(clinic);
    const keep = all.filter((p) => /\/CT\/|\/RTSTRUCT\/RS1|\/RTPLAN\/RP1\.|\/RTDOSE\/RD1_PLAN/.test(p));
    for (const p of keep) copyFileSync(p, join(base, `${basename(p)}`));
    const ct = join(base, "CT0002.dcm"), rs = join(base, "RS1.dcm"), rp = join(base, "RP1.dcm");
    const put = (rule: string, src: string, edit: Edit) => {
      const dest = join(planted, `${rule}.dcm`);
      plant(src, dest, `1.2.826.0.1.3680043.10.543.${plantedBy.size + 1}`, edit);
      plantedBy.set(rule, dest);
    };
    put("sop-class", ct, (ds) => ds.set(textElement(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.7")));
    put("patient-id", ct, (ds) => ds.set(textElement(0x00100020, "LO", "RTX 0001/B")));
    put("matrix", ct, (ds) => {
      ds.set(us(0x00280011, 32));
      const px = ds.get(0x7fe00010)!;
      const value = px.value!.slice(0, 64 * 32 * 2);
      ds.set({ ...px, value, length: value.length });
    });
    put("gantry-tilt", ct, (ds) => ds.set(textElement(0x00181120, "DS", "12.5")));
    put("samples-per-pixel", ct, (ds) => ds.set(us(0x00280002, 3)));
    put("photometric", ct, (ds) => ds.set(textElement(0x00280004, "CS", "PALETTE COLOR")));
    put("character-set", ct, (ds) => {
      ds.set(textElement(0x00080005, "CS", "ISO_IR 192"));
      ds.set(textElement(0x00100010, "PN", "Wałęsa^Łukasz"));
      ds.set(textElement(0x0008103e, "LO", "Thorax – Ø 3 mm"));
    });
    put("required", ct, (ds) => ds.delete(0x0020000e));
    put("machine-name", rp, (ds) => {
      for (const b of ds.items(0x300a00b0)) b.set(textElement(0x300a00b2, "SH", "OldLinac"));
    });
    put("structure-set-images", rs, (ds) => {
      const img = ds.items(0x30060039)[0].items(0x30060040)[0].items(0x30060016)[0];
      img.set(textElement(0x00081155, "UI", "1.2.826.0.1.3680043.10.543.404"));
    });
    put("plan-structure-set", rp, (ds) => ds.items(0x300c0060)[0].set(textElement(0x00081155, "UI", "1.2.826.0.1.3680043.10.543.405")));
    put("empty-beams", rp, (ds) => ds.set({ tag: 0x300a00b0, vr: "SQ", items: [], offset: 0, length: 0 }));
    profilePath = join(dir, "every-rule.json");
    writeFileSync(profilePath, JSON.stringify(ALL_RULES));
    orthanc = await startOrthanc();
  });

  after(async () => {
    await orthanc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** check's verdict per file name: status and the rules broken. */
  async function verdicts(args: string[]): Promise<{ code: number; stderr: string; by: Map<string, [string, string[]]>; summary: Record<string, unknown> }> {
    const r = await runMainCaptured(main, args);
    const by = new Map<string, [string, string[]]>();
    for (const rec of r.records) {
      if (rec.type === "file") by.set(basename(rec.check.from ?? rec.path), [rec.check.status, rec.check.violations.map((v: { rule: string }) => v.rule)]);
    }
    return { code: r.code, stderr: r.stderr, by, summary: r.records.find((x) => x.type === "check-summary")! };
  }

  test("every rule: the clean set passes, each planted file is flagged for exactly its rule", async () => {
    const r = await verdicts(["--target", profilePath, "--machines", "TrueBeam2", base, planted]);
    assert.equal(r.code, 3, r.stderr);
    for (const p of files(base)) assert.deepEqual(r.by.get(basename(p)), ["ok", []], basename(p));
    for (const [rule, p] of plantedBy) assert.deepEqual(r.by.get(basename(p)), ["refused", [rule]], rule);
    assert.equal(plantedBy.size, 12);
    assert.deepEqual(r.summary.byRule, Object.fromEntries([...plantedBy.keys()].map((k) => [k, 1])));
    assert.match(r.stderr, /check: Cannot import "[^"]*gantry-tilt\.dcm" into every-rule: Gantry\/Detector Tilt is 12\.5 \(every-rule takes only 0\)/);
    // The patient's ID itself is not printed: its characters are.
    assert.match(r.stderr, /Patient ID has characters every-rule does not allow: " ", "\/"/);
    assert.doesNotMatch(r.stderr, /RTX 0001\/B/);
  });

  test("built-in idms flags exactly its rules; aria exactly its own", async () => {
    const idms = await verdicts(["--target", "idms", base, planted]);
    const flagged = (v: typeof idms) => [...v.by].filter(([, [s]]) => s === "refused").map(([n, [, rules]]) => `${n}:${rules.join(",")}`).sort();
    assert.deepEqual(flagged(idms), ["character-set.dcm:character-set", "gantry-tilt.dcm:gantry-tilt", "matrix.dcm:matrix", "patient-id.dcm:patient-id", "photometric.dcm:photometric", "samples-per-pixel.dcm:samples-per-pixel", "sop-class.dcm:sop-class"]);
    const aria = await verdicts(["--target", "aria", "--machines", "TrueBeam1,TrueBeam2", base, planted]);
    assert.deepEqual(flagged(aria), ["empty-beams.dcm:empty-beams", "machine-name.dcm:machine-name", "plan-structure-set.dcm:plan-structure-set", "structure-set-images.dcm:structure-set-images"]);
    // Without the machines ARIA knows, names cannot be checked: one warning, not a verdict.
    const blind = await verdicts(["--target", "aria", base, planted]);
    assert.match(blind.stderr, /Treatment machine names are not checked: aria needs the machines it knows/);
    assert.equal(blind.by.get("machine-name.dcm")![0], "ok");
  });

  test("--fix: charset and machines fixed into --out (dciodvfy: no new errors), the rest refused with the reason; Orthanc stores the result", async () => {
    const out = join(dir, "fixed");
    const r = await runMainCaptured(main, [
      "--target", profilePath, "--machines", "TrueBeam2", "--fix", "charset,machines", "--map-machine", "OldLinac=TrueBeam2", "--out", out, "-v", base, planted,
    ]);
    assert.equal(r.code, 3, r.stderr);
    const byName = new Map(r.records.filter((x) => x.type === "file").map((x) => [basename(x.check.from ?? x.path), x]));
    const status = (n: string) => byName.get(n)!.check.status;
    assert.equal(status("character-set.dcm"), "fixed");
    assert.equal(status("machine-name.dcm"), "fixed");
    for (const p of files(base)) assert.equal(status(basename(p)), "ok");
    for (const rule of ["sop-class", "patient-id", "matrix", "gantry-tilt", "samples-per-pixel", "photometric", "required", "structure-set-images", "plan-structure-set", "empty-beams"]) {
      const rec = byName.get(`${rule}.dcm`)!;
      assert.equal(rec.check.status, "refused", rule);
      assert.match(rec.check.reason, /\(no fix: /, rule);
    }
    assert.match(byName.get("matrix.dcm")!.check.reason, /no fix: resampling an image is not lossless/);
    // Every change reported: in the record, and the values on stderr with -v.
    const cs = byName.get("character-set.dcm")!;
    assert.deepEqual(cs.check.changes.map((c: { keyword: string; from: string; to: string }) => [c.keyword, c.from, c.to]), [
      ["SeriesDescription", "Thorax – Ø 3 mm", "Thorax - Ø 3 mm"],
      ["PatientName", "Wałęsa^Łukasz", "Walesa^Lukasz"],
    ]);
    assert.match(r.stderr, /Fixed "[^"]*character-set\.dcm": 2 values changed \(SeriesDescription, PatientName\)/);
    assert.match(r.stderr, /PatientName: "Wałęsa\^Łukasz" -> "Walesa\^Lukasz"/);
    const mc = byName.get("machine-name.dcm")!;
    assert.deepEqual([...new Set(mc.check.changes.map((c: { from: string; to: string }) => `${c.from}=${c.to}`))], ["OldLinac=TrueBeam2"]);
    // DCMTK reads the fixed copies as we meant them; dciodvfy finds nothing it did not find before.
    const dump = spawnSync("dcmdump", ["+P", "0008,0005", "+P", "0010,0010", cs.path], { encoding: "utf8" }).stdout;
    assert.match(dump, /\(0008,0005\) CS \[ISO_IR 100\]/);
    assert.match(dump, /\(0010,0010\) PN \[Walesa\^Lukasz\]/);
    for (const rec of [cs, mc]) {
      const before = dciodvfyErrors(rec.check.from);
      const after = dciodvfyErrors(rec.path);
      assert.deepEqual(after.filter((e) => !before.includes(e)), [], `new dciodvfy errors in ${rec.path}`);
    }
    // The output is importable: a re-check finds nothing, and Orthanc stores every object.
    const again = await verdicts(["--target", profilePath, "--machines", "TrueBeam2", out]);
    assert.equal(again.code, 0, again.stderr);
    const written = files(out);
    assert.equal(written.length, files(base).length + 2);
    const p = await runMainCaptured(push, ["--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle, out]);
    assert.equal(p.code, 0, p.stderr);
    assert.equal((await orthanc.rest("/instances")).length, written.length);
  });

  test("--fix machines without a mapping for the machine: refused, saying how", async () => {
    const r = await runMainCaptured(main, ["--target", profilePath, "--machines", "TrueBeam2", "--fix", "machines", "--out", join(dir, "fixed2"), base, plantedBy.get("machine-name")!]);
    assert.equal(r.code, 3);
    assert.match(r.records.find((x) => x.check?.from === undefined && String(x.path).endsWith("machine-name.dcm"))!.check.reason, /treatment machine "OldLinac" is not known to every-rule .*no fix: map the machine with --map-machine OLD=NEW/);
  });

  test("pydicom's character set files: transliterated where Latin-1 can say it, refused where it cannot", async () => {
    const latin1 = join(dir, "latin1.json");
    writeFileSync(latin1, JSON.stringify({ name: "latin1", rules: { "character-set": { allowed: ["ISO_IR 100"] } } }));
    const out = join(dir, "charset-fixed");
    const r = await runMainCaptured(main, ["--target", latin1, "--fix", "charset", "--out", out, "--layout", "flat", CHARSET_FILES]);
    const got = Object.fromEntries(r.records.filter((x) => x.type === "file" && x.check).map((x) => [basename(x.check.from ?? x.path), x.check.status === "fixed" ? x.check.changes.find((c: { keyword: string }) => c.keyword === "PatientName")?.to : x.check.status]));
    assert.deepEqual(got, {
      "chrArab.dcm": "refused", "chrFren.dcm": "ok", "chrFrenMulti.dcm": "ok", "chrGerm.dcm": "ok", "chrGreek.dcm": "Dionysios",
      "chrH31.dcm": "Yamada^Tarou", "chrH32.dcm": "refused", "chrHbrw.dcm": "refused", "chrI2.dcm": "Hong^Gildong", "chrJapMulti.dcm": "refused",
      "chrJapMultiExplicitIR6.dcm": "refused", "chrKoreanMulti.dcm": "refused", "chrRuss.dcm": "Liukcembypg", "chrSQEncoding.dcm": "refused",
      "chrSQEncoding1.dcm": "refused", "chrX1.dcm": "Wang^XiaoDong", "chrX2.dcm": "Wang^XiaoDong",
    });
    // DCMTK decodes what we wrote: the Greek name in Latin-1.
    const dump = spawnSync("dcmdump", ["+P", "0010,0010", join(out, "chrGreek.dcm")], { encoding: "utf8" }).stdout;
    assert.match(dump, /\[Dionysios\]/);
    assert.match(r.stderr, /chrHbrw\.dcm" into latin1: \(0010,0010\) PatientName has characters ISO_IR 100 cannot hold: "ש"/);
  });

  test("transliteration table", () => {
    const cases: [string, string, string[]][] = [
      ["Müller", "Müller", []], ["Łukasz", "Lukasz", []], ["Şahin", "Sahin", []], ["Ελένη", "Eleni", []], ["Пётр", "Petr", []],
      ["e\u0301", "é", []], ["“quoted” – dash…", '"quoted" - dash...', []], ["李", "", ["李"]],
    ];
    for (const [from, to, unmapped] of cases) assert.deepEqual(toLatin1(from), { text: to, unmapped }, from);
  });

  test("the target asked by C-FIND: a structure set whose images are at Orthanc already is importable", async () => {
    const orthancPeer = ["--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle];
    // The images are at Orthanc (stored by the --fix test); only the structure set is checked.
    const rs = join(base, "RS1.dcm");
    const without = await verdicts(["--target", "aria", rs]);
    assert.deepEqual(without.by.get("RS1.dcm"), ["refused", ["structure-set-images"]]);
    const withPeer = await verdicts(["--target", "aria", ...orthancPeer, rs]);
    assert.deepEqual(withPeer.by.get("RS1.dcm"), ["ok", []], withPeer.stderr);
  });

  test("the target asked by C-FIND: the treatment machines of the plans Orthanc holds (nested key)", async () => {
    const orthancPeer = ["--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle];
    const r = await runMainCaptured(main, ["--target", "aria", ...orthancPeer, base, plantedBy.get("machine-name")!]);
    const rec = r.records.find((x) => String(x.path).endsWith("machine-name.dcm"))!;
    assert.deepEqual(rec.check.violations.map((v: { message: string }) => v.message), ['treatment machine "OldLinac" is not known to aria (known: TrueBeam2)']);
    assert.doesNotMatch(r.stderr, /not checked/);
  });

  test("profiles: a site file is validated with one line naming the problem; unknown targets named", async () => {
    const bad = join(dir, "bad.json");
    writeFileSync(bad, JSON.stringify({ name: "x", rules: { "gantry-tilt": { modalities: ["CT"] }, colour: {} } }));
    let r = await runMainCaptured(main, ["--target", bad, base]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Invalid target profile "[^"]*bad\.json": "gantry-tilt\.value" must be a number/);
    r = await runMainCaptured(main, ["--target", "mosaiq", base]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /Unknown target "mosaiq": the built-in targets are idms, aria, orthanc, or give a profile file/);
    r = await runMainCaptured(main, ["--target", "idms", "--fix", "charset", base]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--fix needs --out DIR/);
  });

  test("library: checkRecords gives the same verdicts as the command", async () => {
    const out: Record<string, string> = {};
    for await (const rec of checkRecords(pathRecords([planted]), { target: "idms" })) {
      if (rec.type === "file") out[basename(String(rec.path))] = (rec.check as { status: string }).status;
    }
    assert.equal(out["gantry-tilt.dcm"], "refused");
    assert.equal(out["empty-beams.dcm"], "ok");
  });
});
