// serve against hostile peers (issue 13): each hole reproduced on loopback with a raw-socket
// client or a real peer (DCMTK, rtexport), against `serve` running as a child process whose
// memory is read from /proc. Every test here failed on the code before the fix (checked once).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { encodeDataSet } from "../lib/dicom/writer.ts";
import { C_ECHO_RQ, C_FIND_RQ, C_STORE_RQ, encodeCommand } from "../lib/net/dimse.ts";
import {
  acResults, canConnect, CT_IMAGE, dataSet, EXPLICIT_LE, externalAddress, identifierBytes, inSmallTmpfs, makePki, PATIENT_ROOT_FIND,
  pdv, RawClient, rssOf, rssSampler, rtexport, run, type ServeChild, startServe, STUDY_ROOT_FIND, VERIFICATION, writeObject,
} from "./_hostile.ts";

const tmp = mkdtempSync(join(tmpdir(), "rtexport-hostile-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const MiB = 1024 * 1024;

function dir(name: string): string {
  const d = join(tmp, name);
  mkdirSync(d, { recursive: true });
  return d;
}

/** DICOM files under a folder (not the index, not .incoming). */
function stored(root: string): string[] {
  return readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".dcm") && !join(e.parentPath, e.name).includes(".incoming"))
    .map((e) => join(e.parentPath, e.name));
}

const UID = "1.2.826.0.1.3680043.10.1013";

