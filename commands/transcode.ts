/** `rtexport transcode`: rewrite DICOM files in another transfer syntax, decoding lossless compressed pixel data. */
import { Option } from "commander";
import { basename, relative } from "node:path";
import { defineCommand, runMain, runStage, UsageError } from "../cli/mod.ts";
import { resolveSyntax, SYNTAX_ALIASES } from "../lib/codec/syntaxes.ts";
import { transcodeFiles } from "../lib/codec/transcode.ts";
import { pathRecords } from "../lib/fs/walk.ts";
import type { RtRecord } from "../lib/records/types.ts";
import { statSync } from "node:fs";

/** File records for the paths given: a file found under a directory keeps its path relative to it as `dest`. */
async function* inputRecords(paths: string[], pattern: string | undefined): AsyncGenerator<RtRecord> {
  for (const root of paths) {
    let isDir = false;
    try {
      isDir = statSync(root).isDirectory();
    } catch { /* pathRecords reports it */ }
    for await (const r of pathRecords([root], pattern ? { pattern } : {})) yield { ...r, dest: isDir ? relative(root, r.path) : basename(r.path) };
  }
}

export const main = defineCommand({
  name: "transcode",
  summary: "rewrite DICOM files in another transfer syntax, decoding lossless compressed pixel data",
  usage: "--to SYNTAX (--out DIR | --in-place) [PATH...]",
  description: [
    "Decodes JPEG Lossless (Process 14 and SV1), JPEG-LS lossless, JPEG 2000 lossless and RLE Lossless pixel data,",
    "encodes RLE Lossless, and converts between the native syntaxes. Every other element is kept byte for byte;",
    "the meta header gets the new Transfer Syntax UID. Lossy objects (JPEG baseline/extended, JPEG 2000 .91,",
    "JPEG-LS near-lossless) are never decoded to be stored: each fails with the reason, and the command exits 3.",
    "A file under a directory given keeps its path relative to it under --out; with records on stdin, a record's",
    `\`dest\` (export-plan's tree path) is kept. SYNTAX: ${Object.keys(SYNTAX_ALIASES).join(", ")} or a transfer syntax UID.`,
  ].join(" "),
  examples: [
    "rtexport transcode --to explicit-le --out raw/ incoming/",
    "rtexport transcode --to implicit-le --in-place export/Smith_John_123/",
    "rtexport search --tag TransferSyntaxUID=1.2.840.10008.1.2.4.70 export/ | rtexport transcode --to explicit-le --in-place",
  ],
  configure(cmd) {
    cmd.argument("[path...]", "DICOM files or directories (default: file records on stdin)");
    cmd.addOption(new Option("--to <syntax>", `target transfer syntax: ${Object.keys(SYNTAX_ALIASES).join(", ")} or a UID`).makeOptionMandatory());
    cmd.option("-o, --out <dir>", "output directory");
    cmd.option("--in-place", "overwrite the input files (atomically) instead of writing to --out");
    cmd.option("--pattern <glob>", "in directories given, only files whose name matches (*.dcm, RP*.dcm; case-insensitive)");
  },
  human: {
    record: (r) => (r.type === "file" ? `${(r.transcode as { status?: string } | undefined)?.status ?? ""}\t${r.path}` : undefined),
    detail: true,
  },
  run(ctx) {
    const o = ctx.options;
    const to = resolveSyntax(String(o.to));
    if (!to) throw new UsageError(`Invalid value for --to: "${o.to}" (expected ${Object.keys(SYNTAX_ALIASES).join(", ")} or a transfer syntax UID)`);
    if (o.inPlace && o.out) throw new UsageError("Give either --out or --in-place, not both");
    if (!o.inPlace && !o.out) throw new UsageError("An output directory is required: give --out DIR (or --in-place to overwrite the inputs)");
    const input = ctx.args.length ? inputRecords(ctx.args, o.pattern) : ctx.stdinRecords();
    if (!input) throw new UsageError("No input: give files or directories, or pipe file records on stdin");
    return runStage(ctx, {
      input,
      stage: transcodeFiles,
      options: { to, out: o.out, inPlace: o.inPlace === true },
      verb: "transcode",
    });
  },
});

runMain(import.meta, main);
