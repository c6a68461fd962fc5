/**
 * Text files as Windows tools write them. PowerShell 5's `>` and `Out-File` write UTF-16LE with
 * a byte order mark; `Out-File -Encoding utf8`, Notepad before Windows 10 1903 and Excel's "CSV
 * UTF-8" put a UTF-8 byte order mark first. The mark names the encoding and is not part of the
 * text; without one, text is UTF-8.
 * @module
 */
import { readFileSync } from "node:fs";

/** The encodings a byte order mark can name. */
export type BomEncoding = "utf-8" | "utf-16le" | "utf-16be";

/**
 * The encoding named by the byte order mark at the start of `bytes`; UTF-8 when there is none.
 *
 * @example
 * ```ts
 * bomEncoding(new Uint8Array([0xff, 0xfe, 0x7b, 0x00])); // "utf-16le"
 * ```
 */
export function bomEncoding(bytes: Uint8Array): BomEncoding {
  if (bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xfe) return "utf-16le";
  if (bytes.length >= 2 && bytes[0] === 0xfe && bytes[1] === 0xff) return "utf-16be";
  return "utf-8";
}

/** Decodes a whole file's bytes in the encoding its byte order mark names (UTF-8 without one), the mark dropped. */
export function decodeText(bytes: Uint8Array): string {
  return new TextDecoder(bomEncoding(bytes)).decode(bytes);
}

/** Reads a text file a person or a Windows tool may have written: see {@linkcode decodeText}. */
export function readTextFile(path: string): string {
  return decodeText(readFileSync(path));
}
