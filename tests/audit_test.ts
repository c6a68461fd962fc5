import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { atnaMessage, type AuditEvent, AuditTrail, frame, LedgerAuditSink, parseSyslogUrl, SyslogSink, syslogMessage } from "../lib/audit/mod.ts";
import { Ledger } from "../lib/ledger/ledger.ts";
import { makeTlsCert, type RsyslogPeer, startRsyslog } from "./_peers.ts";

/** What Python's XML parser (not ours) makes of a message: the parts an audit repository reads. */
function parseXml(xml: string): Record<string, unknown> {
  const py = `
import json, sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
ev = root.find("EventIdentification")
out = {
  "root": root.tag,
  "eventId": ev.find("EventID").get("csd-code"),
  "action": ev.get("EventActionCode"),
  "outcome": ev.get("EventOutcomeIndicator"),
  "participants": [(p.get("UserID"), p.get("UserIsRequestor"), p.find("RoleIDCode").get("csd-code")) for p in root.findall("ActiveParticipant")],
  "objects": [(o.get("ParticipantObjectID"), o.get("ParticipantObjectTypeCode"), [(c.get("UID"), c.get("NumberOfInstances")) for c in o.findall("SOPClass")]) for o in root.findall("ParticipantObjectIdentification")],
  "source": root.find("AuditSourceIdentification").get("AuditSourceID"),
}
print(json.dumps(out))
`;
  const r = spawnSync("/usr/bin/python3", ["-c", py], { input: xml, encoding: "utf8" });
  assert.equal(r.status, 0, `python could not parse the audit message: ${r.stderr}\n${xml}`);
  return JSON.parse(r.stdout);
}

const CT = "1.2.840.10008.5.1.4.1.1.2";
const PLAN = "1.2.840.10008.5.1.4.1.1.481.5";

function event(over: Partial<AuditEvent> = {}): AuditEvent {
  return {
    action: "push", time: "2025-03-04T06:29:58.000+01:00", user: "physicist", host: "ws1", patientId: 'P<1>&"2"',
    studies: [{ uid: "1.2.3", sopClasses: { [CT]: 3, [PLAN]: 1 } }], objects: 4, failed: 0, bytes: 100, source: "export/",
    destination: "PACS@10.0.0.5:104", outcome: "success", ...over,
  };
}

describe("audit messages (PS3.15 A.5)", () => {
  test("push: DICOM Instances Transferred, we are the source, the peer the destination; values escaped", () => {
    const x = parseXml(atnaMessage(event()));
    assert.deepEqual(x, {
      root: "AuditMessage", eventId: "110104", action: "R", outcome: "0", source: "ws1",
      participants: [["physicist", "true", "110153"], ["PACS@10.0.0.5:104", "false", "110152"]],
      objects: [["1.2.3", "2", [[CT, "3"], [PLAN, "1"]]], ['P<1>&"2"', "1", []]],
    });
  });
  test("retrieve creates instances here: action C, the peer is the source", () => {
    const x = parseXml(atnaMessage(event({ action: "retrieve", source: "ARIA@10.0.0.9:104", destination: "out/", outcome: "minor-failure", outcomeText: "1 missing" })));
    assert.equal(x.action, "C");
    assert.equal(x.outcome, "4");
    assert.deepEqual(x.participants, [["physicist", "true", "110152"], ["ARIA@10.0.0.9:104", "false", "110153"]]);
  });
  test("export: Export (110106) to destination media", () => {
    const x = parseXml(atnaMessage(event({ action: "export", destination: "/mnt/export" })));
    assert.equal(x.eventId, "110106");
    assert.deepEqual(x.participants, [["physicist", "true", "110153"], ["/mnt/export", "false", "110154"]]);
  });
  test("syslog: RFC 5424 header with facility 10, MSGID IHE+RFC-3881, octet-counted frame", () => {
    const m = syslogMessage(event(), "ws1");
    assert.match(m, /^<85>1 2025-03-04T06:29:58\.000\+01:00 ws1 rtexport \d+ IHE\+RFC-3881 - \ufeff<\?xml/);
    assert.match(syslogMessage(event({ outcome: "minor-failure" }), "ws1"), /^<84>1 /);
    const f = new TextDecoder().decode(frame("é"));
    assert.equal(f, "2 é");
  });
  test("audit URLs", () => {
    assert.deepEqual(parseSyslogUrl("syslog://audit.local"), { host: "audit.local", port: 514, tls: false, display: "syslog://audit.local" });
    assert.deepEqual(parseSyslogUrl("syslog+tls://arr:7000?ca=/etc/ca.pem"), { host: "arr", port: 7000, tls: true, display: "syslog+tls://arr:7000", ca: "/etc/ca.pem" });
    assert.throws(() => parseSyslogUrl("http://x"), /Invalid audit URL "http:\/\/x": the scheme must be syslog/);
  });
});

