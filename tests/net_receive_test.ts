// The streaming receive path of lib/net: PDUs and PDV headers split anywhere between socket
// reads, several PDVs in one PDU, data sets written to disk as they arrive and hashed, reused
// read buffers (requestor sockets), no temporary file left once the release is answered.
// The peers are raw TCP endpoints on loopback that write hand-made PDUs in small pieces.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataSet } from "../lib/dicom/dataset.ts";
import { parseDataSet, readDicomFile } from "../lib/dicom/reader.ts";
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from "../lib/dicom/uids.ts";
import { encodeDataSet } from "../lib/dicom/writer.ts";
import { connect, type ReceivedFile } from "../lib/net/association.ts";
import { C_FIND_RSP, C_STORE_RQ, C_STORE_RSP, decodeCommand, encodeCommand } from "../lib/net/dimse.ts";
import {
  type AssociateRq, decodePdu, encodeAssociate, encodeReleaseRp, encodeReleaseRq, type Pdu, PDU_ASSOCIATE_AC,
  PDU_ASSOCIATE_RQ, PDU_P_DATA_TF, PDU_RELEASE_RP, PDU_RELEASE_RQ,
} from "../lib/net/pdu.ts";
import { createScp, type Scp } from "../lib/net/scp.ts";
import { FileSink, TempFiles } from "../lib/net/sinks.ts";
import { find, QR_MODELS } from "../lib/net/scu.ts";

const CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2";
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "rtexport-net-rx-"));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads whole PDUs from a raw socket; every wait is bounded. */
class PduReader {
  private buf = new Uint8Array(0);
  private waiting: (() => void) | undefined;
  private ended = false;
  constructor(socket: net.Socket) {
    socket.on("data", (c: Uint8Array) => {
      const b = new Uint8Array(this.buf.length + c.length);
      b.set(this.buf);
      b.set(c, this.buf.length);
      this.buf = b;
      this.waiting?.();
    });
    socket.on("close", () => {
      this.ended = true;
      this.waiting?.();
    });
  }
  async next(timeoutMs = 5000): Promise<Pdu> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buf.length >= 6) {
        const len = new DataView(this.buf.buffer, this.buf.byteOffset).getUint32(2);
        if (this.buf.length >= len + 6) {
          const bytes = this.buf.slice(0, len + 6);
          this.buf = this.buf.slice(len + 6);
          return decodePdu(bytes);
        }
      }
      if (this.ended) throw new Error("connection closed while a PDU was expected");
      const left = deadline - Date.now();
      if (left <= 0) throw new Error("no PDU within the time limit");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiting = () => {
          clearTimeout(t);
          this.waiting = undefined;
          resolve();
        };
      });
    }
  }
}

