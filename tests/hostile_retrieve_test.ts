// retrieve against hostile or broken peers (issue 13, hole 7 and the retrieve half of 9): the
// C-MOVE receiver over TLS and open only to the peer, C-FIND answers that never stop, a full
// disk. Peers: our serve (child process and in-process), our SCP framework as a hostile C-FIND
// SCP, raw sockets. Every test here failed on the code before the fix (checked once).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { DataSet, textElement } from "../lib/dicom/dataset.ts";
import { type ClinicManifest, generateClinic } from "../lib/fixtures/mod.ts";
import { createScp, type Scp } from "../lib/net/mod.ts";
import { type QrScp, startQrScp } from "../lib/qr/scp.ts";
import { ArrivalStore } from "../lib/retrieve/arrivals.ts";
import { openRetrieveSession } from "../lib/retrieve/session.ts";
import { canConnect, externalAddress, inSmallTmpfs, makePki, RawClient, rssSampler, rtexport, startServe } from "./_hostile.ts";
import { freePort } from "./_peers.ts";
import { cliCommand, records, root } from "./_run.ts";

const tmp = mkdtempSync(join(tmpdir(), "rtexport-hostile-retrieve-"));
let manifest: ClinicManifest;
const clinic = join(tmp, "clinic");
before(async () => {
  manifest = await generateClinic({ out: clinic, patients: 1, slices: 4, size: 32 });
});
after(() => rmSync(tmp, { recursive: true, force: true }));
const MiB = 1024 * 1024;

/** A served copy of the clinic, indexed. */
async function servedClinic(name: string, allow: string[]): Promise<QrScp> {
  const node = await startQrScp({ dir: join(tmp, name), aeTitle: "RTSERVE", allow });
  const { cpSync } = await import("node:fs");
  cpSync(clinic, node.index.dir, { recursive: true });
  await node.index.indexFolder();
  return node;
}

describe("7. the C-MOVE receiver", () => {
  test("retrieve --tls by C-MOVE without a certificate for the receiver: refused before anything is sent (exit 2)", async () => {
    const r = await rtexport(["retrieve", "--host", "127.0.0.1", "--port", "1", "--aec", "X", "--tls", "--patient-id", "P", "--out", join(tmp, "no-cert")]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /C-MOVE with --tls receives over TLS: give --cert and --key for the receiving SCP, or use --get/);
  });

  test("retrieve --tls by C-MOVE from serve --tls: the objects come back over TLS to a receiver on 127.0.0.1", async () => {
    mkdirSync(join(tmp, "pki-move"), { recursive: true });
    const pki = await makePki(join(tmp, "pki-move"));
    const client = await pki.client("rtx-client");
    const movePort = await freePort();
    const { cpSync } = await import("node:fs");
    cpSync(clinic, join(tmp, "served-tls"), { recursive: true });
    const t = await startServe([
      "--dir", join(tmp, "served-tls"), "--aet", "RTSERVE", "--tls", "--cert", pki.serverCert, "--key", pki.serverKey, "--ca", pki.caPath,
      "--allow", "RTX#rtx-client", "--move-dest", `RTX=127.0.0.1:${movePort}`,
    ]);
    try {
      const out = join(tmp, "moved-tls");
      const r = await rtexport([
        "retrieve", "--json", "--host", "127.0.0.1", "--port", String(t.port), "--aec", "RTSERVE", "--aet", "RTX", "--tls", "--ca", pki.caPath,
        "--cert", client.cert, "--key", client.key, "--move-port", String(movePort), "--patient-id", manifest.patients[0].patientId,
        "--plan", "Plan1", "--out", out, "--dimse-timeout", "20",
      ], { timeoutMs: 120000 });
      assert.equal(r.code, 0, r.stderr + t.stderr());
      assert.match(r.stderr, new RegExp(`receiving C-MOVE objects as RTX on 127\\.0\\.0\\.1:${movePort} \\(TLS\\)`));
      const files = records(r.stdout).filter((x) => x.type === "file");
      assert.ok(files.length >= 10, `${files.length} objects`);
      assert.match(t.stderr(), /C-MOVE from RTX to RTX: \d+ objects/);
    } finally {
      await t.stop();
    }
  });

  describe("listens where the peer reaches it and accepts only the peer", () => {
    let node: QrScp;
    let session: Awaited<ReturnType<typeof openRetrieveSession>>;
    let arrivals: ArrivalStore;
    before(async () => {
      node = await servedClinic("served-move", ["RTX@127.0.0.1"]);
      arrivals = new ArrivalStore(join(tmp, "arrivals"));
      session = await openRetrieveSession({ host: "127.0.0.1", port: node.port, callingAet: "RTX", calledAet: "RTSERVE", mode: "move", movePort: 0 }, arrivals);
    });
    after(async () => {
      await session?.close();
      arrivals?.cleanup();
      await node?.close();
    });

    test("on 127.0.0.1 for a peer on loopback (not every interface)", async () => {
      assert.equal(session.receiverHost, "127.0.0.1");
      const ext = await externalAddress();
      assert.ok(ext, "this machine has a non-loopback address to try");
      assert.equal(await canConnect(ext!, session.receiverPort!), false);
    });

    test("another calling AE title is rejected; the peer's AE title from the peer's address is accepted", async () => {
      for (const [calling, want] of [["INTRUDER", 3], ["RTSERVE", 2]] as const) {
        const c = await RawClient.connect(session.receiverPort!);
        const answer = await c.associate({ calling, called: "RTX", contexts: [{ abstractSyntax: "1.2.840.10008.5.1.4.1.1.2" }] });
        c.destroy();
        assert.equal(answer?.type, want, calling);
        if (want === 3) assert.deepEqual([...answer!.body.subarray(1, 4)], [1, 1, 3], "calling AE title not recognized");
      }
    });
  });
});

