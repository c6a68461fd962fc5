// placeStagedFile: a staged (received) object linked into the tree, with the hash taken as it was
// written (`written`) or read back from the file.
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { markProcessGone, placeStagedFile, sweepStaleTemps, tempNameFor } from "../lib/copy/copy.ts";

const dir = mkdtempSync(join(tmpdir(), "rtx-copy-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
let n = 0;
/** A staged file and the tree path it goes to. */
function staged(content: string): { src: string; dest: string; bytes: Buffer } {
  const bytes = Buffer.from(content);
  const src = join(dir, `staged-${n}.part`);
  writeFileSync(src, bytes);
  return { src, dest: join(dir, "tree", `P${n}`, `f${n++}.dcm`), bytes };
}

describe("placeStagedFile", () => {
  it("links the staged file at its destination and reports the hash it was written with", async () => {
    const { src, dest, bytes } = staged("received object");
    const r = await placeStagedFile(src, dest, { written: { sha256: sha(bytes), bytes: bytes.length } });
    assert.deepEqual(r, { status: "copied", source: src, dest, bytes: bytes.length, sha256: sha(bytes) });
    assert.equal(statSync(dest).ino, statSync(src).ino); // linked, not copied
    assert.deepEqual(readFileSync(dest), bytes);
  });

  it("without `written`, hashes the file it links", async () => {
    const { src, dest, bytes } = staged("read back");
    const r = await placeStagedFile(src, dest);
    assert.equal(r.sha256, sha(bytes));
    assert.equal(r.status, "copied");
  });

  it("refuses a staged file whose size is not what was written, and puts nothing at the destination", async () => {
    const { src, dest, bytes } = staged("truncated on disk");
    await assert.rejects(
      placeStagedFile(src, dest, { written: { sha256: sha(bytes), bytes: bytes.length + 5 } }),
      { message: `Cannot copy "${src}": it holds ${bytes.length} bytes where ${bytes.length + 5} were written` },
    );
    assert.equal(existsSync(dest), false);
    assert.deepEqual(readdirSync(join(dest, "..")), []);
  });

  it("checks the written hash against an expected one", async () => {
    const { src, dest, bytes } = staged("expected");
    await assert.rejects(
      placeStagedFile(src, dest, { written: { sha256: sha(bytes), bytes: bytes.length }, expectedSha256: "0".repeat(64) }),
      /its sha256 [0-9a-f]{64} differs from the expected 0{64}/,
    );
    assert.equal(existsSync(dest), false);
  });

  it("a file already at the destination: the same content is identical, another a conflict (never replaced)", async () => {
    const a = staged("same");
    await placeStagedFile(a.src, a.dest, { written: { sha256: sha(a.bytes), bytes: a.bytes.length } });
    const again = staged("same");
    const same = await placeStagedFile(again.src, a.dest, { written: { sha256: sha(again.bytes), bytes: again.bytes.length } });
    assert.equal(same.status, "identical");
    const other = staged("different");
    const c = await placeStagedFile(other.src, a.dest, { written: { sha256: sha(other.bytes), bytes: other.bytes.length } });
    assert.deepEqual([c.status, c.existingSha256, c.sha256], ["conflict", sha(a.bytes), sha(other.bytes)]);
    assert.deepEqual(readFileSync(a.dest), a.bytes);
  });
});

describe("sweepStaleTemps", () => {
  it("keeps a living process's half-written copy until the ledger says it is gone (lease lost while stopped), then removes it", () => {
    // A process of this machine that is alive (as one stopped with SIGSTOP is) owns a temporary file.
    const owner = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"], { stdio: "ignore" });
    try {
      const folder = join(dir, "sweep");
      mkdirSync(folder);
      const ours = basename(tempNameFor(join(folder, "x.dcm")));
      const theirs = ours.replace(`-${process.pid}-`, `-${owner.pid}-`);
      assert.notEqual(theirs, ours);
      writeFileSync(join(folder, theirs), "half");
      assert.deepEqual(sweepStaleTemps(folder), [], "alive: left alone");
      markProcessGone(hostname(), owner.pid!);
      assert.deepEqual(sweepStaleTemps(folder), [theirs], "known gone: removed although alive");
      assert.deepEqual(readdirSync(folder), []);
    } finally {
      owner.kill("SIGKILL");
    }
  });
});
