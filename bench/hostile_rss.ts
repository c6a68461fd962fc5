/**
 * serve's memory under two attacks of issue 13, measured from /proc while they run:
 *
 *   node bench/hostile_rss.ts [REPO]
 *
 * 1. a C-FIND identifier sent as 256 MiB of PDVs never marked last;
 * 2. eight A-ASSOCIATE-RQs announcing 32 MiB each, streaming their bodies.
 *
 * REPO (default: this checkout) is the tree whose `serve` runs: point it at an export of an older
 * commit (`git archive <commit> | tar -x -C /tmp/old`, node_modules linked) to compare. Prints one
 * JSON line (MiB): RSS at rest, during and after the flood, and during the A-ASSOCIATE-RQs.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const repo = process.argv[2] ?? fileURLToPath(new URL("..", import.meta.url));
const h = await import(join(repo, "tests", "_hostile.ts")) as typeof import("../tests/_hostile.ts");
const { encodeCommand } = await import(join(repo, "lib", "net", "dimse.ts")) as typeof import("../lib/net/dimse.ts");
const MiB = 1 << 20;
const dir = mkdtempSync(join(tmpdir(), "rtexport-hostile-rss-"));
const serve = await h.startServe(["--dir", dir, "--aet", "RTSERVE", "--allow", "HOSTILE"]);
const pid = serve.proc.pid!;
try {
  await new Promise((r) => setTimeout(r, 500));
  const base = h.rssOf(pid);

  const c = await h.RawClient.connect(serve.port);
  await c.associate({ calling: "HOSTILE", called: "RTSERVE", contexts: [{ abstractSyntax: h.STUDY_ROOT_FIND }] });
  await c.send(h.pdv(1, true, true, encodeCommand({ commandField: 0x20, messageId: 1, affectedSopClassUid: h.STUDY_ROOT_FIND, priority: 0, hasDataSet: true })));
  const flood = h.rssSampler(pid);
  const piece = h.pdv(1, false, false, new Uint8Array(16384));
  let sent = 0;
  const t0 = Date.now();
  while (sent < 256 * MiB && Date.now() - t0 < 30000 && (await c.send(piece))) sent += piece.length;
  await c.waitClosed(3000);
  await new Promise((r) => setTimeout(r, 300));
  const floodPeak = flood.stop();
  c.destroy();
  await new Promise((r) => setTimeout(r, 500));
  const afterFlood = h.rssOf(pid);

  const rq = h.rssSampler(pid);
  const clients = await Promise.all(Array.from({ length: 8 }, () => h.RawClient.connect(serve.port)));
  const head = new Uint8Array(6);
  head[0] = 1;
  new DataView(head.buffer).setUint32(2, 32 * MiB);
  const junk = new Uint8Array(256 * 1024);
  await Promise.all(clients.map(async (x) => {
    let n = 0;
    if (!(await x.send(head))) return;
    while (n < 32 * MiB && (await x.send(junk))) n += junk.length;
  }));
  await new Promise((r) => setTimeout(r, 500));
  const rqPeak = rq.stop();
  for (const x of clients) x.destroy();

  const m = (b: number) => Math.round(b / MiB);
  process.stdout.write(JSON.stringify({ repo, rest: m(base), floodSent: m(sent), floodPeak: m(floodPeak), afterFlood: m(afterFlood), associateRqPeak: m(rqPeak) }) + "\n");
} finally {
  await serve.stop();
  rmSync(dir, { recursive: true, force: true });
}
