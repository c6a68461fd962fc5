import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { readRecords, RecordParseError, RecordWriter, writeRecords } from "../lib/records/ndjson.ts";
import { collectRecords, mapRecords, splitRecords } from "../lib/records/pass_through.ts";
import type { RtRecord } from "../lib/records/types.ts";

const enc = new TextEncoder();

/** `text` in UTF-16, little- or big-endian. */
function utf16(text: string, littleEndian: boolean): Uint8Array {
  const out = new Uint8Array(text.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < text.length; i++) view.setUint16(2 * i, text.charCodeAt(i), littleEndian);
  return out;
}

async function* chunks(parts: (string | Uint8Array)[]): AsyncGenerator<string | Uint8Array> {
  for (const part of parts) yield part;
}

describe("readRecords", () => {
  const cases: { name: string; input: (string | Uint8Array)[]; records: RtRecord[] }[] = [
    { name: "LF lines", input: ['{"type":"a"}\n{"type":"b"}\n'], records: [{ type: "a" }, { type: "b" }] },
    { name: "CRLF lines", input: ['{"type":"a"}\r\n{"type":"b","x":1}\r\n'], records: [{ type: "a" }, { type: "b", x: 1 }] },
    { name: "no final newline", input: ['{"type":"a"}\n{"type":"b"}'], records: [{ type: "a" }, { type: "b" }] },
    { name: "blank lines", input: ['\n{"type":"a"}\n\n  \r\n{"type":"b"}\n\n'], records: [{ type: "a" }, { type: "b" }] },
    { name: "empty input", input: [], records: [] },
    { name: "line split across chunks", input: ['{"ty', 'pe":"a","v":"x', 'y"}\n{"type"', ':"b"}\n'], records: [{ type: "a", v: "xy" }, { type: "b" }] },
    { name: "CR and LF in different chunks", input: ['{"type":"a"}\r', '\n{"type":"b"}\r\n'], records: [{ type: "a" }, { type: "b" }] },
    {
      name: "UTF-8 character split across byte chunks",
      input: (() => {
        const bytes = enc.encode('{"type":"patient","name":{"family":"Müller","given":"山田"}}\n');
        const cut = bytes.indexOf(0xc3) + 1; // inside "ü"
        return [bytes.slice(0, cut), bytes.slice(cut, cut + 20), bytes.slice(cut + 20)];
      })(),
      records: [{ type: "patient", name: { family: "Müller", given: "山田" } }],
    },
    { name: "byte order mark", input: ['\ufeff{"type":"a"}\n'], records: [{ type: "a" }] },
    { name: "byte order mark as bytes", input: [new Uint8Array([0xef, 0xbb, 0xbf]), '{"type":"a"}\n'], records: [{ type: "a" }] },
    {
      // What PowerShell 5's `>` writes: UTF-16LE, a byte order mark, CRLF; first chunk one byte long.
      name: "UTF-16LE with a byte order mark, in odd chunks",
      input: (() => {
        const bytes = utf16('\ufeff{"type":"patient","name":{"family":"Müller","given":"山田"}}\r\n{"type":"b"}\r\n', true);
        return [bytes.slice(0, 1), bytes.slice(1, 8), bytes.slice(8, 31), bytes.slice(31)];
      })(),
      records: [{ type: "patient", name: { family: "Müller", given: "山田" } }, { type: "b" }],
    },
    { name: "UTF-16BE with a byte order mark", input: [utf16('\ufeff{"type":"a","v":"Ødegård"}\n', false)], records: [{ type: "a", v: "Ødegård" }] },
    { name: "a single byte", input: [enc.encode("\n")], records: [] },
    { name: "unknown fields kept", input: ['{"type":"x","push":{"status":"ok"},"n":null}\n'], records: [{ type: "x", push: { status: "ok" }, n: null }] },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      assert.deepEqual(await collectRecords(readRecords(chunks(c.input))), c.records);
    });
  }

  const bad: { name: string; input: string[]; message: RegExp; line: number }[] = [
    { name: "invalid JSON", input: ['{"type":"a"}\n\n{"type":\n'], message: /^Cannot parse NDJSON line 3 of stdin: /, line: 3 },
    { name: "not an object", input: ['{"type":"a"}\n[1,2]\n'], message: /^Cannot parse NDJSON line 2 of stdin: expected a JSON object with a string "type" field$/, line: 2 },
    { name: "no type", input: ['{"path":"a.dcm"}\n'], message: /line 1 of stdin: expected a JSON object/, line: 1 },
    { name: "bad last line without newline", input: ['{"type":"a"}\r\n{oops'], message: /^Cannot parse NDJSON line 2 of stdin/, line: 2 },
  ];
  for (const c of bad) {
    test(`error: ${c.name}`, async () => {
      await assert.rejects(collectRecords(readRecords(chunks(c.input))), (error: unknown) => {
        assert.ok(error instanceof RecordParseError);
        assert.match(error.message, c.message);
        assert.equal(error.line, c.line);
        return true;
      });
    });
  }

  test("error names the input", async () => {
    await assert.rejects(
      collectRecords(readRecords(chunks(["nope\n"]), { input: '"plans.ndjson"' })),
      /^RecordParseError: Cannot parse NDJSON line 1 of "plans.ndjson": /,
    );
  });

  test("records before a bad line are delivered", async () => {
    const seen: RtRecord[] = [];
    await assert.rejects(async () => {
      for await (const r of readRecords(chunks(['{"type":"a"}\n{"type":"b"}\nbad\n']))) seen.push(r);
    });
    assert.deepEqual(seen, [{ type: "a" }, { type: "b" }]);
  });
});

