// `rtexport push` against real peers: Orthanc (REST confirms arrival), DCMTK storescp (dcmdump
// fidelity), our own SCP (arrival order), and a peer process killed in the middle of a transfer.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Buffer } from "node:buffer";
import { fileURLToPath } from "node:url";
import { main } from "../commands/push.ts";
import { pathRecords } from "../lib/fs/walk.ts";
import { pushRecords } from "../lib/push/push.ts";
import { ledgerItems, runLibraryStage } from "./_stage_compare.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { encodeFile } from "../lib/dicom/writer.ts";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { Ledger } from "../lib/ledger/ledger.ts";
import { createScp, type Scp } from "../lib/net/mod.ts";
import { compareRows, runDcmdumpMany } from "./_dcmdump.ts";
import { freePort, type OrthancPeer, runMainCaptured, startOrthanc, startStorescp, type StorescpPeer, waitForPort } from "./_peers.ts";
import { records, sh } from "./_run.ts";

const isDeno = "Deno" in globalThis;
const root = fileURLToPath(new URL("..", import.meta.url));

function dicomFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith(".dcm")) out.push(join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
  }
  return out.sort();
}

/** Our SCP recording what arrives, in order, and keeping the files. */
async function recordingScp(dir: string): Promise<{ scp: Scp; arrived: { sopClassUid: string; sopInstanceUid: string; path: string }[] }> {
  const arrived: { sopClassUid: string; sopInstanceUid: string; path: string }[] = [];
  mkdirSync(dir, { recursive: true });
  const scp = await createScp({
    aeTitle: "RECORDER",
    host: "127.0.0.1",
    storeDir: dir,
    handlers: {
      store: ({ file }) => {
        const path = join(dir, `${file.sopInstanceUid}.dcm`);
        renameSync(file.path, path);
        arrived.push({ sopClassUid: file.sopClassUid, sopInstanceUid: file.sopInstanceUid, path });
        return { status: 0 };
      },
    },
  });
  return { scp, arrived };
}

