// Storage Commitment (N-ACTION / N-EVENT-REPORT) against Orthanc, which reports on a new
// association it opens to our listener, and against our own SCP, which reports on the same one.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { connect, connectOptions, createScp, storageContexts, store, storeSourceFromFile } from "../lib/net/mod.ts";
import { commitmentReport, commitmentRequest, readCommitmentReport, readCommitmentRequest } from "../lib/net/commitment.ts";
import { Committer } from "../lib/net/commitment_scu.ts";
import { startQrScp } from "../lib/qr/scp.ts";
import { freePort, type OrthancPeer, startOrthanc } from "./_peers.ts";

function dicomFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith(".dcm"))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).sort();
}

describe("storage commitment", () => {
  let dir: string;
  let files: string[];
  let orthanc: OrthancPeer;
  let listenPort: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "rtexport-commit-"));
    await generateClinic({ out: join(dir, "clinic"), patients: 1, slices: 3 });
    files = dicomFiles(join(dir, "clinic"));
    listenPort = await freePort();
    orthanc = await startOrthanc({ modalities: [{ aeTitle: "RTEXPORT", host: "127.0.0.1", port: listenPort }] });
  });
  after(async () => {
    await orthanc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("data sets round-trip: request and report (with a failure reason)", () => {
    const items = [{ sopClassUid: "1.2.840.10008.5.1.4.1.1.2", sopInstanceUid: "1.2.3.4" }];
    assert.deepEqual(readCommitmentRequest(commitmentRequest("2.25.7", items)), { transactionUid: "2.25.7", items });
    const r = { transactionUid: "2.25.8", committed: items, failed: [{ sopClassUid: "1.2.840.10008.5.1.4.1.1.2", sopInstanceUid: "1.2.3.5", reason: 0x0112 }] };
    assert.deepEqual(readCommitmentReport(commitmentReport(r)), r);
  });

  test("Orthanc: stored objects committed, one deleted through the REST API reported as not (0x0112), report on a new association", async () => {
    const peer = { host: "127.0.0.1", port: orthanc.port, callingAet: "RTEXPORT", calledAet: orthanc.aeTitle };
    const sources = files.map((f) => storeSourceFromFile(f));
    const assoc = await connect(connectOptions(peer, storageContexts(sources)));
    for (const s of sources) assert.equal((await store(assoc, s)).status, 0);
    await assoc.release();
    const gone = sources[1].sopInstanceUid;
    const [found] = await orthanc.rest("/tools/lookup", gone) as { ID: string }[];
    const r = await fetch(`http://127.0.0.1:${orthanc.httpPort}/instances/${found.ID}`, { method: "DELETE" });
    assert.equal(r.status, 200);
    const committer = await Committer.start({ peer, listen: { port: listenPort }, timeoutMs: 30_000 });
    try {
      const outcomes = await committer.commit(sources.map((s) => ({ sopClassUid: s.sopClassUid, sopInstanceUid: s.sopInstanceUid })));
      assert.deepEqual(outcomes.filter((o) => !o.committed).map((o) => [o.sopInstanceUid, o.failureReason]), [[gone, 0x0112]]);
      assert.equal(outcomes.filter((o) => o.committed).length, sources.length - 1);
      assert.match(outcomes.find((o) => !o.committed)!.reason!, /did not commit it: no such object instance \(0x0112\)/);
    } finally {
      await committer.close();
    }
  });

  test("our SCP: the report comes on the same association", async () => {
    const known = new Set(["1.2.3.1", "1.2.3.2"]);
    const scp = await createScp({
      aeTitle: "COMMITSCP", host: "127.0.0.1",
      handlers: {
        commit: ({ transactionUid, items }) => ({
          transactionUid,
          committed: items.filter((i) => known.has(i.sopInstanceUid)),
          failed: items.filter((i) => !known.has(i.sopInstanceUid)).map((i) => ({ ...i, reason: 0x0112 })),
        }),
      },
    });
    // No listener: a report that came on a new association would be missed.
    const committer = await Committer.start({ peer: { host: "127.0.0.1", port: scp.port, callingAet: "ME", calledAet: "COMMITSCP" }, timeoutMs: 10_000 });
    try {
      const cls = "1.2.840.10008.5.1.4.1.1.2";
      const t0 = Date.now();
      const outcomes = await committer.commit(["1.2.3.1", "1.2.3.2", "1.2.3.3"].map((u) => ({ sopClassUid: cls, sopInstanceUid: u })));
      assert.deepEqual(outcomes.map((o) => o.committed), [true, true, false]);
      assert.ok(Date.now() - t0 < 5000, "the report on the same association ends the wait");
    } finally {
      await committer.close();
      await scp.close();
    }
  });

  test("serve answers from its index, on the same association: stored committed, unknown 0x0112, another class 0x0119", async () => {
    const node = await startQrScp({ dir: join(dir, "served"), aeTitle: "RTSERVE", host: "127.0.0.1", port: 0, allow: ["RTEXPORT"] });
    try {
      const peer = { host: "127.0.0.1", port: node.port, callingAet: "RTEXPORT", calledAet: "RTSERVE" };
      const sources = files.slice(0, 3).map((f) => storeSourceFromFile(f));
      const a = await connect(connectOptions(peer, storageContexts(sources)));
      for (const s of sources) assert.equal((await store(a, s)).status, 0);
      await a.release();
      const committer = await Committer.start({ peer, timeoutMs: 10_000 });
      try {
        const other = sources[2].sopClassUid === "1.2.840.10008.5.1.4.1.1.4" ? "1.2.840.10008.5.1.4.1.1.2" : "1.2.840.10008.5.1.4.1.1.4";
        const items = [
          ...sources.slice(0, 2).map((s) => ({ sopClassUid: s.sopClassUid, sopInstanceUid: s.sopInstanceUid })),
          { sopClassUid: "1.2.840.10008.5.1.4.1.1.2", sopInstanceUid: "1.2.826.0.1.3680043.10.543.999" },
          { sopClassUid: other, sopInstanceUid: sources[2].sopInstanceUid },
        ];
        const outcomes = await committer.commit(items);
        assert.deepEqual(outcomes.map((o) => [o.committed, o.failureReason]), [[true, undefined], [true, undefined], [false, 0x0112], [false, 0x0119]]);
      } finally {
        await committer.close();
      }
    } finally {
      await node.close();
    }
  });

  test("a peer that never reports: every object says so after the timeout", async () => {
    const scp = await createScp({
      aeTitle: "SILENT", host: "127.0.0.1",
      handlers: { commit: () => new Promise(() => {}) },
    });
    const committer = await Committer.start({ peer: { host: "127.0.0.1", port: scp.port, callingAet: "ME", calledAet: "SILENT" }, timeoutMs: 300 });
    try {
      const outcomes = await committer.commit([{ sopClassUid: "1.2.840.10008.5.1.4.1.1.2", sopInstanceUid: "1.2.3.9" }]);
      assert.equal(outcomes[0].committed, false);
      assert.match(outcomes[0].reason!, /no storage commitment report from SILENT@127\.0\.0\.1:\d+ within 0 s/);
    } finally {
      await committer.close();
      await scp.close();
    }
  });
});
