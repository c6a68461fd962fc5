#!/usr/bin/env node
// rtexport task runner, plain JavaScript so it runs on any Node (also the machine's old one),
// with no dependencies. `node scripts/run.mjs test` installs what the suite needs (npm packages,
// Debian peers such as dcmtk and orthanc) and runs it under Node 24 and Deno;
// `node scripts/run.mjs demo` runs the end-to-end export demo (scripts/demo.ts) into ./export.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const bin = (name) => join(root, "node_modules", ".bin", process.platform === "win32" ? `${name}.cmd` : name);
const NODE = bin("node");
const DENO = bin("deno");

class TaskError extends Error {}

function say(text) {
  process.stderr.write(`run: ${text}\n`);
}

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return -1;
  }
}

/** Run a command with inherited stdio; throws TaskError on failure. */
function runOrFail(command, args, options = {}) {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit", ...options });
  if (result.error) throw new TaskError(`Cannot run ${command}: ${result.error.message}`);
  if (result.status !== 0) {
    throw new TaskError(`${[command, ...args].join(" ")} failed with exit status ${result.status ?? result.signal}`);
  }
}

/** (a) npm packages: `npm ci` when node_modules is missing or older than package-lock.json. */
function ensureNodeModules() {
  const lock = join(root, "package-lock.json");
  const marker = join(root, "node_modules", ".package-lock.json");
  const installed = Math.max(mtime(marker), existsSync(marker) ? -1 : mtime(join(root, "node_modules")));
  const present = installed >= 0 && existsSync(NODE) && existsSync(DENO);
  if (present && (installed >= mtime(lock) || installedMatchesLock(lock, marker))) return;
  say(existsSync(join(root, "node_modules")) ? "package-lock.json changed: npm ci" : "node_modules missing: npm ci");
  const npm = process.platform === "win32" ? "npm.cmd" : "npm";
  const ci = spawnSync(npm, ["ci", "--no-audit", "--no-fund"], { cwd: root, encoding: "utf8", shell: process.platform === "win32" });
  if (ci.status !== 0) {
    // A registry that lacks some platform's optional packages (here: @deno/darwin-*) yields a lock
    // file without them, which `npm ci` refuses as "not in sync"; `npm install` accepts it and
    // installs the same versions.
    say("npm ci failed; trying npm install");
    const install = spawnSync(npm, ["install", "--no-audit", "--no-fund"], { cwd: root, stdio: "inherit", shell: process.platform === "win32" });
    if (install.status !== 0) {
      process.stderr.write(ci.stdout ?? "");
      process.stderr.write(ci.stderr ?? "");
      throw new TaskError(`npm ci and npm install failed (exit status ${ci.status} and ${install.status})`);
    }
  }
  if (!existsSync(NODE) || !existsSync(DENO)) {
    throw new TaskError("npm ci did not install node_modules/.bin/node and node_modules/.bin/deno");
  }
}

/**
 * True when npm's record of what is installed (node_modules/.package-lock.json) has every package
 * of package-lock.json at the same version: a lock file that is only newer (a checkout) needs no
 * reinstall. Optional packages for other platforms are never installed and are not required.
 */
function installedMatchesLock(lockPath, markerPath) {
  try {
    const lock = JSON.parse(readFileSync(lockPath, "utf8")).packages ?? {};
    const installed = JSON.parse(readFileSync(markerPath, "utf8")).packages ?? {};
    for (const [key, entry] of Object.entries(lock)) {
      if (key === "") continue;
      const have = installed[key];
      if (!have) {
        if (entry.optional) continue;
        return false;
      }
      if (have.version !== entry.version) return false;
    }
    return true;
  } catch {
    return false;
  }
}

function onPath(name) {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin", "/usr/bin"])) {
    if (dir && existsSync(join(dir, name))) return true;
  }
  return false;
}

function hasInitdb() {
  try {
    return readdirSync("/usr/lib/postgresql").some((v) => existsSync(`/usr/lib/postgresql/${v}/bin/initdb`));
  } catch {
    return false;
  }
}

// wine64 runs the Windows binary in tests/windows_test.ts (the test makes its own Wine prefix);
// rsyslog is the audit collector of tests/audit_test.ts and tests/push_clinical_test.ts;
// time (GNU time, /usr/bin/time) measures a run's peak RSS in tests/anonymize_stream_test.ts;
// chromium is the browser tests/ui_test.ts drives (playwright-core, executablePath /usr/bin/chromium).
const DEBIAN_PACKAGES = ["dcmtk", "orthanc", "dicom3tools", "python3-pydicom", "libgdcm-tools", "postgresql", "wine64", "rsyslog", "time", "chromium"];

