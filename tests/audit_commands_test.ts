// Every command that handles patient data leaves its audit trail (issue 19 point 6): export-plan,
// retrieve, anonymize and copy-files each append one event per patient to the ledger, with who,
// what, where and the outcome, and retrieve sends its events to Debian rsyslog with --audit.
// export-plan from a Q/R peer also pauses at its time window's end (test clock), releasing the
// peer's association, and resumes when the window opens (point 5).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { main as anonymize } from "../commands/anonymize.ts";
import { main as copyFiles } from "../commands/copy-files.ts";
import { main as exportPlan } from "../commands/export-plan.ts";
import { main as listPatients } from "../commands/list-patients.ts";
import { main as retrieve } from "../commands/retrieve.ts";
import { currentUser } from "../lib/audit/event.ts";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { FolderIndex } from "../lib/index/index.ts";
import { Ledger } from "../lib/ledger/ledger.ts";
import type { LedgerAuditRow } from "../lib/ledger/schema.ts";
import { createScp, type Scp, storeSourceFromFile } from "../lib/net/mod.ts";
import { findMatches, selectInstances } from "../lib/qr/find.ts";
import { freePort, runMainCaptured, type RsyslogPeer, startRsyslog } from "./_peers.ts";

function dicomFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith(".dcm"))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).sort();
}

async function auditRows(ledger: string): Promise<LedgerAuditRow[]> {
  const l = await Ledger.open(`sqlite:${ledger}`, "test");
  try {
    return await l.db.selectFrom("rtx_ledger_audit").selectAll().orderBy("patient_id").execute();
  } finally {
    await l.close();
  }
}

