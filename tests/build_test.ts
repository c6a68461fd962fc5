/**
 * What users get: the Linux single binary (dist/rtexport-linux-x64) run as on a server without
 * Node or Deno — every command's help, show/search, links, ledgers, push/retrieve against
 * Orthanc, serve — and the npm build imported as a user would. The binary is rebuilt only when
 * it is missing or older than the sources (`scripts/build_bin.ts --if-stale`), so the suite
 * stays fast.
 *
 * Building once is enough: this file runs under Node's run of the suite and is skipped under
 * Deno's (the binary does not depend on the runtime running the tests).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { type ClinicManifest, generateClinic } from "../lib/fixtures/mod.ts";
import { freePort, type OrthancPeer, startOrthanc } from "./_peers.ts";
import { type PostgresServer, startPostgres } from "./_postgres.ts";

const isDeno = "Deno" in globalThis;
const root = fileURLToPath(new URL("..", import.meta.url));
const binary = join(root, "dist", "rtexport-linux-x64");
const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;
const supported = process.platform === "linux" && process.arch === "x64";
/** Building takes ~25 s here, more on a loaded machine: beyond the suite's per-test timeout. */
const BUILD_TIMEOUT = 600_000;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** PATH entries that hold no `node` or `deno` executable (the machine's Node 20 is in /usr/bin). */
function pathWithoutRuntimes(extra: string): string {
  const runtimes = ["node", "deno", "nodejs", "node.exe", "deno.exe"];
  const dirs = (process.env.PATH ?? "").split(delimiter)
    .filter((dir) => dir && !runtimes.some((name) => existsSync(join(dir, name))));
  return [extra, ...dirs].join(delimiter);
}

/** The commands that have a module in commands/ (the ones a build can contain). */
function commandModules(): string[] {
  return readdirSync(join(root, "commands"))
    .filter((f) => f.endsWith(".ts") && !f.startsWith("_") && !f.endsWith("_test.ts"))
    .map((f) => f.slice(0, -3))
    .sort();
}

/** Names in cli.ts's dispatch table. */
function dispatchTable(): string[] {
  const source = readFileSync(join(root, "cli.ts"), "utf8");
  return [...source.matchAll(/import\("\.\/commands\/([a-z0-9-]+)\.ts"\)/g)].map((m) => m[1]).sort();
}

if (isDeno) {
  test("shipping: single binary and npm build (built and run under Node's run of the suite only)", { skip: "runs under Node" }, () => {});
} else {
  describe("shipping: the single binary dist/rtexport-linux-x64 and the npm build", { skip: supported ? false : "Linux x64 only" }, () => {
    let work = "";
    let clinic = "";
    let manifest: ClinicManifest;
    let env: Record<string, string> = {};

    /** Runs the binary (or a link to it) with neither Node nor Deno on PATH. */
    function runBinary(args: string[], options: { program?: string; input?: string; cwd?: string } = {}): Run {
      const result = spawnSync(options.program ?? binary, args, {
        cwd: options.cwd ?? work,
        env,
        input: options.input ?? "",
        encoding: "utf8",
        timeout: 60_000,
      });
      if (result.error) throw result.error;
      return { status: result.status, stdout: result.stdout, stderr: result.stderr };
    }

    /** `binary a… | binary b…`, both without Node or Deno on PATH. */
    function pipeBinary(a: string[], b: string[]): Promise<{ statusA: number | null; statusB: number | null; stdout: string; stderr: string }> {
      return new Promise((resolve, reject) => {
        const first = spawn(binary, a, { cwd: work, env, stdio: ["ignore", "pipe", "pipe"] });
        const second = spawn(binary, b, { cwd: work, env, stdio: ["pipe", "pipe", "pipe"] });
        first.stdout.pipe(second.stdin);
        let stdout = "";
        let stderr = "";
        first.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        second.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        second.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        const statuses: { a?: number | null; b?: number | null } = {};
        const timer = setTimeout(() => {
          first.kill("SIGKILL");
          second.kill("SIGKILL");
          reject(new Error("the pipe did not finish within 60 s"));
        }, 60_000);
        const done = () => {
          if (statuses.a === undefined || statuses.b === undefined) return;
          clearTimeout(timer);
          resolve({ statusA: statuses.a, statusB: statuses.b, stdout, stderr });
        };
        first.on("error", reject);
        second.on("error", reject);
        first.on("close", (code) => {
          statuses.a = code;
          done();
        });
        second.on("close", (code) => {
          statuses.b = code;
          done();
        });
      });
    }

    /** Like runBinary, without blocking the event loop (for commands talking to a peer in this process). */
    function runBinaryAsync(args: string[]): Promise<Run> {
      return new Promise((resolve, reject) => {
        const child = spawn(binary, args, { cwd: work, env, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
        child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
        const timer = setTimeout(() => {
          child.kill("SIGKILL");
          reject(new Error(`timed out: rtexport ${args.join(" ")}`));
        }, 60_000);
        child.on("error", reject);
        child.on("close", (status) => {
          clearTimeout(timer);
          resolve({ status, stdout, stderr });
        });
      });
    }

    function records(stdout: string): Record<string, unknown>[] {
      return stdout.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, unknown>);
    }

    before(async () => {
      const build = spawnSync(
        join(root, "node_modules", ".bin", "node"),
        [join(root, "scripts", "build_bin.ts"), "--target", "linux", "--if-stale"],
        { cwd: root, encoding: "utf8", timeout: BUILD_TIMEOUT - 10_000 },
      );
      assert.equal(build.status, 0, `building the binary failed:\n${build.stderr}`);
      work = mkdtempSync(join(tmpdir(), "rtexport-bin-"));
      const bin = join(work, "bin");
      mkdirSync(bin);
      env = { PATH: pathWithoutRuntimes(bin), HOME: work, LANG: "C.UTF-8", NO_COLOR: "1" };
      clinic = join(work, "clinic");
      manifest = await generateClinic({ out: clinic, patients: 2 });
    }, { timeout: BUILD_TIMEOUT });

    after(() => {
      if (work) rmSync(work, { recursive: true, force: true });
    });

    test("neither node nor deno can be found on the PATH the binary gets", () => {
      for (const runtime of ["node", "deno"]) {
        const r = spawnSync(runtime, ["--version"], { env, encoding: "utf8", timeout: 10_000 });
        assert.equal((r.error as NodeJS.ErrnoException | undefined)?.code, "ENOENT", `${runtime} is on PATH ${env.PATH}`);
      }
    });

    test("--version prints the package version and nothing on stderr", () => {
      const r = runBinary(["--version"]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `rtexport ${version}\n`);
      assert.equal(r.stderr, "");
    });

    test("no arguments: usage on stderr, exit 2", () => {
      const r = runBinary([]);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /^Usage: rtexport <command>/);
      assert.equal(r.stdout, "");
    });

    test("an unknown command: one line on stderr, exit 2", () => {
      const r = runBinary(["frobnicate"]);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /unknown command "frobnicate"/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
    });

    test("every command module is in cli.ts's dispatch table (the build picks up all of them)", () => {
      const table = dispatchTable();
      for (const name of commandModules()) assert.ok(table.includes(name), `commands/${name}.ts is not in cli.ts`);
    });

    test("every command's --help", () => {
      const names = commandModules().filter((n) => dispatchTable().includes(n));
      assert.ok(names.length >= 1);
      for (const name of names) {
        const r = runBinary([name, "--help"]);
        assert.equal(r.status, 0, `${name} --help: exit ${r.status}\n${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^Usage: rtexport ${name} `), `${name} --help`);
        assert.equal(r.stderr, "", `${name} --help wrote to stderr`);
      }
    });

    test("show on a generated clinic: one plan record per plan", () => {
      const r = runBinary(["show", "--json", "--pattern", "*.dcm", clinic]);
      assert.equal(r.status, 0, r.stderr);
      const plans = records(r.stdout).filter((x) => x.type === "plan");
      const expected = manifest.patients.flatMap((p) => p.plans.map((plan) => plan.label)).sort();
      assert.deepEqual(plans.map((p) => p.label).sort(), expected);
      // Only the summary line: no per-file message.
      assert.match(r.stderr, /^show: \d+ files done, 0 failed \([^)]*\)\n$/);
    });

    test("search on a generated clinic: file records for its RT plans", () => {
      const r = runBinary(["search", "--json", "--pattern", "*.dcm", "--tag", "Modality=RTPLAN", clinic]);
      assert.equal(r.status, 0, r.stderr);
      const files = records(r.stdout).filter((x) => x.type === "file");
      assert.equal(files.length, manifest.counts.RTPLAN);
      assert.ok(files.every((f) => typeof f.path === "string" && String(f.path).startsWith(clinic)), "absolute paths in");
    });

    test("search | show: a pipe of two binaries", async () => {
      const patient = manifest.patients[0];
      const r = await pipeBinary(
        ["search", "--json", "--pattern", "*.dcm", "--tag", `PatientID=${patient.patientId}`, clinic],
        ["show", "--json"],
      );
      assert.equal(r.statusA, 0, r.stderr);
      assert.equal(r.statusB, 0, r.stderr);
      const plans = records(r.stdout).filter((x) => x.type === "plan");
      assert.deepEqual(plans.map((p) => p.label).sort(), patient.plans.map((p) => p.label).sort());
      assert.ok(plans.every((p) => p.patientId === patient.patientId));
    });

    /**
     * The clinic's first CT slice compressed by GDCM with each lossless codec, and the pixels
     * `gdcmconv --raw` decodes from each (all four equal the slice's own).
     */
    function compressedSlices(): { paths: string[]; pixels: Buffer } {
      const ct = join(clinic, manifest.patients[0].patientId, "CT", "CT0001.dcm");
      const dir = join(work, "compressed");
      mkdirSync(dir, { recursive: true });
      const paths = ["--jpeg", "--jpegls", "--j2k", "--rle"].map((flag) => {
        const out = join(dir, `ct${flag.slice(1)}.dcm`);
        const r = spawnSync("gdcmconv", [flag, ct, out], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        return out;
      });
      const raw = join(dir, "raw.dcm");
      assert.equal(spawnSync("gdcmconv", ["--raw", paths[1], raw]).status, 0);
      return { paths, pixels: pixelData(raw) };
    }

    /** Native pixel data bytes of a file, by DCMTK (dcmdump +W writes each bulk value to a file). */
    function pixelData(path: string): Buffer {
      const dir = mkdtempSync(join(work, "px-"));
      const r = spawnSync("dcmdump", ["-q", "+W", dir, path], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
      const files = readdirSync(dir).filter((f) => f.endsWith(".raw"));
      assert.equal(files.length, 1, `native pixel data in ${path}`);
      return readFileSync(join(dir, files[0]));
    }

    test("transcode decodes JPEG Lossless, JPEG-LS, JPEG 2000 and RLE (the WebAssembly codecs embedded in the binary)", () => {
      const { paths, pixels } = compressedSlices();
      const r = runBinary(["transcode", "--json", "--to", "explicit-le", "--out", join(work, "decoded"), ...paths]);
      assert.equal(r.status, 0, r.stderr);
      const out = records(r.stdout);
      assert.deepEqual(out.map((x) => (x.transcode as { fromTransferSyntaxUid: string }).fromTransferSyntaxUid),
        ["1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5"]);
      for (const x of out) assert.deepEqual(pixelData(String(x.path)), pixels, String(x.path));
    });

    test("called through a link named after a command, it runs that command", () => {
      const links = join(work, "links");
      mkdirSync(links, { recursive: true });
      for (const name of ["list-patients", "show"]) symlinkSync(binary, join(links, name));

      const help = runBinary(["--help"], { program: join(links, "list-patients") });
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, /^Usage: (rtexport )?list-patients /);
      assert.doesNotMatch(help.stdout, /^Commands:/m, "not the rtexport usage");

      const show = runBinary(["--json", "--pattern", "*.dcm", clinic], { program: join(links, "show") });
      assert.equal(show.status, 0, show.stderr);
      const plans = records(show.stdout).filter((x) => x.type === "plan");
      assert.equal(plans.length, manifest.patients.reduce((n, p) => n + p.plans.length, 0));
    });
    test("ui: the page from inside the binary, and its jobs run by the binary itself (list-patients on the clinic)", async () => {
      const ui = spawn(binary, ["ui", "--port", "0"], { cwd: work, env, stdio: ["ignore", "pipe", "pipe"] });
      try {
        const rec = await new Promise<Record<string, string>>((resolve, reject) => {
          let out = "";
          const timer = setTimeout(() => reject(new Error("rtexport ui did not print its URL within 30 s")), 30_000);
          ui.on("error", reject);
          ui.stdout!.setEncoding("utf8").on("data", (d: string) => {
            out += d;
            if (!out.includes("\n")) return;
            clearTimeout(timer);
            resolve(JSON.parse(out.split("\n")[0]));
          });
        });
        const page = await fetch(rec.url);
        assert.equal(page.status, 200);
        assert.match(await page.text(), /<title>rtexport<\/title>/);
        assert.equal((await fetch(`${rec.url}api/info`)).status, 401);
        const headers = { Authorization: `Bearer ${new URL(rec.openUrl).searchParams.get("token")}`, "Content-Type": "application/json" };
        const saved = await fetch(`${rec.url}api/config/folders/clinic`, { method: "PUT", headers, body: JSON.stringify({ path: clinic }) });
        assert.equal(saved.status, 200, await saved.text());
        const listed = await fetch(`${rec.url}api/list`, { method: "POST", headers, body: JSON.stringify({ source: { kind: "folder", name: "clinic" } }) });
        const body = await listed.json();
        assert.equal(body.exitCode, 0, JSON.stringify(body));
        assert.deepEqual(body.patients.map((p: { patientId: string }) => p.patientId).sort(), manifest.patients.map((p) => p.patientId).sort());
      } finally {
        ui.kill("SIGKILL");
      }
    });

    describe("npm build, imported as a user would", () => {
      let pkgDir = "";
      const node = join(root, "node_modules", ".bin", "node");

      before(() => {
        pkgDir = join(work, "pkg");
        const build = spawnSync(node, [join(root, "build_npm.ts"), "--no-test", "--out", pkgDir], {
          cwd: root,
          encoding: "utf8",
          timeout: 300_000,
        });
        assert.equal(build.status, 0, `building the npm package failed:\n${build.stderr}`);
        // A project whose node_modules holds the package and its dependencies, as npm would lay it out.
        const modules = join(work, "node_modules");
        mkdirSync(modules, { recursive: true });
        symlinkSync(pkgDir, join(modules, "rtexport"), "dir");
        const deps = Object.keys((JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")) as {
          dependencies: Record<string, string>;
        }).dependencies);
        for (const dep of deps) {
          mkdirSync(dirname(join(modules, dep)), { recursive: true }); // scoped packages: @scope/name
          symlinkSync(join(root, "node_modules", dep), join(modules, dep), "dir");
        }
      }, { timeout: BUILD_TIMEOUT });

      test("package.json: bin, exports with types, engines, the files they name exist", () => {
        const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")) as {
          bin: unknown;
          type: string;
          exports: Record<string, { types?: string }>;
          engines: { node: string };
        };
        assert.deepEqual(pkg.bin, { rtexport: "cli.js" });
        assert.equal(pkg.type, "module");
        assert.equal(pkg.exports["."].types, "./mod.d.ts");
        assert.equal(pkg.engines.node, ">=22");
        for (const file of ["cli.js", "mod.js", "mod.d.ts", "LICENSE", "README.md"]) {
          assert.ok(existsSync(join(pkgDir, file)), file);
        }
        assert.match(readFileSync(join(pkgDir, "cli.js"), "utf8"), /^#!\/usr\/bin\/env node\n/);
        for (const name of commandModules()) assert.ok(existsSync(join(pkgDir, "commands", `${name}.js`)), name);
      });

      test("an ESM script imports the library from \"rtexport\" and reads an RT plan", () => {
        const patient = manifest.patients[0];
        const plan = patient.plans[0];
        const script = join(work, "read_plan.mjs");
        const planPath = runBinary(["search", "--json", "--pattern", "*.dcm", "--tag", `RTPlanLabel=${plan.label}`, join(clinic, patient.patientId)]);
        const file = String(records(planPath.stdout)[0].path);
        writeFileSync(script, [
          `import { readDicomFile, SOP_CLASS_NAMES } from "rtexport";`,
          `const { dataset } = readDicomFile(process.argv[2]);`,
          `console.log(JSON.stringify({ sopClass: SOP_CLASS_NAMES.get(dataset.string("SOPClassUID")), label: dataset.string("RTPlanLabel") }));`,
        ].join("\n"));
        const r = spawnSync(node, [script, file], { cwd: work, encoding: "utf8", timeout: 60_000 });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout), { sopClass: "RT Plan Storage", label: plan.label });
      });

      test("cli.js transcode: the WebAssembly codecs load from the dependencies' own files", () => {
        const { paths, pixels } = compressedSlices();
        const r = spawnSync(node, [join(pkgDir, "cli.js"), "transcode", "--json", "--to", "implicit-le", "--out", join(work, "npm-decoded"), ...paths], {
          cwd: work,
          encoding: "utf8",
          timeout: 60_000,
        });
        assert.equal(r.status, 0, r.stderr);
        const out = records(r.stdout);
        assert.equal(out.length, 4);
        for (const x of out) assert.deepEqual(pixelData(String(x.path)), pixels, String(x.path));
      });

      test("cli.js under Node 24: --version, and show on the clinic", () => {
        const printed = spawnSync(node, [join(pkgDir, "cli.js"), "--version"], { cwd: work, encoding: "utf8", timeout: 60_000 });
        assert.equal(printed.stdout, `rtexport ${version}\n`);
        const show = spawnSync(node, [join(pkgDir, "cli.js"), "show", "--json", "--pattern", "*.dcm", clinic], {
          cwd: work,
          encoding: "utf8",
          timeout: 60_000,
        });
        assert.equal(show.status, 0, show.stderr);
        const plans = records(show.stdout).filter((x) => x.type === "plan");
        assert.equal(plans.length, manifest.patients.reduce((n, p) => n + p.plans.length, 0));
      });
    });

    describe("ledger", () => {
      let pg: PostgresServer | undefined;
      after(() => pg?.stop());

      /** copy-files one patient into `to`, then `status`; returns status's record. */
      async function copyThenStatus(patient: number, to: string, ledger: string[]): Promise<Record<string, unknown>> {
        const p = manifest.patients[patient];
        const copy = await runBinaryAsync(["copy-files", "--json", "--to", to, ...ledger, join(clinic, p.patientId)]);
        assert.equal(copy.status, 0, copy.stderr);
        const copied = records(copy.stdout).filter((x) => x.type === "file");
        assert.equal(copied.length, p.studies.reduce((n, st) => n + st.series.reduce((m, se) => m + se.instances.length, 0), 0));
        const status = await runBinaryAsync(["status", "--json", ...(ledger.length ? ledger : [to])]);
        assert.equal(status.status, 0, status.stderr);
        assert.doesNotMatch(copy.stderr + status.stderr, /ExperimentalWarning/);
        const record = records(status.stdout).find((x) => x.type === "status")!;
        assert.equal((record.kinds as { file: { done: number } }).file.done, copied.length);
        return record;
      }

      test("copy-files then status, with the embedded SQLite ledger (node:sqlite inside the binary)", async () => {
        const record = await copyThenStatus(0, join(work, "copy-sqlite"), []);
        assert.match(String(record.ledger), /^sqlite:/);
      });

      test("copy-files then status, with a PostgreSQL ledger (the bundled pg driver)", async () => {
        pg = await startPostgres();
        const record = await copyThenStatus(1, join(work, "copy-pg"), ["--ledger", pg.url()]);
        assert.match(String(record.ledger), /^postgres:/);
      });
    });

    describe("against Orthanc", () => {
      let orthanc: OrthancPeer;
      let movePort = 0;
      before(async () => {
        movePort = await freePort();
        orthanc = await startOrthanc({ modalities: [{ aeTitle: "RTXBIN", host: "127.0.0.1", port: movePort }] });
      });
      after(async () => {
        await orthanc?.stop();
      });

      test("push: every object of a patient is stored in Orthanc", async () => {
        const patient = manifest.patients[0];
        const r = await runBinaryAsync([
          "push", "--json", "--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle,
          "--aet", "RTXBIN", "--pattern", "*.dcm", join(clinic, patient.patientId),
        ]);
        assert.equal(r.status, 0, r.stderr);
        const pushed = records(r.stdout).filter((x) => x.type === "file");
        assert.ok(pushed.length > 0);
        assert.ok(pushed.every((f) => (f.push as { status?: string }).status === "stored"), r.stdout.slice(0, 500));
        const ids: string[] = await orthanc.rest("/instances");
        const stored = await Promise.all(
          ids.map(async (id) => (await orthanc.rest(`/instances/${id}`)).MainDicomTags.SOPInstanceUID as string),
        );
        assert.deepEqual(stored.sort(), pushed.map((f) => String(f.sopInstanceUid)).sort());
      });

      test("retrieve: C-MOVE of one plan from Orthanc into the binary's own storage SCP", async () => {
        const patient = manifest.patients[0];
        const out = join(work, "moved");
        const r = await runBinaryAsync([
          "retrieve", "--json", "--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle,
          "--aet", "RTXBIN", "--move-port", String(movePort), "--move-host", "127.0.0.1", "--dimse-timeout", "20",
          "--patient-id", patient.patientId, "--plan", patient.plans[0].label, "--out", out,
        ]);
        assert.equal(r.status, 0, r.stderr);
        const output = records(r.stdout);
        const summary = output.find((x) => x.type === "retrieve-summary") as { complete?: boolean; kept?: number };
        assert.equal(summary.complete, true, r.stderr);
        const files = output.filter((x) => x.type === "file");
        assert.equal(files.length, summary.kept);
        assert.ok(files.every((f) => existsSync(String(f.path))));
      });
    });

    describe("serve", () => {
      let server: ChildProcess | undefined;
      let serverOut = "";
      let serverErr = "";
      let port = 0;
      const served = () => join(work, "served");

      before(async () => {
        port = await freePort();
        server = spawn(binary, ["serve", "--dir", served(), "--port", String(port), "--host", "127.0.0.1", "--aet", "RTXSERVE", "--allow", "RTEXPORT@127.0.0.1"], {
          cwd: work,
          env,
          stdio: ["ignore", "pipe", "pipe"],
        });
        server.stdout!.setEncoding("utf8").on("data", (d: string) => (serverOut += d));
        server.stderr!.setEncoding("utf8").on("data", (d: string) => (serverErr += d));
        const deadline = Date.now() + 15_000;
        while (!/listening on/.test(serverErr) && server.exitCode === null && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.match(serverErr, new RegExp(`listening on 127\\.0\\.0\\.1:${port} as RTXSERVE`));
      });
      after(() => {
        if (server && server.exitCode === null) server.kill("SIGKILL");
      });

      test("echo, push to it, retrieve (C-GET) from it, stop on SIGTERM: all from the binary, SQLite index included", async () => {
        const peer = ["--host", "127.0.0.1", "--port", String(port), "--aec", "RTXSERVE"];
        const echo = await runBinaryAsync(["echo", "--json", ...peer]);
        assert.equal(echo.status, 0, echo.stderr);
        assert.equal(records(echo.stdout)[0].status, "ok");

        const patient = manifest.patients[1];
        const push = await runBinaryAsync(["push", "--json", ...peer, "--pattern", "*.dcm", join(clinic, patient.patientId)]);
        assert.equal(push.status, 0, push.stderr);
        const pushed = records(push.stdout).filter((x) => x.type === "file");

        const out = join(work, "from-serve");
        const get = await runBinaryAsync([
          "retrieve", "--json", ...peer, "--get", "--patient-id", patient.patientId, "--plan", patient.plans[0].label,
          "--out", out, "--dimse-timeout", "20",
        ]);
        assert.equal(get.status, 0, get.stderr);
        const summary = records(get.stdout).find((x) => x.type === "retrieve-summary") as { complete?: boolean };
        assert.equal(summary.complete, true, get.stderr);

        const exited = new Promise<number | null>((resolve) => server!.on("close", resolve));
        server!.kill("SIGTERM");
        assert.equal(await exited, 0, serverErr);
        const stored = records(serverOut).filter((x) => x.type === "file");
        assert.deepEqual(stored.map((f) => f.sopInstanceUid).sort(), pushed.map((f) => f.sopInstanceUid).sort());
        assert.ok(existsSync(join(served(), ".rtexport-index.sqlite")), "the SQLite index exists");
        assert.doesNotMatch(serverErr, /ExperimentalWarning|\n\s+at /, "no runtime warning or stack trace");
      });
    });
  });
}