describe("AuditTrail", () => {
  test("one event per patient from stage events and records; failures make a minor failure", async () => {
    const got: AuditEvent[] = [];
    const trail = new AuditTrail({ action: "push", source: "in/", destination: "X@h:1", user: "u", host: "h" }, [{ write: (e) => Promise.resolve(void got.push(...e)) }]);
    const file = (p: string, s: string, cls: string) => ({ type: "file", path: "x", patientId: p, studyUid: s, sopClassUid: cls, push: { status: "stored" } });
    trail.onEvent({ type: "done", stage: "push", item: "a", patientId: "A", bytes: 10 });
    trail.onRecord(file("A", "1.1", CT));
    trail.onEvent({ type: "done", stage: "push", item: "b", patientId: "A", bytes: 5 });
    trail.onRecord(file("A", "1.1", PLAN));
    trail.onEvent({ type: "failed", stage: "push", item: "c", patientId: "B", reason: "Cannot store c: refused" });
    trail.onRecord({ ...file("B", "2.1", CT), push: { status: "failed" } });
    trail.onEvent({ type: "done", stage: "push", item: "d", patientId: "B", bytes: 1 });
    trail.onRecord(file("B", "2.1", CT));
    await trail.finish();
    assert.deepEqual(got.map((e) => [e.patientId, e.objects, e.failed, e.bytes, e.outcome, e.outcomeText, e.studies]), [
      ["A", 2, 0, 15, "success", undefined, [{ uid: "1.1", sopClasses: { [CT]: 1, [PLAN]: 1 } }]],
      ["B", 1, 1, 1, "minor-failure", "Cannot store c: refused", [{ uid: "2.1", sopClasses: { [CT]: 1 } }]],
    ]);
  });
  test("a run that failed before any patient leaves one serious failure", async () => {
    const got: AuditEvent[] = [];
    const trail = new AuditTrail({ action: "retrieve", source: "ARIA@h:104", destination: "out/" }, [{ write: (e) => Promise.resolve(void got.push(...e)) }]);
    await trail.finish("Cannot connect to ARIA@h:104: connection refused");
    assert.equal(got.length, 1);
    assert.equal(got[0].outcome, "serious-failure");
    assert.equal(got[0].patientId, undefined);
  });
  test("ledger: events are appended to rtx_ledger_audit", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rtexport-audit-"));
    try {
      const ledger = await Ledger.open(`sqlite:${join(dir, "l.sqlite")}`, "push");
      await new LedgerAuditSink(ledger).write([event(), event({ patientId: "Q", outcome: "minor-failure", outcomeText: "x" })]);
      const rows = await ledger.db.selectFrom("rtx_ledger_audit").selectAll().orderBy("patient_id").execute();
      await ledger.close();
      assert.deepEqual(rows.map((r) => [r.patient_id, r.action, r.user_name, r.outcome, r.run_id === ledger.runId, JSON.parse(r.studies)[0].uid]), [
        ['P<1>&"2"', "push", "physicist", "success", true, "1.2.3"],
        ["Q", "push", "physicist", "minor-failure", true, "1.2.3"],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A syslog collector of our own for TLS: parses octet-counted frames. */
async function listener(tls?: { cert: string; key: string }): Promise<{ port: number; messages: string[]; close(): Promise<void> }> {
  const messages: string[] = [];
  const onSocket = (s: net.Socket) => {
    let buf = Buffer.alloc(0);
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const sp = buf.indexOf(0x20);
        if (sp < 0) return;
        const n = Number(buf.subarray(0, sp).toString("ascii"));
        if (buf.length < sp + 1 + n) return;
        messages.push(buf.subarray(sp + 1, sp + 1 + n).toString("utf8"));
        buf = buf.subarray(sp + 1 + n);
      }
    });
  };
  const server = tls ? (await import("node:tls")).createServer(tls, onSocket) : net.createServer(onSocket);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as net.AddressInfo).port,
    messages,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe("syslog transport", () => {
  let rsyslog: RsyslogPeer;
  before(async () => {
    rsyslog = await startRsyslog();
  });
  after(() => rsyslog?.stop());

  test("Debian rsyslog receives one parseable message per event", async () => {
    const trail = new AuditTrail({ action: "push", source: "in/", destination: "X@127.0.0.1:1", user: "u", host: "h" }, [new SyslogSink(`syslog://127.0.0.1:${rsyslog.port}`)]);
    for (const p of ["P1", "P2", "P3"]) {
      trail.onEvent({ type: "done", stage: "push", item: p, patientId: p });
      trail.onRecord({ type: "file", path: p, patientId: p, studyUid: `1.${p.slice(1)}`, sopClassUid: CT });
    }
    await trail.finish();
    let lines: string[] = [];
    for (let i = 0; i < 50 && lines.length < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
      lines = rsyslog.lines();
    }
    assert.equal(lines.length, 3, rsyslog.output());
    const patients = lines.map((l) => {
      const [pri, app, msgid, ...rest] = l.split("|");
      assert.deepEqual([pri, app, msgid], ["85", "rtexport", "IHE+RFC-3881"]);
      const x = parseXml(rest.join("|").replace(/^\ufeff/, ""));
      return (x.objects as [string, string][]).find((o) => o[1] === "1")![0];
    });
    assert.deepEqual(patients.sort(), ["P1", "P2", "P3"]);
  });

  test("TLS (RFC 5425) with the collector's CA", async () => {
    const dir = mkdtempSync(join(tmpdir(), "rtexport-audit-tls-"));
    const cert = await makeTlsCert(dir);
    const l = await listener(cert);
    try {
      const sink = new SyslogSink(`syslog+tls://127.0.0.1:${l.port}?ca=${encodeURIComponent(cert.certPath)}`);
      await sink.write([event(), event({ patientId: "Z" })]);
      await sink.close();
      for (let i = 0; i < 50 && l.messages.length < 2; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(l.messages.length, 2);
      assert.match(l.messages[1], /ParticipantObjectID="Z"/);
    } finally {
      await l.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a collector that is not there: one line naming it", async () => {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    await assert.rejects(new SyslogSink(`syslog://127.0.0.1:${port}`).write([event()]), new RegExp(`^Error: Cannot send audit messages to syslog://127.0.0.1:${port}: connection refused$`));
  });
});
