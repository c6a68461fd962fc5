// anonymize on large objects (issue 15, points 11 and 12): pixel data is copied from the input
// file to the output without being held, so memory stays flat in object size; a run killed
// mid-write leaves temporary files that the next run removes. Each run is its own process,
// measured by GNU time (/usr/bin/time, "Maximum resident set size").
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFileSync, closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { main as anonymizeMain } from "../commands/anonymize.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { writeBigObject } from "./_big_object.ts";

const ROOT = resolve(import.meta.dirname ?? ".", "..");
const NODE = join(ROOT, "node_modules/.bin/node");
const KEY = "stream-test-key-0123456789abcdef";
const MiB = 1 << 20;

let dir: string;

/** SHA-256 of a file's pixel data value (or its fragments' values, padded to even length), read in chunks. */
function pixelHash(path: string): string {
  const f = readDicomFile(path); // header only: Pixel Data is skipped, its offset and length known
  const px = f.dataset.get(0x7fe00010)!;
  const hash = createHash("sha256");
  const fd = openSync(path, "r");
  const buf = new Uint8Array(4 * MiB);
  const feed = (offset: number, length: number) => {
    for (let done = 0; done < length;) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, length - done), offset + done);
      if (n === 0) throw new Error(`short read in ${path}`);
      hash.update(buf.subarray(0, n));
      done += n;
    }
  };
  try {
    if (!px.undefinedLength) feed(px.offset, px.length);
    else {
      // fragments: walk the item headers from the value's start
      let pos = px.offset;
      const hb = new Uint8Array(8);
      for (;;) {
        readSync(fd, hb, 0, 8, pos);
        const dv = new DataView(hb.buffer);
        const tag = ((dv.getUint16(0, true) << 16) | dv.getUint16(2, true)) >>> 0;
        const len = dv.getUint32(4, true);
        if (tag === 0xfffee0dd) break;
        // an odd fragment is written padded with a NUL to an even length (PS3.5 A.4): compare that form
        hash.update(String(len + (len & 1)));
        feed(pos + 8, len);
        if (len & 1) hash.update(Uint8Array.of(0));
        pos += 8 + len;
      }
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

function walk(d: string): string[] {
  return readdirSync(d, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]);
}

/** Runs the anonymize command as its own process under GNU time; returns exit code, records, stderr and peak RSS. */
function timedRun(runtime: "node" | "deno", args: string[]) {
  const cmd = runtime === "node" ? [NODE, join(ROOT, "commands/anonymize.ts")] : [join(ROOT, "node_modules/.bin/deno"), "run", "-A", join(ROOT, "commands/anonymize.ts")];
  const r = spawnSync("/usr/bin/time", ["-f", "MAXRSS %M", ...cmd, ...args], { encoding: "utf8", maxBuffer: 1 << 26, timeout: 600_000 });
  const m = /MAXRSS (\d+)/.exec(r.stderr);
  assert.ok(m, `no measurement: ${r.stderr.slice(-500)}`);
  return {
    code: r.status,
    records: r.stdout.split("\n").filter((l) => l).map((l) => JSON.parse(l)),
    stderr: r.stderr,
    rssMb: Number(m[1]) / 1024,
  };
}

before(() => {
  // tmpfs when there is one: the test is about memory, not about the disk (4 × 128 MiB in, as much out).
  dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "rtexport-stream-"));
  mkdirSync(join(dir, "in"));
  // Four objects of 128 MiB (three native, one encapsulated with an odd last fragment): before
  // streaming, each file in flight cost its size in memory (four at the default concurrency, so
  // over 512 MB here). bench/anonymize_bench.ts --big measures four 1 GiB objects.
  for (let n = 0; n < 4; n++) writeBigObject(join(dir, "in", `big${n}.dcm`), 128 * MiB, n, n === 3);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("anonymize: large objects", () => {
  for (const runtime of ["node", "deno"] as const) {
    it(`copies pixel data through without holding it: four 128 MiB objects in under 200 MB (${runtime})`, () => {
      const out = join(dir, `out-${runtime}`);
      const run = timedRun(runtime, ["--key", KEY, "--out", out, "--concurrency", "4", join(dir, "in")]);
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.records.length, 4);
      assert.ok(run.rssMb < 200, `peak RSS ${run.rssMb.toFixed(0)} MB`);
      for (const r of run.records) {
        assert.equal(pixelHash(r.path), pixelHash(r.anonymized.from), `pixel data of ${r.anonymized.from}`);
        const h = createHash("sha256");
        const fd = openSync(r.path, "r");
        const buf = new Uint8Array(4 * MiB);
        let n: number, total = 0;
        while ((n = readSync(fd, buf, 0, buf.length, null)) > 0) { h.update(buf.subarray(0, n)); total += n; }
        closeSync(fd);
        assert.equal(r.sha256, h.digest("hex"));
        assert.equal(r.bytes, total);
        const ds = readDicomFile(r.path).dataset;
        assert.match(ds.string("PatientID")!, /^ANON-/);
      }
      rmSync(out, { recursive: true, force: true }); // tmpfs is memory
    });
  }

  it("removes the temporary files of a killed run on the next run", async () => {
    const out = join(dir, "out-killed");
    const child = spawn(NODE, [join(ROOT, "commands/anonymize.ts"), "--key", KEY, "--out", out, "--concurrency", "2", join(dir, "in")], { stdio: "ignore" });
    const temps = () => { try { return walk(out).filter((p) => p.includes(".rtexport-tmp-")); } catch { return []; } };
    const deadline = Date.now() + 120_000;
    while (temps().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const left = temps();
    assert.ok(left.length > 0, "the killed run left no temporary file (it was too fast to catch)");
    const again = timedRun("node", ["--key", KEY, "--out", out, join(dir, "in")]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(temps(), []);
    assert.equal(walk(out).length, 4);
    rmSync(out, { recursive: true, force: true });
  });
});

describe("anonymize: reruns (with a ledger)", () => {
  it("skips files whose output is there with the ledger's hash, redoes a changed one; --force or another key redo all", async () => {
    const input = join(dir, "rerun-in");
    mkdirSync(input);
    for (const f of ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "rtstruct.dcm", "rtdose.dcm"]) {
      copyFileSync(join("/usr/lib/python3/dist-packages/pydicom/data/test_files", f), join(input, f));
    }
    const out = join(dir, "rerun-out");
    const ledger = `sqlite:${join(dir, "rerun-ledger.sqlite")}`; // outside the output: it lists input paths
    const run = async (key: string, ...extra: string[]) => {
      let stdout = "", stderr = "";
      const io = {
        stdout: { isTTY: false, write(c: string) { stdout += c; return true; }, once() {}, on() {}, removeListener() {} },
        stderr: { write: (t: string) => { stderr += t; return true; } },
        stdin: Object.assign((async function* () {})(), { isTTY: true }), env: {}, cwd: process.cwd(),
      };
      const code = await anonymizeMain(["--key", key, "--ledger", ledger, "--out", out, ...extra, input], io);
      // deno-lint-ignore no-explicit-any -- parsed NDJSON
      const records = stdout.split("\n").filter((l) => l).map((l) => JSON.parse(l)) as Record<string, any>[];
      return { code, records, stderr };
    };
    const stamp = (p: string) => { const s = statSync(p); return `${s.ino}:${s.mtimeMs}`; };
    const first = await run(KEY);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.records.length, 5);
    const stamps = new Map(first.records.map((r) => [r.path as string, stamp(r.path)]));

    const again = await run(KEY);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /0 files done, 5 skipped \(5 already done\)/);
    const strip = (r: Record<string, unknown>) => JSON.stringify(r, Object.keys(r).sort());
    assert.deepEqual(again.records.map(strip).sort(), first.records.map(strip).sort(), "the same records as the run that wrote them");
    for (const r of again.records) assert.equal(stamp(r.path), stamps.get(r.path), `${r.path} was written again`);

    const changed = first.records[1].path as string;
    appendFileSync(changed, Uint8Array.of(0, 0));
    const repaired = await run(KEY);
    assert.match(repaired.stderr, /1 files done, 4 skipped \(4 already done\)/);
    assert.equal(readFileSync(changed).length, first.records[1].bytes);

    const forced = await run(KEY, "--force");
    assert.match(forced.stderr, /5 files done, 0 failed/);
    for (const r of forced.records) assert.notEqual(stamp(r.path), stamps.get(r.path), `${r.path} not written again with --force`);

    // Another key writes other outputs (other pseudonym and UIDs): nothing of the earlier run is reused.
    const otherKey = await run("another-rerun-key-0123456789");
    assert.match(otherKey.stderr, /5 files done, 0 failed/);
    assert.equal(otherKey.records.filter((r) => stamps.has(r.path)).length, 0);
  });
});
