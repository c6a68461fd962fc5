/** File hashing: the SHA-256 that `file` records and ledgers carry. */
import { createHash } from "node:crypto";
import { closeSync, openSync, readSync } from "node:fs";

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
