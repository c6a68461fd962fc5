// PDU and DIMSE codecs: round trips, the exact bytes of small PDUs, fragmentation, reason texts.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  decodePdu, encodeAbort, encodeAssociate, encodeAssociateRj, encodeReleaseRq, fragment, PDU_ASSOCIATE_AC,
  PDU_ASSOCIATE_RQ, rejectReasonText,
} from "../lib/net/pdu.ts";
import { C_MOVE_RSP, C_STORE_RQ, decodeCommand, encodeCommand, formatStatus, statusCategory } from "../lib/net/dimse.ts";
import { negotiateContexts } from "../lib/net/scp.ts";

describe("PDUs", () => {
  test("A-ASSOCIATE-RQ round trip with contexts, max PDU, role selection, implementation", () => {
    const rq = {
      type: PDU_ASSOCIATE_RQ,
      protocolVersion: 1,
      calledAet: "ORTHANC",
      callingAet: "RTEXPORT",
      applicationContext: "1.2.840.10008.3.1.1.1",
      contexts: [
        { id: 1, abstractSyntax: "1.2.840.10008.1.1", transferSyntaxes: ["1.2.840.10008.1.2"] },
        { id: 3, abstractSyntax: "1.2.840.10008.5.1.4.1.1.481.5", transferSyntaxes: ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"] },
      ],
      user: {
        maxPduLength: 16384,
        implementationClassUid: "1.2.3.4",
        implementationVersionName: "TEST_1",
        roles: [{ sopClassUid: "1.2.840.10008.5.1.4.1.1.2", scu: false, scp: true }],
        other: [],
      },
    } as const;
    const bytes = encodeAssociate(structuredClone(rq) as never);
    assert.equal(bytes[0], 0x01);
    assert.equal(new DataView(bytes.buffer).getUint32(2), bytes.length - 6);
    // Called AE title at bytes 10..26, space padded.
    assert.equal(new TextDecoder().decode(bytes.subarray(10, 26)), "ORTHANC         ");
    assert.deepEqual(decodePdu(bytes), rq);
  });

  test("A-ASSOCIATE-AC keeps only the accepted syntax per context", () => {
    const ac = {
      type: PDU_ASSOCIATE_AC,
      protocolVersion: 1,
      calledAet: "A",
      callingAet: "B",
      applicationContext: "1.2.840.10008.3.1.1.1",
      contexts: [{ id: 1, result: 0, transferSyntax: "1.2.840.10008.1.2.1" }, { id: 3, result: 3, transferSyntax: "" }],
      user: { maxPduLength: 0, implementationClassUid: "1.2", roles: [], other: [] },
    } as const;
    assert.deepEqual(decodePdu(encodeAssociate(structuredClone(ac) as never)), ac);
  });

  const fixed: [string, Uint8Array, number[]][] = [
    ["A-ASSOCIATE-RJ", encodeAssociateRj(1, 1, 7), [3, 0, 0, 0, 0, 4, 0, 1, 1, 7]],
    ["A-RELEASE-RQ", encodeReleaseRq(), [5, 0, 0, 0, 0, 4, 0, 0, 0, 0]],
    ["A-ABORT", encodeAbort(2, 6), [7, 0, 0, 0, 0, 4, 0, 0, 2, 6]],
  ];
  for (const [name, bytes, expected] of fixed) {
    test(`${name} bytes`, () => assert.deepEqual([...bytes], expected));
  }

  test("fragment splits data into PDVs that fit the peer's max PDU, last flag on the final one", () => {
    const data = new Uint8Array(100).map((_, i) => i);
    const pdus = fragment(5, false, data, 46); // 40 data bytes per PDV
    assert.equal(pdus.length, 3);
    const pdvs = pdus.map((p) => {
      const d = decodePdu(p);
      assert.equal(d.type, 4);
      return (d as { pdvs: { contextId: number; command: boolean; last: boolean; data: Uint8Array }[] }).pdvs[0];
    });
    assert.deepEqual(pdvs.map((p) => [p.contextId, p.command, p.last, p.data.length]), [[5, false, false, 40], [5, false, false, 40], [5, false, true, 20]]);
    assert.deepEqual(pdvs.flatMap((p) => [...p.data]), [...data]);
    for (const p of pdus) assert.ok(p.length - 6 <= 46);
  });

  const reasons: [number, number, string][] = [
    [1, 1, "no reason given"],
    [1, 2, "application context name not supported"],
    [1, 3, "calling AE title not recognized"],
    [1, 7, "called AE title not recognized"],
    [2, 2, "protocol version not supported"],
    [3, 1, "temporary congestion"],
    [3, 2, "local limit exceeded"],
  ];
  for (const [source, reason, text] of reasons) {
    test(`reject reason ${source}/${reason}: ${text}`, () => assert.equal(rejectReasonText(source, reason), text));
  }

  test("malformed PDUs throw a PduError naming the problem", () => {
    assert.throws(() => decodePdu(Uint8Array.of(9, 0, 0, 0, 0, 0)), /unknown PDU type 0x09/);
    assert.throws(() => decodePdu(Uint8Array.of(4, 0, 0, 0, 0, 9, 0, 0, 0, 9, 1, 0)), /PDU length 9 does not match/);
  });

  test("an empty role selection sub-item is a PduError, not a RangeError (found by scripts/fuzz.ts)", () => {
    const ok = encodeAssociate({
      type: PDU_ASSOCIATE_RQ, protocolVersion: 1, calledAet: "A", callingAet: "B", applicationContext: "1.2.840.10008.3.1.1.1",
      contexts: [{ id: 1, abstractSyntax: "1.2.840.10008.1.1", transferSyntaxes: ["1.2.840.10008.1.2"] }],
      user: { maxPduLength: 0, implementationClassUid: "1.2", roles: [], other: [{ type: 0x54, value: new Uint8Array(0) }] },
    });
    assert.throws(() => decodePdu(ok), (e: Error) => e.name === "PduError" && /role selection sub-item is too short/.test(e.message));
  });
});

describe("DIMSE command sets", () => {
  test("C-STORE-RQ round trip, group length first, implicit VR little endian", () => {
    const cmd = {
      commandField: C_STORE_RQ,
      messageId: 7,
      affectedSopClassUid: "1.2.840.10008.5.1.4.1.1.2",
      affectedSopInstanceUid: "1.2.3.4.5",
      priority: 0,
      hasDataSet: true,
      moveOriginatorAet: "MOVER",
      moveOriginatorMessageId: 3,
    };
    const bytes = encodeCommand(cmd);
    const dv = new DataView(bytes.buffer);
    assert.equal(dv.getUint32(0, true), 0x00000000); // (0000,0000)
    assert.equal(dv.getUint32(4, true), 4);
    assert.equal(dv.getUint32(8, true), bytes.length - 12);
    assert.deepEqual(decodeCommand(bytes), cmd);
  });

  test("C-MOVE-RSP with counts, error comment and no data set", () => {
    const cmd = { commandField: C_MOVE_RSP, messageIdBeingRespondedTo: 2, status: 0xb000, remaining: 0, completed: 3, failed: 1, warning: 0, errorComment: "one failed", hasDataSet: false };
    assert.deepEqual(decodeCommand(encodeCommand(cmd)), cmd);
  });

  const statuses: [number, string, string][] = [
    [0x0000, "success", "0x0000"],
    [0xff00, "pending", "0xFF00"],
    [0xfe00, "cancel", "0xFE00"],
    [0xb000, "warning", "0xB000"],
    [0xa700, "failure", "0xA700"],
    [0xc000, "failure", "0xC000"],
  ];
  for (const [s, cat, hex] of statuses) {
    test(`status ${hex} is ${cat}`, () => {
      assert.equal(statusCategory(s), cat);
      assert.equal(formatStatus(s), hex);
    });
  }
});

describe("SCP context negotiation", () => {
  const rq = (contexts: { id: number; abstractSyntax: string; transferSyntaxes: string[] }[]) => ({
    type: PDU_ASSOCIATE_RQ,
    protocolVersion: 1,
    calledAet: "A",
    callingAet: "B",
    applicationContext: "1.2.840.10008.3.1.1.1",
    contexts,
    user: { maxPduLength: 0, implementationClassUid: "1", roles: [], other: [] },
  } as const);
  const ILE = "1.2.840.10008.1.2", ELE = "1.2.840.10008.1.2.1", JPEG = "1.2.840.10008.1.2.4.70";
  const cases: [string, { abstractSyntax: string; transferSyntaxes: string[] }, boolean, number, string][] = [
    // name, proposed, acceptUnknown, expected result, expected transfer syntax
    ["verification", { abstractSyntax: "1.2.840.10008.1.1", transferSyntaxes: [ILE] }, false, 0, ILE],
    ["CT storage takes the first proposed syntax", { abstractSyntax: "1.2.840.10008.5.1.4.1.1.2", transferSyntaxes: [JPEG, ELE] }, false, 0, JPEG],
    ["RT plan storage", { abstractSyntax: "1.2.840.10008.5.1.4.1.1.481.5", transferSyntaxes: [ELE, ILE] }, false, 0, ELE],
    ["private class rejected by default", { abstractSyntax: "1.2.246.352.70.1.70", transferSyntaxes: [ELE] }, false, 3, ""],
    ["private class accepted with acceptUnknownSopClasses", { abstractSyntax: "1.2.246.352.70.1.70", transferSyntaxes: [ELE] }, true, 0, ELE],
    ["worklist is never storage", { abstractSyntax: "1.2.840.10008.5.1.4.31", transferSyntaxes: [ELE] }, true, 3, ""],
    ["retired RT Beams Delivery Instruction trial rejected by default", { abstractSyntax: "1.2.840.10008.5.1.4.34.1", transferSyntaxes: [ILE] }, false, 3, ""],
    ["retired RT Beams Delivery Instruction trial accepted with acceptUnknownSopClasses", { abstractSyntax: "1.2.840.10008.5.1.4.34.1", transferSyntaxes: [ILE] }, true, 0, ILE],
    ["MPPS is never storage", { abstractSyntax: "1.2.840.10008.3.1.2.3.3", transferSyntaxes: [ELE] }, true, 3, ""],
    ["UPS push is never storage", { abstractSyntax: "1.2.840.10008.5.1.4.34.6.1", transferSyntaxes: [ELE] }, true, 3, ""],
    ["storage commitment is never storage", { abstractSyntax: "1.2.840.10008.1.20.1", transferSyntaxes: [ELE] }, true, 3, ""],
    ["Study Root FIND with a find handler, native syntax preferred", { abstractSyntax: "1.2.840.10008.5.1.4.1.2.2.1", transferSyntaxes: [JPEG, ILE, ELE] }, false, 0, ELE],
    ["Study Root FIND offered only compressed", { abstractSyntax: "1.2.840.10008.5.1.4.1.2.2.1", transferSyntaxes: [JPEG] }, false, 4, ""],
    ["Study Root MOVE without a move handler", { abstractSyntax: "1.2.840.10008.5.1.4.1.2.2.2", transferSyntaxes: [ELE] }, false, 3, ""],
  ];
  for (const [name, pc, unknown, result, ts] of cases) {
    test(name, () => {
      const [c] = negotiateContexts(rq([{ id: 1, ...pc }]) as never, { store: () => ({ status: 0 }), find: () => [] }, undefined, unknown);
      assert.deepEqual([c.result, c.transferSyntax, c.accepted], [result, ts, result === 0]);
    });
  }
  test("a per-class allow list stores the classes listed, and only those", () => {
    const listed = new Set(["1.3.46.670589.2.4.1.1"]);
    const [cx, other] = negotiateContexts(rq([
      { id: 1, abstractSyntax: "1.3.46.670589.2.4.1.1", transferSyntaxes: [ILE] },
      { id: 3, abstractSyntax: "1.2.246.352.70.1.70", transferSyntaxes: [ILE] },
    ]) as never, { store: () => ({ status: 0 }) }, undefined, false, listed);
    assert.deepEqual([cx.result, cx.transferSyntax, other.result], [0, ILE, 3]);
  });
});
