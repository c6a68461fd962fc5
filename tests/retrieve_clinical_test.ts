// retrieve against a live clinical system: a Q/R SCP that fails every whole-patient and
// whole-study C-MOVE the way seed 004's ARIA does (retrieve asks series by series and gets
// everything), one that fails a series (per-instance fallback) or answers 0xA702 once (retried),
// and Orthanc killed and restarted in the middle of a C-GET.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { main as exportPlan } from "../commands/export-plan.ts";
import { main as listPatients } from "../commands/list-patients.ts";
import { main as retrieve } from "../commands/retrieve.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { FolderIndex } from "../lib/index/index.ts";
import { createScp, DimseStatusError, type Scp, storeSourceFromFile } from "../lib/net/mod.ts";
import { findMatches, selectInstances } from "../lib/qr/find.ts";
import { connect, connectOptions, storageContexts, store } from "../lib/net/mod.ts";
import { freePort, type OrthancPeer, runMainCaptured, startOrthanc } from "./_peers.ts";
import { records, sh } from "./_run.ts";

/** Object files (received or placed: `.part`, `.dcm`) under `dir`, at any depth, dot-folders included. */
function countFiles(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    try {
      n += e.isDirectory() ? countFiles(join(dir, e.name)) : /\.(dcm|part)$/.test(e.name) ? 1 : 0;
    } catch { /* moved or removed while counted */ }
  }
  return n;
}

function dicomFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith(".dcm"))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).sort();
}

