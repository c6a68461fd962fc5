import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, sep } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { type CommandContext, type CommandSpec, defineCommand } from "../cli/mod.ts";

const isDeno = "Deno" in globalThis;
const root = fileURLToPath(new URL("..", import.meta.url));
const cli = join(root, "cli.ts");
const cliNode = join(root, "cli.mjs");
const nodeBin = join(root, "node_modules", ".bin", "node");
const version = JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version as string;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Run a TypeScript entry point under the runtime running this test. */
function runScript(
  script: string,
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; input?: string } = {},
): Promise<Run> {
  const command = isDeno
    ? [process.execPath, "run", "-A", `--config=${join(root, "deno.json")}`, script, ...args]
    : [process.execPath, script, ...args];
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("RTEXPORT_")) env[k] = v;
  return new Promise((resolve, reject) => {
    const child = spawn(command[0], command.slice(1), {
      cwd: options.cwd ?? root,
      env: { ...env, NO_COLOR: "1", ...options.env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`timed out: ${command.join(" ")}`));
    }, 60_000);
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

const COMMANDS = [
  "list-patients",
  "export-plan",
  "copy-files",
  "anonymize",
  "push",
  "retrieve",
  "show",
  "search",
  "echo",
  "serve",
  "status",
];

describe("rtexport", { concurrency: true }, () => {
  test("--help lists every command with a summary", async () => {
    const r = await runScript(cli, ["--help"]);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^Usage: rtexport <command>/);
    for (const name of COMMANDS) assert.match(r.stdout, new RegExp(`^  ${name} +\\S`, "m"), name);
    assert.equal(r.stderr, "");
  });

  test("--version prints the package version", async () => {
    const r = await runScript(cli, ["--version"]);
    assert.equal(r.status, 0);
    assert.equal(r.stdout, `rtexport ${version}\n`);
  });

  test("no arguments: usage on stderr, exit 2", async () => {
    const r = await runScript(cli, []);
    assert.equal(r.status, 2);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^Usage: rtexport <command>/);
  });

  test("unknown command: exit 2 naming it", async () => {
    const r = await runScript(cli, ["frobnicate", "x"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^rtexport: unknown command "frobnicate"\n/);
  });

  test("a mistyped command or option: exit 2 with what was probably meant", async () => {
    const command = await runScript(cli, ["shwo", "x"]);
    assert.equal(command.status, 2);
    assert.match(command.stderr, /^rtexport: unknown command "shwo" \(did you mean "show"\?\)\n/);
    const option = await runScript(cli, ["copy-files", "--parralel", "3", "--to", "x"]);
    assert.equal(option.status, 2);
    assert.match(option.stderr, /^copy-files: unknown option '--parralel' \(did you mean --parallel\?\)\n/);
  });

  test("cli/option_names.ts lists every command and option (node scripts/gen_option_names.ts)", async () => {
    const { optionNamesSource } = await import("../scripts/gen_option_names.ts");
    assert.equal(readFileSync(join(root, "cli", "option_names.ts"), "utf8"), await optionNamesSource());
  });

  test("an old Node gets one line naming the version needed, not a stack trace", () => {
    // The machine's own Node (Debian's, 20 here) next to the project's Node 24.
    const system = spawnSync("node", ["--version"], { encoding: "utf8" });
    const [major, minor] = (system.stdout ?? "v0.0").slice(1).split(".").map(Number);
    const r = spawnSync("node", [cliNode, "--version"], { encoding: "utf8" });
    if (major < 22 || (major === 22 && minor < 18)) {
      assert.equal(r.status, 1);
      assert.equal(r.stderr, `rtexport needs Node >= 22.18 or Deno 2; found Node ${system.stdout.trim().slice(1)}\n`);
      assert.equal(r.stdout, "");
    } else {
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `rtexport ${version}\n`);
    }
  });

  test("unknown top-level option: exit 2 naming it", async () => {
    const r = await runScript(cli, ["--frob"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown option "--frob"/);
  });

  test("a command's --help shows its usage, common options and defaults", async () => {
    const r = await runScript(cli, ["status", "--help"]);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^Usage: rtexport status \[options\]/);
    assert.match(r.stdout, /--log-format <format> +stderr message format: text or json \(default: "text"\)/);
    assert.match(r.stdout, /--json/);
    assert.match(r.stdout, /Exit status: 0 ok, 1 fatal error \(nothing could be done\), 2 usage error, 3 some items failed, 130 interrupted/);
  });

  test("unknown flag on a command: exit 2 naming the flag, no stack trace", async () => {
    const r = await runScript(cli, ["status", "--no-such-flag"]);
    assert.equal(r.status, 2);
    assert.equal(r.stderr, "status: unknown option '--no-such-flag'\nTry 'rtexport status --help' for more information.\n");
  });

  test("cli.mjs (Node's fast entry) runs the same command line, exit statuses included", () => {
    const run = (args: string[]) => spawnSync(nodeBin, [cliNode, ...args], { encoding: "utf8", timeout: 60_000 });
    assert.equal(run(["--version"]).stdout, `rtexport ${version}\n`);
    const help = run(["status", "--help"]);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^Usage: rtexport status \[options\]/);
    const bad = run(["frobnicate"]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^rtexport: unknown command "frobnicate"\n/);
  });
});

