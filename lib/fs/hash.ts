/**
 * SHA-256 without holding the event loop: bytes in memory are hashed by WebCrypto (on a worker
 * thread of the runtime's pool in Node and Deno), a file is read and hashed in 1 MiB steps,
 * each a short synchronous `update` between asynchronous reads. A server uses this so that
 * hashing a large object never delays other associations.
 */
import { createHash } from "node:crypto";
import { open } from "node:fs/promises";

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