function missingDebianTools() {
  const missing = ["dcmdump", "storescp", "Orthanc", "dciodvfy", "gdcmanon", "pg_ctlcluster", "rsyslogd"].filter((t) => !onPath(t));
  if (!hasInitdb()) missing.push("initdb");
  // Debian's wine64 has no command on PATH without the `wine` package: its loader is here.
  if (!existsSync("/usr/lib/wine/wine64")) missing.push("wine64");
  if (!existsSync("/usr/bin/time")) missing.push("time");
  if (!existsSync("/usr/bin/chromium")) missing.push("chromium");
  const pydicom = spawnSync("/usr/bin/python3", ["-c", "import pydicom"], { stdio: "ignore" });
  if (pydicom.status !== 0) missing.push("pydicom");
  return missing;
}

/** (b) Debian peers and tools the tests talk to. */
function ensureDebianTools() {
  if (process.platform !== "linux") return;
  const missing = missingDebianTools();
  if (missing.length === 0) return;
  say(`missing ${missing.join(", ")}: installing ${DEBIAN_PACKAGES.join(" ")}`);
  const root = typeof process.getuid === "function" && process.getuid() === 0;
  if (!root && !onPath("sudo")) {
    throw new TaskError(
      `Cannot install Debian packages: not root and sudo not found; install them with: apt-get install ${DEBIAN_PACKAGES.join(" ")}`,
    );
  }
  if (!onPath("apt-get")) {
    throw new TaskError(`Cannot install Debian packages: apt-get not found; install: ${DEBIAN_PACKAGES.join(" ")}`);
  }
  const prefix = root ? [] : ["sudo", "-n", "env", "DEBIAN_FRONTEND=noninteractive"];
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const run = (args) => {
    const [command, ...rest] = [...prefix, ...args];
    runOrFail(command, rest, { env });
  };
  run(["apt-get", "update"]);
  // A service Orthanc that apt may start listens on its default ports (4242/8042); the tests start
  // their own peers on free ports chosen at run time, so it does not interfere.
  run(["apt-get", "install", "-y", "--no-install-recommends", ...DEBIAN_PACKAGES]);
  const still = missingDebianTools();
  if (still.length) throw new TaskError(`Still missing after apt-get install: ${still.join(", ")}`);
}

function findTests(dir) {
  const found = [];
  if (!existsSync(dir)) return found;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findTests(path));
    else if (entry.name.endsWith("_test.ts")) found.push(path);
  }
  return found.sort();
}

/** Run a child, echoing its output, and return {status, output}. */
/**
 * Runs a command, echoing its output. `limitMs` bounds the whole run: a test file that leaks a
 * handle (a socket, a child process) would otherwise keep the runner alive forever.
 */
function runEcho(command, args, env, limitMs = 0) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const timer = limitMs > 0
      ? setTimeout(() => {
        say(`${command} ${args[0]} ran past ${limitMs / 60000} minutes: stopped (a test leaked a handle or hangs)`);
        output += "\nrun: stopped after the time limit\n";
        child.kill("SIGKILL");
      }, limitMs)
      : undefined;
    child.stdout.on("data", (chunk) => {
      output += chunk;
      process.stdout.write(chunk);
    });
    child.stderr.on("data", (chunk) => {
      output += chunk;
      process.stderr.write(chunk);
    });
    child.on("error", (error) => {
      if (timer) clearTimeout(timer);
      resolve({ status: 1, output: output + String(error) });
    });
    child.on("close", (status, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ status: status ?? (signal ? 1 : 0), output });
    });
  });
}

function count(text, pattern) {
  const match = text.match(pattern);
  return match ? Number(match[1]) : undefined;
}

/**
 * Count leaf tests in Deno's JUnit report. Deno reports describe() blocks as tests and their
 * tests as steps ("suite > test"); Node counts only the tests, so count the leaves here too.
 */
