// serve --accept-unknown / --accept-sop-class (issue 12 item 7): SOP classes seed 002 lists beyond
// the standard storage classes (Philips private CX 1.3.46.670589.2.4.1.1, the retired RT Beams
// Delivery Instruction trial 1.2.840.10008.5.1.4.34.1) are stored when asked for, and answered in
// Q/R like the others. Files written by DCMTK dump2dcm, sent by DCMTK dcmsend (storescu refuses
// unknown classes), found with findscu, moved with movescu to a storescp in promiscuous mode, and
// retrieved by Orthanc (C-MOVE to itself).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { compareRows, runDcmdump } from "./_dcmdump.ts";
import { dcmtkEnv, freePort, runDcmtk, startOrthanc, startStorescp, type StorescpPeer } from "./_peers.ts";
import { cliCommand } from "./_run.ts";

const CX = "1.3.46.670589.2.4.1.1";
const BDI = "1.2.840.10008.5.1.4.34.1";
const tmp = mkdtempSync(join(tmpdir(), "rtexport-serve-unknown-"));
let dest: StorescpPeer;
const files: Record<string, string> = {};

/** A small object of SOP class `sopClass` written by DCMTK's dump2dcm (implicit VR, with a private element). */
function dump2dcm(name: string, sopClass: string, sop: string, modality: string): string {
  const dump = [
    `(0008,0016) UI [${sopClass}]`,
    `(0008,0018) UI [${sop}]`,
    `(0008,0060) CS [${modality}]`,
    "(0010,0010) PN [Private^Class]",
    "(0010,0020) LO [PRIV-1]",
    "(0020,000d) UI [1.2.826.0.1.3680043.9.7777.2]",
    `(0020,000e) UI [1.2.826.0.1.3680043.9.7777.3.${modality === "CX" ? 1 : 2}]`,
    "(2001,0010) LO [Philips Imaging DD 001]",
    "(2001,1001) FL 1.5",
  ].join("\n");
  const txt = join(tmp, `${name}.dump`);
  const out = join(tmp, `${name}.dcm`);
  writeFileSync(txt, dump + "\n");
  execFileSync("dump2dcm", ["--write-xfer-implicit", txt, out]);
  return out;
}

function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".dcm"))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
}

interface Served {
  port: number;
  dir: string;
  stdout: () => string;
  stderr: () => string;
  stop: () => Promise<number | null>;
}