describe("invocation by name", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "rtexport-cli-"));
    symlinkSync(cli, join(dir, "list-patients"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  // Deno resolves a main module's imports relative to the link, not its target, so links are a
  // Node (and single binary) feature; this test runs the link with Node under both runtimes.
  test("a link named list-patients runs that command", () => {
    const result = spawnSync(nodeBin, [join(dir, "list-patients"), "--help"], { encoding: "utf8", timeout: 60_000 });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^Usage: list-patients \[options\]/);
    const bad = spawnSync(nodeBin, [join(dir, "list-patients"), "--bogus"], { encoding: "utf8", timeout: 60_000 });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^list-patients: unknown option '--bogus'/);
  });
});

describe("defineCommand: config, environment, flags", { concurrency: true }, () => {
  let dir: string;
  let probe: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "rtexport-cfg-"));
    mkdirSync(join(dir, "other"));
    mkdirSync(join(dir, "defaults-only"));
    writeFileSync(join(dir, "defaults-only", "rtexport.json"), JSON.stringify({ defaults: { limit: 20 } }));
    mkdirSync(join(dir, "broken"));
    writeFileSync(join(dir, "broken", "rtexport.json"), "{ not json");
    probe = join(dir, "probe.ts");
    const cliUrl = new URL("../cli/mod.ts", import.meta.url).href;
    writeFileSync(
      probe,
      `import { collect, defineCommand, runMain, UsageError } from ${JSON.stringify(cliUrl)};
export const main = defineCommand({
  name: "probe",
  summary: "print resolved options",
  usage: "[PATH...]",
  peer: "optional",
  configure(cmd) {
    cmd.option("--limit <n>", "how many", (v) => { const n = Number(v); if (!Number.isInteger(n)) throw new Error("expected an integer"); return n; }, 10);
    cmd.option("--pattern <glob>", "file pattern", "*");
    cmd.option("--dry-run", "do nothing");
    cmd.option("--no-verify", "skip hash verification");
    cmd.option("--machine <ae>", "repeatable", collect);
    cmd.option("--list <a,b>", "repeatable, commas split", (v: string, previous: string[] | undefined) => [...(previous ?? []), ...v.split(",")]);
    cmd.argument("[path...]");
  },
  async run(ctx) {
    if (ctx.args.includes("usage-error")) throw new UsageError('Malformed tag expression "(0010"');
    if (ctx.args.includes("fail")) {
      ctx.reporter.failed('Cannot read DICOM file "bad.dcm": not DICOM', { item: "bad.dcm" });
      ctx.reporter.done();
    }
    if (ctx.args.includes("crash")) throw new Error("database is locked");
    const stdin = [];
    const records = ctx.stdinRecords();
    if (records) for await (const r of records) stdin.push(r);
    await ctx.out.write({
      type: "probe",
      limit: ctx.options.limit, limitFrom: ctx.optionSource("limit"),
      pattern: ctx.options.pattern, patternFrom: ctx.optionSource("pattern"),
      dryRun: ctx.options.dryRun ?? false,
      verify: ctx.options.verify,
      machine: ctx.options.machine ?? null, list: ctx.options.list ?? null,
      peer: ctx.peer, args: ctx.args, stdin, json: ctx.out.json,
    });
  },
});
runMain(import.meta, main);
`,
    );
    writeFileSync(
      join(dir, "rtexport.json"),
      JSON.stringify({
        peers: { aria: { host: "10.1.2.3", port: 57347, calledAet: "VMSDBD", callingAet: "FROMPEER" } },
        defaults: { limit: 20, pattern: "*.dcm", callingAet: "FROMDEFAULTS" },
        commands: { probe: { limit: 30 } },
      }),
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function probeRun(args: string[], env: Record<string, string> = {}, cwd?: string): Promise<Run> {
    return runScript(probe, args, { cwd: cwd ?? dir, env });
  }
  // deno-lint-ignore no-explicit-any
  function record(r: Run): Record<string, any> {
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 1);
    return JSON.parse(lines[0]);
  }

  const precedence: { name: string; args: string[]; env: Record<string, string>; cwd?: string; limit: number; from: string }[] = [
    { name: "built-in default", args: [], env: {}, cwd: "other", limit: 10, from: "default" },
    { name: "config defaults", args: [], env: {}, cwd: "defaults-only", limit: 20, from: "config" },
    { name: "config command section over defaults", args: [], env: {}, limit: 30, from: "config" },
    { name: "environment over config", args: [], env: { RTEXPORT_LIMIT: "40" }, limit: 40, from: "env" },
    { name: "flag over environment", args: ["--limit", "50"], env: { RTEXPORT_LIMIT: "40" }, limit: 50, from: "cli" },
  ];
  for (const c of precedence) {
    test(`precedence: ${c.name}`, async () => {
      const cwd = c.cwd ? join(dir, c.cwd) : dir;
      const out = record(await probeRun(c.args, c.env, cwd));
      assert.equal(out.limit, c.limit);
      assert.equal(out.limitFrom, c.from);
    });
  }

  test("string option from config and env", async () => {
    assert.equal(record(await probeRun([])).pattern, "*.dcm");
    assert.equal(record(await probeRun([], { RTEXPORT_PATTERN: "RP*" })).pattern, "RP*");
  });

  test("boolean from environment", async () => {
    assert.equal(record(await probeRun([], { RTEXPORT_DRY_RUN: "1" })).dryRun, true);
    assert.equal(record(await probeRun([], { RTEXPORT_DRY_RUN: "false" })).dryRun, false);
  });

  test("a --no-X option: RTEXPORT_X and config \"x\" set the value itself", async () => {
    assert.equal(record(await probeRun([])).verify, true);
    assert.equal(record(await probeRun(["--no-verify"])).verify, false);
    assert.equal(record(await probeRun([], { RTEXPORT_VERIFY: "false" })).verify, false);
    assert.equal(record(await probeRun([], { RTEXPORT_VERIFY: "true" })).verify, true);
    writeFileSync(join(dir, "other", "noverify.json"), JSON.stringify({ commands: { probe: { verify: false } } }));
    assert.equal(record(await probeRun(["--config", join(dir, "other", "noverify.json")])).verify, false);
  });

  test("a repeatable option from config: an array is the flags in turn, an empty one is none (and takes back the defaults' list)", async () => {
    const cases: { config: Record<string, unknown>; machine?: unknown; list?: unknown; error?: RegExp }[] = [
      { config: { commands: { probe: { machine: ["TB1", "TB2"] } } }, machine: ["TB1", "TB2"] },
      { config: { commands: { probe: { machine: "TB1" } } }, machine: ["TB1"] },
      { config: { commands: { probe: { machine: [] } } }, machine: null },
      { config: { defaults: { machine: ["TB1"] }, commands: { probe: { machine: [] } } }, machine: null },
      { config: { commands: { probe: { list: ["a,b", "c"] } } }, list: ["a", "b", "c"] },
      { config: { commands: { probe: { limit: [1] } } }, error: /Invalid value \[1\] for "limit" in config file ".*": expected a single value/ },
      { config: { commands: { probe: { machine: [{ ae: "TB1" }] } } }, error: /Invalid value \{"ae":"TB1"\} in "machine" in config file ".*": expected a string or a number/ },
    ];
    for (const [i, c] of cases.entries()) {
      const file = join(dir, "other", `repeatable-${i}.json`);
      writeFileSync(file, JSON.stringify(c.config));
      const r = await probeRun(["--config", file]);
      if (c.error) {
        assert.equal(r.status, 2, JSON.stringify(c.config));
        assert.match(r.stderr, c.error);
        continue;
      }
      const out = record(r);
      if ("machine" in c) assert.deepEqual(out.machine, c.machine, JSON.stringify(c.config));
      if ("list" in c) assert.deepEqual(out.list, c.list, JSON.stringify(c.config));
    }
  });

  test("an unknown option in the command's config section is a usage error naming it", async () => {
    writeFileSync(join(dir, "other", "typo.json"), JSON.stringify({ commands: { probe: { limt: 5 } } }));
    const r = await probeRun(["--config", join(dir, "other", "typo.json")]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^probe: Unknown option "limt" for probe in config file ".*typo\.json" \(did you mean "limit"\?\)\n/);
  });

  test("--config names another file", async () => {
    writeFileSync(join(dir, "other", "site.json"), JSON.stringify({ defaults: { limit: 77 } }));
    assert.equal(record(await probeRun(["--config", join(dir, "other", "site.json")])).limit, 77);
    assert.equal(record(await probeRun([], { RTEXPORT_CONFIG: join(dir, "other", "site.json") })).limit, 77);
  });

  test("named peer: peer fields over config defaults, flags and env over the peer", async () => {
    const peer = record(await probeRun(["--peer", "aria"])).peer;
    assert.deepEqual(
      { ...peer },
      {
        name: "aria",
        host: "10.1.2.3",
        port: 57347,
        callingAet: "FROMPEER",
        calledAet: "VMSDBD",
        connectTimeout: 10,
        assocTimeout: 30,
        dimseTimeout: 60,
        maxPdu: 16384,
        tls: false,
      },
    );
    const over = record(await probeRun(["--peer", "aria", "--port", "11112", "--aec", "ORTHANC"], { RTEXPORT_CALLING_AET: "ENVAET" })).peer;
    assert.equal(over.port, 11112);
    assert.equal(over.calledAet, "ORTHANC");
    assert.equal(over.callingAet, "ENVAET");
    assert.equal(over.host, "10.1.2.3");
    const plain = record(await probeRun(["--host", "localhost", "--called-aet", "X"])).peer;
    assert.equal(plain.callingAet, "FROMDEFAULTS");
    assert.equal(plain.calledAet, "X");
    assert.equal(plain.port, 104);
  });

  test("unknown peer: exit 2 naming it and the known peers", async () => {
    const r = await probeRun(["--peer", "nope"]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^probe: Unknown peer "nope": ".*rtexport\.json" defines "aria"\n/);
  });

  const malformed: { name: string; args: string[]; env?: Record<string, string>; stderr: RegExp }[] = [
    { name: "bad port", args: ["--port", "99999"], stderr: /^probe: option '--port <port>' argument '99999' is invalid\. expected a port number 1-65535\./ },
    { name: "bad AE title", args: ["--aet", "THIS-AE-TITLE-IS-TOO-LONG"], stderr: /option '--aet, --calling-aet <ae>' argument 'THIS-AE-TITLE-IS-TOO-LONG' is invalid/ },
    { name: "bad log format", args: ["--log-format", "xml"], stderr: /option '--log-format <format>' argument 'xml' is invalid/ },
    { name: "bad env value", args: [], env: { RTEXPORT_LIMIT: "many" }, stderr: /^probe: Invalid value "many" for environment variable RTEXPORT_LIMIT: expected an integer/ },
    { name: "bad env boolean", args: [], env: { RTEXPORT_DRY_RUN: "maybe" }, stderr: /RTEXPORT_DRY_RUN: expected true or false/ },
    { name: "missing config file", args: ["--config", "/nonexistent/x.json"], stderr: /^probe: Cannot read config file "\/nonexistent\/x\.json": ENOENT/ },
    { name: "usage error from the command", args: ["usage-error"], stderr: /^probe: Malformed tag expression "\(0010"\nTry 'probe --help'/ },
  ];
  for (const c of malformed) {
    test(`usage error: ${c.name} → exit 2`, async () => {
      const r = await probeRun(c.args, c.env);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, c.stderr);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    });
  }

  test("a broken config file is a usage error naming the file", async () => {
    const r = await probeRun([], {}, join(dir, "broken"));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^probe: Cannot parse config file ".*broken\/rtexport\.json": /);
  });

  test("per-item failure: one stderr line, record still written, exit 3", async () => {
    const r = await probeRun(["fail"]);
    assert.equal(r.status, 3);
    assert.equal(r.stderr, 'probe: Cannot read DICOM file "bad.dcm": not DICOM\n');
    assert.equal(JSON.parse(r.stdout).type, "probe");
  });

  test("per-item failure with --log-format json", async () => {
    const r = await probeRun(["fail", "--log-format", "json"]);
    assert.equal(r.status, 3);
    const line = JSON.parse(r.stderr);
    assert.equal(line.level, "error");
    assert.equal(line.command, "probe");
    assert.equal(line.message, 'Cannot read DICOM file "bad.dcm": not DICOM');
    assert.equal(line.item, "bad.dcm");
  });

  test("fatal error: exit 1, one line, stack only with RTEXPORT_DEBUG=1", async () => {
    const r = await probeRun(["crash"]);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, "probe: database is locked\n");
    const debug = await probeRun(["crash"], { RTEXPORT_DEBUG: "1" });
    assert.equal(debug.status, 1);
    assert.match(debug.stderr, /^probe: database is locked\nError: database is locked\n\s+at /);
  });

  test("records from stdin when no operands; operands win over stdin", async () => {
    const r = await runScript(probe, [], { cwd: dir, input: '{"type":"file","path":"a.dcm"}\r\n\n{"type":"plan","patientId":"1"}\n' });
    const out = record(r);
    assert.deepEqual(out.stdin, [{ type: "file", path: "a.dcm" }, { type: "plan", patientId: "1" }]);
    assert.equal(out.json, true);
    const withArgs = record(await runScript(probe, ["x.dcm"], { cwd: dir, input: '{"type":"file","path":"a.dcm"}\n' }));
    assert.deepEqual(withArgs.stdin, []);
    assert.deepEqual(withArgs.args, ["x.dcm"]);
  });

  test("stdin: a line that is not JSON is a path; -0 reads NUL-separated paths", async () => {
    const lines = record(await runScript(probe, [], { cwd: dir, input: "a.dcm\r\n{\"type\":\"plan\",\"patientId\":\"1\"}\n/x y/b.dcm\n" }));
    assert.deepEqual(lines.stdin, [{ type: "file", path: "a.dcm" }, { type: "plan", patientId: "1" }, { type: "file", path: "/x y/b.dcm" }]);
    const nul = record(await runScript(probe, ["-0"], { cwd: dir, input: "a.dcm\0with\nnewline.dcm\0" }));
    assert.deepEqual(nul.stdin, [{ type: "file", path: "a.dcm" }, { type: "file", path: "with\nnewline.dcm" }]);
  });

  test("empty stdin: a warning that the command before it may have failed", async () => {
    const r = await runScript(probe, [], { cwd: dir, input: "" });
    assert.equal(r.status, 0);
    assert.match(r.stderr, /^probe: warning: No input on stdin: if a command before this one in a pipeline failed, nothing was passed on \(use set -o pipefail\)\n$/);
  });

  test("typos in rtexport.json are warned about with what was probably meant", async () => {
    const cwd = join(dir, "typos");
    mkdirSync(cwd);
    writeFileSync(join(cwd, "rtexport.json"), JSON.stringify({
      peer: {},
      peers: { pacs: { host: "h", calledAE: "X" } },
      defaults: { parralel: 3, limit: 5 },
      commands: { shwo: {} },
    }));
    const r = await runScript(probe, [], { cwd, input: '{"type":"x"}\n' });
    assert.equal(record(r).limit, 5);
    const file = join(cwd, "rtexport.json");
    assert.deepEqual(r.stderr.split("\n").filter(Boolean), [
      `probe: warning: Unknown key "peer" in config file "${file}" is ignored (did you mean "peers"?)`,
      `probe: warning: Unknown field "calledAE" of peer "pacs" in config file "${file}" is ignored (did you mean "calledAet"?)`,
      `probe: warning: Unknown option "parralel" in "defaults" of config file "${file}" is ignored (did you mean "parallel"?)`,
      `probe: warning: Unknown command "shwo" in "commands" of config file "${file}" is ignored (did you mean "show"?)`,
    ]);
  });

  test("bad stdin record: exit 1 naming the line", async () => {
    const r = await runScript(probe, [], { cwd: dir, input: '{"type":"file"}\n{"type":\n' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^probe: Cannot parse NDJSON line 2 of stdin: /);
  });
});

