// Shared by the migration scripts: how to find rtexport, how to read the script's flags, and
// NDJSON helpers. Copy this file next to your own script when you copy one of them.
//
// rtexport is found, in this order:
//   1. $RTEXPORT: the path of an rtexport program, e.g. the single binary
//      RTEXPORT=/opt/rtexport/rtexport-linux-x64
//   2. a checkout: this file sits in <checkout>/scripts/migrations, so
//      <checkout>/node_modules/.bin/node <checkout>/cli.ts (Node 24 from npm, installed by `npm ci`)
//   3. `rtexport` on PATH (npm install -g rtexport)
import { existsSync, readFileSync, writeFileSync, renameSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

/** The rtexport command as a word list, for zx: await $`${rtexportCommand()} status ${dir}` */
export function rtexportCommand() {
  if (process.env.RTEXPORT) return [process.env.RTEXPORT];
  const checkout = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
  const cli = join(checkout, "cli.ts");
  const node = join(checkout, "node_modules", ".bin", "node");
  if (existsSync(cli) && existsSync(node)) return [node, cli];
  return ["rtexport"];
}

/**
 * The script's own flags (after its path, whether run as `zx script.mjs …` or `node script.mjs …`),
 * parsed strictly: an unknown flag or a missing value is a usage error (exit 2).
 */
export function scriptOptions(scriptUrl, options, usage) {
  const self = fileURLToPath(scriptUrl);
  const at = process.argv.findIndex((a) => !a.startsWith("-") && resolve(a) === self);
  const args = process.argv.slice(at >= 0 ? at + 1 : 2);
  let values;
  try {
    ({ values } = parseArgs({ args, options: { ...options, help: { type: "boolean", short: "h" } }, strict: true, allowPositionals: false }));
  } catch (e) {
    usageError(`${basename(self, ".mjs")}: ${e.message}\n\n${usage}`);
  }
  if (values.help) {
    process.stdout.write(usage + "\n");
    process.exit(0);
  }
  return values;
}

export function usageError(message) {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

/** Records of an NDJSON file ([] when it does not exist). */
export function readRecords(path) {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

/** Writes records as NDJSON, atomically (temp file + rename). */
export function writeRecords(path, records) {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, records.map((r) => JSON.stringify(r) + "\n").join(""));
  renameSync(tmp, path);
}

/**
 * The DICOM `file` records (those with a SOP Instance UID), each object once: export-plan writes
 * an object several plans share (their structure set) into each plan's folder. (Their `category`
 * is "dicom" already; records saved by earlier versions said "image" or "rt-object".)
 */
export function dicomRecords(records) {
  const seen = new Set();
  const out = [];
  for (const r of records) {
    if (r.type !== "file" || !r.sopInstanceUid || seen.has(r.sopInstanceUid)) continue;
    seen.add(r.sopInstanceUid);
    out.push({ ...r, category: "dicom" });
  }
  return out;
}

/**
 * Exit status of a whole migration from its steps' exit statuses: 0 all ok, 3 when some step
 * reported failed items (rtexport's "partial"), else the first other failure.
 */
export function worstExit(codes) {
  const bad = codes.filter((c) => c !== 0);
  if (bad.length === 0) return 0;
  return bad.find((c) => c !== 3) ?? 3;
}

/**
 * The step runner both scripts use: `step(name, command)` says what runs, awaits a zx command,
 * keeps its exit status, and stops the migration on anything worse than "partial" (3).
 * `codes` feeds {@link worstExit} at the end.
 */
export function migrationSteps(scriptName) {
  const say = (s) => process.stderr.write(`${scriptName}: ${s}\n`);
  const codes = [];
  async function step(name, command) {
    say(name);
    const { exitCode } = await command.nothrow();
    codes.push(exitCode);
    if (exitCode !== 0 && exitCode !== 3) {
      say(`stopped: ${name} failed (exit status ${exitCode})`);
      process.exit(exitCode);
    }
  }
  return { say, step, codes };
}