/** Waits until `pattern` shows in a child's stderr (log lines may follow the event that caused them). */
async function logged(child: ServeChild, pattern: RegExp, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(child.stderr()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.match(child.stderr(), pattern);
}

async function echoOk(port: number, calling: string, host = "127.0.0.1"): Promise<boolean> {
  const r = await run("echoscu", ["-aet", calling, "-aec", "RTSERVE", host, String(port)], { timeoutMs: 20000 });
  return r.code === 0;
}

describe("1. memory stays bounded whatever a peer sends", () => {
  let serve: ServeChild;
  let base = 0;
  before(async () => {
    serve = await startServe(["--dir", dir("mem"), "--aet", "RTSERVE", "--allow", "HOSTILE@127.0.0.1"]);
    assert.ok(await echoOk(serve.port, "HOSTILE"));
    base = rssOf(serve.proc.pid!);
  });
  after(async () => void await serve?.stop());

  /** Associates for Study Root C-FIND; the rest of the attack is the caller's. */
  async function findAssociation(): Promise<RawClient> {
    const c = await RawClient.connect(serve.port);
    const ac = await c.associate({ calling: "HOSTILE", called: "RTSERVE", contexts: [{ abstractSyntax: STUDY_ROOT_FIND }] });
    assert.equal(ac?.type, 2, "A-ASSOCIATE-AC");
    return c;
  }

  /** Streams `total` bytes as PDVs never marked last; returns what went out before the peer closed. */
  async function flood(c: RawClient, command: boolean, total: number): Promise<number> {
    const piece = pdv(1, command, false, new Uint8Array(16 * 1024).fill(0x41));
    let sent = 0;
    const deadline = Date.now() + 30000;
    while (sent < total && Date.now() < deadline) {
      if (!(await c.send(piece))) break;
      sent += piece.length;
    }
    return sent;
  }

  test("a C-FIND identifier sent as PDVs never marked last: aborted after 1 MiB, RSS flat (256 MiB offered)", async () => {
    const c = await findAssociation();
    const cmd = encodeCommand({ commandField: C_FIND_RQ, messageId: 1, affectedSopClassUid: STUDY_ROOT_FIND, priority: 0, hasDataSet: true });
    await c.send(pdv(1, true, true, cmd));
    const rss = rssSampler(serve.proc.pid!);
    const sent = await flood(c, false, 256 * MiB);
    const closed = await c.waitClosed(5000);
    const peak = rss.stop();
    c.destroy();
    assert.ok(closed, `serve closed the association (sent ${sent} bytes)`);
    assert.ok(sent < 32 * MiB, `serve stopped reading early (${(sent / MiB).toFixed(1)} MiB went out)`);
    assert.ok(peak - base < 64 * MiB, `serve's RSS grew by ${((peak - base) / MiB).toFixed(0)} MiB`);
    await logged(serve, /C-FIND-RQ data set larger than the 1048576 bytes kept in memory/);
    assert.ok(await echoOk(serve.port, "HOSTILE"), "serve still answers");
  });

  test("a command sent as PDVs never marked last: aborted after 64 KiB, RSS flat", async () => {
    const c = await findAssociation();
    const rss = rssSampler(serve.proc.pid!);
    const sent = await flood(c, true, 256 * MiB);
    const closed = await c.waitClosed(5000);
    const peak = rss.stop();
    c.destroy();
    assert.ok(closed && sent < 32 * MiB, `closed ${closed} after ${(sent / MiB).toFixed(1)} MiB`);
    assert.ok(peak - base < 64 * MiB, `serve's RSS grew by ${((peak - base) / MiB).toFixed(0)} MiB`);
    await logged(serve, /command set larger than the 65536 bytes allowed/);
  });

  test("a P-DATA-TF larger than the maximum we announced: A-ABORT at its header", async () => {
    const c = await findAssociation();
    const big = pdv(1, true, false, new Uint8Array(MiB));
    await c.send(big.subarray(0, 64 * 1024)); // the header and the start: the rest never needs to be read
    const answer = await c.readPdu(5000);
    c.destroy();
    assert.equal(answer?.type, 7, "A-ABORT");
    assert.deepEqual([...answer!.body.subarray(2, 4)], [2, 6], "service provider, invalid PDU parameter value");
    await logged(serve, /P-DATA-TF PDU of 1048582 bytes is larger than the 262144 we announced/);
  });

  test("A-ASSOCIATE-RQs announcing 32 MiB each (8 connections): refused on their header, nothing buffered", async () => {
    const rss = rssSampler(serve.proc.pid!);
    const clients = await Promise.all(Array.from({ length: 8 }, () => RawClient.connect(serve.port)));
    const header = new Uint8Array(6);
    header[0] = 1;
    new DataView(header.buffer).setUint32(2, 32 * MiB);
    const junk = new Uint8Array(256 * 1024);
    const sent = await Promise.all(clients.map(async (c) => {
      let n = 0;
      if (!(await c.send(header))) return n;
      while (n < 32 * MiB && (await c.send(junk))) n += junk.length;
      return n;
    }));
    const closed = await Promise.all(clients.map((c) => c.waitClosed(5000)));
    const peak = rss.stop();
    for (const c of clients) c.destroy();
    assert.deepEqual(closed, clients.map(() => true));
    assert.ok(sent.every((n) => n < 16 * MiB), `bytes each got out before the close: ${sent.join(", ")}`);
    assert.ok(peak - base < 64 * MiB, `serve's RSS grew by ${((peak - base) / MiB).toFixed(0)} MiB`);
    assert.ok(await echoOk(serve.port, "HOSTILE"), "serve still answers");
  });
});

describe("2. wildcard queries take linear time", () => {
  let serve: ServeChild;
  before(async () => {
    const d = dir("wild");
    serve = await startServe(["--dir", d, "--aet", "RTSERVE", "--allow", "FINDSCU@127.0.0.1", "--allow", "STORESCU@127.0.0.1"]);
    const f = writeObject(dir("wild-src"), "a64.dcm", {
      PatientID: "A64", PatientName: "a".repeat(64), StudyInstanceUID: `${UID}.2.1`, SeriesInstanceUID: `${UID}.2.1.1`, SOPInstanceUID: `${UID}.2.1.1.1`,
    });
    const r = await run("storescu", ["-aet", "STORESCU", "-aec", "RTSERVE", "127.0.0.1", String(serve.port), f]);
    assert.equal(r.code, 0, r.stderr);
  });
  after(async () => void await serve?.stop());

  for (const [pattern, matches] of [["*a*a*a*a*a*a*a*a*b", 0], ["*a*a*a*a*a*a*a*a*a*a*b", 0], ["*a*a*a*a*a*a*a*a*a*a*a", 1]] as const) {
    test(`findscu PatientName=${pattern}: ${matches} match(es), answered in under 5 s`, async () => {
      const od = dir(`wild-out-${pattern.length}-${matches}`);
      const r = await run("findscu", [
        "-aet", "FINDSCU", "-aec", "RTSERVE", "-P", "-X", "-od", od, "-k", "QueryRetrieveLevel=PATIENT", "-k", `PatientName=${pattern}`, "-k", "PatientID",
        "127.0.0.1", String(serve.port),
      ], { timeoutMs: 20000 });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.ms < 5000, `${r.ms} ms`);
      assert.equal(readdirSync(od).length, matches);
    });
  }
});

