/**
 * The esbuild steps shared by build_npm.ts (ESM for the npm package) and scripts/build_bin.ts
 * (one CommonJS file for a Node single executable application). Both pick up every file in
 * commands/ and follow cli.ts's lazy `import("./commands/<name>.ts")` table, so a new command
 * needs no edit here.
 *
 * Build-time only: runs under Node (esbuild is an npm package with a native binary).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type * as esbuild from "esbuild";

/** The repository root. */
export const ROOT: string = resolve(fileURLToPath(new URL("..", import.meta.url)));

/** The lowest Node version the outputs must run on (package.json engines). */
export const NODE_TARGET = "node22";

/** The root package.json, parsed. */
export interface RootPackage {
  name: string;
  version: string;
  description?: string;
  license?: string;
  engines?: Record<string, string>;
  dependencies?: Record<string, string>;
  repository?: unknown;
  keywords?: string[];
}

export function readRootPackage(): RootPackage {
  return JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as RootPackage;
}

/** Names of the command modules present in commands/ (no `_private.ts`, no tests). */
export function commandNames(): string[] {
  return readdirSync(join(ROOT, "commands"))
    .filter((f) => f.endsWith(".ts") && !f.startsWith("_") && !f.endsWith("_test.ts"))
    .map((f) => f.slice(0, -3))
    .sort();
}

/**
 * Every source file a build depends on: .ts and .json files outside tests/, bench/, docs/,
 * node_modules/ and the outputs (the build scripts included), plus package.json and
 * package-lock.json. Used to decide whether an output is out of date.
 */
export function sourceFiles(): string[] {
  const out: string[] = [join(ROOT, "package.json"), join(ROOT, "package-lock.json")];
  const skip = new Set(["node_modules", "npm", "dist", "tests", "bench", "export", "docs", "fixtures", "data"]);
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith(".")) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!skip.has(entry.name)) walk(path);
      } else if (/\.(ts|json)$/.test(entry.name) && !entry.name.endsWith("_test.ts")) {
        out.push(path);
      }
    }
  };
  walk(ROOT);
  return out.filter((p) => existsSync(p));
}

/** Latest modification time (ms) among the sources. */
export function newestSourceTime(): number {
  let newest = 0;
  for (const path of sourceFiles()) newest = Math.max(newest, statSync(path).mtimeMs);
  return newest;
}

/** The bundle failed: esbuild's messages, formatted, one per line. */
export class BundleError extends Error {
  constructor(what: string, messages: esbuild.Message[]) {
    const lines = messages.map(formatMessage);
    super(`Cannot bundle ${what}:\n  ${lines.join("\n  ")}`);
    this.name = "BundleError";
  }
}

/**
 * cli.ts names every command, including ones not written yet. The source reports a missing
 * command module at run time ("not available yet"); the bundle keeps that behaviour instead of
 * failing the build: a missing `./commands/<name>.ts` becomes a module that throws the same
 * "Cannot find module" error when loaded.
 */
const missingCommands: esbuild.Plugin = {
  name: "missing-commands",
  setup(b) {
    b.onResolve({ filter: /^\.\/commands\/[a-z0-9-]+\.ts$/ }, (args) => {
      const path = resolve(args.resolveDir, args.path);
      if (existsSync(path)) return undefined;
      return { path: rel(path), namespace: "missing-command" };
    });
    b.onLoad({ filter: /.*/, namespace: "missing-command" }, (args) => ({
      loader: "js",
      contents: `throw Object.assign(new Error(${JSON.stringify(`Cannot find module ${args.path}`)}), ` +
        `{ code: "ERR_MODULE_NOT_FOUND" });`,
      warnings: [{ text: `${args.path} does not exist: the command reports "not available" when run` }],
    }));
  },
};

/**
 * The single binary has no node_modules beside it, so the WebAssembly codecs' .wasm files cannot
 * be read from beside their Emscripten scripts (which is what a checkout and the npm package do):
 * lib/codec/_wasm.ts is replaced with a module that embeds them (esbuild's binary loader: base64
 * in the bundle, decoded when the first codec loads, since only a dynamic import reaches it).
 */
const embedWasm: esbuild.Plugin = {
  name: "embed-wasm",
  setup(b) {
    b.onLoad({ filter: /[\\/]lib[\\/]codec[\\/]_wasm\.ts$/ }, (args) => ({
      loader: "ts",
      resolveDir: resolve(args.path, ".."),
      contents: [
        `import charls from "@cornerstonejs/codec-charls/decodewasm";`,
        `import openjpeg from "@cornerstonejs/codec-openjpeg/decodewasm";`,
        `export type WasmCodec = "charls" | "openjpeg";`,
        `export function embeddedWasm(codec: WasmCodec): Uint8Array | undefined {`,
        `  return codec === "charls" ? charls : openjpeg;`,
        `}`,
      ].join("\n"),
    }));
  },
};

