// Test and bench helper: a CT-like object of any size, its pixel data streamed to disk, so
// memory use of de-identification can be measured on objects of a gigabyte and more.
import { closeSync, openSync, writeSync } from "node:fs";
import { DataSet, textElement } from "../lib/dicom/dataset.ts";
import { encodeFile } from "../lib/dicom/writer.ts";

const MiB = 1 << 20;

/**
 * Writes a CT-like object whose native pixel data is `bytes` long (a pattern that differs per
 * MiB, so a shifted or truncated copy shows), streaming it to disk. `encapsulated`: the same
 * bytes as fragments of 16 MiB (odd last one) in a JPEG transfer syntax.
 */
export function writeBigObject(path: string, bytes: number, n: number, encapsulated = false): void {
  const ds = new DataSet();
  const put = (tag: number, vr: string, v: string) => ds.set(textElement(tag, vr, v));
  put(0x00080016, "UI", "1.2.840.10008.5.1.4.1.1.2");
  put(0x00080018, "UI", `1.2.826.0.1.3680043.10.1467.99.15.${n}`);
  put(0x00080060, "CS", "CT");
  put(0x00100010, "PN", "Big^Object");
  put(0x00100020, "LO", `BIG-${n}-4471902`);
  put(0x0020000d, "UI", "1.2.826.0.1.3680043.10.1467.99.15.100");
  put(0x0020000e, "UI", "1.2.826.0.1.3680043.10.1467.99.15.101");
  const us = (tag: number, v: number) => ds.set({ tag, vr: "US", value: Uint8Array.of(v & 0xff, v >> 8), offset: 0, length: 2 });
  us(0x00280002, 1);
  put(0x00280004, "CS", "MONOCHROME2");
  us(0x00280010, 16384); // rows
  us(0x00280011, Math.max(1, Math.floor(bytes / 16384 / 2))); // columns
  us(0x00280100, 16);
  us(0x00280101, 16);
  us(0x00280102, 15);
  us(0x00280103, 0);
  const ts = encapsulated ? "1.2.840.10008.1.2.4.50" : "1.2.840.10008.1.2.1";
  const head = encodeFile(ds, { transferSyntaxUid: ts });
  const fd = openSync(path, "w");
  try {
    writeSync(fd, head);
    const chunk = new Uint8Array(MiB);
    const h = (tag: number, vr: string, len: number) => {
      const b = new Uint8Array(encapsulated && vr === "" ? 8 : 12);
      const dv = new DataView(b.buffer);
      dv.setUint16(0, tag >>> 16, true);
      dv.setUint16(2, tag & 0xffff, true);
      if (vr === "") dv.setUint32(4, len, true);
      else {
        b[4] = vr.charCodeAt(0);
        b[5] = vr.charCodeAt(1);
        dv.setUint32(8, len, true);
      }
      return b;
    };
    const fill = (i: number) => {
      for (let k = 0; k < MiB; k += 4) chunk[k] = (i * 31 + k) & 0xff;
      chunk[0] = i & 0xff;
      chunk[1] = (i >> 8) & 0xff;
    };
    if (!encapsulated) {
      writeSync(fd, h(0x7fe00010, "OW", bytes));
      for (let i = 0; i < bytes / MiB; i++) { fill(i); writeSync(fd, chunk); }
    } else {
      writeSync(fd, h(0x7fe00010, "OB", 0xffffffff));
      writeSync(fd, h(0xfffee000, "", 0)); // empty basic offset table
      const fragment = 16 * MiB;
      let i = 0;
      for (let left = bytes; left > 0;) {
        const len = Math.min(fragment, left) - (left <= fragment ? 1 : 0); // the last fragment is odd
        writeSync(fd, h(0xfffee000, "", len));
        for (let done = 0; done < len; done += MiB) {
          fill(i++);
          writeSync(fd, chunk.subarray(0, Math.min(MiB, len - done)));
        }
        left -= Math.min(fragment, left);
      }
      writeSync(fd, h(0xfffee0dd, "", 0));
    }
  } finally {
    closeSync(fd);
  }
}