describe("defineCommand in-process", () => {
  async function runInProcess(
    spec: CommandSpec,
    argv: string[],
    tty: boolean,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    const stdout = new PassThrough();
    let out = "";
    stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    let err = "";
    const code = await defineCommand(spec)(argv, {
      stdin: Object.assign(Readable.from([]), { isTTY: true }),
      stdout: Object.assign(stdout, { isTTY: tty }),
      stderr: { write: (t: string) => (err += t) },
      env: {},
      cwd: tmpdir(),
    });
    await new Promise((r) => setTimeout(r, 0));
    return { code, stdout: out, stderr: err };
  }
  const rows = [{ type: "patient", patientId: "1" }, { type: "patient", patientId: "2" }];

  test("terminal: per-record human view; --json forces NDJSON; pipe: NDJSON", async () => {
    const spec: CommandSpec = {
      name: "rows",
      summary: "rows",
      human: { record: (r) => `patient ${r.patientId}` },
      async run(ctx: CommandContext) {
        assert.equal(ctx.hasStdinRecords, false); // stdin is a terminal
        for (const r of rows) await ctx.out.write(r);
      },
    };
    assert.equal((await runInProcess(spec, [], true)).stdout, "patient 1\npatient 2\n");
    assert.equal((await runInProcess(spec, ["--json"], true)).stdout, rows.map((r) => JSON.stringify(r) + "\n").join(""));
    assert.equal((await runInProcess(spec, [], false)).stdout, rows.map((r) => JSON.stringify(r) + "\n").join(""));
  });

  test("terminal: whole-set human view rendered at the end", async () => {
    const spec: CommandSpec = {
      name: "table",
      summary: "table",
      human: { all: (rs) => `${rs.length} patients` },
      async run(ctx: CommandContext) {
        await ctx.out.writeAll(rows);
      },
    };
    assert.equal((await runInProcess(spec, [], true)).stdout, "2 patients\n");
  });

  test("reporter summary, quiet and verbose", async () => {
    const spec: CommandSpec = {
      name: "sum",
      summary: "sum",
      run(ctx: CommandContext) {
        ctx.log.debug("details");
        ctx.log.info("working");
        ctx.reporter.done(2);
        ctx.reporter.skipped();
        ctx.reporter.summary("files");
      },
    };
    assert.deepEqual(await runInProcess(spec, [], false), { code: 0, stdout: "", stderr: "sum: working\nsum: 2 files done, 1 skipped, 0 failed\n" });
    assert.equal((await runInProcess(spec, ["-q"], false)).stderr, "");
    assert.equal((await runInProcess(spec, ["-v"], false)).stderr, "sum: debug: details\nsum: working\nsum: 2 files done, 1 skipped, 0 failed\n");
  });

  test("a returned exit code wins", async () => {
    const r = await runInProcess({ name: "x", summary: "x", run: () => 3 }, [], false);
    assert.equal(r.code, 3);
  });
});

