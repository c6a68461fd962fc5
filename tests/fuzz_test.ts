// Bounded, deterministic fuzzing of the reader: seeded mutations and truncations of files DCMTK
// wrote, plus random bytes. Every case must end in a result or a DicomParseError — no other
// exception (RangeError, TypeError, stack overflow), no hang (the suite's timeout bounds it).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DataSet } from "../lib/dicom/dataset.ts";
import { DicomParseError, parseDicom, readDicomFile } from "../lib/dicom/reader.ts";
import { type Sample, writeSamples } from "./_dicom_samples.ts";
import { root } from "./_run.ts";

/** mulberry32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const LENGTHS = [0, 1, 2, 3, 0xff, 0xffff, 0x10000, 0x7fffffff, 0xfffffff0, 0xfffffffe, 0xffffffff];

/** One mutation of `src`, chosen by `rnd`; returns the new bytes and what was done. */
function mutate(src: Uint8Array, rnd: () => number): { bytes: Uint8Array; what: string } {
  // Most of a sample is one 6000-byte private OB: aim 70% of mutations at the structure before it.
  const at = (n = rnd() < 0.7 ? Math.min(src.length, 1500) : src.length) => Math.floor(rnd() * n);
  const b = src.slice();
  switch (Math.floor(rnd() * 7)) {
    case 0: { const n = at(); return { bytes: src.slice(0, n), what: `truncate at ${n}` }; }
    case 1: {
      const k = 1 + at(8);
      for (let i = 0; i < k; i++) b[at()] ^= 1 << at(8);
      return { bytes: b, what: `flip ${k} bits` };
    }
    case 2: {
      const k = 1 + at(16);
      for (let i = 0; i < k; i++) b[at()] = at(256);
      return { bytes: b, what: `set ${k} bytes` };
    }
    case 3: {
      // A 16- or 32-bit length-like field at a random even offset set to an extreme value.
      const o = at() & ~1;
      const v = LENGTHS[at(LENGTHS.length)];
      const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
      if (o + 4 <= b.length && rnd() < 0.5) dv.setUint32(o, v, rnd() < 0.8);
      else if (o + 2 <= b.length) dv.setUint16(o, v & 0xffff, rnd() < 0.8);
      return { bytes: b, what: `length ${v} at ${o}` };
    }
    case 4: {
      const o = at(), n = 1 + at(64);
      return { bytes: new Uint8Array([...src.subarray(0, o), ...src.subarray(o + n)]), what: `delete ${n} at ${o}` };
    }
    case 5: {
      const o = at(), n = 1 + at(64);
      const ins = Uint8Array.from({ length: n }, () => at(256));
      return { bytes: new Uint8Array([...src.subarray(0, o), ...ins, ...src.subarray(o)]), what: `insert ${n} at ${o}` };
    }
    default: {
      // Item and delimiter tags where they don't belong.
      const o = at() & ~1;
      const tags = [[0xfe, 0xff, 0x00, 0xe0], [0xfe, 0xff, 0x0d, 0xe0], [0xfe, 0xff, 0xdd, 0xe0]];
      if (o + 4 <= b.length) b.set(tags[at(3)], o);
      return { bytes: b, what: `item tag at ${o}` };
    }
  }
}

/** Touches every value, as search and show do. */
function touch(ds: DataSet, depth = 0): void {
  for (const el of ds.elements.values()) {
    ds.values(el.tag);
    for (const item of el.items ?? []) touch(item, depth + 1);
  }
}

const outcomes = { parsed: 0, rejected: 0 };

/** Runs one case; returns a failure description, or undefined when it ended acceptably. */
function check(bytes: Uint8Array, label: string): string | undefined {
  for (const full of [false, true]) {
    try {
      const f = parseDicom(bytes, { full });
      touch(f.dataset);
      outcomes.parsed++;
    } catch (e) {
      outcomes.rejected++;
      if (!(e instanceof DicomParseError)) {
        const where = String((e as Error)?.stack ?? "").split("\n").find((l) => l.includes("lib/dicom")) ?? "";
        return `${label} (full=${full}): ${(e as Error)?.constructor?.name}: ${(e as Error)?.message} ${where.trim()}`;
      }
      if (!e.message || e.message.includes("\n")) return `${label}: error message not one line: ${JSON.stringify(e.message)}`;
    }
  }
  return undefined;
}