function junitLeaves(xml) {
  const cases = [];
  for (const m of xml.matchAll(/<testcase name="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const name = m[1].replace(/&gt;/g, ">").replace(/&lt;/g, "<").replace(/&quot;/g, '"').replace(/&amp;/g, "&");
    cases.push({ name, failed: /<failure/.test(m[3] ?? "") });
  }
  const names = cases.map((c) => c.name);
  let passed = 0;
  let failed = 0;
  for (const c of cases) {
    if (names.some((n) => n.startsWith(c.name + " > "))) continue;
    if (c.failed) failed++;
    else passed++;
  }
  return { passed, failed };
}

async function test() {
  ensureNodeModules();
  ensureDebianTools();
  const files = findTests(join(root, "tests")).map((f) => relative(root, f));
  if (files.length === 0) throw new TaskError("No tests found under tests/");
  const env = { ...process.env, TCP_NODELAY: "1", NO_COLOR: "1" };
  delete env.NODE_OPTIONS;
  delete env.FORCE_COLOR; // Deno forces colours when it is set at all

  const scratch = mkdtempSync(join(tmpdir(), "rtexport-run-"));
  const tap = join(scratch, "node.tap");
  let passed = 0;
  let failed = 0;
  try {
    say(`node ${spawnSync(NODE, ["--version"]).stdout.toString().trim()}: ${files.length} test files`);
    const node = await runEcho(NODE, [
      "--test",
      "--test-timeout=120000",
      // Not --test-force-exit: it ends a file as soon as the tests registered so far are done,
      // which silently dropped tests registered later (46 of search_test's 72). The time limit
      // below keeps a leaked handle from hanging the run instead.
      "--test-reporter=spec",
      "--test-reporter-destination=stdout",
      "--test-reporter=tap",
      `--test-reporter-destination=${tap}`,
      ...files,
    ], env, 30 * 60_000);
    const tapText = existsSync(tap) ? readFileSync(tap, "utf8") : "";
    const nodePass = count(tapText, /^# pass (\d+)/m) ?? 0;
    let nodeFail = count(tapText, /^# fail (\d+)/m) ?? 0;
    nodeFail += count(tapText, /^# cancelled (\d+)/m) ?? 0;
    if (node.status !== 0 && nodeFail === 0) nodeFail = 1; // crashed without a summary
    passed += nodePass;
    failed += nodeFail;
    say(`node: ${nodePass} passed, ${nodeFail} failed`);

    say(`deno ${spawnSync(DENO, ["--version"]).stdout.toString().split("\n")[0]}`);
    const junit = join(scratch, "deno.xml");
    // Type errors are reported by one `deno check` step, so that a type error in one module does
    // not stop every Deno test from running.
    const check = await runEcho(DENO, ["check", "cli.ts", "mod.ts", "commands/", "tests/"], env);
    if (check.status !== 0) {
      failed += 1;
      say("deno check: type errors (counted as 1 failure)");
    }
    // The lint rules of deno.json (unused names, `any`, …) over the whole tree, as one check.
    const lint = await runEcho(DENO, ["lint"], env);
    // Library code never prints: the no-console rule over all of lib/ (deno.json cannot scope a rule to a folder).
    const libLint = await runEcho(DENO, ["lint", "--rules-include=no-console", "lib/"], env);
    if (lint.status !== 0 || libLint.status !== 0) {
      failed += 1;
      say("deno lint: problems (counted as 1 failure)");
    }
    const deno = await runEcho(DENO, ["test", "-A", "--no-check", `--junit-path=${junit}`, "tests/"], env, 30 * 60_000);
    let { passed: denoPass, failed: denoFail } = junitLeaves(existsSync(junit) ? readFileSync(junit, "utf8") : "");
    // A test file that fails to load is not in the JUnit report, only in the output.
    // deno-lint-ignore no-control-regex -- ANSI colour codes in deno test's output
    const plain = deno.output.replace(/\x1b\[[0-9;]*m/g, "");
    const failures = plain.slice(plain.lastIndexOf(" FAILURES "));
    denoFail += plain.includes(" FAILURES ") ? (failures.match(/^\S+_test\.ts \(uncaught error\)$/gm) ?? []).length : 0;
    if (deno.status !== 0 && denoFail === 0) denoFail = 1; // e.g. a test file that does not load
    passed += denoPass;
    failed += denoFail;
    say(`deno: ${denoPass} passed, ${denoFail} failed`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  process.stdout.write(`tests: ${passed} passed, ${failed} failed\n`);
  return failed === 0 ? 0 : 1;
}

// deno-lint-ignore require-await -- every task returns a promise
async function demo() {
  ensureNodeModules();
  // scripts/demo.ts: synthetic clinic + catalog + vault, DICOM served by `rtexport serve`, then
  // list-patients | export-plan | copy-files into ./export, the tree and the ledger's summary.
  const result = spawnSync(NODE, [join(root, "scripts", "demo.ts"), ...process.argv.slice(3)], { cwd: process.cwd(), stdio: "inherit" });
  if (result.error) throw new TaskError(`Cannot run the demo: ${result.error.message}`);
  return result.status ?? 1;
}

const tasks = { test, demo };
const name = process.argv[2];
if (!Object.hasOwn(tasks, name ?? "")) {
  process.stderr.write("Usage: node scripts/run.mjs test|demo\n");
  process.exit(2);
}
tasks[name]().then(
  (code) => process.exit(code),
  (error) => {
    say(error instanceof TaskError ? error.message : String(error?.stack ?? error));
    process.exit(1);
  },
);