describe("retrieve on a live clinical system", () => {
  let dir: string;
  let clinic: string;
  let index: FolderIndex;
  let patientFiles: string[];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "rtexport-retrieve-clinical-"));
    clinic = join(dir, "clinic");
    await generateClinic({ out: clinic, patients: 1, slices: 5 });
    index = await FolderIndex.open(clinic, { dbPath: join(dir, "index.sqlite") });
    await index.indexFolder();
    patientFiles = dicomFiles(clinic);
  });
  after(async () => {
    await index?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A Q/R SCP over the clinic; `refuse(level, request number of that level)` returns a status to fail a C-MOVE with. */
  async function aria(
    movePort: number,
    refuse: (level: string, n: number) => number | undefined,
  ): Promise<{ scp: Scp; asked: string[]; seriesAsked: (string | undefined)[]; patients: (string | undefined)[]; associations: () => number }> {
    const asked: string[] = [];
    const seriesAsked: (string | undefined)[] = [];
    // The PatientID of every C-MOVE request (issue 12: each one names the patient).
    const patients: (string | undefined)[] = [];
    const seen = new Map<string, number>();
    let associations = 0;
    const scp = await createScp({
      aeTitle: "VMSDBD", host: "127.0.0.1",
      onEvent: (e) => {
        if (e.type === "association") associations++;
      },
      handlers: {
        find: async function* (rq) {
          for (const m of await findMatches(index, rq.identifier, "STUDY")) yield m;
        },
        move: async (rq) => {
          const n = (seen.get(rq.level) ?? 0) + 1;
          seen.set(rq.level, n);
          asked.push(rq.level);
          patients.push(rq.identifier.string(0x00100020));
          seriesAsked.push(rq.identifier.string(0x0020000e));
          const status = refuse(rq.level, n);
          if (status !== undefined) throw new DimseStatusError(status, "Unexpected exception during MOVE");
          const files = await selectInstances(index, rq.identifier, "STUDY");
          return { destination: { host: "127.0.0.1", port: movePort, aeTitle: rq.destination }, instances: files.map((f) => storeSourceFromFile(f.path)) };
        },
      },
    });
    return { scp, asked, seriesAsked, patients, associations: () => associations };
  }

  const args = (scp: Scp, movePort: number, out: string) => [
    "--host", "127.0.0.1", "--port", String(scp.port), "--aec", "VMSDBD", "--aet", "RTEXPORT", "--move-port", String(movePort), "--move-host", "127.0.0.1",
    "--patient-id", "RTX0001", "--retry-max-wait", "0.2", "--out", out,
  ];

  test("a peer that fails every whole-patient or whole-study C-MOVE (0xC000): the whole patient is asked for series by series, everything arrives", async () => {
    const movePort = await freePort();
    const { scp, asked, patients } = await aria(movePort, (level) => (level === "PATIENT" || level === "STUDY" ? 0xc000 : undefined));
    try {
      const out = join(dir, "by-series");
      const r = await runMainCaptured(retrieve, args(scp, movePort, out));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(dicomFiles(out).length, patientFiles.length);
      const series = new Set(patientFiles.map((p) => readDicomFile(p).dataset.string(0x0020000e)));
      assert.deepEqual(asked, [...series].map(() => "SERIES"));
      assert.deepEqual(new Set(patients), new Set(["RTX0001"]));
      const summary = r.records.find((x) => x.type === "retrieve-summary")!;
      assert.equal(summary.complete, true);
      assert.equal(summary.resilience, undefined);
    } finally {
      await scp.close();
    }
  });

  test("a series that fails too: asked for by instance; 0xA702 once: retried", async () => {
    const movePort = await freePort();
    let failedSeries = 0;
    const { scp, asked, seriesAsked, patients } = await aria(movePort, (level, n) => {
      if (level === "SERIES" && n === 1) return 0xa702; // out of resources once: transient
      if (level === "SERIES" && n === 2) {
        failedSeries++;
        return 0xc001; // the same series again, now for good: by instance
      }
      return undefined;
    });
    try {
      const out = join(dir, "by-instance");
      const r = await runMainCaptured(retrieve, args(scp, movePort, out));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(dicomFiles(out).length, patientFiles.length);
      assert.equal(failedSeries, 1);
      // The failed series' instances one by one, each request naming the patient.
      const firstSeriesUid = seriesAsked[0]!;
      assert.equal(seriesAsked[1], firstSeriesUid, "the series retried after 0xA702");
      const inFirst = patientFiles.filter((p) => readDicomFile(p).dataset.string(0x0020000e) === firstSeriesUid).length;
      assert.equal(asked.filter((l) => l === "IMAGE").length, inFirst, asked.join(" "));
      assert.deepEqual(new Set(patients), new Set(["RTX0001"]));
      const summary = r.records.find((x) => x.type === "retrieve-summary")!;
      assert.equal(summary.complete, true);
      assert.deepEqual(summary.resilience, { retries: 1, fallbacks: 1 });
      assert.match(r.stderr, /retry 1 of 5 in [\d.]+ s \(out of resources for sub-operations\)/);
      assert.match(r.stderr, new RegExp(`C-MOVE/C-GET of series ${firstSeriesUid.replaceAll(".", "\\.")} failed as a whole \\(0xC001: Unexpected exception during MOVE\\): asking for its ${inFirst} instances one by one`));
    } finally {
      await scp.close();
    }
  });

  test("export-plan from the same peer: a series refused for resources once is retried, then failing for good is asked for by instance", async () => {
    const movePort = await freePort();
    let failedSeries = 0;
    const { scp, asked } = await aria(movePort, (level, n) => {
      if (level === "SERIES" && n === 1) return 0xa702;
      if (level === "SERIES" && n === 2) {
        failedSeries++;
        return 0xc001;
      }
      return undefined;
    });
    try {
      const peer = ["--host", "127.0.0.1", "--port", String(scp.port), "--aec", "VMSDBD", "--aet", "RTEXPORT"];
      const listed = await runMainCaptured(listPatients, ["--from", "dicom", ...peer]);
      assert.equal(listed.code, 0, listed.stderr);
      const out = join(dir, "export");
      const r = await runMainCaptured(exportPlan, [...peer, "--move-port", String(movePort), "--include-unapproved", "--retry-max-wait", "0.2", "--out", out], { stdin: listed.stdout });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(failedSeries, 1);
      assert.match(r.stderr, /export-plan: warning: C-MOVE\/C-GET of series [\d.]+: retry 1 of 5 in [\d.]+ s \(out of resources for sub-operations\)/);
      assert.match(r.stderr, /failed as a whole \(0xC001: Unexpected exception during MOVE\): asking for its \d+ instances one by one/);
      assert.ok(asked.includes("IMAGE"), asked.join(" "));
      // Everything of the patient is in the tree.
      const exported = new Set(dicomFiles(out).map((p) => readDicomFile(p).dataset.string(0x00080018)));
      for (const p of patientFiles) assert.ok(exported.has(readDicomFile(p).dataset.string(0x00080018)), p);
    } finally {
      await scp.close();
    }
  });

  test("a destination the peer does not know (0xA801): neither retried nor asked for by instance; exit 3", async () => {
    const movePort = await freePort();
    const { scp, asked } = await aria(movePort, () => 0xa801);
    try {
      const r = await runMainCaptured(retrieve, args(scp, movePort, join(dir, "unknown-dest")));
      assert.equal(r.code, 3, r.stderr);
      const series = new Set(patientFiles.map((p) => readDicomFile(p).dataset.string(0x0020000e)));
      assert.deepEqual(asked, [...series].map(() => "SERIES"));
      assert.doesNotMatch(r.stderr, /retry \d of|one by one/);
      assert.equal(r.records.find((x) => x.type === "retrieve-summary")!.complete, false);
    } finally {
      await scp.close();
    }
  });

  test("a time window closes between two requests: the association is released, the run resumes when it opens", async () => {
    const movePort = await freePort();
    const { scp, asked, associations } = await aria(movePort, () => undefined);
    try {
      const out = join(dir, "windowed");
      // 06:29:58 on the test clock, one object a second: the first study's objects take the run past 06:30.
      const r = await runMainCaptured(retrieve, [...args(scp, movePort, out), "--window", "19:00-06:30", "--max-rate", "1/s"], { env: { RTEXPORT_CLOCK: "2025-03-04T06:29:58" } });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(dicomFiles(out).length, patientFiles.length);
      assert.match(r.stderr, /retrieve: Paused until 19:00: outside every time window, peer associations released/);
      const series = new Set(patientFiles.map((p) => readDicomFile(p).dataset.string(0x0020000e)));
      assert.equal(asked.filter((l) => l === "SERIES").length, series.size);
      assert.equal(associations(), 2, "one association before the pause, another after it");
    } finally {
      await scp.close();
    }
  });

  test("Orthanc killed and restarted in the middle of a C-GET: retried, everything arrives", async () => {
    const orthanc: OrthancPeer = await startOrthanc();
    try {
      const big = join(dir, "big");
      await generateClinic({ out: big, patients: 1, slices: 60, size: 256 });
      const files = dicomFiles(big);
      const peer = { host: "127.0.0.1", port: orthanc.port, callingAet: "LOADER", calledAet: orthanc.aeTitle };
      const sources = files.map((f) => storeSourceFromFile(f));
      const a = await connect(connectOptions(peer, storageContexts(sources)));
      for (const s of sources) await store(a, s);
      await a.release();
      const out = join(dir, "orthanc-out");
      // retrieve runs as its own process, so this test's timer sees the files as they arrive
      // (in process, a busy event loop could let the whole C-GET finish before it looked); the
      // count takes every object file under --out, staging included, wherever the run keeps them.
      let restarted: Promise<void> | undefined;
      const killer = setInterval(() => {
        if (restarted || !existsSync(out) || countFiles(out) < 5) return;
        clearInterval(killer);
        orthanc.kill();
        restarted = new Promise((r) => setTimeout(r, 300)).then(() => orthanc.restart());
      }, 2);
      try {
        const run = await sh(
          `"\${RT[@]}" retrieve --host 127.0.0.1 --port ${orthanc.port} --aec ${orthanc.aeTitle} --get --patient-id RTX0001 --retries 8 --retry-max-wait 2 --out '${out}'`,
        );
        const r = { code: run.status, stderr: run.stderr, records: records(run.stdout) };
        assert.ok(restarted, "Orthanc was killed while objects arrived");
        await restarted;
        assert.equal(r.code, 0, r.stderr);
        assert.equal(dicomFiles(out).length, files.length);
        const summary = r.records.find((x) => x.type === "retrieve-summary")!;
        assert.ok(summary.resilience.retries >= 1, JSON.stringify(summary.resilience));
        assert.match(r.stderr, /retry 1 of 8 in [\d.]+ s \((connection closed|association aborted|connection refused|timeout)\)/);
      } finally {
        clearInterval(killer);
        await restarted;
      }
    } finally {
      await orthanc.stop();
    }
  });
});
