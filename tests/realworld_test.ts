// Real-world files and peers (issue 12), side by side with DCMTK: a corpus no one here wrote
// (tests/_realworld_corpus.ts) pushed by rtexport to Orthanc and to DCMTK storescp, and by
// storescu to a second instance of each. rtexport must store every object storescu stores, and
// what arrives must be dcmdump-identical to what storescu delivered, transfer syntax included.
//
// storescu runs with the --propose option of each file's own transfer syntax (-xi for implicit VR,
// -xr for RLE …): its default proposal ([Explicit LE] and [Explicit BE, Implicit LE] per class)
// lets storescp pick big endian for the second context, and storescu then transcodes implicit VR
// files that storescp would have taken as they are. rtexport proposes each object's syntax alone.
//
// Also: a peer that takes only Explicit VR Little Endian gets implicit VR objects transcoded with
// DCMTK's dictionaries (nothing DCMTK knows becomes UN); truncated encapsulated files are refused
// before sending; compressed objects reach a peer that takes only uncompressed syntaxes decoded
// to gdcmconv --raw's pixels; retrieve fetches compressed objects from Orthanc by C-GET and
// C-MOVE in their own syntaxes; serve decodes for getscu (C-GET), which proposes only
// uncompressed syntaxes, and for a storescp without compressed syntaxes (C-MOVE).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { Buffer } from "node:buffer";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main as push } from "../commands/push.ts";
import { main as retrieve } from "../commands/retrieve.ts";
import { anonymizeRecords } from "../lib/anonymize/stage.ts";
import { transcodeFiles } from "../lib/codec/transcode.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { storageContexts, storageContextsWithin } from "../lib/net/scu.ts";
import { pathRecords } from "../lib/fs/walk.ts";
import type { RtRecord } from "../lib/records/types.ts";
import { showRecords } from "../lib/rt/show.ts";
import { summarizeObject } from "../lib/rt/summary.ts";
import { searchFiles } from "../lib/search/search.ts";
import type { StageEvent } from "../lib/stage/stage.ts";
import { type QrScp, startQrScp } from "../lib/qr/scp.ts";
import { compareRows, type Dump, runDcmdumpMany } from "./_dcmdump.ts";
import {
  freePort, type OrthancPeer, runDcmtk, runMainCaptured, startOrthanc, startStorescp, type StorescpPeer,
} from "./_peers.ts";
import {
  buildRealWorldCorpus, type CorpusFile, pixelBytes, PYDICOM_DATA, type RealWorldCorpus, uniqueUidBatches,
} from "./_realworld_corpus.ts";

/** storescu's option that proposes a transfer syntax (and the uncompressed ones after it). */
const STORESCU_PROPOSE: Record<string, string> = {
  "1.2.840.10008.1.2": "-xi",
  "1.2.840.10008.1.2.1": "-xe",
  "1.2.840.10008.1.2.2": "-xb",
  "1.2.840.10008.1.2.1.99": "-xd",
  "1.2.840.10008.1.2.4.70": "-xs",
  "1.2.840.10008.1.2.4.50": "-xy",
  "1.2.840.10008.1.2.4.51": "-xx",
  "1.2.840.10008.1.2.4.90": "-xv",
  "1.2.840.10008.1.2.4.91": "-xw",
  "1.2.840.10008.1.2.4.80": "-xt",
  "1.2.840.10008.1.2.4.81": "-xu",
  "1.2.840.10008.1.2.5": "-xr",
};

interface Side {
  name: string;
  host: string;
  port: number;
  aeTitle: string;
  /** Arrived objects by SOP Instance UID → a file holding each. */
  arrived(): Promise<Map<string, string>>;
  clear(): Promise<void>;
}

function storescpSide(name: string, p: StorescpPeer): Side {
  return {
    name, host: p.host, port: p.port, aeTitle: p.aeTitle,
    arrived: () => {
      // storescp names files <modality prefix>.<SOP Instance UID>.
      const out = new Map<string, string>();
      for (const n of readdirSync(p.outDir)) out.set(n.slice(n.indexOf(".") + 1), join(p.outDir, n));
      return Promise.resolve(out);
    },
    clear: () => {
      for (const n of readdirSync(p.outDir)) rmSync(join(p.outDir, n), { force: true });
      return Promise.resolve();
    },
  };
}

