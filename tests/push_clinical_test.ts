// push against a live clinical system: retries (a test SCP answering 0xA700, storescp killed
// and restarted), --check holding back what the target refuses, Storage Commitment with Orthanc,
// streaming (export-plan | push, bounded read-ahead, serve --forward), time windows with the
// test clock, the rate limit measured, and the audit trail in Debian rsyslog.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { main as push } from "../commands/push.ts";
import { main as status } from "../commands/status.ts";
import { textElement } from "../lib/dicom/dataset.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { encodeFile } from "../lib/dicom/writer.ts";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { pathRecords } from "../lib/fs/walk.ts";
import { Ledger } from "../lib/ledger/ledger.ts";
import { createScp, type Scp } from "../lib/net/mod.ts";
import { pushRecords } from "../lib/push/push.ts";
import type { RtRecord } from "../lib/records/types.ts";
import { jumpingClock, Pacer, parseWindows } from "../lib/stage/pace.ts";
import type { StageEvent } from "../lib/stage/stage.ts";
import {
  freePort, type OrthancPeer, runDcmtk, runMainCaptured, type RsyslogPeer, startOrthanc, startRsyslog, startStorescp, waitForPort,
} from "./_peers.ts";
import { cliCommand } from "./_run.ts";

function dicomFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith(".dcm"))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).sort();
}

/** Our SCP: what arrives, when, on which association; `answer` decides each C-STORE's status. */
async function recorder(dir: string, answer: (n: number, uid: string) => number = () => 0): Promise<{
  scp: Scp; arrived: { uid: string; cls: string; at: number }[]; associations: () => number; close(): Promise<void>;
}> {
  mkdirSync(dir, { recursive: true });
  const arrived: { uid: string; cls: string; at: number }[] = [];
  let associations = 0;
  let n = 0;
  const scp = await createScp({
    aeTitle: "RECORDER", host: "127.0.0.1", storeDir: dir,
    onEvent: (e) => {
      if (e.type === "association") associations++;
    },
    handlers: {
      store: ({ file }) => {
        const status = answer(++n, file.sopInstanceUid);
        if (status === 0) {
          renameSync(file.path, join(dir, `${file.sopInstanceUid}.dcm`));
          arrived.push({ uid: file.sopInstanceUid, cls: file.sopClassUid, at: performance.now() });
          return { status, kept: true };
        }
        return { status, errorComment: "busy" };
      },
    },
  });
  return { scp, arrived, associations: () => associations, close: () => scp.close() };
}

const peerArgs = (port: number, aec: string) => ["--host", "127.0.0.1", "--port", String(port), "--aec", aec];