describe("library code", () => {
  // STYLE: lib/ never prints; only entry points (cli.ts, commands/, cli/) write to the process's
  // stdout/stderr. Comments and JSDoc examples are allowed to show console use.
  test("lib/ has no console.* or process.stdout/stderr writes outside lib/runtime", () => {
    const offenders: string[] = [];
    const libDir = join(root, "lib");
    const visit = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) {
          if (path !== join(libDir, "runtime")) visit(path);
        } else if (entry.name.endsWith(".ts")) {
          readFileSync(path, "utf8").split("\n").forEach((line, i) => {
            const code = line.replace(/\/\/.*$/, "");
            if (/^\s*(\*|\/\*\*)/.test(line)) return;
            if (/\bconsole\.(log|error|warn|info|debug)\(|process\.(stdout|stderr)\.write\(/.test(code)) {
              offenders.push(`${path.slice(root.length)}:${i + 1}: ${line.trim()}`);
            }
          });
        }
      }
    };
    visit(libDir);
    assert.deepEqual(offenders, []);
  });

  // The library is what the CLI, scripts and the web UI share: it must not depend on any front end.
  test("no file under lib/ imports from cli/, commands/, ui/ or the entry points", () => {
    const offenders: string[] = [];
    const visit = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) visit(path);
        else if (entry.name.endsWith(".ts")) {
          const text = readFileSync(path, "utf8");
          for (const m of text.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)) {
            const spec = m[1];
            if (!spec.startsWith(".")) continue;
            const target = relative(root, join(dirname(path), spec)).split(sep).join("/");
            if (!target.startsWith("lib/")) offenders.push(`${relative(root, path)} imports ${spec}`);
          }
        }
      }
    };
    visit(join(root, "lib"));
    assert.deepEqual(offenders, []);
  });

  // A bundler turns an entry that another module imports into a re-export of a shared chunk, whose
  // main-module check then never holds (the npm package's `node cli.js --version` printed nothing).
  test("nothing imports the entry point cli.ts", () => {
    const offenders: string[] = [];
    const visit = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) {
          if (!["node_modules", ".git", "dist", "tests", "bench", "scripts"].includes(entry.name) && !entry.name.startsWith(".")) visit(path);
        } else if (entry.name.endsWith(".ts") && path !== join(root, "cli.ts")) {
          const text = readFileSync(path, "utf8");
          for (const m of text.matchAll(/(?:from|import)\s*\(?\s*["']([^"']+)["']/g)) {
            if (m[1].startsWith(".") && join(dirname(path), m[1]) === join(root, "cli.ts")) offenders.push(`${relative(root, path)} imports ${m[1]}`);
          }
        }
      }
    };
    visit(root);
    assert.deepEqual(offenders, []);
  });

  // A circle (a.ts -> b.ts -> a.ts) means neither room says what it holds alone; type-only imports count too.
  test("no import circle between files under lib/", () => {
    const imports = new Map<string, string[]>();
    const visit = (dir: string) => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) visit(path);
        else if (entry.name.endsWith(".ts")) {
          const from = relative(root, path).split(sep).join("/");
          const text = readFileSync(path, "utf8").split("\n").filter((l) => !/^\s*(\*|\/\/)/.test(l)).join("\n");
          const targets = [...text.matchAll(/(?:from|import)\s*\(?\s*["'](\.[^"']+)["']/g)]
            .map((m) => relative(root, join(dirname(path), m[1])).split(sep).join("/"));
          imports.set(from, targets);
        }
      }
    };
    visit(join(root, "lib"));
    const circles: string[] = [];
    const state = new Map<string, "open" | "closed">();
    const stack: string[] = [];
    const walk = (file: string) => {
      state.set(file, "open");
      stack.push(file);
      for (const next of imports.get(file) ?? []) {
        if (state.get(next) === "open") circles.push([...stack.slice(stack.indexOf(next)), next].join(" -> "));
        else if (!state.has(next)) walk(next);
      }
      stack.pop();
      state.set(file, "closed");
    };
    for (const file of [...imports.keys()].sort()) if (!state.has(file)) walk(file);
    assert.deepEqual(circles, []);
  });
});