describe("3. patients are never mixed", () => {
  let serve: ServeChild;
  const src = () => join(tmp, "mix-src");
  const study = `${UID}.3.1`;
  before(async () => {
    mkdirSync(src(), { recursive: true });
    writeObject(src(), "good.dcm", { PatientID: "GOOD", PatientName: "Good^Patient", StudyInstanceUID: study, SeriesInstanceUID: `${study}.1`, SOPInstanceUID: `${study}.1.1` });
    writeObject(src(), "evil.dcm", { PatientID: "EVIL", PatientName: "Evil^Twin", StudyInstanceUID: study, SeriesInstanceUID: `${study}.2`, SOPInstanceUID: `${study}.2.1` });
    writeObject(src(), "evil-series.dcm", { PatientID: "EVIL", StudyInstanceUID: `${UID}.3.9`, SeriesInstanceUID: `${study}.1`, SOPInstanceUID: `${study}.1.9` });
    serve = await startServe(["--dir", dir("mix"), "--aet", "RTSERVE", "--allow", "STORESCU@127.0.0.1", "--allow", "GETSCU@127.0.0.1", "--allow", "FINDSCU@127.0.0.1"]);
  });
  after(async () => void await serve?.stop());

  async function getPatient(id: string): Promise<string[]> {
    const od = dir(`mix-get-${id}-${Date.now()}`);
    const r = await run("getscu", ["-aet", "GETSCU", "-aec", "RTSERVE", "-P", "-od", od, "-k", "QueryRetrieveLevel=PATIENT", "-k", `PatientID=${id}`, "127.0.0.1", String(serve.port)]);
    assert.equal(r.code, 0, r.stderr);
    return readdirSync(od).map((f) => readDicomFile(join(od, f)).dataset.string("SOPInstanceUID")!).sort();
  }

  test("an object of patient EVIL carrying GOOD's Study Instance UID is refused with 0xA900; C-GET for GOOD still returns GOOD's object", async () => {
    let r = await run("storescu", ["-aet", "STORESCU", "-aec", "RTSERVE", "127.0.0.1", String(serve.port), join(src(), "good.dcm")]);
    assert.equal(r.code, 0, r.stderr);
    r = await run("storescu", ["-v", "-aet", "STORESCU", "-aec", "RTSERVE", "127.0.0.1", String(serve.port), join(src(), "evil.dcm")]);
    assert.match(r.stdout + r.stderr, /Store Response \(Error: DataSetDoesNotMatchSOPClass\)/, "0xA900");
    r = await run("storescu", ["-v", "-aet", "STORESCU", "-aec", "RTSERVE", "127.0.0.1", String(serve.port), join(src(), "evil-series.dcm")]);
    assert.match(r.stdout + r.stderr, /Store Response \(Error: DataSetDoesNotMatchSOPClass\)/, "a series held in another study is refused too");
    await logged(serve, /Study Instance UID 1\.2\.826\.0\.1\.3680043\.10\.1013\.3\.1 is already held for another patient/);
    await logged(serve, /Series Instance UID 1\.2\.826\.0\.1\.3680043\.10\.1013\.3\.1\.1 is already held for another patient/);
    assert.doesNotMatch(serve.stderr(), /GOOD/, "the other patient is not named in the log");
    assert.deepEqual(await getPatient("GOOD"), [`${study}.1.1`]);
    assert.deepEqual(await getPatient("EVIL"), []);
    const od = dir("mix-find");
    const f = await run("findscu", ["-aet", "FINDSCU", "-aec", "RTSERVE", "-S", "-X", "-od", od, "-k", "QueryRetrieveLevel=STUDY", "-k", `StudyInstanceUID=${study}`, "-k", "PatientID", "127.0.0.1", String(serve.port)]);
    assert.equal(f.code, 0, f.stderr);
    assert.deepEqual(readdirSync(od).map((x) => readDicomFile(join(od, x)).dataset.string("PatientID")), ["GOOD"]);
  });

  test("conflicting files found in the folder are kept apart, never re-parented", async () => {
    const d = dir("mix-scan");
    mkdirSync(join(d, "a"));
    mkdirSync(join(d, "b"));
    writeFileSync(join(d, "a", "good.dcm"), readFileSync(join(src(), "good.dcm")));
    writeFileSync(join(d, "b", "evil.dcm"), readFileSync(join(src(), "evil.dcm")));
    const s = await startServe(["--dir", d, "--aet", "RTSERVE", "--allow", "GETSCU@127.0.0.1"]);
    try {
      assert.match(s.stderr(), /1 study or series UIDs .* are held under more than one PatientID; they are kept apart/);
      for (const [id, want] of [["GOOD", `${study}.1.1`], ["EVIL", `${study}.2.1`]]) {
        const od = dir(`mix-scan-${id}`);
        const r = await run("getscu", ["-aet", "GETSCU", "-aec", "RTSERVE", "-P", "-od", od, "-k", "QueryRetrieveLevel=PATIENT", "-k", `PatientID=${id}`, "127.0.0.1", String(s.port)]);
        assert.equal(r.code, 0, r.stderr);
        assert.deepEqual(readdirSync(od).map((f) => readDicomFile(join(od, f)).dataset.string("SOPInstanceUID")), [want]);
      }
    } finally {
      await s.stop();
    }
  });
});

