// The network core against real DICOM implementations, both ways:
//   DCMTK echoscu/storescu/findscu/getscu/movescu → our SCP framework;
//   our SCU (store, find, move, get) → Orthanc (REST confirms) and DCMTK storescp.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataSet, textElement } from "../lib/dicom/dataset.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, VERIFICATION_SOP_CLASS } from "../lib/dicom/uids.ts";
import { generateClinic } from "../lib/fixtures/mod.ts";
import {
  connect, createScp, echo, find, get, move, QR_MODELS, type Scp, storageContexts, store, type StoreSource,
  storeSourceFromFile,
} from "../lib/net/mod.ts";
import { compareRows, runDcmdumpMany } from "./_dcmdump.ts";
import { type OrthancPeer, runDcmtk, startOrthanc, startStorescp, type StorescpPeer } from "./_peers.ts";

function dicomFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith(".dcm")) out.push(join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
  }
  return out.sort();
}

function text(ds: DataSet, tag: number, vr: string, value: string): void {
  ds.set(textElement(tag, vr, value));
}

function studyQuery(level: string, fields: Record<number, [string, string]>): DataSet {
  const ds = new DataSet();
  text(ds, 0x00080052, "CS", level);
  for (const [tag, [vr, v]] of Object.entries(fields)) text(ds, Number(tag), vr, v);
  return ds;
}