/** A P-DATA-TF PDU holding the given PDVs. */
function pdata(pdvs: { contextId: number; command: boolean; last: boolean; data: Uint8Array }[]): Uint8Array {
  const len = pdvs.reduce((n, p) => n + 6 + p.data.length, 0);
  const out = new Uint8Array(6 + len);
  const dv = new DataView(out.buffer);
  out[0] = PDU_P_DATA_TF;
  dv.setUint32(2, len);
  let o = 6;
  for (const p of pdvs) {
    dv.setUint32(o, p.data.length + 2);
    out[o + 4] = p.contextId;
    out[o + 5] = (p.command ? 1 : 0) | (p.last ? 2 : 0);
    out.set(p.data, o + 6);
    o += 6 + p.data.length;
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Writes `bytes` in pieces ending at `cuts` (offsets), pausing between pieces so that they
 * arrive in separate reads: headers split after 1, 3, 5 … bytes.
 */
async function writeSplit(socket: net.Socket, bytes: Uint8Array, cuts: number[]): Promise<void> {
  let from = 0;
  for (const c of [...new Set(cuts)].filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b)) {
    socket.write(bytes.subarray(from, c));
    from = c;
    await sleep(2);
  }
  socket.write(bytes.subarray(from));
}

/** Cut points around every PDU and PDV header of a P-DATA stream, plus some inside the data. */
function awkwardCuts(pdus: Uint8Array[]): number[] {
  const cuts: number[] = [];
  let base = 0;
  for (const p of pdus) {
    const dv = new DataView(p.buffer, p.byteOffset, p.byteLength);
    cuts.push(base + 1, base + 3, base + 5, base + 6);
    let o = 6;
    while (o < p.length) {
      const n = dv.getUint32(o);
      cuts.push(base + o + 1, base + o + 4, base + o + 5, base + o + 6, base + o + 7, base + o + 6 + Math.floor((n - 2) / 2));
      o += 4 + n;
    }
    base += p.length;
  }
  return cuts;
}

function ctDataSet(uid: string, pixelBytes: number): DataSet {
  const ds = new DataSet({ littleEndian: true, explicitVR: true });
  const str = (tag: number, vr: string, s: string, pad = 0x20) => {
    const b = new TextEncoder().encode(s.length % 2 ? s + String.fromCharCode(pad) : s);
    ds.set({ tag, vr, value: b, offset: 0, length: b.length });
  };
  str(0x00080016, "UI", CT_IMAGE_STORAGE, 0);
  str(0x00080018, "UI", uid, 0);
  str(0x00080060, "CS", "CT");
  str(0x00100020, "LO", "RX-TEST");
  str(0x00291010, "LO", "private value"); // a private element: must arrive too
  const px = new Uint8Array(pixelBytes);
  for (let i = 0; i < px.length; i++) px[i] = (i * 7 + (i >> 9)) & 0xff;
  ds.set({ tag: 0x7fe00010, vr: "OW", value: px, offset: 0, length: px.length });
  return ds;
}

/** A raw TCP association to the SCP "RXTEST" at `port` with one CT Image Storage context (accepted). */
async function rawStoreAssociation(port: number, maxPduLength: number): Promise<{ socket: net.Socket; reader: PduReader }> {
  const socket = net.connect({ host: "127.0.0.1", port });
  socket.setNoDelay(true);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  try {
    const reader = new PduReader(socket);
    const rq: AssociateRq = {
      type: PDU_ASSOCIATE_RQ, protocolVersion: 1, calledAet: "RXTEST", callingAet: "RAWSCU",
      applicationContext: "1.2.840.10008.3.1.1.1",
      contexts: [{ id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] }],
      user: { maxPduLength, implementationClassUid: "1.2.3.4", roles: [], other: [] },
    };
    socket.write(encodeAssociate(rq));
    const ac = await reader.next();
    assert.equal(ac.type, PDU_ASSOCIATE_AC);
    assert.equal(ac.type === PDU_ASSOCIATE_AC && ac.contexts[0].result, 0);
    return { socket, reader };
  } catch (e) {
    socket.destroy();
    throw e;
  }
}