describe("4. closed by default", () => {
  test("no --allow and no --allow-store-any: usage error (exit 2), nothing listens", async () => {
    const r = await rtexport(["serve", "--dir", dir("closed"), "--port", "0"], { timeoutMs: 30000 });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /serve needs --allow AE for callers that may query and retrieve, or --allow-store-any/);
  });

  test("without --host it listens on 127.0.0.1 only", async () => {
    const s = await startServe(["--dir", dir("loopback"), "--aet", "RTSERVE", "--allow", "ECHOSCU"]);
    try {
      assert.equal(s.host, "127.0.0.1");
      const ext = await externalAddress();
      assert.ok(ext, "this machine has a non-loopback address to try");
      assert.equal(await canConnect(ext!, s.port), false, `nothing answers on ${ext}:${s.port}`);
      assert.equal(await canConnect("127.0.0.1", s.port), true);
    } finally {
      await s.stop();
    }
  });

  describe("--allow-store-any with --allow FRIEND@127.0.0.1", () => {
    let serve: ServeChild;
    const src = () => join(tmp, "open-src");
    before(async () => {
      mkdirSync(src(), { recursive: true });
      writeObject(src(), "p.dcm", { PatientID: "P4", PatientName: "Four^Patient", PatientBirthDate: "19700101", StudyInstanceUID: `${UID}.4.1`, SeriesInstanceUID: `${UID}.4.1.1`, SOPInstanceUID: `${UID}.4.1.1.1` });
      serve = await startServe(["--dir", dir("open"), "--aet", "RTSERVE", "--allow-store-any", "--allow", "FRIEND@127.0.0.1"]);
    });
    after(async () => void await serve?.stop());

    test("a stranger may store, but its C-FIND is refused; FRIEND finds the patient", async () => {
      const st = await run("storescu", ["-aet", "STRANGER", "-aec", "RTSERVE", "127.0.0.1", String(serve.port), join(src(), "p.dcm")]);
      assert.equal(st.code, 0, st.stderr);
      const args = ["-aec", "RTSERVE", "-P", "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID", "-k", "PatientName", "-k", "PatientBirthDate", "127.0.0.1", String(serve.port)];
      const stranger = await run("findscu", ["-aet", "STRANGER", "-X", "-od", dir("open-stranger"), ...args]);
      assert.notEqual(stranger.code, 0, "the stranger's C-FIND fails");
      assert.match(stranger.stdout + stranger.stderr, /No presentation context|no acceptable presentation context/i);
      assert.deepEqual(readdirSync(join(tmp, "open-stranger")), []);
      const friend = await run("findscu", ["-aet", "FRIEND", "-X", "-od", dir("open-friend"), ...args]);
      assert.equal(friend.code, 0, friend.stderr);
      assert.equal(readdirSync(join(tmp, "open-friend")).length, 1);
    });

    test("a stranger's C-FIND sent on its storage context is answered 0x0122, with no match", async () => {
      const c = await RawClient.connect(serve.port);
      const ac = await c.associate({ calling: "STRANGER", called: "RTSERVE", contexts: [{ abstractSyntax: CT_IMAGE }, { abstractSyntax: PATIENT_ROOT_FIND }] });
      assert.equal(ac?.type, 2);
      assert.deepEqual([...acResults(ac!.body)], [[1, 0], [3, 1]], "storage accepted, Q/R rejected by the user");
      await c.message(1, { commandField: C_FIND_RQ, messageId: 5, affectedSopClassUid: PATIENT_ROOT_FIND, priority: 0, hasDataSet: true }, identifierBytes({ QueryRetrieveLevel: "PATIENT", PatientID: "", PatientName: "" }));
      const rsp = await c.readCommand();
      c.destroy();
      assert.equal(rsp?.commandField, 0x8020);
      assert.equal(rsp?.status, 0x0122);
    });

    test("FRIEND from another address is not FRIEND: --allow FRIEND@10.9.8.0/24 rejects it from 127.0.0.1", async () => {
      const s = await startServe(["--dir", dir("bound"), "--aet", "RTSERVE", "--allow", "FRIEND@10.9.8.0/24"]);
      try {
        const r = await run("echoscu", ["-aet", "FRIEND", "-aec", "RTSERVE", "127.0.0.1", String(s.port)]);
        assert.notEqual(r.code, 0);
        assert.match(r.stdout + r.stderr, /Calling AE Title Not Recognized/i);
        await logged(s, /calling AE title "FRIEND" is not allowed from 127\.0\.0\.1/);
      } finally {
        await s.stop();
      }
    });
  });

  describe("TLS: client certificates, their subject bound to the AE title", () => {
    let pki: Awaited<ReturnType<typeof makePki>>;
    let serve: ServeChild;
    before(async () => {
      pki = await makePki(dir("pki"));
      serve = await startServe([
        "--dir", dir("tls"), "--aet", "RTSERVE", "--tls", "--cert", pki.serverCert, "--key", pki.serverKey, "--ca", pki.caPath, "--allow", "FRIEND#good-client",
      ]);
    });
    after(async () => void await serve?.stop());
    const echo = (calling: string, client?: { cert: string; key: string }) =>
      rtexport(["echo", "--json", "--host", "127.0.0.1", "--port", String(serve.port), "--aec", "RTSERVE", "--aet", calling, "--tls", "--ca", pki.caPath, ...(client ? ["--cert", client.cert, "--key", client.key] : [])]);

    test("--tls without --ca (and without --tls-no-client-cert): usage error", async () => {
      const r = await rtexport(["serve", "--dir", dir("tls-noca"), "--port", "0", "--allow", "A", "--tls", "--cert", pki.serverCert, "--key", pki.serverKey]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--tls needs --ca to verify client certificates, or --tls-no-client-cert/);
    });

    test("a TLS peer that closes before answering, when we gave no certificate: the likely fix is named; with one: closed by the peer", async () => {
      const tls = await import("node:tls");
      const server = tls.createServer({ cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) }, (s) => s.destroy());
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const port = (server.address() as { port: number }).port;
      try {
        const run = (client?: { cert: string; key: string }) =>
          rtexport(["echo", "--host", "127.0.0.1", "--port", String(port), "--aec", "CLOSER", "--tls", "--ca", pki.caPath, ...(client ? ["--cert", client.cert, "--key", client.key] : [])]);
        const none = await run();
        assert.equal(none.code, 1);
        assert.match(none.stderr, /^echo: TLS failure with CLOSER@127\.0\.0\.1:\d+: it closed the connection before answering our association request; it may require a client certificate \(give ours with --cert and --key\)\n$/);
        const withCert = await run(await pki.client("good-client"));
        assert.equal(withCert.code, 1);
        assert.match(withCert.stderr, /^echo: Connection to CLOSER@127\.0\.0\.1:\d+ (closed|was reset) by the peer\n$/);
      } finally {
        await new Promise((r) => server.close(r));
      }
    });

    test("the AE title with the certificate of CN good-client is let in; with another certificate, or none, it is not", async () => {
      const good = await echo("FRIEND", await pki.client("good-client"));
      assert.equal(good.code, 0, good.stderr);
      const other = await echo("FRIEND", await pki.client("other-client"));
      assert.equal(other.code, 1);
      assert.match(other.stderr, /calling AE title not recognized/);
      const none = await echo("FRIEND");
      assert.equal(none.code, 1);
      // 9. one plain sentence, not OpenSSL's strings
      // The TLS 1.3 alert names the want of a certificate; when it is lost with the connection
      // (Deno, under load) the closing before any answer is named with the same fix.
      assert.match(
        none.stderr,
        /^echo: TLS failure with RTSERVE@127\.0\.0\.1:\d+: (it requires a client certificate|it closed the connection before answering our association request; it may require a client certificate) \(give ours with --cert and --key\)\n$/,
      );
      assert.doesNotMatch(none.stderr + serve.stderr(), /SSL routines|error:[0-9A-F]{8}|\n\s+at /);
      assert.match(serve.stderr(), /TLS failure with the caller: it presented no client certificate/);
      assert.match(serve.stderr(), /calling AE title "FRIEND" is not allowed from 127\.0\.0\.1 with certificate CN "other-client"/);
    });
  });
});

