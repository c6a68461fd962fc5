/**
 * The Windows single binary (dist/rtexport-win-x64.exe: Node 22 for Windows with the bundle
 * inside) run under Debian's Wine, beside the Linux binary built from the same bundle.
 *
 * One Wine prefix for the whole file (created in `before`, Windows 10, thrown away in `after`),
 * one build (`scripts/build_bin.ts --target all --if-stale`: rebuilt only when its inputs' hash
 * changed). Under Wine a Windows program's stdout must be a file (a pipe gives `open EBADF` when
 * Node creates process.stdout), so every run here redirects stdout and stderr to files and reads
 * them back. Paths the .exe sees are Windows paths: the test's files under `Z:\` (Wine maps Z: to
 * /), outputs under `C:\` (the prefix's drive_c).
 *
 * Built and run under Node's run of the suite only, like tests/build_test.ts: the binary does
 * not depend on the runtime running the tests.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  closeSync, copyFileSync, cpSync, existsSync, linkSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync,
  symlinkSync, writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { buildDemoCatalog } from "../lib/catalog/demo.ts";
import { type ClinicManifest, generateClinic } from "../lib/fixtures/mod.ts";
import { dcmtkEnv, freePort, type OrthancPeer, startOrthanc } from "./_peers.ts";

const isDeno = "Deno" in globalThis;
const root = fileURLToPath(new URL("..", import.meta.url));
const exe = join(root, "dist", "rtexport-win-x64.exe");
const linuxBinary = join(root, "dist", "rtexport-linux-x64");
const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;
const supported = process.platform === "linux" && process.arch === "x64";
/** Debian's wine64 package installs the loader here (no /usr/bin/wine without the `wine` package). */
const WINE = "/usr/lib/wine/wine64";
const WINESERVER = "/usr/lib/wine/wineserver";
/** Building both binaries takes ~30 s here, more on a loaded machine; creating the prefix ~10 s. */
const SETUP_TIMEOUT = 600_000;
const KEY = "wine-test-key-0123456789abcdef";

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

type Json = Record<string, unknown>;

function records(stdout: string): Json[] {
  return stdout.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as Json);
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Every regular file under `dir`, relative, with `/` separators, sorted (folders named in `skip` left out). */
function treeFiles(dir: string, skip: string[] = []): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) {
        if (!skip.includes(entry.name)) walk(path);
      } else out.push(relative(dir, path));
    }
  };
  walk(dir);
  return out.sort();
}

/** `{relative path: sha256}` of a tree. */
function treeHashes(dir: string, skip: string[] = []): Record<string, string> {
  return Object.fromEntries(treeFiles(dir, skip).map((f) => [f, sha256(join(dir, f))]));
}

/** The Windows path Wine gives a Linux path (drive Z: is /). */
function winPath(unixPath: string): string {
  return `Z:${unixPath.replaceAll("/", "\\")}`;
}

/**
 * Records of the .exe made comparable with the Linux binary's: every Windows path under Z:
 * becomes the Linux path it names.
 */
function unixify<T>(value: T): T {
  return JSON.parse(JSON.stringify(value), (_key, v) => typeof v === "string" ? unixPathsIn(v) : v);
}

