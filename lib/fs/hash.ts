/**
 * File hashing: the SHA-256 that `file` records and ledgers carry. `sha256File` reads
 * synchronously (files just written or received, in the page cache); `sha256Bytes` and
 * `sha256FileAsync` never hold the event loop (WebCrypto on the runtime's thread pool, or
 * asynchronous 1 MiB reads), for servers where hashing a large object must not delay other
 * associations.
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";
import { open } from "node:fs/promises";

/** Read buffer reused across calls: no garbage per file. */
let hashBuffer: Uint8Array | undefined;

/**
 * Lower-case hex SHA-256 of a file, read in 1 MiB chunks (synchronously: callers hash files
 * that are in the page cache, just written or just received).
 *
 * @example
 * ```ts
 * const sha256 = sha256File("export/P/Plan1/DICOM/RTPLAN_1.2.3.dcm");
 * ```
 */
export function sha256File(path: string): string {
  const hash = createHash("sha256");
  const fd = openSync(path, "r");
  try {
    const buf = (hashBuffer ??= new Uint8Array(1 << 20));
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

function hex(buf: ArrayBuffer): string {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Lower-case hex SHA-256 of `bytes`, computed off the event loop. */
export async function sha256Bytes(bytes: Uint8Array): Promise<string> {
  // WebCrypto wants an ArrayBuffer-backed view it may read while we wait.
  return hex(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
}

/** Lower-case hex SHA-256 of a file, read asynchronously in 1 MiB steps. */
export async function sha256FileAsync(path: string): Promise<string> {
  const hash = createHash("sha256");
  const fh = await open(path, "r");
  try {
    const buf = new Uint8Array(1 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return hash.digest("hex");
}
