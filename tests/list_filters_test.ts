// list-patients filters on every source (issue 12 item 6): each works from what the source carries
// (a catalog's columns; DICOM's Plan Intent, setup beams, Quality Control Subject and dates for a
// folder and a Q/R peer), or is refused with a usage error naming the source. Files are written by
// DCMTK's dump2dcm; the Q/R peer is Orthanc, filled by DCMTK storescu.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main as listMain } from "../commands/list-patients.ts";
import { createCatalogTables } from "../lib/catalog/catalog.ts";
import { connectDatabase } from "../lib/sql/connect.ts";
import { type OrthancPeer, runDcmtk, runMainCaptured, startOrthanc } from "./_peers.ts";
import { type ServeChild, startServe } from "./_hostile.ts";

const PLAN = "1.2.840.10008.5.1.4.1.1.481.5";
const CT = "1.2.840.10008.5.1.4.1.1.2";
const U = "1.2.826.0.1.3680043.9.7779";
const tmp = mkdtempSync(join(tmpdir(), "rtexport-list-filters-"));
const folder = join(tmp, "folder");
let n = 0;
let orthanc: OrthancPeer;

function beams(type: string, count: number): string[] {
  const out = ["(300a,00b0) SQ (Sequence with undefined length)"];
  for (let i = 1; i <= count; i++) {
    out.push("(fffe,e000) na (Item with undefined length)", `(300a,00b2) SH [TB1]`, `(300a,00c0) IS [${i}]`, `(300a,00ce) CS [${type}]`, "(fffe,e00d) na (ItemDelimitationItem)");
  }
  out.push("(fffe,e0dd) na (SequenceDelimitationItem)");
  return out;
}

/** One object written by dump2dcm into the folder. */
function dcm(o: { cls?: string; patient: string; name: string; date: string; study: string; extra?: string[] }): void {
  const i = ++n;
  const lines = [
    `(0008,0016) UI [${o.cls ?? PLAN}]`, `(0008,0018) UI [${U}.9.${i}]`, `(0008,0020) DA [${o.date}]`,
    `(0008,0060) CS [${o.cls === CT ? "CT" : "RTPLAN"}]`, `(0010,0010) PN [${o.name}]`, `(0010,0020) LO [${o.patient}]`,
    `(0020,000d) UI [${U}.${o.study}]`, `(0020,000e) UI [${U}.${o.study}.${o.cls === CT ? 2 : 1}]`, ...(o.extra ?? []),
  ];
  const txt = join(tmp, `${i}.dump`);
  writeFileSync(txt, lines.join("\n") + "\n");
  execFileSync("dump2dcm", ["--write-xfer-little", txt, join(folder, `${i}.dcm`)]);
}

const plan = (patient: string, name: string, label: string, date: string, study: string, extra: string[] = []) =>
  dcm({ patient, name, date, study, extra: [`(300a,0002) SH [${label}]`, `(300a,0006) DA [${date}]`, ...extra] });