describe("push", () => {
  let dir: string;
  let clinic: string;
  let files: string[];
  let orthanc: OrthancPeer;
  let storescp: StorescpPeer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "rtexport-push-"));
    clinic = join(dir, "clinic");
    await generateClinic({ out: clinic, patients: 2, slices: 4 });
    files = dicomFiles(clinic);
    // +B: storescp writes each data set as it arrived (DCMTK 3.6.7 otherwise rewrites an implicit VR
    // private sequence of undefined length as one unknown value), so its files show what was sent.
    [orthanc, storescp] = await Promise.all([startOrthanc(), startStorescp({ args: ["+B"] })]);
  });

  after(async () => {
    await Promise.all([orthanc?.stop(), storescp?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  test("to Orthanc: every object arrives (REST API), one stored record each, exit 0", async () => {
    const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle, "--parallel", "2", clinic, "--pattern", "*.dcm"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.records.length, files.length);
    for (const rec of r.records) {
      assert.equal(rec.type, "file");
      assert.deepEqual(rec.push.status, "stored", JSON.stringify(rec));
      assert.equal(rec.push.peer, `ORTHANC@127.0.0.1:${orthanc.port}`);
      assert.equal(rec.push.dimseStatus, "0x0000");
    }
    const stored: string[] = await orthanc.rest("/instances");
    assert.equal(stored.length, files.length);
    const uids = new Set<string>();
    for (const id of stored) uids.add((await orthanc.rest(`/instances/${id}/simplified-tags`)).SOPInstanceUID);
    assert.deepEqual([...uids].sort(), r.records.map((x) => x.sopInstanceUid).sort());
    // Fidelity through Orthanc too: a plan with private tags and sequences comes back unchanged.
    const plan = r.records.find((x) => x.modality === "RTPLAN")!;
    const found: string[] = await orthanc.rest("/tools/lookup", plan.sopInstanceUid).then((l: { ID: string }[]) => l.map((x) => x.ID));
    const copy = join(dir, "orthanc-plan.dcm");
    writeFileSync(copy, await orthanc.restBytes(`/instances/${found[0]}/file`));
    const dumps = runDcmdumpMany([plan.path, copy]);
    assert.deepEqual(compareRows(dumps.get(copy)!.dataset, dumps.get(plan.path)!.dataset), []);
  });

  test("to storescp: dcmdump of every stored copy equals the source (private tags, sequences)", async () => {
    const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(storescp.port), "--aec", storescp.aeTitle, clinic, "--pattern", "*.dcm"]);
    assert.equal(r.code, 0, r.stderr);
    const received = readdirSync(storescp.outDir).map((n) => join(storescp.outDir, n));
    assert.equal(received.length, files.length);
    const byUid = new Map(received.map((p) => [p.slice(p.indexOf(".", storescp.outDir.length + 1) + 1), p]));
    const dumps = runDcmdumpMany([...files, ...received]);
    let privateRows = 0, sequenceRows = 0;
    for (const rec of r.records) {
      const copy = byUid.get(rec.sopInstanceUid);
      assert.ok(copy, `not received: ${rec.path}`);
      const src = dumps.get(rec.path)!.dataset;
      assert.deepEqual(compareRows(dumps.get(copy)!.dataset, src), [], rec.path);
      privateRows += src.filter((row) => /^\(3253,/.test(row.path)).length;
      sequenceRows += src.filter((row) => row.vr === "SQ").length;
      // Little endian files go out as they are; only other byte orders are transcoded.
      if (rec.transferSyntaxUid === "1.2.840.10008.1.2.1") assert.equal(rec.push.mode, "streamed");
    }
    assert.ok(privateRows > 0 && sequenceRows > 0, "fixtures carry private tags and sequences");
  });

  test("a multi-megabyte object streams through several read blocks unchanged", async () => {
    const ct = files.find((p) => p.includes("/CT/"))!;
    const f = readDicomFile(ct, { full: true });
    const px = new Uint8Array(1800 * 1000 * 2).map((_, i) => (i * 7919) & 0xff);
    f.dataset.set({ tag: 0x7fe00010, vr: "OW", value: px, offset: 0, length: px.length });
    const rows = Uint8Array.of(1800 & 0xff, 1800 >> 8), cols = Uint8Array.of(1000 & 0xff, 1000 >> 8);
    f.dataset.set({ tag: 0x00280010, vr: "US", value: rows, offset: 0, length: 2 });
    f.dataset.set({ tag: 0x00280011, vr: "US", value: cols, offset: 0, length: 2 });
    const uid = new TextEncoder().encode("1.2.3.999.3\0");
    f.dataset.set({ tag: 0x00080018, vr: "UI", value: uid, offset: 0, length: uid.length });
    const big = join(dir, "big.dcm");
    writeFileSync(big, encodeFile(f.dataset, { transferSyntaxUid: "1.2.840.10008.1.2.1" }));
    const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(storescp.port), "--aec", storescp.aeTitle, big]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.records[0].push.mode, "streamed");
    const copy = join(storescp.outDir, "CT.1.2.3.999.3");
    const dumps = runDcmdumpMany([big, copy]);
    assert.deepEqual(compareRows(dumps.get(copy)!.dataset, dumps.get(big)!.dataset), []);
    // Byte for byte after the meta header, as our SCP keeps what arrives (storescp re-encodes).
    const { scp, arrived } = await recordingScp(join(dir, "big-in"));
    try {
      const r2 = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "RECORDER", big]);
      assert.equal(r2.code, 0, r2.stderr);
      const a = readFileSync(big), b = readFileSync(arrived[0].path);
      const da = readDicomFile(big).datasetOffset, db = readDicomFile(arrived[0].path).datasetOffset;
      assert.equal(a.length - da, b.length - db);
      assert.ok(Buffer.compare(a.subarray(da), b.subarray(db)) === 0, "data set bytes differ");
    } finally {
      await scp.close();
    }
  });

  test("dependency order per patient with --parallel 3: images, others, RTSTRUCT, RTPLAN, RTDOSE/RTIMAGE, records", async () => {
    const { scp, arrived } = await recordingScp(join(dir, "order"));
    try {
      const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "RECORDER", "--parallel", "3", clinic, "--pattern", "*.dcm"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(arrived.length, files.length);
      const patientOf = new Map(r.records.map((x) => [x.sopInstanceUid, x.patientId]));
      const modalityOf = new Map(r.records.map((x) => [x.sopInstanceUid, x.modality]));
      const RANK: Record<string, number> = { CT: 0, MR: 0, REG: 1, RTSTRUCT: 2, RTPLAN: 3, RTDOSE: 4, RTIMAGE: 4, RTRECORD: 5 };
      const lastRank = new Map<string, number>();
      for (const a of arrived) {
        const rank = RANK[modalityOf.get(a.sopInstanceUid)!];
        assert.equal(typeof rank, "number");
        const p = patientOf.get(a.sopInstanceUid)!;
        assert.ok(rank >= (lastRank.get(p) ?? 0), `${a.sopClassUid} arrived after a higher rank for ${p}`);
        lastRank.set(p, rank);
      }
      assert.equal(lastRank.size, 2);
    } finally {
      await scp.close();
    }
  });

  test("a non-DICOM file is reported and skipped; the rest is stored", async () => {
    const mixed = join(dir, "mixed");
    mkdirSync(mixed);
    copyFileSync(files[0], join(mixed, "a.dcm"));
    writeFileSync(join(mixed, "notes.txt"), "not DICOM at all\n");
    const { scp, arrived } = await recordingScp(join(dir, "mixed-in"));
    try {
      const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "RECORDER", mixed]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(arrived.length, 1);
      const txt = r.records.find((x) => x.path.endsWith("notes.txt"))!;
      assert.equal(txt.push.status, "skipped");
      assert.match(txt.push.error, /^Cannot read DICOM file ".*notes\.txt": not a DICOM file/);
      // Input that is not DICOM is counted in the summary, not warned about file by file (names with -v).
      assert.match(r.stderr, /^push: 1 objects done, 1 skipped \(1 not DICOM\), 0 failed \(/m);
      assert.doesNotMatch(r.stderr, /notes\.txt/);
    } finally {
      await scp.close();
    }
  });

  test("DIMSE failure and warning statuses are recorded in hex with the peer's comment", async () => {
    const scp = await createScp({
      aeTitle: "PICKY",
      host: "127.0.0.1",
      storeDir: dir,
      handlers: {
        store: ({ file }) => {
          if (file.sopClassUid === "1.2.840.10008.5.1.4.1.1.481.5") return { status: 0xa700, errorComment: "disk full" };
          if (file.sopClassUid === "1.2.840.10008.5.1.4.1.1.481.3") return { status: 0xb007, errorComment: "coerced" };
          return { status: 0 };
        },
      },
    });
    try {
      const plan = files.find((p) => p.includes("/RTPLAN/"))!;
      const rs = files.find((p) => p.includes("/RTSTRUCT/"))!;
      const ct = files.find((p) => p.includes("/CT/"))!;
      const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "PICKY", "--retries", "0", plan, rs, ct]);
      assert.equal(r.code, 3);
      const byPath = new Map(r.records.map((x) => [x.path, x.push]));
      assert.deepEqual(byPath.get(plan), { status: "failed", peer: `PICKY@127.0.0.1:${scp.port}`, dimseStatus: "0xA700", mode: "streamed", error: "refused: out of resources: disk full" });
      assert.equal(byPath.get(rs).status, "stored");
      assert.equal(byPath.get(rs).dimseStatus, "0xB007");
      assert.equal(byPath.get(ct).status, "stored");
      assert.ok(r.stderr.includes(`push: Cannot store "${plan}" at PICKY@127.0.0.1:${scp.port} (status 0xA700): refused: out of resources: disk full\n`), r.stderr);
      assert.ok(r.stderr.includes(`push: warning: "${rs}" stored with a warning: 0xB007`), r.stderr);
      assert.match(r.stderr, /push: 2 objects done, 1 failed \(1 patient, [\d.]+ kB in \ds\)\n$/);
    } finally {
      await scp.close();
    }
  });

  test("a peer that never answers a C-STORE: DIMSE timeout, no hang", async () => {
    const scp = await createScp({ aeTitle: "STUCK", host: "127.0.0.1", storeDir: dir, handlers: { store: () => new Promise(() => {}) } });
    try {
      const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "STUCK", "--dimse-timeout", "0.5", "--retries", "0", files[0]]);
      assert.equal(r.code, 3);
      assert.equal(r.records[0].push.status, "failed");
      assert.equal(r.records[0].push.error, `No response from STUCK@127.0.0.1:${scp.port} within 0.5 s (DIMSE timeout)`);
    } finally {
      await scp.close();
    }
  });

  test("peer down from the start: one line naming the peer and the reason, exit 1, nothing sent", async () => {
    const port = await freePort();
    const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(port), "--retries", "0", files[0], files[1]]);
    assert.equal(r.code, 1);
    assert.equal(r.records.length, 0);
    assert.equal(r.stderr, `push: Cannot connect to 127.0.0.1:${port}: connection refused; nothing was sent\n`);
  });

  test("peer killed mid-transfer: exit 3, failures reported; a rerun with the status file sends exactly the missing ones", async () => {
    const killDir = join(dir, "kill");
    mkdirSync(killDir);
    const port = await freePort();
    // A peer process that dies (SIGKILL) when the 6th object arrives, before answering it.
    const script = join(killDir, "peer.ts");
    writeFileSync(script, `
      import { createScp } from ${JSON.stringify(join(root, "lib/net/mod.ts"))};
      import process from "node:process";
      let n = 0;
      await createScp({ aeTitle: "DYING", host: "127.0.0.1", port: ${port}, storeDir: ${JSON.stringify(killDir)}, handlers: {
        store: () => { if (++n === 6) process.kill(process.pid, "SIGKILL"); return { status: 0 }; },
      } });
    `);
    const child = spawn(process.execPath, isDeno ? ["run", "-A", script] : [script], { stdio: "ignore" });
    try {
      await waitForPort(port, "127.0.0.1", 15000, child);
      const statusFile = join(dir, "status.ndjson");
      const first = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(port), "--aec", "DYING", "--retries", "0", "--status-file", statusFile, clinic, "--pattern", "*.dcm"]);
      assert.equal(first.code, 3);
      const stored1 = first.records.filter((x) => x.push.status === "stored").map((x) => x.sopInstanceUid);
      const failed1 = first.records.filter((x) => x.push.status === "failed").map((x) => x.sopInstanceUid);
      assert.equal(stored1.length, 5);
      assert.equal(failed1.length, files.length - 5);
      assert.match(first.stderr, /Cannot store ".*" at DYING@127\.0\.0\.1:\d+: (Connection to .* (reset|closed) by the peer|.*connection refused)/);
      // The status file lists exactly the acknowledged objects.
      const lines = readFileSync(statusFile, "utf8").trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(lines.map((l) => l.sopInstanceUid).sort(), [...stored1].sort());

      // Rerun against a live peer at the same address: only the missing ones go.
      const { scp, arrived } = await recordingScp(join(dir, "rerun-in"));
      await scp.close();
      const revived = await createScp({ aeTitle: "DYING", host: "127.0.0.1", port, storeDir: join(dir, "rerun-in"), handlers: { store: ({ file }) => {
        arrived.push({ sopClassUid: file.sopClassUid, sopInstanceUid: file.sopInstanceUid, path: file.path });
        return { status: 0 };
      } } });
      try {
        const second = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(port), "--aec", "DYING", "--status-file", statusFile, clinic, "--pattern", "*.dcm"]);
        assert.equal(second.code, 0, second.stderr);
        assert.deepEqual(arrived.map((a) => a.sopInstanceUid).sort(), [...failed1].sort());
        assert.equal(second.records.filter((x) => x.push.status === "skipped").length, 5);
        assert.equal(second.records.filter((x) => x.push.status === "stored").length, files.length - 5);
        // A third run sends nothing.
        arrived.length = 0;
        const third = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(port), "--aec", "DYING", "--status-file", statusFile, clinic, "--pattern", "*.dcm"]);
        assert.equal(third.code, 0);
        assert.equal(arrived.length, 0);
        assert.ok(third.records.every((x) => x.push.status === "skipped"));
      } finally {
        await revived.close();
      }
    } finally {
      child.kill("SIGKILL");
    }
  });

  test("--ledger records each outcome and a rerun skips what the ledger has as pushed", async () => {
    const { scp, arrived } = await recordingScp(join(dir, "ledger-in"));
    const url = `sqlite:${join(dir, "ledger", "ledger.sqlite")}`;
    try {
      const some = files.slice(0, 3);
      const first = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "RECORDER", "--ledger", url, ...some]);
      assert.equal(first.code, 0, first.stderr);
      assert.equal(arrived.length, 3);
      const ledger = await Ledger.open(url, "test");
      try {
        const done = await ledger.keys("push", "done");
        assert.deepEqual([...done].sort(), first.records.map((x) => `RECORDER@127.0.0.1:${scp.port}|${x.sopInstanceUid}`).sort());
      } finally {
        await ledger.close();
      }
      const second = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "RECORDER", "--ledger", url, ...files.slice(0, 4)]);
      assert.equal(second.code, 0, second.stderr);
      assert.equal(arrived.length, 4);
      assert.deepEqual(second.records.map((x) => x.push.status).sort(), ["skipped", "skipped", "skipped", "stored"]);
    } finally {
      await scp.close();
    }
  });

  test("--map-machine rewrites plans and records; --default-machine fills empty names", async () => {
    const { scp, arrived } = await recordingScp(join(dir, "machines"));
    try {
      const patientDir = join(clinic, readdirSync(clinic).filter((n) => n.startsWith("RTX")).sort()[0]);
      const plans = dicomFiles(join(patientDir, "RTPLAN"));
      const recs = dicomFiles(join(patientDir, "RTRECORD"));
      const names = (p: string) => {
        const ds = readDicomFile(p, { full: true }).dataset;
        const out: string[] = [];
        const walk = (d: typeof ds) => {
          for (const el of d.elements.values()) {
            if (el.tag === 0x300a00b2) out.push(d.string(0x300a00b2) ?? "");
            for (const it of el.items ?? []) walk(it);
          }
        };
        walk(ds);
        return out;
      };
      const before = [...plans, ...recs].flatMap(names);
      const old = before.find((n) => n !== "")!;
      assert.ok(old, "fixtures name their machines");
      // A plan copy whose machine names are emptied, for --default-machine.
      const emptied = join(dir, "emptied.dcm");
      const f = readDicomFile(plans[0], { full: true });
      const sop = f.dataset.get(0x00080018)!;
      const uid = new TextEncoder().encode("1.2.3.999.1\0");
      f.dataset.set({ ...sop, value: uid, length: uid.length });
      for (const beam of f.dataset.items(0x300a00b0)) beam.set({ tag: 0x300a00b2, vr: "SH", value: new Uint8Array(0), offset: 0, length: 0 });
      writeFileSync(emptied, encodeFile(f.dataset, { transferSyntaxUid: f.transferSyntaxUid }));

      const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "RECORDER", "--map-machine", `${old}=NEWLINAC`, "--default-machine", "RTPLAN=FILLED", ...plans, ...recs, emptied]);
      assert.equal(r.code, 0, r.stderr);
      for (const a of arrived) {
        const got = names(a.path);
        const rec = r.records.find((x) => x.sopInstanceUid === a.sopInstanceUid)!;
        if (rec.path === emptied) {
          assert.ok(got.length > 0 && got.every((n) => n === "FILLED"), got.join(","));
          assert.equal(rec.push.mode, "encoded");
        } else {
          const src = names(rec.path);
          assert.deepEqual(got, src.map((n) => (n === old ? "NEWLINAC" : n)));
          if (src.includes(old)) assert.ok(rec.push.machines.includes(`${old}=NEWLINAC`));
        }
      }
      assert.ok(arrived.some((a) => names(a.path).includes("NEWLINAC")));
    } finally {
      await scp.close();
    }
  });

  test("a compressed file the peer takes only decoded, and that cannot be decoded, fails with the reason; the others are stored", async () => {
    const jpegDir = join(dir, "jpeg");
    mkdirSync(jpegDir);
    const ct = files.find((p) => p.includes("/CT/"))!;
    const f = readDicomFile(ct, { full: true });
    const px = f.dataset.get(0x7fe00010)!;
    f.dataset.set({ tag: 0x7fe00010, vr: "OB", fragments: [new Uint8Array(0), Uint8Array.of(0xff, 0xd8, 0xff, 0xd9)], undefinedLength: true, offset: 0, length: 0 });
    void px;
    const uid = new TextEncoder().encode("1.2.3.999.2\0");
    f.dataset.set({ tag: 0x00080018, vr: "UI", value: uid, offset: 0, length: uid.length });
    const jpeg = join(jpegDir, "jpeg.dcm");
    writeFileSync(jpeg, encodeFile(f.dataset, { transferSyntaxUid: "1.2.840.10008.1.2.4.70" }));
    const r = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(storescp.port), "--aec", storescp.aeTitle, jpeg, ct]);
    assert.equal(r.code, 3);
    const bad = r.records.find((x) => x.path === jpeg)!;
    assert.equal(bad.push.status, "failed");
    assert.match(bad.push.error, /accepts CT Image Storage only in syntaxes without compression, and decoding JPEG Lossless.* failed: JPEG Lossless codestream has no scan/);
    assert.equal(r.records.find((x) => x.path === ct)!.push.status, "stored");
  });

  test("the library stage and the command give the same records and ledger rows (Orthanc, --parallel 2)", async () => {
    const input = join(dir, "same");
    mkdirSync(input, { recursive: true });
    for (const f of files.slice(0, 6)) copyFileSync(f, join(input, f.split("/").slice(-2).join("_")));
    writeFileSync(join(input, "notes.pdf"), "%PDF-1.4 not DICOM");
    const missing = join(dir, "same-missing.dcm");
    const cliUrl = `sqlite:${join(dir, "same-cli.sqlite")}`;
    const libUrl = `sqlite:${join(dir, "same-lib.sqlite")}`;
    const cli = await runMainCaptured(main, ["--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle, "--parallel", "2", "--ledger", cliUrl, input, missing]);
    assert.equal(cli.code, 3, cli.stderr); // the missing path
    const peer = { host: "127.0.0.1", port: orthanc.port, callingAet: "RTEXPORT", calledAet: orthanc.aeTitle };
    const lib = await runLibraryStage(pushRecords, pathRecords([input, missing]), { peer, parallel: 2 }, libUrl, "push");
    // With two associations the outcomes come in the order the peer answers: compared by path.
    const byPath = (rs: Record<string, unknown>[]) => [...rs].sort((a, b) => (String(a.path) < String(b.path) ? -1 : 1));
    assert.deepEqual(byPath(lib.records), byPath(cli.records));
    assert.deepEqual(lib.records.map((r) => (r.push as { status: string }).status).sort(), ["failed", "skipped", ...Array(6).fill("stored")]);
    const rows = await ledgerItems(libUrl);
    assert.equal(rows.filter((r) => r.status === "done").length, 6);
    assert.deepEqual(rows, await ledgerItems(cliUrl));
    const finished = lib.events.at(-1)!;
    assert.ok(finished.type === "finished");
    assert.deepEqual([finished.counts.done, finished.counts.skipped, finished.counts.failed], [6, 1, 1]);
  });

  test("a library user who stops reading stops the sending; objects in flight finish", async () => {
    const { scp, arrived } = await recordingScp(join(dir, "stopped"));
    try {
      const peer = { host: "127.0.0.1", port: scp.port, callingAet: "RTEXPORT", calledAet: "RECORDER" };
      const statusFile = join(dir, "stopped-status.ndjson");
      for await (const r of pushRecords(files.map((path) => ({ type: "file", path })), { peer, statusFile })) {
        assert.equal((r.push as { status: string }).status, "stored");
        break;
      }
      // The loop's end waited for the object in flight: nothing more arrives afterwards.
      const now = arrived.length;
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(arrived.length, now);
      assert.ok(now <= 2, `${now} of ${files.length} objects sent after the consumer stopped at the first`);
      const acknowledged = readFileSync(statusFile, "utf8").trim().split("\n").map((l) => JSON.parse(l).sopInstanceUid);
      assert.deepEqual(acknowledged, arrived.map((a) => a.sopInstanceUid));
    } finally {
      await scp.close();
    }
  });

  test("reads file records from stdin through the CLI and passes other records through", async () => {
    const input = [
      JSON.stringify({ type: "patient", patientId: "X" }),
      JSON.stringify({ type: "file", path: files[0], category: "dicom" }),
      JSON.stringify({ type: "file", path: join(dir, "doc.pdf"), category: "document" }),
    ].join("\n") + "\n";
    const r = await sh(`"\${RT[@]}" push --host 127.0.0.1 --port ${orthanc.port} --aec ${orthanc.aeTitle}`, { input });
    assert.equal(r.status, 0, r.stderr);
    const out = records(r.stdout);
    assert.deepEqual(out[0], { type: "patient", patientId: "X" });
    assert.deepEqual(out[1], { type: "file", path: join(dir, "doc.pdf"), category: "document" });
    assert.equal(out[2].push.status, "stored");
  });
});