describe("audit trail of every command over patient data", () => {
  let dir: string;
  let clinic: string;
  let index: FolderIndex;
  let all: string[];
  let scp: Scp;
  let movePort: number;
  let associations = 0;
  let rsyslog: RsyslogPeer;
  const perPatient = (id: string) => all.filter((p) => p.includes(`/${id}/`)).length;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "rtexport-audit-commands-"));
    clinic = join(dir, "clinic");
    await generateClinic({ out: clinic, patients: 2, slices: 3 });
    all = dicomFiles(clinic);
    index = await FolderIndex.open(clinic, { dbPath: join(dir, "index.sqlite") });
    await index.indexFolder();
    movePort = await freePort();
    // A Q/R peer over the clinic that counts associations (a released one is a new one after it).
    scp = await createScp({
      aeTitle: "VMSDBD", host: "127.0.0.1",
      onEvent: (e) => {
        if (e.type === "association") associations++;
      },
      handlers: {
        find: async function* (rq) {
          for (const m of await findMatches(index, rq.identifier, "STUDY")) yield m;
        },
        move: async (rq) => {
          const files = await selectInstances(index, rq.identifier, "STUDY");
          return { destination: { host: "127.0.0.1", port: movePort, aeTitle: rq.destination }, instances: files.map((f) => storeSourceFromFile(f.path)) };
        },
      },
    });
    rsyslog = await startRsyslog();
  });
  after(async () => {
    await scp?.close();
    await rsyslog?.stop();
    await index?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const peer = () => ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "VMSDBD", "--aet", "RTEXPORT"];
  const who = () => ({ user_name: currentUser(), host: hostname() });

  test("export-plan from a Q/R peer: pauses at its window's end (association released), resumes, one audit event per patient", async () => {
    const listed = await runMainCaptured(listPatients, ["--from", "dicom", ...peer()]);
    assert.equal(listed.code, 0, listed.stderr);
    const out = join(dir, "export");
    const ledger = join(dir, "export.sqlite");
    const before = associations;
    // 06:29:58 on the test clock, one file a second: the window closes after the first few files.
    const r = await runMainCaptured(exportPlan, [
      ...peer(), "--move-port", String(movePort), "--include-unapproved", "--out", out, "--ledger", `sqlite:${ledger}`, "--window", "19:00-06:30", "--max-rate", "1/s",
    ], { stdin: listed.stdout, env: { RTEXPORT_CLOCK: "2025-03-04T06:29:58" } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /export-plan: Paused until 19:00: outside every time window, peer associations released/);
    assert.ok(associations - before >= 2, `the association was released for the pause and opened again (${associations - before})`);
    const exported = r.records.filter((x) => x.type === "file");
    assert.ok(exported.length > 0);
    const rows = await auditRows(ledger);
    assert.deepEqual(rows.map((x) => [x.action, x.patient_id, x.outcome, x.source, x.dest, x.failed]), [
      ["export", "RTX0001", "success", `VMSDBD@127.0.0.1:${scp.port}`, out, 0],
      ["export", "RTX0002", "success", `VMSDBD@127.0.0.1:${scp.port}`, out, 0],
    ]);
    for (const x of rows) assert.deepEqual({ user_name: x.user_name, host: x.host }, who());
    assert.equal(rows.reduce((n, x) => n + x.objects, 0), exported.length);
    assert.ok(JSON.parse(rows[0].studies).length >= 1, rows[0].studies);
  });

  test("retrieve: one audit event for the patient in the ledger, and one parseable message at Debian rsyslog with --audit", async () => {
    const out = join(dir, "retrieve");
    const ledger = join(dir, "retrieve.sqlite");
    const r = await runMainCaptured(retrieve, [
      ...peer(), "--move-port", String(movePort), "--move-host", "127.0.0.1", "--patient-id", "RTX0002", "--out", out, "--ledger", `sqlite:${ledger}`,
      "--audit", `syslog://127.0.0.1:${rsyslog.port}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const rows = await auditRows(ledger);
    assert.deepEqual(rows.map((x) => [x.action, x.patient_id, x.outcome, x.source, x.dest, x.objects, x.failed]), [
      ["retrieve", "RTX0002", "success", `VMSDBD@127.0.0.1:${scp.port}`, out, perPatient("RTX0002"), 0],
    ]);
    let lines: string[] = [];
    for (let i = 0; i < 50 && lines.length < 1; i++) {
      await new Promise((res) => setTimeout(res, 100));
      lines = rsyslog.lines().filter((x) => x.includes(`VMSDBD@127.0.0.1:${scp.port}`));
    }
    assert.equal(lines.length, 1, rsyslog.output());
    assert.match(lines[0], /^85\|rtexport\|IHE\+RFC-3881\|/);
    assert.match(lines[0], /<EventIdentification EventActionCode="C"/);
    assert.match(lines[0], /ParticipantObjectID="RTX0002"/);
  });

  test("anonymize and copy-files: one audit event per patient each", async () => {
    const anonLedger = join(dir, "anonymize.sqlite");
    const anonOut = join(dir, "anonymized");
    const a = await runMainCaptured(anonymize, ["--key", "audit-test-key-0123456789", "--out", anonOut, "--ledger", `sqlite:${anonLedger}`, join(clinic, "RTX0001")]);
    assert.equal(a.code, 0, a.stderr);
    // Named by the identity the copies carry: an anonymize ledger holds no original patient ID.
    const pseudonym = a.records.find((x) => x.type === "file")!.patientId;
    assert.notEqual(pseudonym, "RTX0001");
    assert.deepEqual((await auditRows(anonLedger)).map((x) => [x.action, x.patient_id, x.outcome, x.source, x.dest, x.objects]), [
      ["anonymize", pseudonym, "success", join(clinic, "RTX0001"), anonOut, perPatient("RTX0001")],
    ]);
    const copyLedger = join(dir, "copy.sqlite");
    const copyOut = join(dir, "copied");
    const c = await runMainCaptured(copyFiles, ["--to", copyOut, "--layout", "series", "--ledger", `sqlite:${copyLedger}`, join(clinic, "RTX0001"), join(clinic, "RTX0002")]);
    assert.equal(c.code, 0, c.stderr);
    const rows = await auditRows(copyLedger);
    assert.deepEqual(rows.map((x) => [x.action, x.patient_id, x.outcome, x.dest]), [
      ["copy", "RTX0001", "success", copyOut],
      ["copy", "RTX0002", "success", copyOut],
    ]);
    assert.equal(rows.reduce((n, x) => n + x.objects, 0), all.length);
  });
});