describe("5. one file per SOP instance, and the first copy is kept", () => {
  /** C-STOREs a data set over a raw association; returns the status. */
  async function rawStore(port: number, ds: ReturnType<typeof dataSet>, cmdUids?: { cls?: string; inst?: string }): Promise<number | undefined> {
    const c = await RawClient.connect(port);
    const ac = await c.associate({ calling: "STORER", called: "RTSERVE", contexts: [{ abstractSyntax: CT_IMAGE, transferSyntaxes: [EXPLICIT_LE] }] });
    assert.equal(ac?.type, 2);
    const bytes = encodeDataSet(ds, EXPLICIT_LE);
    await c.message(1, {
      commandField: C_STORE_RQ, messageId: 1, priority: 0, hasDataSet: true,
      affectedSopClassUid: cmdUids?.cls ?? ds.string(0x00080016) ?? CT_IMAGE, affectedSopInstanceUid: cmdUids?.inst ?? ds.string(0x00080018) ?? "",
    }, bytes);
    const rsp = await c.readCommand(10000);
    c.destroy();
    return rsp?.status;
  }
  const obj = (sop: string, pixels = 64) =>
    dataSet({ PatientID: "P5", StudyInstanceUID: `${UID}.5.1`, SeriesInstanceUID: `${UID}.5.1.1`, SOPInstanceUID: sop }, { pixels });

  test("SOP Instance UIDs 1.2.3/4 and 1.2.3_4 (same once sanitized) land in two files", async () => {
    const d = dir("uids");
    const s = await startServe(["--dir", d, "--aet", "RTSERVE", "--allow", "STORER"]);
    try {
      assert.equal(await rawStore(s.port, obj(`${UID}.5/4`)), 0);
      assert.equal(await rawStore(s.port, obj(`${UID}.5_4`)), 0);
      const uids = stored(d).map((f) => readDicomFile(f).dataset.string("SOPInstanceUID")).sort();
      assert.deepEqual(uids, [`${UID}.5/4`, `${UID}.5_4`]);
    } finally {
      await s.stop();
    }
  });

  test("a re-sent SOP instance is answered 0xB000 and the first copy kept (logged); with --overwrite it is replaced", async () => {
    const d = dir("dup");
    const s = await startServe(["--dir", d, "--aet", "RTSERVE", "--allow", "STORER"]);
    const sop = `${UID}.5.7`;
    try {
      assert.equal(await rawStore(s.port, obj(sop, 64)), 0);
      const [file] = stored(d);
      const first = readFileSync(file);
      assert.equal(await rawStore(s.port, obj(sop, 128)), 0xb000);
      assert.deepEqual(readFileSync(file), first, "the stored copy is unchanged");
      assert.equal(stored(d).length, 1);
      assert.match(s.stderr(), new RegExp(`Stored with a warning: object ${sop.replace(/\./g, "\\.")} from STORER .*status 0xB000: SOP instance .* is stored already; the first copy was kept`));
    } finally {
      await s.stop();
    }
    const o = await startServe(["--dir", d, "--aet", "RTSERVE", "--allow", "STORER", "--overwrite"]);
    try {
      assert.equal(await rawStore(o.port, obj(sop, 128)), 0);
      assert.equal(stored(d).length, 1);
      assert.equal(readDicomFile(stored(d)[0], { full: true }).dataset.get(0x7fe00010)?.length, 128);
    } finally {
      await o.stop();
    }
  });

  test("8. a C-STORE whose command UIDs contradict its data set, or whose data set is empty, is refused with 0xA900", async () => {
    const d = dir("mismatch");
    const s = await startServe(["--dir", d, "--aet", "RTSERVE", "--allow", "STORER"]);
    try {
      assert.equal(await rawStore(s.port, obj(`${UID}.8.1`), { inst: `${UID}.8.2` }), 0xa900);
      assert.equal(await rawStore(s.port, obj(`${UID}.8.3`), { cls: "1.2.840.10008.5.1.4.1.1.4" }), 0xa900);
      const c = await RawClient.connect(s.port);
      await c.associate({ calling: "STORER", called: "RTSERVE", contexts: [{ abstractSyntax: CT_IMAGE, transferSyntaxes: [EXPLICIT_LE] }] });
      await c.send(pdv(1, true, true, (await import("../lib/net/dimse.ts")).encodeCommand({ commandField: C_STORE_RQ, messageId: 9, priority: 0, hasDataSet: true, affectedSopClassUid: CT_IMAGE, affectedSopInstanceUid: `${UID}.8.4` })));
      await c.send(pdv(1, false, true, new Uint8Array(0)));
      const rsp = await c.readCommand();
      c.destroy();
      assert.equal(rsp?.status, 0xa900);
      assert.deepEqual(stored(d), []);
      assert.match(s.stderr(), /the data set's SOP Instance UID "1\.2\.826\.0\.1\.3680043\.10\.1013\.8\.1" is not the command's "1\.2\.826\.0\.1\.3680043\.10\.1013\.8\.2"/);
      assert.match(s.stderr(), /status 0xA900: Empty data set/);
    } finally {
      await s.stop();
    }
  });
});