describe("push on a live clinical system", () => {
  let dir: string;
  let clinic: string;
  let files: string[];
  let cts: string[];
  let orthanc: OrthancPeer;
  let commitPort: number;
  let rsyslog: RsyslogPeer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "rtexport-push-clinical-"));
    clinic = join(dir, "clinic");
    await generateClinic({ out: clinic, patients: 2, slices: 6 });
    files = dicomFiles(clinic);
    cts = files.filter((p) => p.includes("/CT/"));
    commitPort = await freePort();
    [orthanc, rsyslog] = await Promise.all([
      startOrthanc({ modalities: [{ aeTitle: "RTEXPORT", host: "127.0.0.1", port: commitPort }] }),
      startRsyslog(),
    ]);
  });

  after(async () => {
    await Promise.all([orthanc?.stop(), rsyslog?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  test("retries: a peer answering 0xA700 twice, then success: stored, two retries logged and counted", async () => {
    const r0 = await recorder(join(dir, "busy"), (n) => (n <= 2 ? 0xa700 : 0));
    try {
      const r = await runMainCaptured(push, [...peerArgs(r0.scp.port, "RECORDER"), "--retry-max-wait", "0.2", cts[0]]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.records[0].push.status, "stored");
      assert.equal(r.records[0].push.retries, 2);
      const retries = r.stderr.split("\n").filter((l) => /push: warning: Retrying ".*CT.*" at RECORDER@127\.0\.0\.1:\d+: retry \d of 5 in [\d.]+ s \(out of resources\): 0xA700 refused: out of resources: busy/.test(l));
      assert.equal(retries.length, 2, r.stderr);
      assert.equal(r0.arrived.length, 1);
    } finally {
      await r0.close();
    }
  });

  test("retries: a permanent failure (0xC000) is not tried again", async () => {
    const r0 = await recorder(join(dir, "refuse"), () => 0xc000);
    try {
      const r = await runMainCaptured(push, [...peerArgs(r0.scp.port, "RECORDER"), "--retry-max-wait", "0.2", cts[0]]);
      assert.equal(r.code, 3);
      assert.equal(r.records[0].push.retries, undefined);
      assert.doesNotMatch(r.stderr, /Retrying/);
    } finally {
      await r0.close();
    }
  });

  test("storescp killed mid-push and restarted on its port: every object arrives, the break retried", async () => {
    const port = await freePort();
    const outDir = join(dir, "storescp-in");
    let storescp = await startStorescp({ port, outDir });
    let restarted: Promise<void> | undefined;
    const killer = setInterval(() => {
      if (restarted || readdirSync(outDir).length < 4) return;
      clearInterval(killer);
      const dead = storescp;
      dead.kill();
      restarted = (async () => {
        await new Promise((r) => setTimeout(r, 400));
        await dead.stop();
        storescp = await startStorescp({ port, outDir });
      })();
    }, 5);
    try {
      const r = await runMainCaptured(push, [...peerArgs(port, storescp.aeTitle), "--retry-max-wait", "1", "--max-rate", "40/s", clinic, "--pattern", "*.dcm"]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.records.every((x) => x.push.status === "stored"), r.stderr);
      const retried = r.records.filter((x) => x.push.retries > 0);
      assert.ok(retried.length >= 1, "the object in flight when storescp died was retried");
      assert.match(r.stderr, /Retrying .*\((connection closed|connection refused|association aborted|timeout)\)/);
      const stored = new Set(readdirSync(outDir).map((n) => n.slice(n.indexOf(".") + 1)));
      assert.equal(stored.size, files.length);
    } finally {
      clearInterval(killer);
      await restarted;
      await storescp.stop();
    }
  });

  test("--check: what the target refuses is held back, what needs it too; the rest is stored", async () => {
    // One CT with a tilted gantry: iDMS refuses it; ARIA's rules then refuse the structure set
    // drawn on it, and the plans on that structure set.
    const copy = join(dir, "check-clinic");
    cpSync(join(clinic, "RTX0001"), copy, { recursive: true });
    const ct = dicomFiles(copy).find((p) => p.includes("/CT/"))!;
    const f = readDicomFile(ct, { full: true });
    f.dataset.set(textElement(0x00181120, "DS", "15"));
    writeFileSync(ct, encodeFile(f.dataset, { meta: f.meta, transferSyntaxUid: f.transferSyntaxUid }));
    const profile = join(dir, "idms-aria.json");
    const { loadProfile } = await import("../lib/check/profile.ts");
    writeFileSync(profile, JSON.stringify({ name: "idms+aria", rules: { "gantry-tilt": loadProfile("idms").rules["gantry-tilt"], ...loadProfile("aria").rules } }));
    const r0 = await recorder(join(dir, "check-in"));
    try {
      const r = await runMainCaptured(push, [...peerArgs(r0.scp.port, "RECORDER"), "--check", profile, "--machines", "TrueBeam1,TrueBeam2,TrueBeam3,Radixact1,CK1", copy]);
      assert.equal(r.code, 3);
      const held = r.records.filter((x) => x.push?.error?.startsWith("held back"));
      const heldKinds = held.map((x) => `${x.modality}:${x.check.violations.map((v: { rule: string }) => v.rule).join(",")}`).sort();
      assert.ok(heldKinds.includes("CT:gantry-tilt"), heldKinds.join(" "));
      assert.ok(heldKinds.includes("RTSTRUCT:structure-set-images"), heldKinds.join(" "));
      assert.ok(held.some((x) => x.modality === "RTPLAN"), heldKinds.join(" "));
      assert.match(r.stderr, /Cannot store ".*CT.*" at RECORDER@127\.0\.0\.1:\d+: held back: idms\+aria would refuse it: Gantry\/Detector Tilt is 15/);
      // Nothing held back reached the peer; everything else did.
      const arrived = new Set(r0.arrived.map((a) => a.uid));
      for (const x of held) assert.ok(!arrived.has(x.sopInstanceUid), x.path);
      assert.equal(arrived.size, r.records.filter((x) => x.push?.status === "stored").length);
      assert.ok(arrived.size > 0);
    } finally {
      await r0.close();
    }
  });

  test("Storage Commitment with Orthanc: all committed; one deleted through its REST API is reported commit-failed and sent again by the rerun", async () => {
    const ledger = `sqlite:${join(dir, "commit.sqlite")}`;
    const args = [...peerArgs(orthanc.port, orthanc.aeTitle), "--aet", "RTEXPORT", "--ledger", ledger, "--commit", "--commit-port", String(commitPort), "--commit-host", "127.0.0.1", "--commit-timeout", "30"];
    // Orthanc reports on an association it opens to us (DicomModalities names RTEXPORT at our port).
    const a = join(dir, "commit-a");
    cpSync(join(clinic, "RTX0001"), a, { recursive: true });
    const na = dicomFiles(a).length;
    const all = await runMainCaptured(push, [...args, a]);
    assert.equal(all.code, 0, all.stderr);
    const commitsA = all.records.filter((x) => x.type === "commitment");
    assert.equal(commitsA.length, na);
    assert.ok(commitsA.every((x) => x.status === "committed"));
    assert.match(all.stderr, new RegExp(`push: ${na} of ${na} objects committed by ORTHANC@127\\.0\\.0\\.1:\\d+`));

    // Stored (no commitment asked), then one instance deleted at Orthanc before the request.
    const b = join(dir, "commit-b");
    cpSync(join(clinic, "RTX0002"), b, { recursive: true });
    const nb = dicomFiles(b).length;
    const stored = await runMainCaptured(push, [...peerArgs(orthanc.port, orthanc.aeTitle), "--aet", "RTEXPORT", "--ledger", ledger, b]);
    assert.equal(stored.code, 0, stored.stderr);
    const victim = stored.records.find((x) => x.modality === "RTDOSE")!;
    const [found] = await orthanc.rest("/tools/lookup", victim.sopInstanceUid) as { ID: string }[];
    assert.equal((await fetch(`http://127.0.0.1:${orthanc.httpPort}/instances/${found.ID}`, { method: "DELETE" })).status, 200);
    const asked = await runMainCaptured(push, [...args, b]);
    assert.equal(asked.code, 3, asked.stderr);
    assert.ok(asked.records.filter((x) => x.type === "file").every((x) => x.push.status === "skipped"), "nothing sent: the ledger has it all as stored");
    const failed = asked.records.filter((x) => x.type === "commitment" && x.status === "commit-failed");
    assert.deepEqual(failed.map((x) => x.sopInstanceUid), [victim.sopInstanceUid]);
    assert.match(failed[0].reason, /did not commit it: no such object instance \(0x0112\)/);
    assert.equal(asked.records.filter((x) => x.type === "commitment" && x.status === "committed").length, nb - 1);
    assert.match(asked.stderr, /push: Cannot commit ".*RTDOSE.*" at ORTHANC@127\.0\.0\.1:\d+: ORTHANC@127\.0\.0\.1:\d+ did not commit it/);
    const s1 = await runMainCaptured(status, ["--ledger", ledger]);
    assert.deepEqual(s1.records[0].commitment, { stored: na + nb, committed: na + nb - 1, failed: 1, unconfirmed: 0 });

    // The rerun sends what failed to commit, and only that, and asks again.
    const rerun = await runMainCaptured(push, [...args, b]);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.deepEqual(rerun.records.filter((x) => x.type === "file" && x.push.status === "stored").map((x) => x.sopInstanceUid), [victim.sopInstanceUid]);
    assert.deepEqual(rerun.records.filter((x) => x.type === "commitment").map((x) => [x.sopInstanceUid, x.status]), [[victim.sopInstanceUid, "committed"]]);
    const s2 = await runMainCaptured(status, ["--ledger", ledger]);
    assert.deepEqual(s2.records[0].commitment, { stored: na + nb, committed: na + nb, failed: 0, unconfirmed: 0 });
  });

  test("streaming: export-plan | push stores its first object before export-plan has finished", async () => {
    const r0 = await recorder(join(dir, "stream-in"));
    const cmd = cliCommand();
    const events: string[] = [];
    const procs: ChildProcess[] = [];
    try {
      const list = spawn(cmd[0], [...cmd.slice(1), "list-patients", "--from", "folder", "--include-unapproved", clinic], { stdio: ["ignore", "pipe", "pipe"] });
      // export-plan is slowed to 8 files a second: the whole export takes seconds.
      const exp = spawn(cmd[0], [...cmd.slice(1), "export-plan", "--include-unapproved", "--max-rate", "8/s"], { stdio: ["pipe", "pipe", "pipe"] });
      const pusher = spawn(cmd[0], [...cmd.slice(1), "push", ...peerArgs(r0.scp.port, "RECORDER")], { stdio: ["pipe", "pipe", "pipe"] });
      procs.push(list, exp, pusher);
      list.stdout!.pipe(exp.stdin!);
      exp.stdout!.pipe(pusher.stdin!);
      let err = "";
      for (const p of procs) p.stderr!.on("data", (d) => (err += d));
      let out = "";
      pusher.stdout!.setEncoding("utf8").on("data", (d: string) => {
        out += d;
        if (!events.includes("push stored an object") && /"status":"stored"/.test(out)) events.push("push stored an object");
      });
      const exited = (p: ChildProcess, name: string) => new Promise<number | null>((resolve) => p.on("exit", (code) => {
        events.push(`${name} exited`);
        resolve(code);
      }));
      const [, expCode, pushCode] = await Promise.all([exited(list, "list-patients"), exited(exp, "export-plan"), exited(pusher, "push")]);
      assert.equal(expCode, 0, err);
      assert.equal(pushCode, 0, err);
      assert.ok(events.indexOf("push stored an object") >= 0, err);
      assert.ok(events.indexOf("push stored an object") < events.indexOf("export-plan exited"), events.join(" < "));
      // Every object of the clinic arrived (an object several plans share is exported, and sent, once per plan).
      assert.equal(new Set(r0.arrived.map((a) => a.uid)).size, files.length);
    } finally {
      for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
      await r0.close();
    }
  });

  test("streaming: the stage reads at most its read-ahead beyond what it has sent", async () => {
    const r0 = await recorder(join(dir, "ahead-in"));
    let pulled = 0;
    let outcomes = 0;
    let widest = 0;
    async function* input(): AsyncGenerator<RtRecord> {
      for (const p of cts) {
        pulled++;
        widest = Math.max(widest, pulled - outcomes);
        yield { type: "file", path: p };
      }
    }
    try {
      const peer = { host: "127.0.0.1", port: r0.scp.port, callingAet: "RTEXPORT", calledAet: "RECORDER" };
      let pulledAtFirst = -1;
      for await (const r of pushRecords(input(), { peer, readAhead: 3 })) {
        if (r.type === "file") {
          if (pulledAtFirst < 0) pulledAtFirst = pulled;
          outcomes++;
        }
      }
      assert.equal(outcomes, cts.length);
      assert.ok(pulledAtFirst < cts.length, `the first object went after ${pulledAtFirst} of ${cts.length} records were read`);
      assert.ok(widest <= 3 + 2, `read ${widest} records ahead of the outcomes`);
    } finally {
      await r0.close();
    }
  });

  test("streaming: input in reverse dependency order (records, doses, plans, structure sets, then images) cannot stall the reader", async () => {
    const r0 = await recorder(join(dir, "reverse-in"));
    try {
      // Every patient's objects from the top rank down: each waits for what comes later in the input.
      const rank = (p: string) => ["/RTRECORD/", "/RTDOSE/", "/RTIMAGE/", "/RTPLAN/", "/RTSTRUCT/", "/REG/", "/MR/", "/CT/"].findIndex((k) => p.includes(k));
      const reversed = [...files].sort((a, b) => a.split("/").slice(-3, -2)[0].localeCompare(b.split("/").slice(-3, -2)[0]) || rank(a) - rank(b));
      const peer = { host: "127.0.0.1", port: r0.scp.port, callingAet: "RTEXPORT", calledAet: "RECORDER" };
      let n = 0;
      const done = (async () => {
        for await (const r of pushRecords(pathRecords(reversed), { peer, readAhead: 2 })) if (r.type === "file") n++;
      })();
      const timeout = new Promise((_, reject) => setTimeout(() => reject(new Error(`stalled after ${n} of ${files.length}`)), 60_000));
      await Promise.race([done, timeout]);
      assert.equal(n, files.length);
      // And still in dependency order: a patient's plan after its structure set.
      const at = (cls: string, pat: number) => r0.arrived.map((a, i) => ({ ...a, i })).filter((a) => a.cls === cls).map((a) => a.i)[pat];
      assert.ok(at("1.2.840.10008.5.1.4.1.1.481.3", 0) < at("1.2.840.10008.5.1.4.1.1.481.5", 0), "structure set before plan");
    } finally {
      await r0.close();
    }
  });

  test("serve --forward relays each object to Orthanc as it arrives", async () => {
    const port = await freePort();
    const cmd = cliCommand();
    const served = join(dir, "relay");
    const target = await startOrthanc({ aeTitle: "TARGET" });
    const serve = spawn(cmd[0], [...cmd.slice(1), "serve", "--dir", served, "--host", "127.0.0.1", "--port", String(port), "--aet", "RELAY", "--allow-store-any", "--forward", `TARGET@127.0.0.1:${target.port}`], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    let code: number | null = null;
    serve.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
    serve.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
    try {
      await waitForPort(port, "127.0.0.1", 30000, serve);
      const relayFiles = dicomFiles(join(clinic, "RTX0001")).filter((p) => /\/(CT|RTSTRUCT|RTPLAN)\//.test(p));
      const sent = await runDcmtk("storescu", ["-aec", "RELAY", "127.0.0.1", String(port), ...relayFiles]);
      assert.equal(sent.code, 0, sent.stderr);
      // Forwarded while serve keeps serving: the target has them before serve stops.
      let there = 0;
      for (let i = 0; i < 100 && there < relayFiles.length; i++) {
        await new Promise((r) => setTimeout(r, 100));
        there = (await target.rest("/instances") as string[]).length;
      }
      assert.equal(there, relayFiles.length, err);
    } finally {
      const exited = new Promise<number | null>((resolve) => serve.once("exit", (code) => resolve(code)));
      // process.kill, not serve.kill: Deno's ChildProcess reports a child it signalled as killed
      // (exit code null) even when the child handled the signal and exited 0.
      process.kill(serve.pid!, "SIGTERM");
      code = await exited;
      await target.stop();
    }
    assert.equal(code, 0, err);
    const records = out.trim().split("\n").map((l) => JSON.parse(l));
    assert.ok(records.length > 0 && records.every((x) => x.type === "file" && x.push.status === "stored"), out);
  });

  test("windows: with the test clock a run pauses at the window's end (associations released) and resumes at its start", async () => {
    const r0 = await recorder(join(dir, "window-in"));
    try {
      // 06:29:57, one object a second: three go before 06:30, the rest after the pause until 19:00.
      const start = new Date(2025, 2, 4, 6, 29, 57).getTime();
      const pace = new Pacer({ windows: parseWindows("19:00-06:30"), maxRate: 1, clock: jumpingClock(start) });
      const events: string[] = [];
      const onEvent = (e: StageEvent) => {
        if (e.type === "done") events.push("done");
        if (e.type === "progress" && e.note !== undefined) events.push(`note "${e.note}"`);
      };
      const peer = { host: "127.0.0.1", port: r0.scp.port, callingAet: "RTEXPORT", calledAet: "RECORDER" };
      for await (const _ of pushRecords(pathRecords(cts.slice(0, 6)), { peer, pace, onEvent })) { /* drained */ }
      assert.deepEqual(events, ["done", "done", "done", 'note "paused until 19:00"', 'note ""', "done", "done", "done"]);
      assert.equal(r0.associations(), 2, "the association was released for the pause and opened again after it");
    } finally {
      await r0.close();
    }
  });

  test("windows through the command: RTEXPORT_CLOCK, exit 0 after the pause", async () => {
    const r0 = await recorder(join(dir, "window-cli-in"));
    try {
      const r = await runMainCaptured(push, [...peerArgs(r0.scp.port, "RECORDER"), "--window", "Mon-Fri 19:00-06:30", "--max-rate", "1/s", ...cts.slice(0, 4)], {
        env: { RTEXPORT_CLOCK: "2025-03-04T06:29:58" },
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r0.arrived.length, 4);
      assert.equal(r0.associations(), 2);
    } finally {
      await r0.close();
    }
  });

  // The rate on the real clock is measured in bench/pace_bench.ts (bench/README.md): tests assert
  // no speed. On the test clock the schedule itself is exact, whatever the machine's load.
  test("--max-rate 10/s with two workers: 21 objects span two seconds of the test clock, and push waits no more than that", async () => {
    const r0 = await recorder(join(dir, "rate-in"));
    try {
      const some = files.slice(0, 21);
      const clock = jumpingClock(new Date(2025, 2, 4, 12, 0, 0).getTime());
      const start = clock.now();
      const pace = new Pacer({ maxRate: 10, clock });
      const peer = { host: "127.0.0.1", port: r0.scp.port, callingAet: "RTEXPORT", calledAet: "RECORDER" };
      for await (const _ of pushRecords(pathRecords(some), { peer, pace, parallel: 2 })) { /* drained */ }
      assert.equal(r0.arrived.length, some.length);
      assert.ok(clock.now() - start >= 2000, `${clock.now() - start} ms for 21 objects at 10/s`);
      assert.ok(clock.jumped <= 2000, `waited ${clock.jumped} ms`);
    } finally {
      await r0.close();
    }
  });

  test("audit: one event per patient in the ledger and one parseable message per event at Debian rsyslog", async () => {
    const r0 = await recorder(join(dir, "audit-in"));
    const ledger = join(dir, "audit.sqlite");
    try {
      const r = await runMainCaptured(push, [...peerArgs(r0.scp.port, "RECORDER"), "--ledger", `sqlite:${ledger}`, "--audit", `syslog://127.0.0.1:${rsyslog.port}`, clinic, "--pattern", "*.dcm"]);
      assert.equal(r.code, 0, r.stderr);
      const l = await Ledger.open(`sqlite:${ledger}`, "test");
      const rows = await l.db.selectFrom("rtx_ledger_audit").selectAll().orderBy("patient_id").execute();
      await l.close();
      assert.deepEqual(rows.map((x) => [x.action, x.patient_id, x.outcome, x.dest]), [
        ["push", "RTX0001", "success", `RECORDER@127.0.0.1:${r0.scp.port}`],
        ["push", "RTX0002", "success", `RECORDER@127.0.0.1:${r0.scp.port}`],
      ]);
      assert.equal(rows.reduce((n, x) => n + x.objects, 0), files.length);
      let lines: string[] = [];
      for (let i = 0; i < 50 && lines.length < 2; i++) {
        await new Promise((res) => setTimeout(res, 100));
        lines = rsyslog.lines().filter((x) => x.includes(`RECORDER@127.0.0.1:${r0.scp.port}`));
      }
      assert.equal(lines.length, 2, rsyslog.output());
      for (const line of lines) {
        const [pri, app, msgid] = line.split("|");
        assert.deepEqual([pri, app, msgid], ["85", "rtexport", "IHE+RFC-3881"]);
        assert.match(line, /<EventID csd-code="110104" codeSystemName="DCM" originalText="DICOM Instances Transferred"\/>/);
      }
      assert.ok(lines.some((x) => x.includes('ParticipantObjectID="RTX0001"')) && lines.some((x) => x.includes('ParticipantObjectID="RTX0002"')));
    } finally {
      await r0.close();
    }
  });
});