function orthancSide(name: string, o: OrthancPeer, dir: string): Side {
  const base = `http://127.0.0.1:${o.httpPort}`;
  return {
    name, host: o.host, port: o.port, aeTitle: o.aeTitle,
    async arrived() {
      const out = new Map<string, string>();
      mkdirSync(dir, { recursive: true });
      for (const id of await o.rest("/instances") as string[]) {
        const uid = (await o.rest(`/instances/${id}/simplified-tags`)).SOPInstanceUID as string;
        const path = join(dir, `${id}.dcm`);
        writeFileSync(path, await o.restBytes(`/instances/${id}/file`));
        out.set(uid, path);
      }
      return out;
    },
    async clear() {
      for (const id of await o.rest("/patients") as string[]) {
        const r = await fetch(`${base}/patients/${id}`, { method: "DELETE" });
        await r.body?.cancel();
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function pushWithRtexport(side: Side, paths: string[]) {
  return await runMainCaptured(push, ["--host", side.host, "--port", String(side.port), "--aec", side.aeTitle, "--aet", "RTEXPORT", ...paths]);
}

/** storescu, once per transfer syntax of the files, proposing that syntax; files it cannot propose are not sent. */
async function pushWithStorescu(side: Side, files: CorpusFile[]): Promise<void> {
  const bySyntax = new Map<string, string[]>();
  for (const f of files) {
    if (!STORESCU_PROPOSE[f.transferSyntaxUid]) continue;
    bySyntax.set(f.transferSyntaxUid, [...bySyntax.get(f.transferSyntaxUid) ?? [], f.path]);
  }
  for (const [ts, paths] of bySyntax) {
    // -nh: go on after a file it cannot send (no SOP UIDs in the data set, …); -R: only the files' classes.
    await runDcmtk("storescu", ["-R", "-nh", STORESCU_PROPOSE[ts], "-aet", "STORESCU", "-aec", side.aeTitle, side.host, String(side.port), ...paths], 120_000);
  }
}

/**
 * Pushes `files` with rtexport to `ours` and with storescu to `theirs`, batch by batch (no SOP
 * Instance UID twice in a batch: peers keep one object per UID), and compares what arrived.
 */
async function sideBySide(files: CorpusFile[], ours: Side, theirs: Side): Promise<{ diffs: string[]; compared: number; stderr: string }> {
  const diffs: string[] = [];
  let compared = 0;
  let stderr = "";
  for (const batch of uniqueUidBatches(files)) {
    const [r] = await Promise.all([pushWithRtexport(ours, batch.map((f) => f.path)), pushWithStorescu(theirs, batch)]);
    stderr += r.stderr;
    const [mine, dcmtk] = await Promise.all([ours.arrived(), theirs.arrived()]);
    const dumps = runDcmdumpMany([...mine.values(), ...dcmtk.values()]);
    for (const [uid, theirPath] of dcmtk) {
      const source = batch.find((f) => f.sopInstanceUid === uid);
      const label = source ? `${source.name} (${source.path})` : uid;
      const minePath = mine.get(uid);
      if (!minePath) {
        const rec = r.records.find((x) => x.sopInstanceUid === uid);
        diffs.push(`${label}: storescu stored it at ${theirs.name}, rtexport did not (${rec?.push?.error ?? "no record"})`);
        continue;
      }
      const a: Dump = dumps.get(minePath)!, b: Dump = dumps.get(theirPath)!;
      compared++;
      if (a.transferSyntax !== b.transferSyntax) diffs.push(`${label}: arrived in ${a.transferSyntax}, storescu's in ${b.transferSyntax}`);
      // Data Set Trailing Padding (FFFC,FFFC) is streamed with the object; storescu leaves it out
      // (DCMTK drops it when it writes a data set; PS3.5 7.7 gives it no meaning).
      const padding = (rows: Dump["dataset"]) => rows.filter((row) => row.path !== "(FFFC,FFFC)");
      for (const d of compareRows(padding(a.dataset), padding(b.dataset))) diffs.push(`${label}: ${d}`);
    }
    await Promise.all([ours.clear(), theirs.clear()]);
  }
  return { diffs, compared, stderr };
}

const tmp = mkdtempSync(join(tmpdir(), "rtexport-realworld-"));
let corpus: RealWorldCorpus;
let orthancA: OrthancPeer, orthancB: OrthancPeer;
/** Where retrieve's C-MOVE receiver listens (Orthanc A knows it as RTX). */
let movePort: number;
let scpA: StorescpPeer, scpB: StorescpPeer, scpExplicitA: StorescpPeer, scpExplicitB: StorescpPeer, scpNative: StorescpPeer;

/** A storescp configuration whose every storage context accepts Explicit VR Little Endian only. */
function explicitOnlyConfig(): string {
  const sample = readFileSync(readdirSync("/etc/dcmtk").includes("storescp.cfg") ? "/etc/dcmtk/storescp.cfg" : "", "latin1");
  const contexts = sample.slice(sample.indexOf("[[PresentationContexts]]"), sample.indexOf("[[Profiles]]"))
    .replace(/\\(AnyTransferSyntax|UncompressedOrZlib|Uncompressed)\b/g, "\\ExplicitLittle");
  const config = [
    "[[TransferSyntaxes]]", "[ExplicitLittle]", "TransferSyntax1 = LittleEndianExplicit", "",
    contexts,
    "[[Profiles]]", "[ExplicitOnly]", "PresentationContexts = GenericStorageSCP", "",
  ].join("\n");
  const path = join(tmp, "storescp-explicit.cfg");
  writeFileSync(path, config);
  return path;
}

before(async () => {
  corpus = await buildRealWorldCorpus(join(tmp, "corpus"));
  const cfg = explicitOnlyConfig();
  const explicitArgs = ["-xf", cfg, "ExplicitOnly"];
  movePort = await freePort();
  [orthancA, orthancB, scpA, scpB, scpExplicitA, scpExplicitB, scpNative] = await Promise.all([
    startOrthanc({ aeTitle: "ORTHANC_A", modalities: [{ aeTitle: "RTX", host: "127.0.0.1", port: movePort }] }), startOrthanc({ aeTitle: "ORTHANC_B" }),
    startStorescp({ aeTitle: "SCP_A", acceptAll: true }), startStorescp({ aeTitle: "SCP_B", acceptAll: true }),
    startStorescp({ aeTitle: "EXPLICIT_A", args: explicitArgs }), startStorescp({ aeTitle: "EXPLICIT_B", args: explicitArgs }),
    startStorescp({ aeTitle: "NATIVE" }),
  ]);
});

after(async () => {
  await Promise.all([orthancA, orthancB, scpA, scpB, scpExplicitA, scpExplicitB, scpNative].map((p) => p?.stop()));
  rmSync(tmp, { recursive: true, force: true });
});

describe("real-world files, side by side with storescu", () => {
  test("Orthanc: every object storescu stores arrives from rtexport too, dcmdump-identical, transfer syntax included", async () => {
    const { diffs, compared, stderr } = await sideBySide(corpus.files, orthancSide("Orthanc A", orthancA, join(tmp, "oa")), orthancSide("Orthanc B", orthancB, join(tmp, "ob")));
    assert.deepEqual(diffs, []);
    assert.ok(compared >= 70, `compared ${compared}`);
    // pydicom's rtplan.dcm carries a meta header UID the data set contradicts: a warning names it.
    assert.match(stderr, /"[^"]*rtplan\.dcm": its meta header's Media Storage SOP Instance UID "1\.2\.999\.999\.99\.9\.9999\.9999\.20030903150023" differs from the data set's SOP Instance UID "1\.2\.777\.777\.77\.7\.7777\.7777\.20030903150023"; the data set's UIDs are sent/);
  });

  test("storescp: every object storescu stores arrives from rtexport too, dcmdump-identical, transfer syntax included", async () => {
    const { diffs, compared } = await sideBySide(corpus.files, storescpSide("storescp A", scpA), storescpSide("storescp B", scpB));
    assert.deepEqual(diffs, []);
    assert.ok(compared >= 70, `compared ${compared}`);
  });

  test("objects in their own syntax go out unchanged: implicit VR, big endian, deflate and compressed ones are streamed", async () => {
    const picks: CorpusFile[] = [];
    for (const ts of ["1.2.840.10008.1.2", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5"]) {
      picks.push(corpus.files.find((f) => f.transferSyntaxUid === ts && f.sopInstanceUid && !picks.some((p) => p.sopInstanceUid === f.sopInstanceUid))!);
    }
    const side = orthancSide("Orthanc A", orthancA, join(tmp, "oa"));
    const r = await pushWithRtexport(side, picks.map((f) => f.path));
    assert.equal(r.code, 0, r.stderr);
    for (const rec of r.records) assert.equal(rec.push.mode, "streamed", `${rec.path}: ${rec.push.mode}`);
    const arrived = await side.arrived();
    for (const f of picks) assert.equal(readDicomFile(arrived.get(f.sopInstanceUid!)!).transferSyntaxUid, f.transferSyntaxUid, f.name);
    await side.clear();
  });

  test("a peer that takes only Explicit VR Little Endian: implicit VR objects transcoded as DCMTK does (curves, private elements DCMTK knows keep their VRs)", async () => {
    const implicit = corpus.files.filter((f) => f.transferSyntaxUid === "1.2.840.10008.1.2");
    assert.ok(implicit.some((f) => f.path === corpus.curves));
    const ours = storescpSide("explicit-only A", scpExplicitA), theirs = storescpSide("explicit-only B", scpExplicitB);
    const diffs: string[] = [];
    for (const batch of uniqueUidBatches(implicit)) {
      const r = await pushWithRtexport(ours, batch.map((f) => f.path));
      for (const rec of r.records) if (rec.push.status === "stored") assert.equal(rec.push.mode, "transcoded", rec.path);
      // storescu's default proposal: the peer takes Explicit LE and storescu converts with DCMTK's dictionaries.
      await runDcmtk("storescu", ["-R", "-nh", "-aec", theirs.aeTitle, theirs.host, String(theirs.port), ...batch.map((f) => f.path)], 120_000);
      const [mine, dcmtk] = await Promise.all([ours.arrived(), theirs.arrived()]);
      const dumps = runDcmdumpMany([...mine.values(), ...dcmtk.values()]);
      for (const [uid, p] of dcmtk) {
        const m = mine.get(uid);
        if (!m) diffs.push(`${uid}: storescu stored it, rtexport did not`);
        else for (const d of compareRows(dumps.get(m)!.dataset, dumps.get(p)!.dataset)) diffs.push(`${uid}: ${d}`);
      }
      if (batch.some((f) => f.path === corpus.curves)) {
        const rows = dumps.get(mine.get("1.2.826.0.1.3680043.10.1467.12.1")!)!.dataset;
        const vr = (path: string) => rows.find((row) => row.path === path)?.vr;
        assert.deepEqual(
          ["(5000,3000)", "(5000,0030)", "(6000,0060)", "(0009,1001)", "(0009,1027)", "(0029,1001)"].map(vr),
          ["OB", "SH", "CS", "LO", "SL", "UN"],
          "curves and retired elements by the dictionary, GE's private elements by private.dic, an unknown private block UN",
        );
      }
      await Promise.all([ours.clear(), theirs.clear()]);
    }
    assert.deepEqual(diffs, []);
  });

  test("a truncated encapsulated file is refused before sending, with the reason, in well under a second", async () => {
    const side = storescpSide("storescp A", scpA);
    for (const path of corpus.truncated) {
      const started = performance.now();
      const r = await pushWithRtexport(side, [path]);
      const ms = performance.now() - started;
      assert.equal(r.code, 3);
      assert.equal(r.records[0].push.status, "failed");
      assert.match(r.records[0].push.error, /^Cannot read DICOM file ".*ct_jpeg_(no_delimiter|cut_fragment)\.dcm": .*(without its sequence delimiter|extends beyond the end of the file).*truncated/);
      assert.ok(ms < 500, `${ms} ms`);
      assert.match(r.stderr, /truncated/);
    }
    assert.deepEqual([...(await side.arrived()).keys()], []);
    // storescu refuses them too.
    const dcmtk = await runDcmtk("storescu", ["-aec", side.aeTitle, side.host, String(side.port), corpus.truncated[0]]);
    assert.notEqual(dcmtk.code, 0);
    assert.deepEqual([...(await side.arrived()).keys()], []);
  });
});

describe("presentation contexts", () => {
  const IMPLICIT = "1.2.840.10008.1.2", EXPLICIT = "1.2.840.10008.1.2.1", JPEG_LS = "1.2.840.10008.1.2.4.80";
  test("one per SOP class and transfer syntax, proposing it alone, plus Explicit and Implicit VR Little Endian per class", () => {
    const ct = "1.2.840.10008.5.1.4.1.1.2", plan = "1.2.840.10008.5.1.4.1.1.481.5";
    assert.deepEqual(storageContexts([
      { sopClassUid: ct, transferSyntaxUid: IMPLICIT }, { sopClassUid: ct, transferSyntaxUid: JPEG_LS },
      { sopClassUid: ct, transferSyntaxUid: IMPLICIT }, { sopClassUid: plan, transferSyntaxUid: EXPLICIT },
    ]), [
      { abstractSyntax: ct, transferSyntaxes: [IMPLICIT] }, { abstractSyntax: ct, transferSyntaxes: [JPEG_LS] },
      { abstractSyntax: plan, transferSyntaxes: [EXPLICIT] },
      { abstractSyntax: ct, transferSyntaxes: [EXPLICIT, IMPLICIT] }, { abstractSyntax: plan, transferSyntaxes: [EXPLICIT, IMPLICIT] },
    ]);
  });

  test("objects too mixed for the 128 contexts of one association (serve's C-MOVE) get folded contexts, every object with a context of its syntax", () => {
    const objects = [];
    for (let i = 0; i < 50; i++) {
      for (const ts of [IMPLICIT, EXPLICIT]) objects.push({ sopClassUid: `1.2.826.0.1.3680043.10.1467.12.7.${i}`, transferSyntaxUid: ts });
    }
    objects.push({ sopClassUid: "1.2.826.0.1.3680043.10.1467.12.7.0", transferSyntaxUid: JPEG_LS });
    assert.equal(storageContexts(objects).length, 151);
    const contexts = storageContextsWithin(objects);
    assert.equal(contexts.length, 51);
    for (const o of objects) {
      assert.ok(contexts.some((c) => c.abstractSyntax === o.sopClassUid && c.transferSyntaxes.includes(o.transferSyntaxUid)), `${o.sopClassUid} ${o.transferSyntaxUid}`);
    }
    assert.deepEqual(contexts.find((c) => c.transferSyntaxes.includes(JPEG_LS))!.transferSyntaxes, [JPEG_LS]);
    assert.deepEqual(contexts[0].transferSyntaxes, [IMPLICIT, EXPLICIT]);
  });
});

describe("compressed objects and peers that take only uncompressed syntaxes", () => {
  test("push decodes JPEG Lossless, JPEG-LS, JPEG 2000 and RLE for storescp without compressed syntaxes: pixels equal gdcmconv --raw's; lossy objects fail with the reason", async () => {
    const side = storescpSide("native-only storescp", scpNative);
    const diffs: string[] = [];
    for (const batch of uniqueUidBatches(corpus.compressed)) {
      const r = await pushWithRtexport(side, batch.map((f) => f.path));
      assert.equal(r.code, 0, r.stderr);
      const arrived = await side.arrived();
      for (const f of batch) {
        const rec = r.records.find((x) => x.path === f.path)!;
        assert.equal(rec.push.mode, "transcoded", f.name);
        const copy = arrived.get(f.sopInstanceUid!);
        if (!copy) {
          diffs.push(`${f.name}: not received`);
          continue;
        }
        const ts = readDicomFile(copy).transferSyntaxUid;
        if (ts !== "1.2.840.10008.1.2.1" && ts !== "1.2.840.10008.1.2") diffs.push(`${f.name}: arrived in ${ts}`);
        if (Buffer.compare(pixelBytes(copy), pixelBytes(f.reference)) !== 0) diffs.push(`${f.name}: decoded pixels differ from gdcmconv --raw's`);
      }
      await side.clear();
    }
    assert.deepEqual(diffs, []);
    // Each codec on the clinic's and pydicom's images (GDCM refuses a few combinations: 32-bit JPEG, odd RGB RLE …).
    for (const o of ["gdcmconv --jpeg", "gdcmconv --jpegls", "gdcmconv --j2k", "gdcmconv --rle"]) {
      const n = corpus.compressed.filter((f) => f.origin === o).length;
      assert.ok(n >= 5, `${o}: ${n} files`);
    }

    const lossy = await pushWithRtexport(side, corpus.lossy.map((f) => f.path));
    assert.equal(lossy.code, 3);
    for (const rec of lossy.records) {
      assert.equal(rec.push.status, "failed");
      assert.match(rec.push.error, /does not accept .* in JPEG .* \(it accepted .*\), and JPEG .* is lossy: its pixels are never decoded to be sent/);
    }
    assert.deepEqual([...(await side.arrived()).keys()], []);
  });

  for (const how of ["C-GET", "C-MOVE"]) {
    test(`retrieve by ${how} fetches every compressed variant from Orthanc in its own syntax`, async () => {
      // Every variant as its own series and instance of one patient (GDCM keeps the source's UIDs).
      const dir = join(tmp, `retrieve-src-${how}`);
      mkdirSync(dir, { recursive: true });
      const patientId = "RW-COMPRESSED";
      const uploaded: { name: string; series: string; sop: string; ts: string }[] = [];
      for (const [i, f] of corpus.compressed.entries()) {
        const copy = join(dir, `${i}.dcm`);
        copyFileSync(f.path, copy);
        const series = `1.2.826.0.1.3680043.10.1467.12.9.${i}`;
        const r = await runDcmtk("dcmodify", ["-q", "-nb", "-m", `(0010,0020)=${patientId}`, "-m", `(0020,000E)=${series}`, "-m", `(0008,0018)=${series}.1`, copy]);
        assert.equal(r.code, 0, r.stderr);
        const res = await fetch(`http://127.0.0.1:${orthancA.httpPort}/instances`, { method: "POST", body: readFileSync(copy) });
        assert.equal(res.status, 200, await res.text());
        uploaded.push({ name: f.name, series, sop: `${series}.1`, ts: f.transferSyntaxUid });
      }
      const out = join(tmp, `retrieve-out-${how}`);
      const mode = how === "C-GET" ? ["--get"] : ["--move-port", String(movePort), "--move-host", "127.0.0.1"];
      const r = await runMainCaptured(retrieve, [
        "--host", "127.0.0.1", "--port", String(orthancA.port), "--aec", orthancA.aeTitle, "--aet", "RTX", ...mode, "--patient-id", patientId, "--out", out,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const files = r.records.filter((x) => x.type === "file");
      const diffs: string[] = [];
      for (const u of uploaded) {
        const rec = files.find((x) => x.sopInstanceUid === u.sop);
        if (!rec) diffs.push(`${u.name}: not retrieved`);
        else if (rec.transferSyntaxUid !== u.ts) diffs.push(`${u.name}: arrived in ${rec.transferSyntaxUid}, not ${u.ts}`);
        else if (readDicomFile(String(rec.path)).transferSyntaxUid !== u.ts) diffs.push(`${u.name}: written in another syntax`);
      }
      assert.deepEqual(diffs, []);
      assert.equal(files.length, uploaded.length);
      await orthancSide("Orthanc A", orthancA, join(tmp, "oa")).clear();
    });
  }

  test("serve decodes for peers that take only uncompressed syntaxes: C-GET to getscu, C-MOVE to storescp", async () => {
    const native = storescpSide("native-only storescp", scpNative);
    const diffs: string[] = [];
    /** A decoded copy's syntax and pixels against gdcmconv --raw's. */
    const check = (f: (typeof corpus.compressed)[number], copy: string | undefined, how: string) => {
      if (!copy) return diffs.push(`${f.name}: nothing arrived by ${how}`);
      const ts = readDicomFile(copy).transferSyntaxUid;
      if (ts !== "1.2.840.10008.1.2.1" && ts !== "1.2.840.10008.1.2") diffs.push(`${f.name}: arrived by ${how} in ${ts}`);
      else if (Buffer.compare(pixelBytes(copy), pixelBytes(f.reference)) !== 0) diffs.push(`${f.name}: pixels by ${how} differ from gdcmconv --raw's`);
    };
    // serve keeps one object per (patient, UID): one served folder per batch of distinct UIDs.
    for (const [b, batch] of uniqueUidBatches(corpus.compressed).entries()) {
      const dir = join(tmp, `served-${b}`);
      mkdirSync(dir, { recursive: true });
      for (const [i, f] of batch.entries()) copyFileSync(f.path, join(dir, `${i}.dcm`));
      const node: QrScp = await startQrScp({
        dir, aeTitle: "RTSERVE", host: "127.0.0.1", port: 0, allowedCallingAets: ["GETSCU"],
        moveDestinations: { NATIVE: { host: scpNative.host, port: scpNative.port } },
      });
      try {
        const out = join(tmp, `getscu-out-${b}`);
        mkdirSync(out, { recursive: true });
        for (const f of batch) {
          const ds = readDicomFile(f.path).dataset;
          const keys = [
            "-k", "0008,0052=IMAGE", "-k", `0010,0020=${ds.string(0x00100020) ?? ""}`, "-k", `0020,000D=${ds.string(0x0020000d)}`,
            "-k", `0020,000E=${ds.string(0x0020000e)}`, "-k", `0008,0018=${f.sopInstanceUid}`,
          ];
          // getscu proposes only uncompressed syntaxes unless told otherwise.
          await runDcmtk("getscu", ["-S", "-aet", "GETSCU", "-aec", "RTSERVE", "-od", out, ...keys, "127.0.0.1", String(node.port)]);
          check(f, readdirSync(out).filter((n) => n.includes(f.sopInstanceUid!)).map((n) => join(out, n))[0], "C-GET");
          await runDcmtk("movescu", ["-S", "-aet", "GETSCU", "-aec", "RTSERVE", "-aem", "NATIVE", ...keys, "127.0.0.1", String(node.port)]);
          check(f, (await native.arrived()).get(f.sopInstanceUid!), "C-MOVE");
          await native.clear();
        }
      } finally {
        await node.close();
      }
    }
    assert.deepEqual(diffs, []);
  });
});

/** A stage's records and its warnings. */
async function collect(run: (onEvent: (e: StageEvent) => void) => AsyncIterable<RtRecord>): Promise<{ records: RtRecord[]; warnings: string[] }> {
  const warnings: string[] = [];
  const records: RtRecord[] = [];
  for await (const r of run((e) => e.type === "message" && e.level === "warn" && warnings.push(e.text))) records.push(r);
  return { records, warnings };
}

describe("the data set is authoritative", () => {
  const rtplan = join(PYDICOM_DATA, "test_files", "rtplan.dcm");
  const dataSetUid = "1.2.777.777.77.7.7777.7777.20030903150023";
  const warning = /"[^"]*rtplan\.dcm": its meta header's Media Storage SOP Instance UID "1\.2\.999[^"]*" differs from the data set's SOP Instance UID "1\.2\.777[^"]*"/;

  test("show and search name the object by its data set and warn about the meta header", async () => {
    const shown = await collect((onEvent) => showRecords([rtplan], { onEvent }));
    assert.equal(shown.records.find((r) => r.type === "plan")?.sopInstanceUid, dataSetUid);
    assert.match(shown.warnings.join("\n"), warning);
    const found = await collect((onEvent) => searchFiles([rtplan], { tags: ["Modality=RTPLAN"], onEvent }));
    assert.equal(found.records[0].sopInstanceUid, dataSetUid);
    assert.match(found.warnings.join("\n"), warning);
  });

  test("transcode and anonymize correct the meta header in the file they write, and warn", async () => {
    const out = join(tmp, "authoritative");
    const t = await collect((onEvent) => transcodeFiles(pathRecords([rtplan]), { to: "1.2.840.10008.1.2.1", out, onEvent }));
    const written = readDicomFile(String(t.records[0].path));
    assert.equal(written.meta.string(0x00020003), dataSetUid);
    assert.match(t.warnings.join("\n"), /rtplan\.dcm": its meta header's .* corrected in /);
    const a = await collect((onEvent) => anonymizeRecords(pathRecords([rtplan]), { key: "a key of at least sixteen bytes", out: join(out, "anon"), onEvent }));
    const anon = readDicomFile(String(a.records[0].path));
    assert.equal(anon.meta.string(0x00020003), anon.dataset.string(0x00080018));
    assert.match(a.warnings.join("\n"), /rtplan\.dcm": its meta header names another SOP class or instance than its data set/);
    assert.doesNotMatch(a.warnings.join("\n"), /1\.2\.777|1\.2\.999/, "no original UIDs in anonymize's messages");
  });
});

describe("show keys everything by patient and UID", () => {
  /** Copies `src` into `dir` as `name` with elements changed by dcmodify (meta header updated). */
  async function variant(dir: string, src: string, name: string, changes: Record<string, string>): Promise<string> {
    mkdirSync(dir, { recursive: true });
    const path = join(dir, name);
    copyFileSync(src, path);
    const r = await runDcmtk("dcmodify", ["-q", "-nb", ...Object.entries(changes).flatMap(([k, v]) => ["-i", `${k}=${v}`]), path]);
    assert.equal(r.code, 0, r.stderr);
    return path;
  }

  test("one SOP Instance UID in two patients with different content: each plan under its patient, a warning naming both files", async () => {
    const [a, b] = corpus.sameUidTwoPatients;
    const uidWarnings = (w: string[]) => w.filter((x) => /^SOP Instance UID /.test(x));
    const shown = await collect((onEvent) => showRecords([a, b], { onEvent }));
    const plans = shown.records.filter((r) => r.type === "plan");
    assert.deepEqual(plans.map((p) => [p.patientId, p.label]), [["RW-OTHER", "OtherPlan"], ["id00001", "Plan1"]].sort());
    const warnings = uidWarnings(shown.warnings);
    assert.equal(warnings.length, 1, shown.warnings.join("\n"));
    assert.ok(warnings[0].includes(`"${a}"`) && warnings[0].includes(`"${b}"`), warnings[0]);
    assert.match(warnings[0], /SOP Instance UID 1\.2\.777\.777\.77\.7\.7777\.7777\.20030903150023 .*different patients/);
    // The same file twice is no conflict.
    assert.deepEqual(uidWarnings((await collect((onEvent) => showRecords([a, a], { onEvent }))).warnings), []);
  });

  test("doses of several patients in one series stay with their patients; a plan finds its structure set only in its own patient", async () => {
    const dir = join(tmp, "show-keys");
    const dose = join(PYDICOM_DATA, "test_files", "rtdose_1frame.dcm");
    const doses: string[] = [];
    for (const [i, pid] of ["P-A", "P-B", "P-C"].entries()) {
      doses.push(await variant(dir, dose, `dose${i}.dcm`, { "(0010,0020)": pid, "(0008,0018)": `1.2.826.0.1.3680043.10.1467.12.5.${i}` }));
    }
    const ss = join(PYDICOM_DATA, "test_files", "rtstruct.dcm");
    const planSs = "1.2.333.444.55.6.7777.88888";
    // The plan's structure set UID, held by another patient, and (a structure set whose Modality says RTDOSE) by the plan's own.
    const foreign = await variant(dir, ss, "ss_foreign.dcm", { "(0010,0020)": "P-A", "(0008,0018)": planSs });
    const plan = join(PYDICOM_DATA, "test_files", "rtplan.dcm");
    const lonely = await collect(() => showRecords([...doses, foreign, plan]));
    const byPatient = new Map(lonely.records.filter((r) => r.type === "unconnected").map((r) => [r.patientId, r]));
    for (const pid of ["P-A", "P-B", "P-C"]) {
      const objects = (byPatient.get(pid)?.objects ?? []) as { modality?: string; count: number }[];
      assert.deepEqual(objects.filter((o) => o.modality === "RTDOSE").map((o) => o.count), [1], pid);
    }
    const p1 = lonely.records.find((r) => r.type === "plan")!;
    assert.equal((p1.structureSet as { missing?: boolean }).missing, true, "another patient's structure set is not this plan's");
    const own = await variant(dir, ss, "ss_own.dcm", { "(0010,0020)": "id00001", "(0008,0018)": planSs, "(0008,0060)": "RTDOSE" });
    assert.equal(summarizeObject(readDicomFile(own)).kind, "structureSet", "classified by SOP Class, not by Modality");
    const found = await collect(() => showRecords([...doses, foreign, own, plan]));
    const p2 = found.records.find((r) => r.type === "plan")!;
    assert.equal((p2.structureSet as { missing?: boolean; sopInstanceUid: string }).missing, undefined);
    assert.equal((p2.structureSet as { path?: string }).path, own);
  });
});