describe("6. associations are capped and idle ones closed", () => {
  test("--help shows the 30 s idle timeout", async () => {
    const r = await rtexport(["serve", "--help"]);
    assert.match(r.stdout.replace(/\s+/g, " "), /--idle-timeout <s> close an association after this many seconds without a byte from the peer \(default: 30\)/);
  });

  test("one host holds at most --max-associations-per-peer; others still get in; idle ones are closed after --idle-timeout", async () => {
    const s = await startServe([
      "--dir", dir("cap"), "--aet", "RTSERVE", "--host", "::", "--allow", "EVIL", "--allow", "GOOD",
      "--max-associations", "8", "--max-associations-per-peer", "4", "--idle-timeout", "2",
    ]);
    try {
      const evil = await Promise.all(Array.from({ length: 6 }, () => RawClient.connect(s.port, "127.0.0.1")));
      const answers = [];
      for (const c of evil) answers.push(await c.associate({ calling: "EVIL", called: "RTSERVE", contexts: [{ abstractSyntax: VERIFICATION }] }));
      assert.deepEqual(answers.map((a) => a?.type), [2, 2, 2, 2, 3, 3]);
      assert.deepEqual([...answers[4]!.body.subarray(1, 4)], [2, 3, 2], "rejected-transient, service provider (presentation), local limit exceeded");
      const good = await RawClient.connect(s.port, "::1");
      const ok = await good.associate({ calling: "GOOD", called: "RTSERVE", contexts: [{ abstractSyntax: VERIFICATION }] });
      good.destroy();
      assert.equal(ok?.type, 2, "a caller from another address (::1) still gets in");
      const t0 = Date.now();
      const closed = await Promise.all(evil.slice(0, 4).map((c) => c.waitClosed(10000)));
      assert.deepEqual(closed, [true, true, true, true]);
      assert.ok(Date.now() - t0 < 6000, `closed after ${Date.now() - t0} ms`);
      await logged(s, /No request from .* within 2 s \(idle timeout\)/);
      assert.ok(await echoOk(s.port, "EVIL"), "once they are gone, the host is served again");
    } finally {
      await s.stop();
    }
  });
});

