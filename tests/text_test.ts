/**
 * Text files as Windows tools write them (lib/fs/text.ts): UTF-16 with a byte order mark
 * (PowerShell 5's `>` and `Out-File`), UTF-8 with one (`Out-File -Encoding utf8`, older Notepad,
 * Excel's "CSV UTF-8"), CRLF line ends; and the files users write that way: rtexport.json, the
 * patient map and profile CSVs of anonymize.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bomEncoding, decodeText } from "../lib/fs/text.ts";
import { loadConfig } from "../cli/config.ts";
import { readPatientMap } from "../lib/anonymize/patient_map.ts";
import { readProfileCsv } from "../lib/anonymize/profile.ts";

/** `text` as `encoding` would write it, with the byte order mark a Windows tool puts first. */
function encode(text: string, encoding: "utf-8" | "utf-8-bom" | "utf-16le" | "utf-16be"): Uint8Array {
  if (encoding === "utf-8") return new TextEncoder().encode(text);
  if (encoding === "utf-8-bom") return new TextEncoder().encode(`\ufeff${text}`);
  const withBom = `\ufeff${text}`;
  const out = new Uint8Array(withBom.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < withBom.length; i++) view.setUint16(2 * i, withBom.charCodeAt(i), encoding === "utf-16le");
  return out;
}

const ENCODINGS = ["utf-8", "utf-8-bom", "utf-16le", "utf-16be"] as const;

describe("decodeText", () => {
  const text = 'Müller,Ødegård,山田 🙂\r\n{"a":1}\n';
  for (const encoding of ENCODINGS) {
    test(`${encoding}: the text, without a byte order mark`, () => {
      assert.equal(decodeText(encode(text, encoding)), text);
    });
  }

  test("bomEncoding: only a mark at the very start counts", () => {
    const cases: [number[], string][] = [
      [[0xff, 0xfe, 0x41, 0x00], "utf-16le"],
      [[0xfe, 0xff, 0x00, 0x41], "utf-16be"],
      [[0xef, 0xbb, 0xbf, 0x41], "utf-8"],
      [[0x41, 0xff, 0xfe], "utf-8"],
      [[0xff], "utf-8"],
      [[], "utf-8"],
    ];
    for (const [bytes, expected] of cases) assert.equal(bomEncoding(new Uint8Array(bytes)), expected, JSON.stringify(bytes));
  });
});

describe("files users write on Windows", () => {
  const dir = mkdtempSync(join(tmpdir(), "rtexport-text-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const encoding of ENCODINGS) {
    test(`rtexport.json in ${encoding} with CRLF`, () => {
      const path = join(dir, `rtexport-${encoding}.json`);
      writeFileSync(path, encode('{\r\n  "defaults": { "logFormat": "json" },\r\n  "peers": { "aria": { "host": "aria-db", "port": 51402 } }\r\n}\r\n', encoding));
      const config = loadConfig({ path });
      assert.equal(config.defaults.logFormat, "json");
      assert.equal(config.peers.aria.host, "aria-db");
    });

    test(`patient map in ${encoding}, no header: the first row maps its patient`, () => {
      const path = join(dir, `map-${encoding}.csv`);
      writeFileSync(path, encode("RTX0001,STUDY-01,Study^Subject 1\r\nRTX0002,STUDY-02\r\n", encoding));
      const map = readPatientMap(path);
      assert.deepEqual([...map.keys()], ["RTX0001", "RTX0002"]);
      assert.deepEqual(map.get("RTX0001"), { id: "STUDY-01", name: "Study^Subject 1" });
    });

    test(`profile CSV in ${encoding} with its header`, () => {
      const path = join(dir, `profile-${encoding}.csv`);
      writeFileSync(path, encode("tag,action\r\n(0008,1030),K\r\n", encoding));
      assert.equal(readProfileCsv(path).length, 1);
    });
  }
});
