// `rtexport echo` against real peers (our SCP, Orthanc, storescp) and every failure a user meets:
// refused, rejected (with the reason), timeout, TLS.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import * as net from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main } from "../commands/echo.ts";
import { createScp, type Scp } from "../lib/net/mod.ts";
import { freePort, makeTlsCert, type OrthancPeer, runMainCaptured, startOrthanc, startStorescp, type StorescpPeer } from "./_peers.ts";
import { records, sh } from "./_run.ts";

describe("echo", () => {
  let scp: Scp;
  let tlsScp: Scp;
  let silent: net.Server;
  let silentPort: number;
  const silentSockets = new Set<net.Socket>();
  let storescp: StorescpPeer;
  let orthanc: OrthancPeer;
  let dir: string;
  let certPath: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "rtexport-echo-"));
    scp = await createScp({ aeTitle: "RTX", host: "127.0.0.1", allowedCallingAets: ["GOOD", "RTEXPORT"], handlers: {} });
    const tls = await makeTlsCert(dir);
    certPath = tls.certPath;
    tlsScp = await createScp({ aeTitle: "RTXTLS", host: "127.0.0.1", tls: { cert: tls.cert, key: tls.key }, handlers: {} });
    // Accepts TCP connections and never answers: association timeout.
    silent = net.createServer((s) => silentSockets.add(s));
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
    silentPort = (silent.address() as net.AddressInfo).port;
    [storescp, orthanc] = await Promise.all([startStorescp(), startOrthanc()]);
  });

  after(async () => {
    await scp?.close();
    await tlsScp?.close();
    for (const s of silentSockets) s.destroy();
    await new Promise((r) => silent?.close(r));
    await Promise.all([storescp?.stop(), orthanc?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  test("ok against our SCP: one echo record, exit 0", async () => {
    const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "RTX", "--aet", "GOOD"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.records.length, 1);
    assert.equal(r.records[0].type, "echo");
    assert.equal(r.records[0].status, "ok");
    assert.equal(r.records[0].peer, `RTX@127.0.0.1:${scp.port}`);
    assert.equal(typeof r.records[0].ms, "number");
    assert.equal(r.stderr, "");
  });

  test("ok against DCMTK storescp", async () => {
    const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(storescp.port), "--aec", storescp.aeTitle]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.records[0].status, "ok");
  });

  test("ok against Orthanc", async () => {
    const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual({ ...r.records[0], ms: 0 }, { type: "echo", peer: `ORTHANC@127.0.0.1:${orthanc.port}`, status: "ok", ms: 0 });
  });

  test("connection refused", async () => {
    const port = await freePort();
    const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(port)]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `echo: Cannot connect to 127.0.0.1:${port}: connection refused\n`);
    assert.equal(r.records[0].status, "failed");
    assert.equal(r.records[0].reason, "refused");
  });

  test("rejected: called AE title not recognized", async () => {
    const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "WRONG", "--aet", "GOOD"]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `echo: Association rejected by WRONG@127.0.0.1:${scp.port} (permanent): called AE title not recognized\n`);
    assert.equal(r.records[0].reason, "rejected");
  });

  test("rejected: calling AE title not recognized", async () => {
    const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "RTX", "--aet", "STRANGER"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^echo: Association rejected by RTX@127\.0\.0\.1:\d+ \(permanent\): calling AE title not recognized\n$/);
  });

  test("association timeout when the peer never answers", async () => {
    const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(silentPort), "--assoc-timeout", "0.3"]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `echo: No association answer from ANY-SCP@127.0.0.1:${silentPort} within 0.3 s (association timeout)\n`);
    assert.equal(r.records[0].reason, "timeout");
  });

  test("TLS: untrusted certificate is a TLS failure; trusted CA works", async () => {
    const base = ["--host", "127.0.0.1", "--port", String(tlsScp.port), "--aec", "RTXTLS", "--tls"];
    const bad = await runMainCaptured(main, base);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^echo: TLS failure with 127\.0\.0\.1:\d+: .*self[- ]signed/i);
    assert.equal(bad.records[0].reason, "tls");
    const good = await runMainCaptured(main, [...base, "--ca", certPath]);
    assert.equal(good.code, 0, good.stderr);
    assert.equal(good.records[0].status, "ok");
  });

  test("TLS client against a plain peer fails as TLS, not as a hang", async () => {
    const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "RTX", "--tls", "--connect-timeout", "3"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^echo: (TLS failure with|Cannot connect to) 127\.0\.0\.1:\d+: /);
  });

  test("the CLI entry point runs it", async () => {
    const r = await sh(`"\${RT[@]}" echo --host 127.0.0.1 --port ${scp.port} --aec RTX --aet GOOD`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(records(r.stdout)[0].status, "ok");
  });
});