let dir = "";
let samples: Sample[] = [];
before(() => {
  dir = mkdtempSync(join(tmpdir(), "rtexport-fuzz-"));
  samples = writeSamples(dir);
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const SEEDS = ["dump2dcm_te_undeflen", "dump2dcm_tb_deflen", "dump2dcm_ti_undeflen", "dump2dcm_td_deflen", "dcmcrle_rle", "no_preamble_no_dicm", "dump2dcm_ti_deflen_bare"];
const CASES_PER_SEED = Number(process.env.FUZZ_CASES ?? 300);

describe("fuzz", { timeout: 120_000 }, () => {
  for (const [k, name] of SEEDS.entries()) {
    it(`${CASES_PER_SEED} seeded mutations of ${name}`, () => {
      const src = new Uint8Array(readFileSync(samples.find((s) => s.name === name)!.path));
      const rnd = prng(0x5eed + k);
      const failures: string[] = [];
      for (let i = 0; i < CASES_PER_SEED; i++) {
        let { bytes, what } = mutate(src, rnd);
        if (rnd() < 0.3) { const m = mutate(bytes, rnd); bytes = m.bytes; what += `, ${m.what}`; }
        const failure = check(bytes, `${name} #${i} (${what})`);
        if (failure) failures.push(failure);
        if (i % 10 === 0) {
          // From disk too: the header-only reader reads through a growing window, not a buffer.
          const path = join(dir, `mutant_${k}.dcm`);
          writeFileSync(path, bytes);
          for (const full of [false, true]) {
            try {
              readDicomFile(path, { full });
            } catch (e) {
              if (!(e instanceof DicomParseError)) failures.push(`${name} #${i} (${what}) from disk: ${(e as Error).message}`);
            }
          }
        }
      }
      assert.deepEqual(failures, []);
    });
  }

  it("every truncation of a small file, header-only from disk and in memory", () => {
    const src = new Uint8Array(readFileSync(samples.find((s) => s.name === "dump2dcm_tb_undeflen")!.path));
    const path = join(dir, "cut.dcm");
    const failures: string[] = [];
    // Every offset in the header part (before the big private OB), then every 97th.
    for (let n = 0; n < src.length; n += n < 1400 ? 1 : 97) {
      const bytes = src.subarray(0, n);
      const failure = check(bytes, `truncated at ${n}`);
      if (failure) failures.push(failure);
      if (n % 7 === 0) {
        writeFileSync(path, bytes);
        try {
          readDicomFile(path);
        } catch (e) {
          if (!(e instanceof DicomParseError)) failures.push(`file truncated at ${n}: ${(e as Error).message}`);
        }
      }
    }
    assert.deepEqual(failures, []);
  });

  it("exercised both outcomes (the cases are not all trivially rejected or all accepted)", () => {
    assert.ok(outcomes.parsed > 500, `parsed ${outcomes.parsed}`);
    assert.ok(outcomes.rejected > 500, `rejected ${outcomes.rejected}`);
  });

  it("random bytes, bare and behind a preamble with DICM", () => {
    const rnd = prng(0xdeadbeef);
    const failures: string[] = [];
    for (let i = 0; i < 600; i++) {
      const n = Math.floor(rnd() * 2048);
      const body = Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
      let bytes = body;
      if (i % 3 === 1) bytes = new Uint8Array([...new Uint8Array(128), 0x44, 0x49, 0x43, 0x4d, ...body]);
      if (i % 3 === 2) bytes = new Uint8Array([0x08, 0x00, 0x05, 0x00, 0x43, 0x53, 0x0a, 0x00, ...new TextEncoder().encode("ISO_IR 192"), ...body]);
      const failure = check(bytes, `random #${i} (${n} bytes, variant ${i % 3})`);
      if (failure) failures.push(failure);
    }
    assert.deepEqual(failures, []);
  });
});

// The coverage-guided fuzzer (scripts/fuzz.ts, on node:inspector's block coverage): a few seconds
// per target here; longer runs with `node scripts/fuzz.ts --seconds 600` (docs/security.md).
describe("coverage-guided fuzzing (scripts/fuzz.ts)", { timeout: 180_000 }, () => {
  const node = existsSync(join(root, "node_modules", ".bin", "node")) ? join(root, "node_modules", ".bin", "node") : "node";
  const fuzz = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(node, [join(root, "scripts", "fuzz.ts"), "--out", join(dir, "fuzz-out"), ...args], { timeout: 120_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout: String(stdout), stderr: String(stderr) });
      });
    });
  const summary = (stdout: string) => JSON.parse(stdout.trim().split("\n").pop()!).targets as { target: string; execs: number; corpus: number; crashes: number; rssMiB: number }[];

  it("the PDU parser, the DIMSE command parser and the DICOM reader: no crash, no hang, memory bounded, the corpus grows", async () => {
    const r = await fuzz(["--target", "all", "--seconds", process.env.FUZZ_SECONDS ?? "4", "--seed", "13"]);
    assert.equal(r.code, 0, r.stderr);
    const s = summary(r.stdout);
    assert.deepEqual(s.map((t) => t.target), ["pdu", "command", "reader"]);
    for (const t of s) {
      assert.equal(t.crashes, 0, t.target);
      assert.ok(t.execs > 50, `${t.target}: ${t.execs} inputs`);
      assert.ok(t.rssMiB < 1024, `${t.target}: ${t.rssMiB} MiB`);
    }
    const seeds = { pdu: 11, command: 4 } as Record<string, number>;
    for (const t of s.filter((x) => seeds[x.target])) assert.ok(t.corpus > seeds[t.target], `${t.target}: coverage found new inputs (${t.corpus})`);
  });

  it("guidance works: a planted bug behind six nested conditions is found; blind mutation does not find it in ten times as many inputs", async () => {
    const guided = await fuzz(["--target", "selftest", "--seconds", "90", "--seed", "3"]);
    assert.equal(guided.code, 1, guided.stderr);
    assert.match(guided.stderr, /fuzz: selftest: TypeError: planted bug reached \(input saved as /);
    const execs = summary(guided.stdout)[0].execs;
    // Deterministic for a seed: blind mode never changes its corpus, so the same inputs every run.
    const blind = await fuzz(["--target", "selftest", "--seconds", "120", "--max-execs", String(execs * 10), "--seed", "3", "--blind"]);
    assert.equal(blind.code, 0, blind.stderr);
    assert.equal(summary(blind.stdout)[0].execs, execs * 10, "the blind run did get through its inputs");
  });
});