describe("8. protocol strictness", () => {
  let serve: ServeChild;
  before(async () => {
    serve = await startServe(["--dir", dir("strict"), "--aet", "RTSERVE", "--allow", "RAW@127.0.0.1"]);
  });
  after(async () => void await serve?.stop());

  test("an unknown DIMSE command is answered 0x0211 and the association goes on", async () => {
    const c = await RawClient.connect(serve.port);
    await c.associate({ calling: "RAW", called: "RTSERVE", contexts: [{ abstractSyntax: VERIFICATION }] });
    await c.message(1, { commandField: 0x0999, messageId: 7, affectedSopClassUid: VERIFICATION, hasDataSet: false });
    const rsp = await c.readCommand(3000);
    assert.deepEqual([rsp?.commandField, rsp?.messageIdBeingRespondedTo, rsp?.status], [0x8999, 7, 0x0211]);
    await c.message(1, { commandField: C_ECHO_RQ, messageId: 8, affectedSopClassUid: VERIFICATION, hasDataSet: false });
    const echo = await c.readCommand(3000);
    c.destroy();
    assert.deepEqual([echo?.commandField, echo?.status], [0x8030, 0]);
  });

  test("an application context other than DICOM's is rejected (permanent, service user, reason 2)", async () => {
    const c = await RawClient.connect(serve.port);
    const answer = await c.associate({ calling: "RAW", called: "RTSERVE", applicationContext: "1.2.3.4.5.6", contexts: [{ abstractSyntax: VERIFICATION }] });
    c.destroy();
    assert.equal(answer?.type, 3);
    assert.deepEqual([...answer!.body.subarray(1, 4)], [1, 1, 2]);
  });
});