class SlowSink extends Writable {
  lines: string[] = [];
  maxBuffered = 0;
  constructor(highWaterMark: number) {
    super({ highWaterMark, decodeStrings: false });
  }
  override _write(chunk: string | Uint8Array, _encoding: string, callback: (error?: Error | null) => void): void {
    this.lines.push(String(chunk));
    setTimeout(callback, 1);
  }
  override write(chunk: unknown, ...rest: unknown[]): boolean {
    const ok = (super.write as (...a: unknown[]) => boolean)(chunk, ...rest);
    this.maxBuffered = Math.max(this.maxBuffered, this.writableLength);
    return ok;
  }
}

describe("RecordWriter", () => {
  test("waits for drain with a slow consumer", async () => {
    const sink = new SlowSink(256);
    const records = Array.from({ length: 60 }, (_, i) => ({ type: "file", path: `f${i}.dcm`, pad: "x".repeat(40) }));
    const line = JSON.stringify(records[0]).length + 1;
    const written = await writeRecords(records, sink);
    await new Promise<void>((resolve) => sink.end(resolve));
    assert.equal(written, 60);
    assert.deepEqual(sink.lines.join("").trimEnd().split("\n").map((l) => JSON.parse(l)), records);
    // Without waiting for drain all 60 lines (~4 KiB) would pile up in the buffer.
    assert.ok(sink.maxBuffered <= 256 + line, `buffered ${sink.maxBuffered} bytes`);
  });

  test("a write error other than EPIPE rejects", async () => {
    const sink = new Writable({
      write(_chunk, _enc, callback) {
        callback(Object.assign(new Error("disk full"), { code: "ENOSPC" }));
      },
    });
    const writer = new RecordWriter(sink);
    await assert.rejects(async () => {
      for (let i = 0; i < 3; i++) {
        await writer.write({ type: "a" });
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    }, /disk full/);
  });

  test("EPIPE closes the writer quietly", async () => {
    const sink = new Writable({
      write(_chunk, _enc, callback) {
        callback(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
      },
    });
    const writer = new RecordWriter(sink);
    await writer.write({ type: "a" });
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(writer.closed, true);
    await writer.write({ type: "b" }); // dropped, no error
  });
});

describe("piping into head", () => {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const ndjsonUrl = new URL("../lib/records/ndjson.ts", import.meta.url).href;
  const code = `
    const { writeRecords } = await import(${JSON.stringify(ndjsonUrl)});
    function* many() { for (let i = 0; i < 1000000; i++) yield { type: "file", path: "f" + i + ".dcm", pad: "x".repeat(60) }; }
    await writeRecords(many(), process.stdout);
  `;
  const runtime = "Deno" in globalThis
    ? `"${process.execPath}" eval '${code.replace(/'/g, "'\\''")}'`
    : `"${process.execPath}" --input-type=module -e '${code.replace(/'/g, "'\\''")}'`;

  test("… | head -n 1 exits 0 with nothing on stderr", () => {
    const result = spawnSync("bash", ["-c", `set -o pipefail; ${runtime} | head -n 1`], {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, NO_COLOR: "1" },
    });
    assert.equal(result.error, undefined);
    assert.equal(result.stderr, "");
    assert.equal(result.status, 0);
    assert.deepEqual(JSON.parse(result.stdout), { type: "file", path: "f0.dcm", pad: "x".repeat(60) });
  });
});

describe("pass-through", () => {
  const input: RtRecord[] = [
    { type: "patient", patientId: "1" },
    { type: "file", path: "a.dcm" },
    { type: "plan", patientId: "1", label: "P1" },
    { type: "file", path: "b.dcm" },
    { type: "unknown-thing", x: [1] },
  ];

  test("mapRecords transforms handled types and keeps the rest in order", async () => {
    const out = await collectRecords(
      mapRecords(chunksOf(input), ["file"], (file) => ({ ...file, checked: true })),
    );
    assert.deepEqual(out, [
      { type: "patient", patientId: "1" },
      { type: "file", path: "a.dcm", checked: true },
      { type: "plan", patientId: "1", label: "P1" },
      { type: "file", path: "b.dcm", checked: true },
      { type: "unknown-thing", x: [1] },
    ]);
  });

  test("a handler may drop a record or expand it into several", async () => {
    const out = await collectRecords(
      mapRecords(input, (r) => r.type === "plan" || r.path === "a.dcm", async function* (r) {
        if (r.type === "plan") {
          yield { type: "file", path: "RP.dcm", planUid: "1.2" };
          yield r;
        }
      }),
    );
    assert.deepEqual(out.map((r) => r.type + ":" + (r.path ?? r.patientId ?? "")), [
      "patient:1",
      "file:RP.dcm",
      "plan:1",
      "file:b.dcm",
      "unknown-thing:",
    ]);
  });

  test("splitRecords tags records without changing them", async () => {
    const out = await collectRecords(splitRecords(input, ["plan", "patient"]));
    assert.deepEqual(out.map((s) => s.handled), [true, false, true, false, false]);
    assert.deepEqual(out.map((s) => s.record), input);
  });
});

async function* chunksOf<T>(items: T[]): AsyncGenerator<T> {
  for (const item of items) yield item;
}
