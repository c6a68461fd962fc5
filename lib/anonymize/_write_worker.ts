/**
 * A thread that writes anonymize's outputs, for runtimes whose asynchronous file-system calls
 * open, create and rename on the main thread (Deno 2), and so that reading the pixel data,
 * hashing and writing run beside the parsing on another core: each job writes the encoded parts
 * to a temporary file (copying the input's ranges), renames it into place and answers with the
 * SHA-256 of what it wrote.
 */
import { closeSync, fstatSync, openSync } from "node:fs";
import { parentPort } from "node:worker_threads";
import type { EncodedPart } from "../dicom/writer.ts";
import { writeOutputSync } from "./_output.ts";

/** One file to write. */
export interface WriteJob {
  id: number;
  dest: string;
  parts: EncodedPart[];
  /** The input the ranges are read from, and its size when it was parsed. */
  source: string;
  size: number;
  /**
   * The input's descriptor where threads share them (Node): the worker reads it, the thread that
   * opened it closes it. Elsewhere (Deno) the worker opens and closes `source` itself.
   */
  fd?: number;
}

/** The answer: the output's SHA-256, or why it could not be written. */
export type WriteAnswer = { id: number; sha256: string } | { id: number; error: string; code?: string };

parentPort?.on("message", (job: WriteJob) => {
  let fd: number | undefined;
  let answer: WriteAnswer;
  try {
    if (job.fd !== undefined) answer = { id: job.id, sha256: writeOutputSync(job.dest, job.parts, job.fd) };
    else {
      fd = openSync(job.source, "r");
      // A replaced input would mix another file's bytes into this one's output.
      if (fstatSync(fd).size !== job.size) throw new Error(`the input "${job.source}" changed while it was anonymized`);
      answer = { id: job.id, sha256: writeOutputSync(job.dest, job.parts, fd) };
    }
  } catch (e) {
    const err = e as { message?: string; code?: string };
    answer = { id: job.id, error: err.message ?? String(e), ...(err.code ? { code: err.code } : {}) };
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  parentPort!.postMessage(answer);
});