describe("7. C-FIND answers from a peer are kept within a limit", () => {
  let scp: Scp;
  let sent = 0;
  before(async () => {
    // A peer that keeps answering: 40,000 matches of 16 KB (640 MB if all were kept).
    const big = "x".repeat(16000);
    scp = await createScp({
      aeTitle: "FLOOD", host: "127.0.0.1", port: 0, handlers: {
        find: async function* (rq) {
          for (let i = 0; i < 40000 && !rq.cancelled(); i++) {
            const ds = new DataSet({ littleEndian: true, explicitVR: true });
            ds.set(textElement(0x00080052, "CS", "STUDY"));
            ds.set(textElement(0x00100020, "LO", "P"));
            ds.set(textElement(0x0020000d, "UI", `1.2.3.${i}`));
            ds.set(textElement(0x00081030, "LO", big.slice(0, 64)));
            ds.set(textElement(0x00291010, "OB", big));
            sent++;
            yield ds;
          }
        },
      },
    });
  });
  after(async () => void await scp?.close());

  /** retrieve as a child process, its peak RSS sampled. */
  async function retrieveFrom(args: string[]): Promise<{ code: number | null; stderr: string; peak: number; ms: number }> {
    const [cmd, ...rest] = cliCommand();
    const t0 = Date.now();
    const child: ChildProcess = spawn(cmd, [
      ...rest, "retrieve", "--host", "127.0.0.1", "--port", String(scp.port), "--aec", "FLOOD", "--get", "--patient-id", "P",
      "--out", join(tmp, `flood-${Date.now()}`), "--dimse-timeout", "30", ...args,
    ], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const rss = rssSampler(child.pid!);
    const timer = setTimeout(() => child.kill("SIGKILL"), 90000);
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    clearTimeout(timer);
    return { code, stderr, peak: rss.stop(), ms: Date.now() - t0 };
  }

  test("a peer that keeps answering: cancelled at 128 MiB of answers, retrieve's RSS bounded, one line naming the peer", async () => {
    sent = 0;
    const r = await retrieveFrom([]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /C-FIND at FLOOD@127\.0\.0\.1:\d+ returned more than 128 MiB of answers; the query was cancelled/);
    assert.ok(r.peak < 600 * MiB, `retrieve's RSS peaked at ${(r.peak / MiB).toFixed(0)} MiB`);
    assert.ok(sent < 40000, `the peer was stopped after ${sent} matches`);
  });

  test("--max-find-results 100: cancelled after 100 matches", async () => {
    sent = 0;
    const r = await retrieveFrom(["--max-find-results", "100"]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /returned more than 100 matches; the query was cancelled \(raise the limit with --max-find-results\)/);
  });
});

describe("9. a retrieve into a full disk", () => {
  let node: QrScp;
  before(async () => {
    node = await servedClinic("served-full", ["RTEXPORT@127.0.0.1"]);
  });
  after(async () => void await node?.close());

  test("names the cause (no space left on device) and exits 3", async () => {
    const out = join(tmp, "full-out");
    mkdirSync(out, { recursive: true });
    const [cmd, ...rest] = inSmallTmpfs(out, "150k")([
      ...cliCommand(), "retrieve", "--host", "127.0.0.1", "--port", String(node.port), "--aec", "RTSERVE", "--get",
      "--patient-id", manifest.patients[0].patientId, "--out", out, "--dimse-timeout", "20",
    ]);
    const child = spawn(cmd, rest, { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.once("exit", (c) => resolve(c)));
    assert.equal(code, 3, stderr);
    assert.match(stderr, /retrieve: Cannot write object [\d.]+: Cannot write ".*": no space left on device \(ENOSPC\)/);
    assert.doesNotMatch(stderr, /cannot rollback|\n\s+at /);
  });

  test("staging folders a killed retrieve left behind are removed at the next start", async () => {
    const out = join(tmp, "stale-out");
    const dead = join(out, ".rtexport-staging-999999");
    const deadAnon = join(out, ".rtexport", "retrieve-staging-999999");
    const live = join(out, `.rtexport-staging-${process.pid}`);
    for (const d of [dead, deadAnon, live]) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, "x.part"), "x");
    }
    const r = await rtexport(["retrieve", "--host", "127.0.0.1", "--port", String(node.port), "--aec", "RTSERVE", "--get", "--patient-id", manifest.patients[0].patientId, "--out", out, "--dimse-timeout", "20"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(existsSync(dead), false);
    assert.equal(existsSync(deadAnon), false);
    assert.equal(existsSync(live), true, "a live process's staging is left alone");
    assert.ok(readdirSync(out).some((n) => n.startsWith("RTX")), "the retrieve itself worked");
  });
});