describe("network interop", () => {
  let dir: string;
  let files: string[];
  let sources: StoreSource[];
  let studyUid: string;
  let studyFiles: string[];
  let scp: Scp;
  let received: string[];
  let orthanc: OrthancPeer;
  let storescp: StorescpPeer;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "rtexport-net-"));
    await generateClinic({ out: join(dir, "clinic"), patients: 1, slices: 3 });
    files = dicomFiles(join(dir, "clinic"));
    sources = files.map(storeSourceFromFile);
    const ct = files.find((f) => f.includes("/CT/"))!;
    studyUid = readDicomFile(ct).dataset.string(0x0020000d)!;
    studyFiles = files.filter((f) => readDicomFile(f).dataset.string(0x0020000d) === studyUid);
    storescp = await startStorescp();
    received = [];
    const inbox = join(dir, "inbox");
    mkdirSync(inbox);
    scp = await createScp({
      aeTitle: "OURSCP",
      host: "127.0.0.1",
      storeDir: inbox,
      handlers: {
        store: ({ file }) => {
          const dest = join(inbox, `${file.sopInstanceUid}.dcm`);
          renameSync(file.path, dest);
          received.push(dest);
          return { status: 0 };
        },
        find: function* ({ level, identifier }) {
          if (level !== "STUDY") return;
          const want = identifier.string(0x0020000d);
          if (want && want !== studyUid) return;
          yield studyQuery("STUDY", { 0x0020000d: ["UI", studyUid], 0x00100020: ["LO", "RTX0001"] });
        },
        get: ({ identifier }) => ({
          instances: identifier.string(0x0020000d) === studyUid ? studyFiles.map(storeSourceFromFile) : [],
        }),
        move: ({ destination, identifier }) => ({
          destination: destination === storescp.aeTitle ? { host: "127.0.0.1", port: storescp.port, aeTitle: storescp.aeTitle } : undefined,
          instances: identifier.string(0x0020000d) === studyUid ? studyFiles.map(storeSourceFromFile) : [],
        }),
      },
    });
    orthanc = await startOrthanc({ modalities: [{ aeTitle: "OURSCP", host: "127.0.0.1", port: scp.port }] });
  });

  after(async () => {
    await Promise.all([scp?.close(), orthanc?.stop(), storescp?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  test("echoscu → our SCP", async () => {
    const r = await runDcmtk("echoscu", ["-aec", "OURSCP", "127.0.0.1", String(scp.port)]);
    assert.equal(r.code, 0, r.stderr);
  });

  test("storescu → our SCP: every file arrives; dcmdump of each equals the source", async () => {
    received.length = 0;
    const r = await runDcmtk("storescu", ["-aec", "OURSCP", "127.0.0.1", String(scp.port), ...files]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(received.length, files.length);
    const dumps = runDcmdumpMany([...files, ...received]);
    for (const f of files) {
      const uid = readDicomFile(f).dataset.string(0x00080018)!;
      const copy = received.find((p) => p.endsWith(`/${uid}.dcm`))!;
      assert.ok(copy, f);
      assert.deepEqual(compareRows(dumps.get(copy)!.dataset, dumps.get(f)!.dataset), [], f);
    }
  });

  test("findscu → our SCP (Study Root, STUDY level)", async () => {
    const out = join(dir, "find");
    mkdirSync(out);
    const r = await runDcmtk("findscu", ["-S", "-aec", "OURSCP", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", "-k", "PatientID", "-X", "-od", out, "127.0.0.1", String(scp.port)]);
    assert.equal(r.code, 0, r.stderr);
    const rsp = readdirSync(out);
    assert.equal(rsp.length, 1);
    const ds = readDicomFile(join(out, rsp[0])).dataset;
    assert.equal(ds.string(0x0020000d), studyUid);
    assert.equal(ds.string(0x00100020), "RTX0001");
  });

  test("getscu → our SCP: C-GET sends the study back on the same association", async () => {
    const out = join(dir, "get");
    mkdirSync(out);
    const r = await runDcmtk("getscu", ["-S", "-aec", "OURSCP", "-k", "QueryRetrieveLevel=STUDY", "-k", `StudyInstanceUID=${studyUid}`, "-od", out, "127.0.0.1", String(scp.port)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readdirSync(out).length, studyFiles.length);
  });

  test("movescu → our SCP → storescp: C-MOVE sub-operations reach the destination", async () => {
    const before = readdirSync(storescp.outDir).length;
    const r = await runDcmtk("movescu", ["-S", "-aec", "OURSCP", "-aem", storescp.aeTitle, "-k", "QueryRetrieveLevel=STUDY", "-k", `StudyInstanceUID=${studyUid}`, "127.0.0.1", String(scp.port)]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readdirSync(storescp.outDir).length - before, studyFiles.length);
  });

  test("movescu to an unknown destination gets 0xA801", async () => {
    const r = await runDcmtk("movescu", ["-v", "-S", "-aec", "OURSCP", "-aem", "NOBODY", "-k", "QueryRetrieveLevel=STUDY", "-k", `StudyInstanceUID=${studyUid}`, "127.0.0.1", String(scp.port)]);
    assert.match(r.stderr, /Final Move Response \(Refused: MoveDestinationUnknown\)/);
  });

  test("breaking out of find() sends C-CANCEL; the association stays usable", async () => {
    let yielded = 0;
    const many = await createScp({
      aeTitle: "MANY",
      host: "127.0.0.1",
      handlers: {
        find: async function* ({ cancelled }) {
          for (let i = 0; i < 1000; i++) {
            if (cancelled()) return;
            yielded++;
            await new Promise((r) => setTimeout(r, 1));
            yield studyQuery("STUDY", { 0x0020000d: ["UI", `1.2.3.${i}`] });
          }
        },
      },
    });
    try {
      const assoc = await connect({
        host: "127.0.0.1", port: many.port, callingAet: "ME", calledAet: "MANY",
        contexts: [
          { abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] },
          { abstractSyntax: QR_MODELS.studyRoot.find, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] },
        ],
      });
      try {
        let n = 0;
        for await (const _ of find(assoc, QR_MODELS.studyRoot.find, studyQuery("STUDY", { 0x0020000d: ["UI", ""] }))) {
          if (++n === 3) break;
        }
        // The SCP handles one request at a time: once the echo is answered, the find is over,
        // and it stopped early only if the C-CANCEL arrived (the framework or the handler saw it).
        assert.equal(await echo(assoc), 0);
        assert.ok(yielded < 1000, `the SCP produced ${yielded} matches`);
      } finally {
        await assoc.release();
      }
    } finally {
      await many.close();
    }
  });

  test("our SCU → Orthanc: echo, store, find, move back to us, get", async () => {
    const assoc = await connect({
      host: "127.0.0.1", port: orthanc.port, callingAet: "OURSCP", calledAet: orthanc.aeTitle,
      contexts: [
        { abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] },
        { abstractSyntax: QR_MODELS.studyRoot.find, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN] },
        { abstractSyntax: QR_MODELS.studyRoot.move, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN] },
        ...storageContexts(sources),
      ],
    });
    try {
      assert.equal(await echo(assoc), 0);
      for (const s of sources) assert.equal((await store(assoc, s)).status, 0, s.path ?? "");
      const ids: string[] = await orthanc.rest("/instances");
      assert.equal(ids.length, files.length);

      const matches: DataSet[] = [];
      for await (const m of find(assoc, QR_MODELS.studyRoot.find, studyQuery("STUDY", { 0x0020000d: ["UI", ""], 0x00100020: ["LO", ""] }))) matches.push(m);
      const studies = new Set(files.map((f) => readDicomFile(f).dataset.string(0x0020000d)));
      assert.equal(matches.length, studies.size);
      assert.ok(matches.some((m) => m.string(0x0020000d) === studyUid));

      received.length = 0;
      let final;
      for await (const p of move(assoc, QR_MODELS.studyRoot.move, studyQuery("STUDY", { 0x0020000d: ["UI", studyUid] }), "OURSCP")) final = p;
      assert.equal(final?.status, 0);
      assert.equal(final?.completed, studyFiles.length);
      assert.equal(received.length, studyFiles.length);
    } finally {
      await assoc.release();
    }

    // C-GET: storage contexts with the SCP role, objects streamed into storeDir.
    const getDir = join(dir, "orthanc-get");
    mkdirSync(getDir);
    const classes = [...new Set(sources.map((s) => s.sopClassUid))];
    const g = await connect({
      host: "127.0.0.1", port: orthanc.port, callingAet: "OURSCP", calledAet: orthanc.aeTitle,
      contexts: [
        { abstractSyntax: QR_MODELS.studyRoot.get, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN] },
        ...classes.map((c) => ({ abstractSyntax: c, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN] })),
      ],
      roles: classes.map((c) => ({ sopClassUid: c, scu: false, scp: true })),
    });
    g.storeDir = getDir;
    const got: string[] = [];
    try {
      let final;
      for await (const p of get(g, QR_MODELS.studyRoot.get, studyQuery("STUDY", { 0x0020000d: ["UI", studyUid] }), (file) => {
        const dest = join(getDir, `${file.sopInstanceUid}.dcm`);
        renameSync(file.path, dest);
        got.push(dest);
        return { status: 0 };
      })) final = p;
      assert.equal(final?.status, 0);
    } finally {
      await g.release();
    }
    assert.equal(got.length, studyFiles.length);
    // No temporary files left behind, every file complete.
    assert.deepEqual(readdirSync(getDir).filter((n) => n.endsWith(".part")), []);
    for (const p of got) assert.ok(statSync(p).size > 132);
  });
});
