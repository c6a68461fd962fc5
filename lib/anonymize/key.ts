import { readFileSync } from "node:fs";

/** Why a file could not be read, in words. */
function fileReason(e: unknown): string {
  switch ((e as { code?: string }).code) {
    case "ENOENT": return "no such file";
    case "EACCES": case "EPERM": return "permission denied";
    case "EISDIR": return "it is a folder, not a file";
  }
  return String((e as Error)?.message ?? e).split("\n")[0];
}

/** A key that cannot be used; commands turn it into a usage error. */
export class KeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeyError";
  }
}

/**
 * The anonymization key from `--key SECRET` or `--key-file FILE` (trailing newlines and spaces
 * of the file are ignored). At least 16 bytes: the key decides every UID and pseudonym.
 */
export function resolveAnonymizationKey(
  o: { key?: unknown; keyFile?: unknown }, flags: { key: string; keyFile: string } = { key: "--key", keyFile: "--key-file" },
): string | Uint8Array {
  if (typeof o.key === "string" && o.key !== "" && typeof o.keyFile === "string") {
    throw new KeyError(`Give either ${flags.key} or ${flags.keyFile}, not both`);
  }
  if (typeof o.keyFile === "string") {
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(readFileSync(o.keyFile));
    } catch (e) {
      // Not a usage error: the flag is right, the file is not there (a fatal error, exit 1, one line).
      throw new Error(`Cannot read key file "${o.keyFile}": ${fileReason(e)}`);
    }
    let end = bytes.length;
    while (end > 0 && (bytes[end - 1] === 0x0a || bytes[end - 1] === 0x0d || bytes[end - 1] === 0x20)) end--;
    const key = bytes.subarray(0, end);
    if (key.length < 16) throw new KeyError(`The key in "${o.keyFile}" is too short: use at least 16 bytes`);
    return key;
  }
  if (typeof o.key === "string" && o.key !== "") {
    if (new TextEncoder().encode(o.key).length < 16) throw new KeyError("The key is too short: use at least 16 bytes (e.g. 32 random hex digits)");
    return o.key;
  }
  const env = `RTEXPORT_${flags.key.slice(2).toUpperCase().replace(/-/g, "_")}`;
  throw new KeyError(`A key is required: give ${flags.keyFile} FILE, ${flags.key} SECRET or ${env} (the same key gives the same UIDs and pseudonyms)`);
}
