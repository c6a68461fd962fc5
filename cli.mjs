#!/usr/bin/env node
/**
 * The Node entry point from a checkout: `node cli.mjs <command> …` runs what `node cli.ts` runs,
 * and starts in about half the time. It turns on Node's compile cache before any TypeScript is
 * loaded, so on every run after the first all modules, cli.ts included, come stripped and
 * compiled from the cache and Node never loads its TypeScript stripper (a WebAssembly module):
 * measured here, `push --help` 0.09–0.12 s with `node cli.ts`, 0.05–0.06 s with this file.
 * (`node cli.ts` cannot do this for itself: cli.ts and its static imports are stripped before
 * its first line runs.) The npm package and the binary run bundled JavaScript instead.
 */
import module from "node:module";
import process from "node:process";

// Node runs TypeScript (type stripping) by default from 22.18 and 23.6; older versions would fail
// with a stack trace about the ".ts" extension, so say what is needed instead.
const [major, minor] = process.versions.node.split(".").map(Number);
if (!("Deno" in globalThis) && (major < 22 || (major === 22 && minor < 18) || (major === 23 && minor < 6))) {
  process.stderr.write(`rtexport needs Node >= 22.18 or Deno 2; found Node ${process.versions.node}\n`);
  process.exit(1);
}
module.enableCompileCache?.();
const { start } = await import("./cli.ts");
start();