describe("receive path: PDUs split anywhere between reads", () => {
  test("SCP: a C-STORE whose PDU and PDV headers are split across reads is stored byte for byte, hashed, and no temporary file outlives the release", async () => {
    const storeDir = tempDir();
    const keep = tempDir();
    const stored: { path: string; sha256?: string; size: number }[] = [];
    const scp: Scp = await createScp({
      aeTitle: "RXTEST",
      host: "127.0.0.1",
      port: 0,
      storeDir,
      hashReceived: true,
      handlers: {
        store: ({ file }) => {
          const dest = join(keep, `${stored.length}.dcm`);
          renameSync(file.path, dest);
          stored.push({ path: dest, sha256: file.sha256, size: file.size });
          return { status: 0 };
        },
      },
    });
    let socket: net.Socket | undefined;
    try {
      const raw = await rawStoreAssociation(scp.port, 16384);
      socket = raw.socket;
      const reader = raw.reader;

      // Two objects: from the second on, the file for the next one is opened ahead, so one
      // exists when the release comes.
      for (const [n, uid] of ["2.25.4242", "2.25.4343"].entries()) {
        const data = encodeDataSet(ctDataSet(uid, 300_000), EXPLICIT_VR_LITTLE_ENDIAN);
        const command = encodeCommand({ commandField: C_STORE_RQ, messageId: 7 + n, affectedSopClassUid: CT_IMAGE_STORAGE, affectedSopInstanceUid: uid, priority: 0, hasDataSet: true });
        // The command in two fragments; the first data PDV in the same PDU as the end of the
        // command; two data PDVs in one PDU; a PDV without data in the middle.
        const a = 1000;
        const b = 150_000;
        const c = 80_000;
        const pdus = [
          pdata([{ contextId: 1, command: true, last: false, data: command.subarray(0, 20) }]),
          pdata([
            { contextId: 1, command: true, last: true, data: command.subarray(20) },
            { contextId: 1, command: false, last: false, data: data.subarray(0, a) },
          ]),
          pdata([{ contextId: 1, command: false, last: false, data: data.subarray(a, b) }]),
          pdata([{ contextId: 1, command: false, last: false, data: new Uint8Array(0) }]),
          pdata([
            { contextId: 1, command: false, last: false, data: data.subarray(b, b + c) },
            { contextId: 1, command: false, last: true, data: data.subarray(b + c) },
          ]),
        ];
        await writeSplit(socket, concat(pdus), awkwardCuts(pdus));
        const rsp = await reader.next();
        assert.equal(rsp.type, PDU_P_DATA_TF);
        const rspCommand = decodeCommand(concat(rsp.type === PDU_P_DATA_TF ? rsp.pdvs.map((p) => p.data) : []));
        assert.equal(rspCommand.commandField, C_STORE_RSP);
        assert.equal(rspCommand.messageIdBeingRespondedTo, 7 + n);
        assert.equal(rspCommand.status, 0);

        assert.equal(stored.length, n + 1);
        const bytes = readFileSync(stored[n].path);
        assert.equal(stored[n].size, bytes.length);
        assert.deepEqual(new Uint8Array(bytes.subarray(bytes.length - data.length)), data, "the data set bytes as sent");
        assert.equal(stored[n].sha256, createHash("sha256").update(bytes).digest("hex"));
        const f = readDicomFile(stored[n].path, { full: true });
        assert.equal(f.meta.string(0x00020003), uid);
        assert.equal(f.dataset.string(0x00291010), "private value");
        assert.equal(f.dataset.get(0x7fe00010)?.value?.length, 300_000);
      }
      await sleep(50); // let the files opened ahead be created
      const ahead = readdirSync(storeDir).filter((n) => n.endsWith(".part")).length;
      assert.ok(ahead >= 1 && ahead <= 4, `files opened ahead: ${ahead} (1 to TEMP_FILES_AHEAD = 4)`);

      socket.write(encodeReleaseRq());
      const rp = await reader.next();
      assert.equal(rp.type, PDU_RELEASE_RP);
      // Files opened ahead for further objects are gone by the time the release is answered.
      assert.deepEqual(readdirSync(storeDir).filter((n) => n.endsWith(".part")), []);
    } finally {
      socket?.destroy();
      await scp.close();
    }
  });

  test("SCP with keepReceived: each file's in-memory copy equals it; held copies are never reused; none past the limit or while both are held, and those are hashed as written", async () => {
    const storeDir = tempDir();
    const seen: { uid: string; bytes?: Uint8Array; file: ReceivedFile }[] = [];
    const held: ReceivedFile[] = [];
    const sameAsFile = (f: ReceivedFile) => Buffer.from(f.bytes!).equals(readFileSync(f.path));
    const checks: string[] = [];
    const scp: Scp = await createScp({
      aeTitle: "RXTEST",
      host: "127.0.0.1",
      port: 0,
      storeDir,
      keepReceived: 2_000_000,
      handlers: {
        store: ({ file }) => {
          const uid = file.sopInstanceUid;
          seen.push({ uid, bytes: file.bytes, file });
          if (file.bytes) checks.push(`${uid} ${sameAsFile(file)}`);
          if (uid.endsWith(".1") || uid.endsWith(".2")) {
            held.push(file); // kept, copy not given back yet
            return { status: 0, kept: true };
          }
          if (uid.endsWith(".3")) {
            // Both copies are still intact after a third object arrived (it got none).
            for (const f of held) checks.push(`${f.sopInstanceUid} still ${sameAsFile(f)}`);
            for (const f of held) f.release!();
          }
          return { status: 0, kept: true };
        },
      },
    });
    let socket: net.Socket | undefined;
    try {
      const raw = await rawStoreAssociation(scp.port, 65536);
      socket = raw.socket;
      const reader = raw.reader;
      // .1 and .2 are held; .3 finds both buffers held and releases them; .4 is larger than the
      // limit (its buffer goes back); .5 needs a buffer grown past the first 1 MB; .6 takes the
      // other free buffer; .5 and .6 are held, so .7 gets none; .8 (past 8 MB, 151 PDUs) neither.
      const sizes = [300_000, 200_000, 300_000, 2_500_000, 1_500_000, 250_000, 100_000, 9_000_000];
      for (const [n, size] of sizes.entries()) {
        const uid = `2.25.777.${n + 1}`;
        const data = encodeDataSet(ctDataSet(uid, size), EXPLICIT_VR_LITTLE_ENDIAN);
        const command = encodeCommand({ commandField: C_STORE_RQ, messageId: n + 1, affectedSopClassUid: CT_IMAGE_STORAGE, affectedSopInstanceUid: uid, priority: 0, hasDataSet: true });
        const pdus = [pdata([{ contextId: 1, command: true, last: true, data: command }])];
        for (let o = 0; o < data.length; o += 60_000) {
          pdus.push(pdata([{ contextId: 1, command: false, last: o + 60_000 >= data.length, data: data.subarray(o, o + 60_000) }]));
        }
        socket.write(concat(pdus));
        const rsp = await reader.next();
        const rspCommand = decodeCommand(concat(rsp.type === PDU_P_DATA_TF ? rsp.pdvs.map((p) => p.data) : []));
        assert.equal(rspCommand.status, 0);
      }
      assert.deepEqual(seen.map((x) => x.uid), sizes.map((_, n) => `2.25.777.${n + 1}`));
      assert.deepEqual(seen.map((x) => x.bytes !== undefined), [true, true, false, false, true, true, false, false]);
      // A file without a copy comes with the hash of its bytes (taken as they were written: .4
      // from the copy it outgrew plus the rest, .3, .7 and .8 from the start), so nobody reads it back.
      const fileHash = (f: ReceivedFile) => createHash("sha256").update(readFileSync(f.path)).digest("hex");
      assert.deepEqual(seen.map((x) => x.file.sha256 === undefined ? "none" : x.file.sha256 === fileHash(x.file)), [
        "none", "none", true, true, "none", "none", true, true,
      ]);
      assert.equal(seen[7].file.size, readFileSync(seen[7].file.path).length);
      assert.deepEqual(checks, [
        "2.25.777.1 true", "2.25.777.2 true", "2.25.777.1 still true", "2.25.777.2 still true", "2.25.777.5 true", "2.25.777.6 true",
      ]);
      assert.ok(sameAsFile(seen[4].file) && sameAsFile(seen[5].file), "copies never given back are intact at the end");
      assert.equal(seen[4].bytes!.length, seen[4].file.size);
      assert.equal(held[0].bytes, undefined, "release() drops the reference");
      // The sixth object reused a buffer given back by the first two.
      assert.ok(seen[5].bytes!.buffer === seen[0].bytes!.buffer || seen[5].bytes!.buffer === seen[1].bytes!.buffer);
      socket.write(encodeReleaseRq());
      assert.equal((await reader.next()).type, PDU_RELEASE_RP);
    } finally {
      socket?.destroy();
      await scp.close();
    }
  });

  test("FileSink: chunks the reader owns are gathered until 512 KB are pending (one write, not one per 64 KB read); a reused buffer's are written at once", async () => {
    const dir = tempDir();
    const files = new TempFiles(dir);
    const info = { sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: "2.25.999", transferSyntaxUid: EXPLICIT_VR_LITTLE_ENDIAN };
    const sink = new FileSink(files, info, "RAWSCU", true);
    const chunk = (n: number) => new Uint8Array(65536).fill(n);
    const onDisk = () => statSync(sink.path).size;
    for (let i = 0; i < 7; i++) {
      sink.write(chunk(i));
      sink.flush(512 * 1024);
    }
    assert.equal(onDisk(), 0, "7 × 64 KB read: nothing written yet");
    sink.write(chunk(7));
    sink.flush(512 * 1024);
    const header = onDisk() - 8 * 65536;
    assert.ok(header > 132, `the eighth read makes one write of all of it (preamble and meta: ${header} bytes)`);
    sink.write(chunk(8));
    sink.flush(0);
    assert.equal(onDisk(), header + 9 * 65536, "a reused read buffer's bytes are written before the next read");
    sink.write(chunk(9));
    const { file } = sink.end();
    assert.equal(file!.size, header + 10 * 65536);
    const bytes = readFileSync(file!.path);
    assert.equal(file!.sha256, createHash("sha256").update(bytes).digest("hex"));
    for (let i = 0; i < 10; i++) assert.equal(bytes[header + i * 65536 + 100], i);
    await files.dispose();
  });

  test("SCU (reused read buffer): C-FIND answers split into small reads arrive intact", async () => {
    const answers = ["P1", "P22", "P333"].map((id, i) => {
      const ds = new DataSet({ littleEndian: true, explicitVR: false });
      const put = (tag: number, vr: string, s: string) => {
        const b = new TextEncoder().encode(s.length % 2 ? s + " " : s);
        ds.set({ tag, vr, value: b, offset: 0, length: b.length });
      };
      put(0x00080052, "CS", "PATIENT");
      put(0x00100010, "PN", `Name${i}^${"x".repeat(40 * (i + 1))}`);
      put(0x00100020, "LO", id);
      return encodeDataSet(ds, IMPLICIT_VR_LITTLE_ENDIAN);
    });
    const served: Promise<void>[] = [];
    const server = net.createServer((socket) => {
      socket.setNoDelay(true);
      const reader = new PduReader(socket);
      served.push((async () => {
        const rq = await reader.next();
        assert.equal(rq.type, PDU_ASSOCIATE_RQ);
        if (rq.type !== PDU_ASSOCIATE_RQ) return;
        socket.write(encodeAssociate({
          type: PDU_ASSOCIATE_AC, protocolVersion: 1, calledAet: rq.calledAet, callingAet: rq.callingAet,
          applicationContext: rq.applicationContext,
          contexts: rq.contexts.map((c) => ({ id: c.id, result: 0, transferSyntax: IMPLICIT_VR_LITTLE_ENDIAN })),
          user: { maxPduLength: 16384, implementationClassUid: "1.2.3.4", roles: [], other: [] },
        }));
        // The C-FIND-RQ: command and identifier (possibly in several PDUs).
        const parts: Uint8Array[] = [];
        let messageId = 0;
        for (let done = false; !done;) {
          const p = await reader.next();
          assert.equal(p.type, PDU_P_DATA_TF);
          if (p.type !== PDU_P_DATA_TF) return;
          for (const pdv of p.pdvs) {
            if (pdv.command) parts.push(pdv.data);
            if (pdv.command && pdv.last) messageId = decodeCommand(concat(parts)).messageId ?? 0;
            if (!pdv.command && pdv.last) done = true;
          }
        }
        const rsp = (status: number, hasDataSet: boolean) =>
          encodeCommand({ commandField: C_FIND_RSP, messageIdBeingRespondedTo: messageId, affectedSopClassUid: QR_MODELS.studyRoot.find, status, hasDataSet });
        const pdus = [
          ...answers.map((d) => pdata([{ contextId: 1, command: true, last: true, data: rsp(0xff00, true) }, { contextId: 1, command: false, last: true, data: d }])),
          pdata([{ contextId: 1, command: true, last: true, data: rsp(0, false) }]),
        ];
        await writeSplit(socket, concat(pdus), awkwardCuts(pdus));
        const rel = await reader.next();
        assert.equal(rel.type, PDU_RELEASE_RQ);
        socket.end(encodeReleaseRp());
      })());
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const assoc = await connect({
        host: "127.0.0.1", port, callingAet: "RXSCU", calledAet: "RAWSCP",
        contexts: [{ abstractSyntax: QR_MODELS.studyRoot.find, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] }],
        timeouts: { connect: 5000, association: 5000, dimse: 5000 },
      });
      const q = new DataSet({ littleEndian: true, explicitVR: false });
      for (const [tag, vr, s] of [[0x00080052, "CS", "PATIENT "], [0x00100020, "LO", ""]] as const) {
        const b = new TextEncoder().encode(s);
        q.set({ tag, vr, value: b, offset: 0, length: b.length });
      }
      const got: DataSet[] = [];
      for await (const m of find(assoc, QR_MODELS.studyRoot.find, q)) got.push(m);
      await assoc.release();
      assert.deepEqual(got.map((d) => d.string(0x00100020)), ["P1", "P22", "P333"]);
      assert.deepEqual(got.map((d) => d.string(0x00100010)), answers.map((a) => parseDataSet(a, IMPLICIT_VR_LITTLE_ENDIAN).string(0x00100010)));
      await Promise.all(served);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