before(() => {
  mkdirSync(folder, { recursive: true });
  plan("P-OLD", "Old^Patient", "old-plan", "20200101", "1");
  plan("P-NEW", "New^Patient", "new-plan", "20240105", "2", ["(300a,000a) CS [CURATIVE]", ...beams("TREATMENT", 2)]);
  plan("P-NEW", "New^Patient", "earlier-plan", "20190101", "3");
  plan("P-NEW", "New^Patient", "qa-plan", "20240105", "2", ["(300a,000a) CS [VERIFICATION]"]);
  plan("P-NEW", "New^Patient", "setup-plan", "20240105", "2", beams("SETUP", 2));
  plan("P-CT", "Ct^Only", "ct-plan", "20190101", "4");
  dcm({ cls: CT, patient: "P-CT", name: "Ct^Only", date: "20240301", study: "4" });
  plan("PH-7", "Phantom^Head", "phantom-plan", "20240105", "5");
  plan("QCS-1", "Quality^Control", "qcs-plan", "20240105", "6", ["(0010,0200) CS [YES]"]);
  plan("WT-1", "Water^Tank", "tank-plan", "20240105", "7");
});
after(async () => {
  await orthanc?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function list(args: string[], cwd = tmp) {
  const r = await runMainCaptured(listMain, ["--json", ...args], { cwd });
  const shape: Record<string, string[]> = {};
  let current = "";
  for (const rec of r.records) {
    if (rec.type === "patient") shape[current = rec.patientId] = [];
    else if (rec.type === "plan") shape[current].push(rec.label + (rec.planType ? `:${rec.planType}` : ""));
  }
  return { ...r, shape };
}

describe("list-patients --from folder: filters from what DICOM carries", () => {
  test("default: QA (Plan Intent) and setup (all beams SETUP) plans left out, phantoms (name pattern, Quality Control Subject) left out", async () => {
    const r = await list(["--from", "folder", folder]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.shape, {
      "P-CT": ["ct-plan"],
      "P-NEW": ["earlier-plan", "new-plan"],
      "P-OLD": ["old-plan"],
      "WT-1": ["tank-plan"],
    });
  });

  test("--since: patients with an object dated since then, with the plans dated since then; 2030 lists nobody", async () => {
    let r = await list(["--from", "folder", folder, "--since", "2024-01-01"]);
    assert.equal(r.code, 0, r.stderr);
    // P-CT: a new CT, no new plan; P-NEW: only the new plan.
    assert.deepEqual(r.shape, { "P-CT": [], "P-NEW": ["new-plan"], "WT-1": ["tank-plan"] });
    r = await list(["--from", "folder", folder, "--since", "2030-01-01"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.shape, {});
  });

  test("--include-qa --include-setup --include-phantom: all of them, with their plan type", async () => {
    const r = await list(["--from", "folder", folder, "--include-qa", "--include-setup", "--include-phantom", "--patient", "P-NEW", "--patient", "PH-7", "--patient", "QCS-1"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.shape, {
      "P-NEW": ["earlier-plan", "new-plan", "qa-plan:QA", "setup-plan:SETUP"],
      "PH-7": ["phantom-plan"],
      "QCS-1": ["qcs-plan"],
    });
    assert.equal(r.records.find((x) => x.label === "qa-plan")?.planIntent, "VERIFICATION");
  });

  test("phantom patterns from rtexport.json replace the default; Quality Control Subject still counts", async () => {
    const cwd = join(tmp, "configured");
    mkdirSync(cwd, { recursive: true });
    writeFileSync(join(cwd, "rtexport.json"), JSON.stringify({ commands: { "list-patients": { phantomPattern: ["*tank*"] } } }));
    const r = await list(["--from", "folder", folder], cwd);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(Object.keys(r.shape).sort(), ["P-CT", "P-NEW", "P-OLD", "PH-7"]);
  });

  test("a patient asked for that no folder holds: reported once, exit 3; one that another folder holds, or a phantom left out, is not", async () => {
    const empty = join(tmp, "empty");
    mkdirSync(empty, { recursive: true });
    let r = await list(["--from", "folder", folder, empty, "--patient", "NOPE", "--patient", "P-OLD", "--patient", "PH-7"]);
    assert.equal(r.code, 3);
    assert.deepEqual(r.shape, { "P-OLD": ["old-plan"] });
    assert.deepEqual(r.stderr.match(/Cannot list [^\n]*/g), [`Cannot list patient NOPE: not in folder "${folder}", "${empty}"`]);
    r = await list(["--from", "folder", empty, folder, "--patient", "P-OLD"]);
    assert.equal(r.code, 0, r.stderr);
  });

  for (
    const [from, args, message] of [
      ["folder", ["--status", "Completed"], /--status cannot be used with --from folder: plan statuses cannot be filtered on a folder/],
      ["folder", ["--include-lot"], /--include-lot cannot be used with --from folder: LOT simulation plans are a catalog's plan type/],
      ["folder", ["--include-physician"], /--include-physician cannot be used with --from folder/],
      ["dicom", ["--include-setup", "--host", "127.0.0.1", "--port", "1"], /--include-setup cannot be used with --from dicom: setup plans cannot be told apart/],
      ["dicom", ["--status", "Completed", "--host", "127.0.0.1", "--port", "1"], /--status cannot be used with --from dicom/],
    ] as const
  ) {
    test(`${args[0]} with --from ${from}: a usage error naming the source (exit 2)`, async () => {
      const r = await list(["--from", from, ...(from === "folder" ? [folder] : []), ...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, message);
      assert.deepEqual(r.records, []);
    });
  }
});

// The same expectations from Orthanc (filled by storescu) and from our own serve over the folder.
for (const peerName of ["Orthanc", "serve"] as const) {
  describe(`list-patients --from dicom (${peerName}): filters from what the peer answers`, () => {
    let peerArgs: string[] = [];
    let served: ServeChild | undefined;
    before(async () => {
      if (peerName === "Orthanc") {
        orthanc = await startOrthanc();
        const files = readdirSync(folder).map((f) => join(folder, f));
        const r = await runDcmtk("storescu", ["-aec", orthanc.aeTitle, orthanc.host, String(orthanc.port), ...files]);
        assert.equal(r.code, 0, r.stderr);
        peerArgs = ["--host", orthanc.host, "--port", String(orthanc.port), "--called-aet", orthanc.aeTitle];
      } else {
        // A copy: serve keeps its index in the folder it serves.
        cpSync(folder, join(tmp, "served"), { recursive: true });
        served = await startServe(["--dir", join(tmp, "served"), "--aet", "RTSERVE", "--allow", "RTEXPORT"]);
        peerArgs = ["--host", served.host, "--port", String(served.port), "--called-aet", "RTSERVE", "--calling-aet", "RTEXPORT"];
      }
    });
    after(async () => void await served?.stop());
    const peer = () => ["--from", "dicom", ...peerArgs];

    test("default: QA plans (Plan Intent) and phantoms left out; setup plans listed (C-FIND shows no beams)", async () => {
      const r = await list(peer());
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(Object.fromEntries(Object.entries(r.shape).map(([k, v]) => [k, v.sort()])), {
        "P-CT": ["ct-plan"],
        "P-NEW": ["earlier-plan", "new-plan", "setup-plan"],
        "P-OLD": ["old-plan"],
        "WT-1": ["tank-plan"],
      });
    });

    test("--since by Study Date; --include-qa and --include-phantom bring them back; an unknown patient is reported", async () => {
      let r = await list([...peer(), "--since", "2024-01-01"]);
      assert.equal(r.code, 0, r.stderr);
      // P-CT's study holds a plan of 2019 and a CT of 2024 that disagree on Study Date: Orthanc
      // answers the first stored (2019), serve's index the one it indexed last (2024).
      const ct = peerName === "serve" ? { "P-CT": ["ct-plan"] } : {};
      assert.deepEqual(Object.fromEntries(Object.entries(r.shape).map(([k, v]) => [k, v.sort()])), { ...ct, "P-NEW": ["new-plan", "setup-plan"], "WT-1": ["tank-plan"] });
      r = await list([...peer(), "--since", "2030-01-01"]);
      assert.deepEqual(r.shape, {});
      r = await list([...peer(), "--include-qa", "--include-phantom", "--patient", "P-NEW", "--patient", "QCS-1", "--patient", "PH-7", "--patient", "NOPE"]);
      assert.equal(r.code, 3, r.stderr);
      assert.deepEqual(Object.fromEntries(Object.entries(r.shape).map(([k, v]) => [k, v.sort()])), {
        "P-NEW": ["earlier-plan", "new-plan", "qa-plan:QA", "setup-plan"],
        "PH-7": ["phantom-plan"],
        "QCS-1": ["qcs-plan"],
      });
      assert.match(r.stderr, /Cannot list patient NOPE: not found on dicom:/);
    });
  });
}

describe("list-patients --from catalog: phantom patterns beside is_phantom", () => {
  test("a patient named like a phantom is left out by default, and by a configured pattern", async () => {
    const dbPath = join(tmp, "catalog.db");
    const conn = await connectDatabase(`sqlite:${dbPath}`);
    try {
      // deno-lint-ignore no-explicit-any
      const db = conn.db as any;
      await createCatalogTables(db);
      const patient = (id: string, family: string) => ({ patient_id: id, family_name: family, given_name: "X", birth_date: null, sex: null, is_phantom: 0, updated_at: "2024-01-01" });
      await db.insertInto("rtx_patients").values([patient("C-1", "Real"), patient("C-2", "Phantom"), patient("C-3", "Tank")]).execute();
    } finally {
      await conn.close();
    }
    let r = await list(["--from", "catalog", "--db", `sqlite:${dbPath}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(Object.keys(r.shape), ["C-1", "C-3"]);
    r = await list(["--from", "catalog", "--db", `sqlite:${dbPath}`, "--phantom-pattern", "TANK"]);
    assert.deepEqual(Object.keys(r.shape), ["C-1", "C-2"]);
    r = await list(["--from", "catalog", "--db", `sqlite:${dbPath}`, "--phantom-pattern", ""]);
    assert.deepEqual(Object.keys(r.shape), ["C-1", "C-2", "C-3"]);
  });
});