describe("9. operations", () => {
  test("control characters in a calling AE title are rejected and cannot forge a log line", async () => {
    const s = await startServe(["--dir", dir("ctl"), "--aet", "RTSERVE", "--allow", "RAW"]);
    try {
      const c = await RawClient.connect(s.port);
      const answer = await c.associate({ calling: "EVIL\nserve: FAKE", called: "RTSERVE", contexts: [{ abstractSyntax: VERIFICATION }] });
      c.destroy();
      assert.equal(answer?.type, 3);
      assert.deepEqual([...answer!.body.subarray(1, 4)], [1, 1, 3], "calling AE title not recognized");
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(!s.stderr().split("\n").some((l) => l.startsWith("serve: FAKE")), s.stderr());
      await logged(s, /calling AE title "EVIL\\x0aserve: FAKE" holds characters an AE title may not have/);
    } finally {
      await s.stop();
    }
  });

  test("temporary files a killed serve left in .incoming are removed at start (those of a live process are not)", async () => {
    const d = dir("stale");
    mkdirSync(join(d, ".incoming"));
    const dead = join(d, ".incoming", ".rtexport-rx-999999-mx7ec0wd-1.part");
    const live = join(d, ".incoming", `.rtexport-rx-${process.pid}-mx7ec0wd-2.part`);
    writeFileSync(dead, "x");
    writeFileSync(live, "y");
    const s = await startServe(["--dir", d, "--aet", "RTSERVE", "--allow", "A"]);
    await s.stop();
    assert.equal(existsSync(dead), false);
    assert.equal(existsSync(live), true);
    assert.match(s.stderr(), /removed 1 temporary files left by a previous run/);
  });

  test("a store that fails on a full disk is logged with its cause and answered with a failure status", async () => {
    const d = dir("full");
    const src = dir("full-src");
    const files = [1, 2, 3, 4].map((i) =>
      writeObject(src, `f${i}.dcm`, { PatientID: "FULL", StudyInstanceUID: `${UID}.9.1`, SeriesInstanceUID: `${UID}.9.1.1`, SOPInstanceUID: `${UID}.9.1.1.${i}` }, { pixels: 120_000 })
    );
    const s = await startServe(["--dir", d, "--aet", "RTSERVE", "--allow-store-any"], { wrap: inSmallTmpfs(d, "300k") });
    try {
      const r = await run("storescu", ["-v", "-aec", "RTSERVE", "127.0.0.1", String(s.port), ...files]);
      assert.match(r.stdout + r.stderr, /Received Store Response \((Unknown Status: 0x110|Refused: OutOfResources)/);
      await logged(s, /serve: Cannot store object 1\.2\.826\.0\.1\.3680043\.10\.1013\.9\.1\.1\.\d from STORESCU \(.*\), status 0x(A700|0110): .*no space left on device/);
    } finally {
      await s.stop();
    }
  });
});