/** Text with every Windows path under Z: turned into the Linux path it names. */
function unixPathsIn(text: string): string {
  return text.replace(/Z:(\\[^\s"]*)/g, (_m, p: string) => p.replaceAll("\\", "/"));
}

/** `text` as PowerShell 5's `>` writes it: UTF-16LE with a byte order mark, CRLF line ends. */
function powershell5(text: string): Uint8Array {
  const withBom = `\ufeff${text.replace(/\r?\n/g, "\r\n")}`;
  const out = new Uint8Array(withBom.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < withBom.length; i++) view.setUint16(2 * i, withBom.charCodeAt(i), true);
  return out;
}

/** Names Windows reserves for devices (any case, with or without an extension), per Microsoft's "Naming Files". */
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\..*)?$/i;

/** A path component Windows cannot use as written: reserved, forbidden characters, trailing dot or space. */
function unusableOnWindows(component: string): boolean {
  // deno-lint-ignore no-control-regex
  return RESERVED.test(component) || /[<>:"/\\|?*\x00-\x1f]/.test(component) || /[. ]$/.test(component);
}

if (isDeno) {
  test("windows: the .exe under Wine (built and run under Node's run of the suite only)", { skip: "runs under Node" }, () => {});
} else {
  describe("windows: dist/rtexport-win-x64.exe under Wine", { skip: supported ? false : "Linux x64 only" }, () => {
    let work = "";
    let prefix = "";
    let clinic = "";
    let manifest: ClinicManifest;
    let wineEnv: Record<string, string> = {};
    let runs = 0;
    const background: ChildProcess[] = [];

    /** The Linux path of a `C:\…` path in the prefix. */
    function driveC(windowsPath: string): string {
      assert.match(windowsPath, /^C:\\/i);
      return join(prefix, "drive_c", ...windowsPath.slice(3).split("\\").filter(Boolean));
    }

    /**
     * Runs a Windows program under Wine with stdout and stderr redirected to files (read back
     * when it exits) and stdin from `stdin` (a Linux path) or the null device.
     */
    function wine(program: string, args: string[], options: { stdin?: string; cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
      const n = ++runs;
      const outPath = join(work, "io", `${n}.out`);
      const errPath = join(work, "io", `${n}.err`);
      const out = openSync(outPath, "w");
      const err = openSync(errPath, "w");
      const input = options.stdin ? openSync(options.stdin, "r") : "ignore";
      const child = spawn(WINE, [program, ...args], { cwd: options.cwd ?? work, env: wineEnv, stdio: [input, out, err] });
      closeSync(out);
      closeSync(err);
      if (typeof input === "number") closeSync(input);
      const timeoutMs = options.timeoutMs ?? 90_000;
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          child.kill("SIGKILL");
          reject(new Error(`Timed out after ${timeoutMs} ms: ${program} ${args.join(" ")}\n${readFileSync(errPath, "utf8").slice(-2000)}`));
        }, timeoutMs);
        child.on("error", (e) => {
          clearTimeout(timer);
          reject(e);
        });
        child.on("close", (status) => {
          clearTimeout(timer);
          resolve({ status, stdout: readFileSync(outPath, "utf8"), stderr: readFileSync(errPath, "utf8") });
        });
      });
    }

    /** `rtexport-win-x64.exe args…` under Wine. */
    function rtx(args: string[], options: { stdin?: string; cwd?: string; timeoutMs?: number } = {}): Promise<Run> {
      return wine(exe, args, options);
    }

    /** The Linux binary, for comparison. */
    function linux(args: string[], options: { stdin?: string } = {}): Run {
      const r = spawnSync(linuxBinary, args, {
        cwd: work,
        env: { PATH: "/usr/bin:/bin", HOME: work, LANG: "C.UTF-8", NO_COLOR: "1" },
        input: options.stdin ? readFileSync(options.stdin) : "",
        encoding: "utf8",
        timeout: 90_000,
        maxBuffer: 64 * 1024 * 1024,
      });
      if (r.error) throw r.error;
      return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    }

    before(async () => {
      const build = spawnSync(
        join(root, "node_modules", ".bin", "node"),
        [join(root, "scripts", "build_bin.ts"), "--target", "all", "--if-stale"],
        { cwd: root, encoding: "utf8", timeout: SETUP_TIMEOUT - 60_000 },
      );
      assert.equal(build.status, 0, `building the binaries failed:\n${build.stderr}`);
      assert.ok(existsSync(WINE), `${WINE} is missing: apt-get install wine64 (scripts/run.mjs does)`);

      work = mkdtempSync(join(tmpdir(), "rtexport-wine-"));
      mkdirSync(join(work, "io"));
      prefix = join(work, "prefix");
      wineEnv = {
        PATH: "/usr/bin:/bin",
        HOME: work,
        LANG: "C.UTF-8",
        NO_COLOR: "1",
        WINEPREFIX: prefix,
        WINEDEBUG: "-all",
        // No Mono or Gecko: nothing here needs .NET or an HTML engine, and Wine would try to fetch them.
        WINEDLLOVERRIDES: "mscoree,mshtml=",
      };
      // Node 22 refuses to start on the prefix's default Windows version (7).
      const setup = await wine("winecfg", ["-v", "win10"], { timeoutMs: 180_000 });
      assert.equal(setup.status, 0, `winecfg -v win10 failed: ${setup.stderr}`);
      // One wineserver for the whole file (it would otherwise exit and restart between runs).
      spawnSync(WINESERVER, ["-p"], { env: wineEnv, stdio: "ignore", timeout: 30_000 });

      clinic = join(work, "clinic");
      manifest = await generateClinic({ out: clinic, patients: 2 });
    }, { timeout: SETUP_TIMEOUT });

    after(() => {
      for (const child of background) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      // Stops every Wine process of this prefix (and only of this prefix), then removes it.
      if (prefix && existsSync(prefix)) spawnSync(WINESERVER, ["-k"], { env: wineEnv, stdio: "ignore", timeout: 30_000 });
      if (work) rmSync(work, { recursive: true, force: true });
    });

    test("--version: the package version, from Node for Windows, nothing on stderr", async () => {
      const r = await rtx(["--version"]);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `rtexport ${version}\n`);
      assert.equal(r.stderr, "", "no warning (e.g. a rejected code cache) on stderr");
    });

    test("every command's --help", async () => {
      const source = readFileSync(join(root, "cli", "commands.ts"), "utf8");
      const names = [...source.matchAll(/import\("\.\.\/commands\/([a-z0-9-]+)\.ts"\)/g)].map((m) => m[1])
        .filter((name) => existsSync(join(root, "commands", `${name}.ts`))).sort();
      assert.ok(names.length >= 10, names.join(", "));
      for (const name of names) {
        const r = await rtx([name, "--help"]);
        assert.equal(r.status, 0, `${name} --help: exit ${r.status}\n${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^Usage: rtexport ${name} `), `${name} --help`);
        assert.equal(r.stderr, "", `${name} --help wrote to stderr`);
      }
    });

    test("show over the clinic: the Linux binary's records, paths aside", async () => {
      const args = ["show", "--json", "--pattern", "*.dcm"];
      const win = await rtx([...args, winPath(clinic)]);
      assert.equal(win.status, 0, win.stderr);
      const lin = linux([...args, clinic]);
      assert.equal(lin.status, 0, lin.stderr);
      const winRecords = records(win.stdout);
      assert.ok(winRecords.some((r) => String(r.path).startsWith(`${winPath(clinic)}\\`)), "Windows paths in the .exe's records");
      assert.equal(winRecords.filter((r) => r.type === "plan").length, manifest.patients.reduce((n, p) => n + p.plans.length, 0));
      assert.deepEqual(unixify(winRecords), records(lin.stdout));
      // The summary line says how long the run took: the two runs' seconds may differ.
      const seconds = (t: string) => t.replace(/ in \d+s\)/g, " in Ns)");
      assert.equal(seconds(unixPathsIn(win.stderr)), seconds(lin.stderr));
    });

    test("search --stats over the clinic (sequence path, seed 004's example): the Linux binary's records, paths aside", async () => {
      const args = ["search", "--json", "--stats", "--pattern", "RP*.dcm", "--tag", "(300A,00B0)/(300A,00B2)=?", "--tag", "Modality=?"];
      const win = await rtx([...args, "--path", winPath(clinic)]);
      assert.equal(win.status, 0, win.stderr);
      const lin = linux([...args, "--path", clinic]);
      assert.equal(lin.status, 0, lin.stderr);
      const winRecords = records(win.stdout);
      const withBeams = manifest.patients.flatMap((p) => p.plans).filter((p) => p.machinesFrom === "BeamSequence");
      assert.equal(winRecords.filter((r) => r.type === "file").length, withBeams.length);
      assert.ok(winRecords.some((r) => r.type === "stats"));
      assert.deepEqual(unixify(winRecords), records(lin.stdout));
    });

    test("anonymize a patient: byte-identical to the Linux binary's with the same key (a CRLF key file on Windows), twice into one folder", async () => {
      const patient = manifest.patients[0];
      // Notepad's way: the key and a CRLF line end.
      writeFileSync(join(work, "site.key"), `${KEY}\r\n`);
      const out = "C:\\rtx\\anon";
      const winArgs = ["anonymize", "--json", "--key-file", winPath(join(work, "site.key")), "--out", out, winPath(join(clinic, patient.patientId))];
      const win = await rtx(winArgs);
      assert.equal(win.status, 0, win.stderr);
      const linOut = join(work, "anon-linux");
      const lin = linux(["anonymize", "--json", "--key", KEY, "--out", linOut, join(clinic, patient.patientId)]);
      assert.equal(lin.status, 0, lin.stderr);

      const linTree = treeHashes(linOut);
      assert.equal(Object.keys(linTree).length, records(lin.stdout).filter((r) => r.type === "file").length);
      assert.deepEqual(treeHashes(driveC(out)), linTree);
      const winFiles = records(win.stdout).filter((r) => r.type === "file");
      assert.ok(winFiles.every((r) => String(r.path).startsWith(`${out}\\`)), String(winFiles[0]?.path));

      // Again into the same folder: every output is replaced by renaming over the existing file.
      const again = await rtx(winArgs);
      assert.equal(again.status, 0, again.stderr);
      assert.deepEqual(treeHashes(driveC(out)), linTree);
    });

    test("files PowerShell 5 writes: rtexport.json and records in UTF-16LE with CRLF", async () => {
      const folder = join(work, "ps5");
      mkdirSync(folder, { recursive: true });
      // `'{…}' > rtexport.json` in PowerShell 5: the config applies in the working folder.
      writeFileSync(join(folder, "rtexport.json"), powershell5('{\n  "commands": { "search": { "pattern": "RP*.dcm" } }\n}\n'));
      const found = await rtx(["search", "--json", "--tag", "Modality=?", winPath(clinic)], { cwd: folder });
      assert.equal(found.status, 0, found.stderr);
      const plans = records(found.stdout);
      assert.equal(plans.length, manifest.counts.RTPLAN, "the config's --pattern RP*.dcm applied");
      // `rtexport search … > plans.ndjson`, then `cmd /c "rtexport show < plans.ndjson"`.
      writeFileSync(join(folder, "plans.ndjson"), powershell5(found.stdout));
      const shown = await rtx(["show", "--json"], { stdin: join(folder, "plans.ndjson") });
      assert.equal(shown.status, 0, shown.stderr);
      const plain = await rtx(["show", "--json", "--pattern", "RP*.dcm", winPath(clinic)]);
      assert.deepEqual(records(shown.stdout).filter((r) => r.type === "plan"), records(plain.stdout).filter((r) => r.type === "plan"));
    });

    test("list-patients --from catalog with the vault on a UNC path, export-plan: the Linux binary's tree", async () => {
      // Wine resolves \\server\share through the prefix's dosdevices/unc folder.
      const vault = join(work, "vault");
      const db = join(work, "catalog.db");
      await buildDemoCatalog({ clinic, manifest, catalogPath: db, vault });
      mkdirSync(join(prefix, "dosdevices", "unc", "vault"), { recursive: true });
      symlinkSync(vault, join(prefix, "dosdevices", "unc", "vault", "share"));
      const unc = "\\\\vault\\share";

      const list = await rtx(["list-patients", "--json", "--from", "catalog", "--db", `sqlite:${winPath(db)}`, "--vault", unc]);
      assert.equal(list.status, 0, list.stderr);
      assert.ok(records(list.stdout).some((r) => r.type === "patient" && String(r.vault).startsWith(unc)), list.stdout.slice(0, 300));
      writeFileSync(join(work, "catalog.ndjson"), list.stdout);
      const out = "C:\\rtx\\from-vault";
      const exported = await rtx(["export-plan", "--json", "--out", out], { stdin: join(work, "catalog.ndjson") });
      assert.equal(exported.status, 0, exported.stderr);
      const files = records(exported.stdout).filter((r) => r.type === "file");
      const categories = new Set(files.map((f) => f.category));
      for (const c of ["document", "plan-file", "photo"]) assert.ok(categories.has(c), `${c} in ${[...categories]}`);
      assert.ok(files.some((f) => f.modality === "CT") && files.some((f) => f.modality === "RTPLAN"), "DICOM images and RT objects from the vault");

      const linList = linux(["list-patients", "--json", "--from", "catalog", "--db", `sqlite:${db}`, "--vault", vault]);
      assert.equal(linList.status, 0, linList.stderr);
      writeFileSync(join(work, "catalog-linux.ndjson"), linList.stdout);
      const linOut = join(work, "from-vault-linux");
      const lin = linux(["export-plan", "--json", "--out", linOut], { stdin: join(work, "catalog-linux.ndjson") });
      assert.equal(lin.status, 0, lin.stderr);
      const tree = treeHashes(driveC(out), [".rtexport"]);
      assert.equal(Object.keys(tree).length, files.length);
      assert.deepEqual(tree, treeHashes(linOut, [".rtexport"]));
    });

    // The tests of each describe run in order and build on each other (the tree read back is the
    // one exported; Orthanc holds what was pushed).
    describe("copy-files and export-plan into Windows paths", () => {
      let hostile = "";
      /** An output root of 115 characters: the long patient's files end past 260. */
      const deep = `C:\\rtx\\${"deep-folder-".repeat(9)}`;

      before(() => {
        // Patients and plans whose names Windows cannot take as they are, written into copies of
        // the clinic's files by DCMTK's dcmodify.
        hostile = join(work, "hostile");
        cpSync(clinic, hostile, { recursive: true });
        rmSync(join(hostile, "manifest.json"));
        const modify = (files: string[], ...assignments: string[]) => {
          const r = spawnSync("dcmodify", ["-nb", ...assignments.flatMap((a) => ["-m", a]), ...files], { encoding: "utf8", env: dcmtkEnv() });
          assert.equal(r.status, 0, r.stderr);
        };
        const files = (patient: string) => treeFiles(join(hostile, patient)).map((f) => join(hostile, patient, f));
        const [a, b] = manifest.patients;
        modify(files(a.patientId), "(0010,0010)=", "(0010,0020)=CON");
        modify([join(hostile, a.plans[0].path)], "(300A,0002)=AUX");
        modify([join(hostile, a.plans[1].path)], "(300A,0002)=NUL.txt");
        modify([join(hostile, a.plans[2].path)], "(300A,0002)=COM1. .");
        modify(files(b.patientId), `(0010,0010)=${"A".repeat(60)}^${"B".repeat(60)}.`, "(0010,0020)=LPT1.");
        modify([join(hostile, b.plans[0].path)], "(300A,0002)=Plan. . .");
        modify([join(hostile, b.plans[1].path)], "(300A,0002)=con");
      });

      test("list-patients > file, export-plan < file --out C:\\…: reserved names, trailing dots, paths past 260 characters; the Linux binary's tree", async () => {
        const listed = join(work, "hostile.ndjson");
        const list = await rtx(["list-patients", "--json", "--include-unapproved", "--from", "folder", winPath(hostile)]);
        assert.equal(list.status, 0, list.stderr);
        writeFileSync(listed, list.stdout);
        const exported = await rtx(["export-plan", "--json", "--include-unapproved", "--out", deep], { stdin: listed });
        assert.equal(exported.status, 0, exported.stderr);
        const files = records(exported.stdout).filter((r) => r.type === "file");
        assert.ok(files.length >= treeFiles(hostile).length, "every source file, the shared ones in each plan's folder");
        assert.ok(files.some((f) => String(f.path).length > 260), "some paths are longer than MAX_PATH");
        assert.ok(files.every((f) => String(f.path).startsWith(`${deep}\\`) && !String(f.path).startsWith("\\\\?\\")));

        const tree = driveC(deep);
        const written = treeHashes(tree, [".rtexport"]);
        // What was written is what the records say, and every copy has its source's hash.
        assert.deepEqual(
          Object.keys(written),
          files.map((f) => String(f.path).slice(deep.length + 1).replaceAll("\\", "/")).sort(),
        );
        for (const f of files) assert.equal(written[String(f.path).slice(deep.length + 1).replaceAll("\\", "/")], f.sha256);
        const sourceHashes = new Set(treeFiles(hostile).map((f) => sha256(join(hostile, f))));
        assert.ok(Object.values(written).every((h) => sourceHashes.has(h)));
        // No component Windows could not use, and the sanitized names are where they should be.
        for (const path of Object.keys(written)) {
          for (const part of path.split("/")) assert.ok(!unusableOnWindows(part), `"${part}" in ${path}`);
        }
        const top = readdirSync(tree).filter((d) => d !== ".rtexport").sort();
        assert.ok(top.includes("_CON"), top.join(", "));
        assert.deepEqual(readdirSync(join(tree, "_CON")).sort(), ["DICOM", "_AUX", "_COM1", "_NUL.txt"]);
        // The long name is cut to 96 bytes with a hash of the whole; its plan labels lost their trailing dots.
        const long = top.find((d) => d.startsWith("A".repeat(60)))!;
        assert.match(long, /^A{60}_B+~[0-9a-f]{8}$/);
        assert.equal(long.length, 96);
        assert.deepEqual(readdirSync(join(tree, long)).sort(), ["DICOM", "Plan", manifest.patients[1].plans[2].label, "_con"].sort());

        // The Linux binary, from the same records with Linux paths, writes the same tree.
        const linListed = join(work, "hostile-linux.ndjson");
        writeFileSync(linListed, unixify(list.stdout));
        const linOut = join(work, "hostile-linux");
        const lin = linux(["export-plan", "--json", "--include-unapproved", "--out", linOut], { stdin: linListed });
        assert.equal(lin.status, 0, lin.stderr);
        assert.deepEqual(written, treeHashes(linOut, [".rtexport"]));
      });

      test("the exported tree reads back on Windows: the .exe finds every file, Wine's cmd copies each one it can reach", async () => {
        const tree = driveC(deep);
        const expected = treeHashes(tree, [".rtexport"]);
        // The .exe walks the whole tree, paths past 260 characters included.
        const found = await rtx(["search", "--json", "--pattern", "*.dcm", "--tag", "SOPInstanceUID", deep]);
        assert.equal(found.status, 0, found.stderr);
        const paths = records(found.stdout).filter((r) => r.type === "file").map((r) => String(r.path));
        assert.deepEqual(paths.map((p) => p.slice(deep.length + 1).replaceAll("\\", "/")).sort(), Object.keys(expected));

        // cmd's DIR and COPY take paths as Windows programs usually do (no \\?\): there a folder
        // named CON or with a trailing dot cannot be listed, a file named NUL.txt reads the null
        // device. COPY refuses paths past MAX_PATH even with \\?\ under Wine ("File name is too
        // long"), so those are left to the .exe above.
        const short = paths.filter((p) => p.length < 260);
        assert.ok(short.length >= 20 && short.some((p) => /\\_?CON\\_?NUL\.txt\\/.test(p)));
        const folders = new Set(short.flatMap((p) => {
          const parts = p.slice(deep.length + 1).split("\\").slice(0, -1);
          return parts.map((_, i) => `${deep}\\${parts.slice(0, i + 1).join("\\")}`);
        }));
        const lines = ["@echo off", "mkdir C:\\readback"];
        for (const folder of folders) lines.push(`dir /b "${folder}" > nul`, `if errorlevel 1 echo dir "${folder}" failed 1>&2`);
        short.forEach((p, i) => lines.push(`copy /b "${p}" "C:\\readback\\${i}.dcm" > nul`, `if errorlevel 1 echo copy "${p}" failed 1>&2`));
        writeFileSync(join(work, "readback.bat"), lines.join("\r\n") + "\r\n");
        const r = await wine("cmd", ["/c", winPath(join(work, "readback.bat"))], { timeoutMs: 120_000 });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stderr, "");
        short.forEach((p, i) => {
          assert.equal(sha256(join(prefix, "drive_c", "readback", `${i}.dcm`)), expected[p.slice(deep.length + 1).replaceAll("\\", "/")], p);
        });
      });

      test("copy-files with the SQLite ledger, then status", async () => {
        const patient = manifest.patients[1];
        const to = "C:\\rtx\\copied";
        const copy = await rtx(["copy-files", "--json", "--to", to, winPath(join(clinic, patient.patientId))]);
        assert.equal(copy.status, 0, copy.stderr);
        const copied = records(copy.stdout).filter((r) => r.type === "file");
        assert.equal(copied.length, treeFiles(join(clinic, patient.patientId)).length);
        assert.ok(copied.every((f) => (f.copy as { status: string }).status === "copied"));
        for (const f of copied) assert.equal(sha256(driveC(String(f.path))), f.sha256);

        const status = await rtx(["status", "--json", to]);
        assert.equal(status.status, 0, status.stderr);
        const record = records(status.stdout).find((r) => r.type === "status")!;
        assert.equal(record.ledger, `sqlite:${to}\\.rtexport\\ledger.sqlite`);
        assert.equal((record.kinds as { file: { done: number } }).file.done, copied.length);
        assert.ok(existsSync(driveC(`${to}\\.rtexport\\ledger.sqlite`)));
        assert.doesNotMatch(copy.stderr + status.stderr, /ExperimentalWarning|\n\s+at /);
      });

      test("copy-files stopped by Ctrl+C (exit 130), then killed, mid-copy; the rerun copies only what was missing", async () => {
        const big = join(work, "big");
        await generateClinic({ out: big, patients: 1, slices: 200, size: 256, seed: 7 });
        rmSync(join(big, "manifest.json"));
        const total = treeFiles(big).length;
        const to = "C:\\rtx\\killed";
        const dest = driveC(to);
        const args = ["copy-files", "--json", "--parallel", "1", "--to", to, winPath(big)];
        // A file in progress is a dot-name ending in .part (`.<name>.<host>-<pid>-<n>.part`, see
        // lib/copy/copy.ts tempNameFor); it is not finished, and an interrupt removes it.
        const inProgress = (f: string) => /(^|\/)\.[^/]*\.(rtexport-)?part$/.test(f);
        const finished = () => existsSync(dest) ? treeFiles(dest, [".rtexport"]).filter((f) => !inProgress(f)) : [];

        /** Starts copy-files and sends `signal` once `count` files are in place; resolves with what it wrote. */
        async function stopAt(count: number, signal: "SIGINT" | "SIGKILL"): Promise<{ code: number | null; signal: string | null; output: string }> {
          const outPath = join(work, "io", `stopped-${signal}.out`);
          const out = openSync(outPath, "w");
          const child = spawn(WINE, [exe, ...args], { cwd: work, env: wineEnv, stdio: ["ignore", out, out] });
          closeSync(out);
          background.push(child);
          const exited = new Promise<void>((resolve) => child.on("close", () => resolve()));
          const deadline = Date.now() + 60_000;
          while (child.exitCode === null && Date.now() < deadline && finished().length < count) {
            await new Promise((r) => setTimeout(r, 10));
          }
          child.kill(signal);
          await exited;
          return { code: child.exitCode, signal: child.signalCode, output: readFileSync(outPath, "utf8") };
        }

        // Ctrl+C (Wine turns SIGINT into the console's Ctrl+C event): a clean stop, exit 130.
        const interrupted = await stopAt(20, "SIGINT");
        assert.equal(interrupted.code, 130, interrupted.output.slice(-500));
        assert.match(interrupted.output, /interrupted: \d+ files? done(, \d+ left)? — rerun to resume/);
        const afterInterrupt = finished().length;
        assert.ok(afterInterrupt >= 20 && afterInterrupt < total, `${afterInterrupt} of ${total}`);

        // Killed, as a crash or `taskkill /F` would.
        const killed = await stopAt(afterInterrupt + 20, "SIGKILL");
        assert.equal(killed.signal, "SIGKILL", `copy-files ended before it was killed:\n${killed.output.slice(-500)}`);
        const before = new Set(finished());
        assert.ok(before.size >= afterInterrupt + 20 && before.size < total, `${before.size} of ${total} copied before the kill`);

        const rerun = await rtx(args);
        assert.equal(rerun.status, 0, rerun.stderr);
        const files = records(rerun.stdout).filter((r) => r.type === "file");
        assert.equal(files.length, total);
        const rel = (f: Json) => String(f.path).slice(to.length + 1).replaceAll("\\", "/");
        const copiedNow = files.filter((f) => (f.copy as { status: string }).status === "copied").map(rel).sort();
        const all = files.map(rel).sort();
        assert.deepEqual(copiedNow, all.filter((f) => !before.has(f)), "the rerun copies exactly the files the killed run had not finished");
        assert.deepEqual(treeFiles(dest, [".rtexport"]), all, "no temporary file left");
        const sources = new Set(treeFiles(big).map((f) => sha256(join(big, f))));
        for (const f of files) {
          // A file copied now carries the sha256 of its bytes; one done before carries the
          // ledger's (ledgerSha256), never a hash it did not compute (issue 17).
          const doneBefore = (f.copy as { status: string }).status === "done-before";
          const hash = doneBefore ? f.ledgerSha256 : f.sha256;
          assert.equal(doneBefore ? f.sha256 : f.ledgerSha256, undefined);
          assert.equal(sha256(driveC(String(f.path))), hash);
          assert.ok(sources.has(String(hash)));
        }
        const status = await rtx(["status", "--json", to]);
        assert.equal(status.status, 0, status.stderr);
        const kinds = records(status.stdout)[0].kinds as { file: { done: number; failed: number } };
        assert.equal(kinds.file.done, total);
        assert.equal(kinds.file.failed, 0);
      });
    });

    describe("against Orthanc and DCMTK on loopback", () => {
      let orthanc: OrthancPeer;
      let movePort = 0;
      before(async () => {
        movePort = await freePort();
        orthanc = await startOrthanc({ modalities: [{ aeTitle: "RTXWIN", host: "127.0.0.1", port: movePort }] });
      });
      after(async () => {
        await orthanc?.stop();
      });

      test("push a patient to Orthanc: Orthanc holds exactly the objects pushed", async () => {
        const patient = manifest.patients[0];
        const r = await rtx([
          "push", "--json", "--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle, "--aet", "RTXWIN",
          "--pattern", "*.dcm", winPath(join(clinic, patient.patientId)),
        ]);
        assert.equal(r.status, 0, r.stderr);
        const pushed = records(r.stdout).filter((x) => x.type === "file");
        assert.equal(pushed.length, treeFiles(join(clinic, patient.patientId)).length);
        assert.ok(pushed.every((f) => (f.push as { status?: string }).status === "stored"), r.stdout.slice(0, 500));
        const ids: string[] = await orthanc.rest("/instances");
        const stored = await Promise.all(ids.map(async (id) => (await orthanc.rest(`/instances/${id}`)).MainDicomTags.SOPInstanceUID as string));
        assert.deepEqual(stored.sort(), pushed.map((f) => String(f.sopInstanceUid)).sort());
      });

      test("retrieve --get of one plan from Orthanc, twice into one folder; and by C-MOVE into the .exe's own SCP", async () => {
        const patient = manifest.patients[0];
        const plan = patient.plans[0];
        const peer = ["--host", "127.0.0.1", "--port", String(orthanc.port), "--aec", orthanc.aeTitle, "--aet", "RTXWIN", "--dimse-timeout", "30"];
        const get = async (out: string, extra: string[]) => {
          const r = await rtx(["retrieve", "--json", ...peer, ...extra, "--patient-id", patient.patientId, "--plan", plan.label, "--out", out]);
          assert.equal(r.status, 0, r.stderr);
          const output = records(r.stdout);
          const summary = output.find((x) => x.type === "retrieve-summary") as { complete?: boolean; kept?: number };
          assert.equal(summary.complete, true, r.stderr);
          const files = output.filter((x) => x.type === "file");
          assert.equal(files.length, summary.kept);
          return files;
        };
        assert.ok((await orthanc.rest("/instances")).length > 0, "Orthanc holds what the push test before this one stored");
        // The plan and what it references, with the registration of its CT and the MR it registers.
        const expected = 1 + 1 + plan.imageSeries.reduce((n, s) => n + s.count, 0) + plan.doses.length + plan.records.length + plan.rtImages.length +
          plan.registrations.length + patient.unreferenced.reduce((n, u) => n + u.count, 0);
        const first = await get("C:\\rtx\\got", ["--get"]);
        assert.equal(first.length, expected);
        for (const f of first) assert.equal(sha256(driveC(String(f.path))), f.sha256);
        // The same objects again: each is renamed over the file already there.
        const second = await get("C:\\rtx\\got", ["--get"]);
        assert.deepEqual(second.map((f) => f.sha256).sort(), first.map((f) => f.sha256).sort());

        const moved = await get("C:\\rtx\\moved", ["--move-port", String(movePort), "--move-host", "127.0.0.1"]);
        assert.deepEqual(moved.map((f) => f.sopInstanceUid).sort(), first.map((f) => f.sopInstanceUid).sort());
      });

      test("serve answers DCMTK echoscu and storescu (the same objects twice), and stops on Ctrl+C", async () => {
        const port = await freePort();
        const outPath = join(work, "io", "serve.out");
        const errPath = join(work, "io", "serve.err");
        const out = openSync(outPath, "w");
        const err = openSync(errPath, "w");
        const server = spawn(WINE, [exe, "serve", "--dir", "C:\\rtx\\served", "--port", String(port), "--host", "127.0.0.1", "--aet", "RTXSERVE", "--allow", "ECHOSCU@127.0.0.1", "--allow", "STORESCU@127.0.0.1"], {
          cwd: work,
          env: wineEnv,
          stdio: ["ignore", out, err],
        });
        closeSync(out);
        closeSync(err);
        background.push(server);
        const exited = new Promise<number | null>((resolve) => server.on("close", (code) => resolve(code)));
        const deadline = Date.now() + 60_000;
        while (!/listening on/.test(readFileSync(errPath, "utf8")) && server.exitCode === null && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
        }
        assert.match(readFileSync(errPath, "utf8"), new RegExp(`listening on 127\\.0\\.0\\.1:${port} as RTXSERVE`));

        const echo = spawnSync("echoscu", ["-aec", "RTXSERVE", "127.0.0.1", String(port)], { env: dcmtkEnv(), encoding: "utf8", timeout: 30_000 });
        assert.equal(echo.status, 0, echo.stderr);
        const patient = manifest.patients[1];
        const sent = treeFiles(join(clinic, patient.patientId)).map((f) => join(clinic, patient.patientId, f));
        for (let i = 0; i < 2; i++) {
          const store = spawnSync("storescu", ["-aec", "RTXSERVE", "127.0.0.1", String(port), ...sent], {
            env: dcmtkEnv(),
            encoding: "utf8",
            timeout: 60_000,
          });
          assert.equal(store.status, 0, `storescu run ${i + 1}: ${store.stderr}`);
          assert.doesNotMatch(store.stderr, /E: /, `storescu run ${i + 1}`);
        }

        server.kill("SIGINT"); // Wine turns it into a Ctrl+C event, as a console would
        assert.equal(await exited, 0, readFileSync(errPath, "utf8"));
        const stored = records(readFileSync(outPath, "utf8")).filter((r) => r.type === "file");
        const uids = (list: Json[]) => [...new Set(list.map((f) => String(f.sopInstanceUid)))].sort();
        const sentUids = sent.map((f) => {
          const dump = spawnSync("dcmdump", ["+P", "0008,0018", f], { encoding: "utf8" });
          return /\[([0-9.]+)\]/.exec(dump.stdout)![1];
        }).sort();
        assert.deepEqual(uids(stored), sentUids);
        // The second copies are answered with warning 0xB000 and the first kept (serve's default): one record each.
        assert.equal(stored.length, sent.length);
        for (const f of stored) {
          const path = driveC(String(f.path));
          const dump = spawnSync("dcmdump", ["+P", "0008,0018", path], { encoding: "utf8" });
          assert.equal(dump.status, 0, `dcmdump ${path}: ${dump.stderr}`);
          assert.ok(dump.stdout.includes(String(f.sopInstanceUid)));
        }
        assert.ok(existsSync(driveC("C:\\rtx\\served\\.rtexport-index.sqlite")), "the SQLite index exists");
        assert.match(readFileSync(errPath, "utf8"), /stopping/);
        assert.doesNotMatch(readFileSync(errPath, "utf8"), /ExperimentalWarning|\n\s+at /);
      });
    });

    test("a .bat pipeline run by Wine's cmd.exe: quoting, a pipe of two .exe runs, redirection, errorlevel", async () => {
      const patient = manifest.patients[0];
      // A hard link named after a command runs that command (`mklink /H show.exe rtexport-win-x64.exe`).
      const bin = join(work, "bin");
      mkdirSync(bin, { recursive: true });
      try {
        linkSync(exe, join(bin, "show.exe"));
      } catch {
        copyFileSync(exe, join(bin, "show.exe"));
      }
      const bat = [
        "@echo off",
        "setlocal",
        `set "RTX=${winPath(exe)}"`,
        `set "SHOW=${winPath(join(bin, "show.exe"))}"`,
        `set "CLINIC=${winPath(clinic)}"`,
        `"%RTX%" search --json --pattern "*.dcm" --tag "PatientID=${patient.patientId}" "%CLINIC%" | "%SHOW%" --json > C:\\rtx\\plans.ndjson`,
        "if errorlevel 1 (",
        "  echo search ^| show failed 1>&2",
        "  exit /b 1",
        ")",
        `"%RTX%" echo --host 127.0.0.1 --port 1 --connect-timeout 2 > C:\\rtx\\echo.ndjson 2> C:\\rtx\\echo.log`,
        "echo echo-errorlevel=%ERRORLEVEL%",
        "exit /b 0",
        "",
      ].join("\r\n");
      writeFileSync(join(work, "pipeline.bat"), bat);
      mkdirSync(driveC("C:\\rtx"), { recursive: true });
      const r = await wine("cmd", ["/c", winPath(join(work, "pipeline.bat"))]);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const plans = records(readFileSync(driveC("C:\\rtx\\plans.ndjson"), "utf8")).filter((x) => x.type === "plan");
      assert.deepEqual(plans.map((p) => p.label).sort(), patient.plans.map((p) => p.label).sort());
      assert.ok(plans.every((p) => p.patientId === patient.patientId));
      // Nothing listens on port 1: echo fails, and the .bat sees the exit status.
      assert.match(r.stdout, /^echo-errorlevel=1\r?$/m);
      assert.match(readFileSync(driveC("C:\\rtx\\echo.log"), "utf8"), /127\.0\.0\.1:1/);
      assert.doesNotMatch(readFileSync(driveC("C:\\rtx\\echo.log"), "utf8"), /\n\s+at /);
    });

    test("docs/windows.md's .bat example, run by Wine's cmd.exe (its D: as C:)", async () => {
      const doc = readFileSync(join(root, "docs", "windows.md"), "utf8");
      const example = /```bat\n(@echo off\n[\s\S]*?)```/.exec(doc);
      assert.ok(example, "docs/windows.md has a .bat example starting with @echo off");
      const bat = example[1].replaceAll("C:\\Tools\\rtexport\\rtexport.exe", winPath(exe)).replaceAll("D:\\", "C:\\");
      writeFileSync(join(work, "doc.bat"), `${bat.replace(/\r?\n/g, "\r\n")}exit /b %ERRORLEVEL%\r\n`);
      cpSync(join(clinic, manifest.patients[1].patientId), driveC("C:\\Old Export\\patient"), { recursive: true });
      mkdirSync(driveC("C:\\Migration"), { recursive: true });
      const r = await wine("cmd", ["/c", winPath(join(work, "doc.bat"))]);
      assert.equal(r.status, 0, r.stdout + r.stderr);
      const files = records(readFileSync(driveC("C:\\Migration\\files.ndjson"), "utf8")).filter((x) => x.type === "file");
      assert.ok(files.length > 0 && files.every((f) => String(f.path).startsWith("C:\\Migration\\tree\\")));
      const stats = records(readFileSync(driveC("C:\\Migration\\machines.ndjson"), "utf8")).find((x) => x.type === "stats");
      const machines = manifest.patients[1].plans.filter((p) => p.machinesFrom === "BeamSequence").flatMap((p) => p.machines);
      assert.deepEqual((stats!.values as { value: string }[]).map((v) => v.value).sort(), [...new Set(machines)].sort());
    });
  });
}
