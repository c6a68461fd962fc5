/**
 * File system errors in plain words, the same under Node and Deno: one table for every place
 * that tells a user why a file could not be read or written.
 */

const REASONS: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EISDIR: "is a directory",
  ENOTDIR: "not a directory",
  ELOOP: "too many levels of symbolic links",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EROFS: "read-only file system",
  EMFILE: "too many open files",
  EIO: "input/output error",
};

/** The error's code; Deno may give only the OS message ("No space left on device (os error 28)"). */
function codeOf(e: unknown): string | undefined {
  const err = e as { code?: string; message?: string } | undefined;
  if (err?.code) return err.code;
  if (/os error 28\b/.test(err?.message ?? "")) return "ENOSPC";
  return undefined;
}

/**
 * Why a file operation failed, in words ("no such file or directory"); an error without a known
 * code gives the first line of its message.
 *
 * @example
 * ```ts
 * import { fsReason } from "./errors.ts";
 * fsReason(Object.assign(new Error("ENOENT: …"), { code: "ENOENT" })); // "no such file or directory"
 * ```
 */
export function fsReason(e: unknown): string {
  const code = codeOf(e);
  if (code && REASONS[code]) return REASONS[code];
  return ((e as Error)?.message ?? String(e)).split("\n")[0];
}

/** `fsReason` with the code for the log reader ("no space left on device (ENOSPC)"), for write failures. */
export function ioErrorText(e: unknown): string {
  const code = codeOf(e);
  if (code && REASONS[code]) return `${REASONS[code]} (${code})`;
  return fsReason(e);
}