/** Runs `rtexport serve` (the real command, in its own process) in `cwd` until stop(). */
async function serve(name: string, extra: string[], cwd = tmp, port?: number): Promise<Served> {
  port ??= await freePort();
  const dir = join(tmp, name);
  const [cmd, ...args] = cliCommand();
  const proc = spawn(cmd, [
    ...args, "serve", "--dir", dir, "--port", String(port), "--aet", "RTSERVE", "--allow", "DCMSEND@127.0.0.1", "--allow", "FINDSCU@127.0.0.1",
    "--allow", "MOVESCU@127.0.0.1", "--move-dest", `DEST=127.0.0.1:${dest.port}`, ...extra,
  ], { cwd, env: { ...process.env, ...dcmtkEnv() }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "", stderr = "";
  proc.stdout!.on("data", (b) => (stdout += b));
  proc.stderr!.on("data", (b) => (stderr += b));
  const exited = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  const deadline = Date.now() + 30000;
  while (!/listening on/.test(stderr) && Date.now() < deadline && proc.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  assert.match(stderr, /listening on/, stderr);
  return {
    port, dir, stdout: () => stdout, stderr: () => stderr,
    async stop() {
      process.kill(proc.pid!, "SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** dcmsend (it exits 0 also when nothing could be sent): how many objects the peer answered with success. */
async function send(s: Served, ...paths: string[]): Promise<{ stored: number; output: string }> {
  const r = await runDcmtk("dcmsend", ["-v", "-aet", "DCMSEND", "-aec", "RTSERVE", "127.0.0.1", String(s.port), ...paths]);
  const output = r.stdout + r.stderr;
  assert.equal(r.code, 0, output);
  return { stored: Number(/with status SUCCESS\s*:\s*(\d+)/.exec(output)?.[1] ?? 0), output };
}

before(async () => {
  files.cx = dump2dcm("cx", CX, "1.2.826.0.1.3680043.9.7777.1.1", "CX");
  files.bdi = dump2dcm("bdi", BDI, "1.2.826.0.1.3680043.9.7777.1.2", "RTPLAN");
  dest = await startStorescp({ aeTitle: "DEST", args: ["--promiscuous"] });
});
after(async () => {
  await dest?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe("serve: SOP classes it does not know", () => {
  test("refused by default: nothing stored, dcmsend finds no presentation context", async () => {
    const s = await serve("closed", []);
    try {
      const r = await send(s, files.cx, files.bdi);
      assert.equal(r.stored, 0, r.output);
      assert.match(r.output, /No Acceptable Presentation Contexts/i);
      assert.deepEqual(filesUnder(s.dir), []);
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });

  test("--accept-unknown: both stored as sent, found by findscu, moved by movescu, identical to the source", async () => {
    const s = await serve("open", ["--accept-unknown"]);
    try {
      const r = await send(s, files.cx, files.bdi);
      assert.equal(r.stored, 2, r.output);
      const stored = filesUnder(s.dir).sort();
      assert.equal(stored.length, 2);
      const deadline = Date.now() + 10000;
      while (s.stdout().trim().split("\n").length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const recs = s.stdout().trim().split("\n").map((l) => JSON.parse(l));
      assert.deepEqual(recs.map((x) => x.sopClassUid).sort(), [BDI, CX].sort());
      for (const f of stored) {
        const src = f.includes("7777.1.1") ? files.cx : files.bdi;
        assert.deepEqual(compareRows(runDcmdump(src).dataset, runDcmdump(f).dataset), [], f);
      }

      // Q/R: the IMAGE level answers them with their SOP class, like any other object.
      const od = join(tmp, "find");
      mkdirSync(od, { recursive: true });
      const f = await runDcmtk("findscu", [
        "-aet", "FINDSCU", "-aec", "RTSERVE", "-S", "-X", "-od", od, "-k", "QueryRetrieveLevel=IMAGE", "-k", "StudyInstanceUID=1.2.826.0.1.3680043.9.7777.2",
        "-k", "SeriesInstanceUID", "-k", "SOPInstanceUID", "-k", "SOPClassUID", "127.0.0.1", String(s.port),
      ]);
      assert.equal(f.code, 0, f.stderr);
      const answers = readdirSync(od).map((n) => runDcmdump(join(od, n)).dataset);
      const classes = answers.map((rows) => rows.find((row) => row.path === "(0008,0016)")?.value).sort();
      assert.deepEqual(classes, [BDI, CX].sort().map((u) => `[${u}]`));

      const m = await runDcmtk("movescu", [
        "-aet", "MOVESCU", "-aec", "RTSERVE", "-aem", "DEST", "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=1.2.826.0.1.3680043.9.7777.2",
        "127.0.0.1", String(s.port),
      ]);
      assert.equal(m.code, 0, m.stderr);
      const moved = readdirSync(dest.outDir).sort();
      assert.equal(moved.length, 2, moved.join(", "));
      for (const name of moved) {
        const src = name.endsWith("7777.1.1") ? files.cx : files.bdi;
        assert.deepEqual(compareRows(runDcmdump(src).dataset, runDcmdump(join(dest.outDir, name)).dataset), [], name);
      }
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });

  test("after a restart (without the flag) the stored ones are indexed from the folder and still found", async () => {
    const s = await serve("open", []);
    try {
      assert.match(s.stderr(), /indexed .*: 0 new, 0 changed, 2 unchanged/);
      const od = join(tmp, "find-again");
      mkdirSync(od, { recursive: true });
      const f = await runDcmtk("findscu", [
        "-aet", "FINDSCU", "-aec", "RTSERVE", "-S", "-X", "-od", od, "-k", "QueryRetrieveLevel=IMAGE", "-k", "StudyInstanceUID=1.2.826.0.1.3680043.9.7777.2",
        "-k", "SeriesInstanceUID", "-k", "SOPInstanceUID", "-k", "SOPClassUID", "127.0.0.1", String(s.port),
      ]);
      assert.equal(f.code, 0, f.stderr);
      assert.equal(readdirSync(od).length, 2);
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });

  test("Orthanc retrieves them by C-MOVE from serve --accept-unknown, identical to the source", async () => {
    const port = await freePort();
    const orthanc = await startOrthanc({ modalities: [{ aeTitle: "RTSERVE", host: "127.0.0.1", port }] });
    const s = await serve("for-orthanc", ["--accept-unknown", "--allow", "ORTHANC@127.0.0.1", "--move-dest", `ORTHANC=127.0.0.1:${orthanc.port}`], tmp, port);
    try {
      assert.equal((await send(s, files.cx, files.bdi)).stored, 2);
      await orthanc.rest("/modalities/RTSERVE/move", { Level: "Study", Resources: [{ StudyInstanceUID: "1.2.826.0.1.3680043.9.7777.2" }], TargetAet: "ORTHANC" });
      const ids: string[] = await orthanc.rest("/instances");
      assert.equal(ids.length, 2);
      for (const id of ids) {
        const got = join(tmp, `orthanc-${id}.dcm`);
        writeFileSync(got, await orthanc.restBytes(`/instances/${id}/file`));
        const dump = runDcmdump(got).dataset;
        const src = dump.some((row) => row.value === `[${CX}]`) ? files.cx : files.bdi;
        assert.deepEqual(compareRows(runDcmdump(src).dataset, dump), [], got);
      }
    } finally {
      assert.equal(await s.stop(), 0);
      await orthanc.stop();
    }
  });

  test("a per-class allow list in rtexport.json stores the class listed and refuses the other", async () => {
    const cwd = join(tmp, "configured");
    mkdirSync(cwd, { recursive: true });
    writeFileSync(join(cwd, "rtexport.json"), JSON.stringify({ commands: { serve: { acceptSopClass: [CX] } } }));
    const s = await serve("listed", [], cwd);
    try {
      assert.match(s.stderr(), new RegExp(`storing SOP classes ${CX.replace(/\./g, "\\.")} too`));
      assert.equal((await send(s, files.cx)).stored, 1);
      const other = await send(s, files.bdi);
      assert.equal(other.stored, 0, other.output);
      assert.deepEqual(filesUnder(s.dir).map((p) => p.split("/").pop()), ["1.2.826.0.1.3680043.9.7777.1.1.dcm"]);
    } finally {
      assert.equal(await s.stop(), 0);
    }
  });

  test("--accept-sop-class with something that is not a UID is a usage error", async () => {
    const [cmd, ...args] = cliCommand();
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = spawn(cmd, [...args, "serve", "--dir", join(tmp, "never"), "--allow", "A", "--accept-sop-class", "CX"], { stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      p.stderr!.on("data", (b) => (stderr += b));
      p.once("exit", (code) => resolve({ code, stderr }));
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /"CX" is not a UID/);
  });
});