/** What a bundle step produced. */
export interface BundleResult {
  metafile: esbuild.Metafile;
  /** esbuild's warnings, one line each (e.g. a command cli.ts names that does not exist yet). */
  warnings: string[];
}

function formatMessage(m: esbuild.Message): string {
  return m.location ? `${m.location.file}:${m.location.line}:${m.location.column}: ${m.text}` : m.text;
}

/** esbuild, loaded when first needed, with a clear error when the dev dependency is missing. */
async function loadEsbuild(): Promise<typeof esbuild> {
  try {
    return await import("esbuild");
  } catch (error) {
    const detail = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new Error(`Cannot load esbuild (a dev dependency): run npm install (${detail})`);
  }
}

async function build(what: string, options: esbuild.BuildOptions, plugins: esbuild.Plugin[] = []): Promise<BundleResult> {
  const { build: runEsbuild } = await loadEsbuild();
  let result: esbuild.BuildResult;
  try {
    result = await runEsbuild({ logLevel: "silent", metafile: true, plugins: [missingCommands, ...plugins], ...options });
  } catch (error) {
    const errors = (error as { errors?: esbuild.Message[] }).errors;
    if (errors) throw new BundleError(what, errors);
    throw error;
  }
  // Warnings that mean broken output at run time are errors here.
  const fatal = result.warnings.filter((w) => w.id === "empty-import-meta" || w.id === "unsupported-dynamic-import");
  if (fatal.length) throw new BundleError(what, fatal);
  return { metafile: result.metafile!, warnings: result.warnings.map(formatMessage) };
}

/**
 * ESM for the npm package: one output per entry (cli, mod, each command) with shared code split
 * into chunks/, so `rtexport show` loads only show's code, like the source does. npm
 * dependencies stay imports (they are the package's dependencies).
 */
export async function bundleNpm(outdir: string): Promise<BundleResult> {
  const entryPoints = [
    { in: join(ROOT, "cli.ts"), out: "cli" },
    { in: join(ROOT, "mod.ts"), out: "mod" },
    ...commandNames().map((name) => ({ in: join(ROOT, "commands", `${name}.ts`), out: `commands/${name}` })),
  ].filter((e) => existsSync(e.in));
  return await build("the npm package", {
    absWorkingDir: ROOT,
    entryPoints,
    outdir,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: NODE_TARGET,
    packages: "external",
    chunkNames: "chunks/[name]-[hash]",
    sourcemap: false,
    legalComments: "inline",
  });
}

/**
 * One CommonJS file for a Node single executable application (whose main script must be
 * CommonJS), for the Node 24 Linux binary and the Node 22 Windows one alike. Everything is inlined: commands, data modules and npm dependencies. `import.meta`
 * does not exist in CommonJS; every module sees `{ main: false, url: <file URL of the binary> }`,
 * so no module's "run when executed directly" guard fires, and the generated entry calls cli.ts's
 * `main` once.
 */
export async function bundleSea(outfile: string): Promise<BundleResult> {
  // What cli.ts's own "run when executed directly" block does, which the define below turns off.
  const entry = [`import { start } from "./cli.ts";`, `start();`].join("\n");
  return await build("the single-executable script", {
    absWorkingDir: ROOT,
    stdin: { contents: entry, resolveDir: ROOT, sourcefile: "sea_entry.ts", loader: "ts" },
    outfile,
    bundle: true,
    format: "cjs",
    platform: "node",
    target: NODE_TARGET,
    // Optional native add-on of pg and a Cloudflare-only module: never used under Node.
    external: ["pg-native", "cloudflare:sockets"],
    define: { "import.meta": "__rtexport_import_meta" },
    banner: {
      js: `"use strict";\nvar __rtexport_import_meta = { main: false, url: require("node:url").pathToFileURL(process.execPath).href };`,
    },
    legalComments: "eof",
    minifySyntax: true,
    minifyWhitespace: true,
    keepNames: true,
    loader: { ".wasm": "binary" },
  }, [embedWasm]);
}

/** Relative paths of a metafile's inputs that come from npm packages, by package. */
export function bundledPackages(meta: esbuild.Metafile): Record<string, number> {
  const sizes: Record<string, number> = {};
  for (const [path, input] of Object.entries(meta.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
    const key = m ? m[1] : "(rtexport)";
    sizes[key] = (sizes[key] ?? 0) + input.bytes;
  }
  return sizes;
}

/** `path` relative to the repository root, for messages. */
export function rel(path: string): string {
  return relative(ROOT, path) || ".";
}
