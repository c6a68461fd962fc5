// Signals a migration running unattended is judged by (issue 14): exit codes, counts, the
// progress line, Ctrl-C and SIGTERM, a closed stdout, error lines, one default for unapproved
// plans, and a fresh clone's quick start. Each check runs the real command against real files
// and peers (our serve, a port nobody listens on, a socket that never answers, SQLite) and
// asserts the exact exit code and the exact line a user reads.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import process from "node:process";
import { join } from "node:path";
import { buildDemoCatalog } from "../lib/catalog/demo.ts";
import { type ClinicManifest, generateClinic } from "../lib/fixtures/clinic.ts";
import { exitCodeTable } from "../scripts/gen_cli_docs.ts";
import { freePort, waitForPort } from "./_peers.ts";
import { cliCommand, isDeno, records, root, sh } from "./_run.ts";

interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Milliseconds from the start (or, for a stopped run, from the signal) to the exit. */
  ms: number;
}

function env(): Record<string, string> {
  const e: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("RTEXPORT_")) e[k] = v;
  return { ...e, NO_COLOR: "1", TCP_NODELAY: "1" };
}

/** A running rtexport command; `lines(n)` resolves once n lines are on its stdout. */
function start(args: string[], opts: { cwd?: string; input?: string; keepStdinOpen?: boolean } = {}) {
  const [cmd, ...pre] = cliCommand();
  const child = spawn(cmd, [...pre, ...args], { cwd: opts.cwd ?? root, env: env(), stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  let waiting: { n: number; resolve: () => void } | undefined;
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    stdout += d;
    if (waiting && stdout.split("\n").length - 1 >= waiting.n) waiting.resolve();
  });
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  if (opts.keepStdinOpen) child.stdin!.write(opts.input ?? "");
  else child.stdin!.end(opts.input ?? "");
  let from = Date.now();
  const done = new Promise<Done>((resolve) => {
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - from }));
  });
  return {
    child,
    done,
    lines: (n: number) => new Promise<void>((resolve) => (waiting = { n, resolve })),
    /**
     * Sends `signal` and measures the time to the exit from now. Through process.kill: Deno's
     * ChildProcess.kill reports any child it signalled as killed by the signal (code null), even
     * one that handled it and exited 130.
     */
    kill(signal: NodeJS.Signals) {
      from = Date.now();
      process.kill(child.pid!, signal);
    },
  };
}

/** Runs an rtexport command to its end (120 s bound). */
async function rt(args: string[], opts: { cwd?: string; input?: string } = {}): Promise<Done> {
  const r = start(args, opts);
  const timer = setTimeout(() => r.child.kill("SIGKILL"), 120_000);
  try {
    return await r.done;
  } finally {
    clearTimeout(timer);
  }
}

/** Every file under `dir` (relative paths), `.rtexport/` included. */
function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(dir.length + 1));
}

/** Temporary files any writer of rtexport uses: copies (`.x.host-pid-n.part`), anonymize (`.rtexport-tmp-`), older `.rtexport-part`. */
const TEMPORARY = /\.part$|\.rtexport-tmp-|\.rtexport-part$/;

/**
 * What a terminal shows for a raw byte stream: carriage return, erase to end of line and
 * newline are applied, every other character overwrites the cell under the cursor. Returns the
 * lines that were ended (scrolled up) and the line the cursor is on at the end.
 */
function screen(raw: string): { lines: string[]; last: string } {
  const lines: string[] = [];
  let line: string[] = [];
  let col = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (raw.startsWith("\x1b[K", i)) {
      line.length = col;
      i += 2;
    } else if (c === "\r") col = 0;
    else if (c === "\n") {
      lines.push(line.join(""));
      line = [];
      col = 0;
    } else line[col++] = c;
  }
  return { lines, last: line.join("") };
}

/**
 * Runs `command` (a shell command line) on a pseudo-terminal (`script`): the raw bytes the
 * terminal got, and the exit status. With `ctrlC`, the keyboard's Ctrl-C (byte 0x03, which the
 * terminal turns into SIGINT for the command) is typed once `ctrlC(raw)` is true; `ms` is the
 * time from then to the end.
 */
function onTerminal(
  command: string, cwd: string, opts: { ctrlC?: (raw: string) => boolean } = {},
): Promise<{ raw: string; code: number | null; firstProgressMs?: number; ms?: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    // script reads its stdin for the terminal: an open pipe, ended when the command is.
    const p = spawn("script", ["-q", "-e", "-c", command, "/dev/null"], { cwd, env: env(), stdio: ["pipe", "pipe", "pipe"] });
    let raw = "";
    let firstProgressMs: number | undefined;
    let typed: number | undefined;
    p.stdout!.setEncoding("utf8").on("data", (d: string) => {
      raw += d;
      if (firstProgressMs === undefined && raw.includes(" · ")) firstProgressMs = Date.now() - t0;
      if (opts.ctrlC && typed === undefined && opts.ctrlC(raw)) {
        typed = Date.now();
        p.stdin!.write("\x03");
      }
    });
    p.stderr!.resume();
    p.on("close", (code) => {
      p.stdin!.destroy();
      resolve({ raw, code, firstProgressMs, ms: typed === undefined ? undefined : Date.now() - typed });
    });
  });
}

/**
 * A TCP proxy to 127.0.0.1:`port` that passes what the peer sends at about `bytesPerSecond`:
 * a slow peer (a PACS across a WAN) in front of our serve.
 */
async function slowProxy(port: number, bytesPerSecond: number): Promise<{ port: number; close: () => void }> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("error", () => {});
      s.on("close", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      // Pause the peer for as long as the chunk takes at the rate, then pass it on.
      upstream.pause();
      setTimeout(() => {
        if (!client.destroyed) client.write(chunk);
        upstream.resume();
      }, (chunk.length / bytesPerSecond) * 1000);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    port: (server.address() as { port: number }).port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
const rtexport = () => cliCommand().map(quote).join(" ");

let dir: string;
let manifest: ClinicManifest;
let clinic: string;
let catalog: string;
let vault: string;
/** A larger clinic (CT of 512×512), so that a run is still going when it is interrupted. */
let big: string;
let bigCatalog: string;
let bigVault: string;
let bigFiles: number;
let servePort: number;
let bigPort: number;
const serves: ChildProcess[] = [];
let keyFile: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtx-signals-"));
  clinic = join(dir, "clinic");
  manifest = await generateClinic({ out: clinic, patients: 2, slices: 3, seed: 14 });
  catalog = join(dir, "catalog.db");
  vault = join(dir, "vault");
  await buildDemoCatalog({ clinic, manifest, catalogPath: catalog, vault });
  big = join(dir, "big");
  const bigManifest = await generateClinic({ out: big, patients: 2, slices: 100, size: 512, seed: 15 });
  bigFiles = filesUnder(big).length;
  bigCatalog = join(dir, "big.db");
  bigVault = join(dir, "bigvault");
  await buildDemoCatalog({ clinic: big, manifest: bigManifest, catalogPath: bigCatalog, vault: bigVault });
  keyFile = join(dir, "site.key");
  writeFileSync(keyFile, "signals-test-key-0123456789abcdef\n");
  // Our serve, one per clinic (their patient IDs are the same): a Q/R peer and a storage peer.
  servePort = await startServe(clinic, join(dir, "serve-store"));
  bigPort = await startServe(big, join(dir, "big-store"));
});

async function startServe(from: string, store: string): Promise<number> {
  cpSync(from, store, { recursive: true });
  const port = await freePort();
  const [cmd, ...pre] = cliCommand();
  const p = spawn(cmd, [...pre, "serve", "--dir", store, "--port", String(port), "--aet", "SRV", "--allow", "RTEXPORT@127.0.0.1", "--allow-store-any", "-q"], {
    env: env(), stdio: ["ignore", "ignore", "inherit"],
  });
  serves.push(p);
  await waitForPort(port, "127.0.0.1", 60_000, p);
  return port;
}

after(async () => {
  for (const p of serves) {
    if (p.exitCode !== null) continue;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

const peer = () => ["--host", "127.0.0.1", "--port", String(servePort), "--called-aet", "SRV"];

describe("1. exit codes: one table; an unreachable or refusing peer is one line and exit 1", () => {
  test("one exit code table (README.md), linked from docs/cli.md; every command's --help ends with the same codes", async () => {
    const table = exitCodeTable();
    for (const code of ["0", "1", "2", "3", "130"]) assert.match(table, new RegExp(`^\\| ${code} \\| `, "m"));
    const docs = ["README.md", ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => join("docs", f))];
    const tables = docs.filter((f) => /^\| code \| meaning \|$/m.test(readFileSync(join(root, f), "utf8")));
    assert.deepEqual(tables, ["README.md"]);
    assert.match(readFileSync(join(root, "docs", "cli.md"), "utf8"), /\(\.\.\/README\.md#exit-codes\)/);
    const names = [...(await rt(["--help"])).stdout.matchAll(/^ {2}([a-z-]+) {2,}/gm)].map((m) => m[1]);
    assert.ok(names.length >= 12, names.join(" "));
    for (const name of names) {
      const help = await rt([name, "--help"]);
      assert.match(help.stdout, /Exit status: 0 ok, 1 fatal error \(nothing could be done\), 2 usage error, 3 some items failed, 130 interrupted\./, name);
    }
  });

  test("push, retrieve, echo, list-patients --from dicom and export-plan with a peer: a closed port is one line, exit 1", async () => {
    const port = await freePort();
    const dead = ["--host", "127.0.0.1", "--port", String(port), "--called-aet", "NOBODY"];
    const line = `Cannot connect to 127.0.0.1:${port}: connection refused`;
    const push = await rt(["push", ...dead, "--retries", "0", join(clinic, manifest.patients[0].patientId)]);
    assert.equal(push.code, 1);
    assert.equal(push.stderr, `push: ${line}; nothing was sent\n`);
    // With retries (issue 19), the peer is retried for the run, one line a try, never one per object.
    const retried = await rt(["push", ...dead, "--retries", "2", "--retry-max-wait", "1", join(clinic, manifest.patients[0].patientId)]);
    assert.equal(retried.code, 1);
    const lines = retried.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 3, retried.stderr);
    for (const [i, l] of lines.slice(0, 2).entries()) {
      assert.match(l, new RegExp(`^push: warning: Cannot connect to 127\\.0\\.0\\.1:${port}: connection refused; nothing sent yet, retry ${i + 1} of 2 in [\\d.]+ s \\(connection refused\\)$`));
    }
    assert.equal(lines[2], `push: ${line}; nothing was sent`);
    const retrieve = await rt(["retrieve", ...dead, "--retries", "0", "--patient-id", manifest.patients[0].patientId, "--get", "--out", join(dir, "r-dead")]);
    assert.equal(retrieve.code, 1);
    assert.equal(retrieve.stderr, `retrieve: ${line}\n`);
    const echo = await rt(["echo", ...dead]);
    assert.equal(echo.code, 1);
    assert.equal(echo.stderr, `echo: ${line}\n`);
    const list = await rt(["list-patients", "--from", "dicom", ...dead]);
    assert.equal(list.code, 1);
    assert.equal(list.stderr, `list-patients: ${line}\n`);
    const listed = await rt(["list-patients", "--db", `sqlite:${catalog}`, "--vault", vault, "-q"]);
    assert.equal(listed.code, 0, listed.stderr);
    for (const mode of [["--get"], ["--move-port", String(await freePort())]]) {
      const out = join(dir, `ep-dead-${mode[0]}`);
      const ep = await rt(["export-plan", ...dead, ...mode, "--retries", "0", "--out", out], { input: listed.stdout });
      assert.equal(ep.code, 1, ep.stderr);
      assert.equal(ep.stderr, `export-plan: ${line}\n`);
      assert.equal(records(ep.stdout).filter((r) => r.type === "file").length, 0);
    }
  });

  test("a peer that rejects the association (wrong called AE title) is one line naming the reason, exit 1", async () => {
    const wrong = ["--host", "127.0.0.1", "--port", String(servePort), "--called-aet", "WRONG"];
    const reason = `Association rejected by WRONG@127.0.0.1:${servePort} (permanent): called AE title not recognized`;
    const push = await rt(["push", ...wrong, join(clinic, manifest.patients[0].patientId)]);
    assert.equal(push.code, 1);
    assert.equal(push.stderr, `push: ${reason}; nothing was sent\n`);
    const listed = await rt(["list-patients", "--db", `sqlite:${catalog}`, "--vault", vault, "-q"]);
    const ep = await rt(["export-plan", ...wrong, "--get", "--out", join(dir, "ep-wrong")], { input: listed.stdout });
    assert.equal(ep.code, 1);
    assert.equal(ep.stderr, `export-plan: ${reason}\n`);
  });
});

describe("2. one policy for input that is not DICOM", () => {
  let mixed: string;
  let good: string[];
  before(() => {
    mixed = join(dir, "mixed");
    mkdirSync(join(mixed, ".rtexport"), { recursive: true });
    const ct = manifest.patients[0].studies.flatMap((s) => s.series).find((s) => s.modality === "CT")!;
    good = ct.instances.slice(0, 2).map((i) => join(clinic, i.path));
    cpSync(good[0], join(mixed, "ct1.dcm"));
    cpSync(good[1], join(mixed, "ct2.dcm"));
    writeFileSync(join(mixed, "notes.txt"), "not DICOM\n");
    writeFileSync(join(mixed, "plan.xml"), "<plan/>\n");
    writeFileSync(join(mixed, ".rtexport", "ledger.sqlite"), "SQLite format 3\0");
  });

  test("anonymize, push, show, search and transcode count what is not DICOM as skipped (named with -v), exit 0; --pattern leaves it unopened", async () => {
    const an = await rt(["anonymize", "--key-file", keyFile, "--out", join(dir, "mixed-anon"), "-v", mixed]);
    assert.equal(an.code, 0, an.stderr);
    assert.match(an.stderr, /^anonymize: 2 files done, 2 skipped \(2 not DICOM\), 0 failed \(1 patient, [\d.]+ kB in \d+s\)$/m);
    assert.match(an.stderr, /^anonymize: debug: Skipped ".*\/notes\.txt": not a DICOM file: left out of the anonymized output$/m);
    assert.ok(!an.stderr.includes("ledger.sqlite"), "the tool's own .rtexport folder is never walked");
    const quiet = await rt(["anonymize", "--key-file", keyFile, "--out", join(dir, "mixed-anon"), mixed]);
    assert.ok(!quiet.stderr.includes("notes.txt"), "named only with -v");
    const pattern = await rt(["anonymize", "--key-file", keyFile, "--out", join(dir, "mixed-anon2"), "--pattern", "*.dcm", mixed]);
    assert.equal(pattern.code, 0, pattern.stderr);
    assert.match(pattern.stderr, /^anonymize: 2 files done, 0 failed /m);
    const push = await rt(["push", ...peer(), mixed]);
    assert.equal(push.code, 0, push.stderr);
    assert.match(push.stderr, /^push: 2 objects done, 2 skipped \(2 not DICOM\), 0 failed /m);
    const show = await rt(["show", mixed]);
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stderr, /^show: 2 files done, 2 skipped \(2 not DICOM\), 0 failed /m);
    const search = await rt(["search", "--tag", "Modality", mixed]);
    assert.equal(search.code, 0, search.stderr);
    assert.match(search.stderr, /^search: 2 files done, 2 skipped \(2 not DICOM\), 0 failed /m);
    const transcode = await rt(["transcode", "--to", "implicit-le", "--out", join(dir, "mixed-ts"), mixed]);
    assert.equal(transcode.code, 0, transcode.stderr);
    assert.match(transcode.stderr, /^transcode: 2 files done, 2 skipped \(2 not DICOM\), 0 failed /m);
  });

  test("a damaged DICOM file (DICM, then truncated) is a failure in anonymize, transcode, show and copy-files", async () => {
    const damaged = join(dir, "damaged");
    mkdirSync(damaged);
    cpSync(good[0], join(damaged, "ct1.dcm"));
    writeFileSync(join(damaged, "cut.dcm"), readFileSync(good[1]).subarray(0, 1500));
    assert.equal(readFileSync(join(damaged, "cut.dcm")).subarray(128, 132).toString(), "DICM");
    const an = await rt(["anonymize", "--key-file", keyFile, "--out", join(dir, "damaged-anon"), damaged]);
    assert.equal(an.code, 3);
    assert.match(an.stderr, /^anonymize: Cannot read DICOM file ".*\/cut\.dcm": .*extends beyond the end/m);
    const ts = await rt(["transcode", "--to", "implicit-le", "--out", join(dir, "damaged-ts"), damaged]);
    assert.equal(ts.code, 3, ts.stderr);
    assert.match(ts.stderr, /^transcode: 1 files done, 1 failed /m);
    const show = await rt(["show", damaged]);
    assert.equal(show.code, 3);
    assert.match(show.stderr, /^show: 1 files done, 1 failed /m);
    const copy = await rt(["copy-files", "--to", join(dir, "damaged-copy"), damaged]);
    assert.equal(copy.code, 3);
    assert.match(copy.stderr, /^copy-files: Cannot read DICOM file ".*\/cut\.dcm": .*extends beyond the end/m);
    assert.ok(!existsSync(join(dir, "damaged-copy", "Not_DICOM", "cut.dcm")), "a damaged DICOM file is not filed as not DICOM");
  });

  test("copy-files never guesses: what is not DICOM goes under Not_DICOM/, a dangling link or a link loop fails that item only", async () => {
    const src = join(dir, "copy-src");
    mkdirSync(src);
    cpSync(good[0], join(src, "ct1.dcm"));
    writeFileSync(join(src, "random.bin"), Uint8Array.from({ length: 3000 }, (_, i) => (i * 131 + 7) & 0xff));
    // Bytes that begin like a bare data set, (0008,B2E5) with a length past the end (one random
    // file in about 250 does): not DICOM either, never a "damaged DICOM file" (copy_bench's corpus).
    const lowGroup = Uint8Array.from({ length: 3000 }, (_, i) => (i * 197 + 3) & 0xff);
    lowGroup.set([0x08, 0x00, 0xe5, 0xb2, 0x3a, 0x5b, 0x65, 0x4e]);
    writeFileSync(join(src, "lowgroup.bin"), lowGroup);
    symlinkSync(join(dir, "nowhere.dcm"), join(src, "dangling.dcm"));
    // A link to itself (ELOOP): another path that cannot be read (as root, permissions cannot be denied).
    symlinkSync("loop.dcm", join(src, "loop.dcm"));
    const to = join(dir, "copy-dest");
    const r = await rt(["copy-files", "--to", to, src]);
    assert.equal(r.code, 3);
    assert.equal(r.stderr.split("\n").filter((l) => l.includes("dangling.dcm")).length, 1);
    assert.match(r.stderr, /^copy-files: Cannot read ".*\/dangling\.dcm": no such file or directory$/m);
    assert.match(r.stderr, /^copy-files: Cannot read ".*\/loop\.dcm": too many levels of symbolic links$/m);
    assert.match(r.stderr, /^copy-files: 3 files done, 2 failed /m);
    assert.ok(existsSync(join(to, "Not_DICOM", "random.bin")));
    assert.ok(existsSync(join(to, "Not_DICOM", "lowgroup.bin")));
    assert.equal(filesUnder(to).filter((f) => f.endsWith(".dcm")).length, 1);
  });
});

describe("3. a shared object is one object", () => {
  test("an exported tree with a structure set under two plans anonymizes with exit 0, the copy counted identical", async () => {
    const out = join(dir, "shared-export");
    const e = await sh(`"\${RT[@]}" list-patients --from folder --include-unapproved '${clinic}' | "\${RT[@]}" export-plan --include-unapproved --out '${out}'`);
    assert.equal(e.status, 0, e.stderr);
    const structs = filesUnder(out).filter((f) => /\/RTSTRUCT_/.test(f));
    assert.ok(structs.length > new Set(structs.map((f) => f.split("/").pop())).size, `no structure set is under two plans: ${structs.join(", ")}`);
    const r = await rt(["anonymize", "--key-file", keyFile, "--out", join(dir, "shared-anon"), out]);
    assert.equal(r.code, 0, r.stderr);
    // Every object under more than one plan (structure sets, and registrations with the series they register).
    const dicom = filesUnder(out).filter((f) => f.endsWith(".dcm") && !f.startsWith(".rtexport/"));
    const copies = dicom.length - new Set(dicom.map((f) => f.split("/").pop())).size;
    const summary = /^anonymize: \d+ files done, \d+ skipped \((.*)\), 0 failed /m.exec(r.stderr);
    assert.ok(summary, r.stderr);
    // Anything else skipped is what is not DICOM in the tree (none from a folder source today).
    assert.deepEqual(summary[1].split(", ").filter((w) => !/^\d+ not DICOM$/.test(w)), [`${copies} identical`], r.stderr);
    assert.equal(Number(/^anonymize: (\d+) files done/m.exec(r.stderr)![1]), dicom.length - copies);
  });
});

describe("4. progress never mixes with data (a pseudo-terminal's raw byte stream)", () => {
  test("copy-files on a terminal: progress with total and ETA, cleared before the summary; no line per file without -v", async () => {
    const out = join(dir, "tty-copy");
    const t = await onTerminal(`${rtexport()} copy-files --to ${quote(out)} ${quote(big)}`, dir);
    assert.equal(t.code, 0, t.raw);
    assert.match(t.raw, new RegExp(`files \\d+/${bigFiles} · `));
    assert.match(t.raw, /· ETA \d/);
    const { lines, last } = screen(t.raw);
    assert.deepEqual(lines.map((l) => l.replace(/\(.*\)$/, "(…)")), [`copy-files: ${bigFiles} files done, 0 failed (…)`]);
    assert.match(lines[0], /\(2 patients, /, "the patients the files belong to are counted");
    assert.equal(last, "");
  });

  test("copy-files -v: one line per file, each on a line of its own, the progress line drawn again between them", async () => {
    const out = join(dir, "tty-copy-v");
    const t = await onTerminal(`${rtexport()} copy-files -v --to ${quote(out)} ${quote(clinic)}`, dir);
    assert.equal(t.code, 0, t.raw);
    const { lines, last } = screen(t.raw);
    const data = lines.filter((l) => l.startsWith("copied\t"));
    const files = filesUnder(clinic).length;
    assert.equal(data.length, files, lines.join("\n"));
    for (const l of lines) assert.ok(!l.includes(" · "), `progress left on a line of output: ${JSON.stringify(l)}`);
    assert.ok(lines.every((l) => l.startsWith("copied\t") || l.startsWith("copy-files: ")), lines.join("\n"));
    assert.equal(last, "");
    // Redrawn after data: a progress drawing follows the first data line in the byte stream.
    assert.ok(t.raw.indexOf(" · ", t.raw.indexOf("copied\t")) > 0);
  });

  test("the first progress line appears within a second, before any input has come; push shows its total", async () => {
    // Within a second of the command being up: the runtime's own start-up on this (shared, busy)
    // machine is measured just before, on a terminal too, and not counted.
    const t0 = Date.now();
    await onTerminal(`${rtexport()} copy-files --help`, dir);
    const startUp = Date.now() - t0;
    const t = await onTerminal(`(sleep 3; echo ${quote(join(clinic, "manifest.json"))}) | ${rtexport()} copy-files --to ${quote(join(dir, "tty-wait"))}`, dir);
    assert.ok(t.firstProgressMs !== undefined && t.firstProgressMs < 1000 + startUp, `first progress after ${t.firstProgressMs} ms (start-up ${startUp} ms)`);
    assert.ok(t.firstProgressMs < 3000, "drawn before any input came");
    const push = await onTerminal(`${rtexport()} push ${peer().join(" ")} ${quote(join(clinic, manifest.patients[1].patientId))}`, dir);
    assert.equal(push.code, 0, push.raw);
    const objects = filesUnder(join(clinic, manifest.patients[1].patientId)).length;
    assert.match(push.raw, new RegExp(`objects \\d+/${objects} · `));
    assert.ok(push.firstProgressMs! < 1000 + startUp, `push: first progress after ${push.firstProgressMs} ms (start-up ${startUp} ms)`);
    assert.equal(screen(push.raw).last, "");
    const pushLines = screen(push.raw).lines;
    assert.ok(pushLines.length > 0 && pushLines.every((l) => l.startsWith("push: ")), pushLines.join("\n"));
  });
});

describe("4. progress totals for anonymize and retrieve", () => {
  test("anonymize and a whole-patient retrieve on a terminal show their total, no line per file; the line is cleared at the end", async () => {
    const an = await onTerminal(`${rtexport()} anonymize --key-file ${quote(keyFile)} --out ${quote(join(dir, "tty-anon"))} ${quote(big)}`, dir);
    assert.equal(an.code, 0, an.raw);
    assert.match(an.raw, new RegExp(`files \\d+/${filesUnder(big).length} · `));
    assert.equal(screen(an.raw).last, "");
    // No line per file without -v: only the command's own lines (summary, messages).
    const anLines = screen(an.raw).lines;
    assert.ok(anLines.length > 0 && anLines.every((l) => l.startsWith("anonymize: ")), anLines.join("\n"));
    const patient = readdirSync(big).find((n) => n.startsWith("RTX"))!;
    const objects = filesUnder(join(big, patient)).length;
    const ret = await onTerminal(`${rtexport()} retrieve --host 127.0.0.1 --port ${bigPort} --called-aet SRV --get --patient-id ${patient} --out ${quote(join(dir, "tty-retrieve"))}`, dir);
    assert.equal(ret.code, 0, ret.raw);
    assert.match(ret.raw, new RegExp(`objects \\d+/${objects} · `));
    assert.equal(screen(ret.raw).last, "");
    const retLines = screen(ret.raw).lines;
    assert.ok(retLines.length > 0 && retLines.every((l) => l.startsWith("retrieve: ")), retLines.join("\n"));
  });
});

describe("5. Ctrl-C and SIGTERM stop within a second; a rerun completes only what was missing", () => {
  test("copy-files: SIGTERM mid-run → exit 130 within 1 s, the interrupted line, no temporary file, outcome interrupted; the rerun copies the rest", async () => {
    const to = join(dir, "int-copy");
    const run = start(["copy-files", "--to", to, big]);
    await run.lines(20);
    run.kill("SIGTERM");
    const r = await run.done;
    assert.equal(r.code, 130, r.stderr);
    assert.ok(r.ms < 1000, `stopped after ${r.ms} ms`);
    const m = /^copy-files: interrupted: (\d+) files done, (\d+) left — rerun to resume$/m.exec(r.stderr);
    assert.ok(m, r.stderr);
    assert.equal(Number(m[1]) + Number(m[2]), bigFiles);
    assert.deepEqual(filesUnder(to).filter((f) => TEMPORARY.test(f)), []);
    const status = records((await rt(["status", "--json", to])).stdout)[0];
    assert.equal(status.runs[0].outcome, "interrupted");
    const first = new Set(records(r.stdout).map((x) => x.path));
    const again = await rt(["copy-files", "--to", to, big]);
    assert.equal(again.code, 0, again.stderr);
    const copied = records(again.stdout).filter((x) => x.copy.status === "copied").map((x) => x.path);
    assert.ok(copied.every((p) => !first.has(p)), "a file copied before was copied again");
    assert.ok(copied.length <= bigFiles - first.size && copied.length > 0);
    assert.equal(filesUnder(to).filter((f) => !f.startsWith(".rtexport/")).length, bigFiles);
  });

  test("copy-files waiting for its first record on a pipe whose writer has written nothing: SIGINT → exit 130 within 1 s, the interrupted line, outcome interrupted (not a dead run)", async () => {
    const to = join(dir, "int-wait");
    const run = start(["copy-files", "--to", to], { keepStdinOpen: true });
    try {
      // Up and waiting: its ledger is open.
      for (let i = 0; i < 300 && !existsSync(join(to, ".rtexport")); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(existsSync(join(to, ".rtexport")), "copy-files did not start");
      await new Promise((r) => setTimeout(r, 300));
      run.kill("SIGINT");
      const r = await run.done;
      assert.equal(r.code, 130, r.stderr);
      assert.ok(r.ms < 1000, `stopped after ${r.ms} ms`);
      assert.match(r.stderr, /^copy-files: interrupted: 0 files done(, 0 left)? — rerun to resume$/m);
      assert.doesNotMatch(r.stderr, /before the work in flight could stop/);
      const s = records((await rt(["status", "--json", to])).stdout)[0];
      assert.deepEqual([s.runs[0].state, s.runs[0].outcome], ["finished", "interrupted"]);
    } finally {
      run.child.stdin!.end();
    }
  });

  test("export-plan: SIGINT mid-run → exit 130 within 1 s, no temporary file, outcome interrupted; the rerun exports only what is missing", async () => {
    const listed = await rt(["list-patients", "--db", `sqlite:${bigCatalog}`, "--vault", bigVault, "-q"]);
    assert.equal(listed.code, 0, listed.stderr);
    const out = join(dir, "int-export");
    const run = start(["export-plan", "--out", out], { input: listed.stdout });
    await run.lines(30);
    run.kill("SIGINT");
    const r = await run.done;
    assert.equal(r.code, 130, r.stderr);
    assert.ok(r.ms < 1000, `stopped after ${r.ms} ms`);
    assert.match(r.stderr, /^export-plan: interrupted: \d+ files done(, \d+ skipped)?, \d+ of 2 patients not reached — rerun to resume$/m);
    assert.deepEqual(filesUnder(out).filter((f) => TEMPORARY.test(f)), []);
    assert.equal(records((await rt(["status", "--json", out])).stdout)[0].runs[0].outcome, "interrupted");
    const first = new Set(records(r.stdout).filter((x) => x.type === "file").map((x) => x.path));
    const again = await rt(["export-plan", "--out", out], { input: listed.stdout });
    assert.equal(again.code, 0, again.stderr);
    const files = records(again.stdout).filter((x) => x.type === "file");
    const copied = files.filter((x) => x.copy === "copied").map((x) => x.path);
    assert.ok(copied.length > 0 && copied.every((p) => !first.has(p)), "a file exported before was exported again");
    assert.ok(files.filter((x) => x.copy === "done-before").length >= first.size);
    for (const f of files) assert.ok(existsSync(f.path), f.path);
  });

  test("Ctrl-C typed on the terminal: exit 130 within 1 s, the progress line cleared and the interrupted line on a line of its own", async () => {
    const to = join(dir, "int-tty");
    const t = await onTerminal(`${rtexport()} copy-files --to ${quote(to)} ${quote(big)}`, dir, { ctrlC: (raw) => /files [1-9]\d*\/\d+ · /.test(raw) });
    assert.equal(t.code, 130, t.raw);
    assert.ok(t.ms! < 1000, `stopped after ${t.ms} ms`);
    const { lines, last } = screen(t.raw);
    const interrupted = lines.filter((l) => /^copy-files: interrupted: \d+ files done, \d+ left — rerun to resume$/.test(l));
    assert.equal(interrupted.length, 1, JSON.stringify(lines));
    for (const l of lines) assert.ok(!l.includes(" · "), `progress left on a line: ${JSON.stringify(l)}`);
    assert.equal(last, "");
    assert.deepEqual(filesUnder(to).filter((f) => TEMPORARY.test(f)), []);
  });

  test("retrieve: SIGINT mid-run → exit 130 within 1 s, no staging or temporary file left, outcome interrupted", async () => {
    const patient = readdirSync(big).find((n) => n.startsWith("RTX"))!;
    const out = join(dir, "int-retrieve");
    const run = start(["retrieve", "--host", "127.0.0.1", "--port", String(bigPort), "--called-aet", "SRV", "--get", "--patient-id", patient, "--out", out]);
    await run.lines(5);
    run.kill("SIGINT");
    const r = await run.done;
    assert.equal(r.code, 130, r.stderr);
    assert.ok(r.ms < 1000, `stopped after ${r.ms} ms`);
    assert.match(r.stderr, /^retrieve: interrupted: \d+ objects done, \d+ left — rerun to resume$/m);
    assert.deepEqual(filesUnder(out).filter((f) => TEMPORARY.test(f) || f.includes("staging")), []);
    const written = filesUnder(out).filter((f) => f.endsWith(".dcm"));
    assert.ok(written.length < filesUnder(join(big, patient)).length, `${written.length} objects`);
    const status = records((await rt(["status", "--json", out])).stdout)[0];
    assert.equal(status.runs[0].outcome, "interrupted");
  });

  test("retrieve --plan from a slow peer: SIGINT while objects arrive (none handed on yet) → exit 130 within 1 s, the associations aborted, staging removed", async () => {
    const patient = readdirSync(big).find((n) => n.startsWith("RTX"))!;
    const out = join(dir, "int-retrieve-plan");
    const slow = await slowProxy(bigPort, 4 * 1024 * 1024); // ~4 MB/s: the plan's CT takes seconds
    try {
      const run = start(["retrieve", "--host", "127.0.0.1", "--port", String(slow.port), "--called-aet", "SRV", "--get", "--patient-id", patient, "--plan", "Plan1", "--out", out]);
      // A plan's objects are kept only once all of its references are in: until then they are staged.
      const staged = () => filesUnder(out).some((f) => f.startsWith(".rtexport-staging-"));
      for (const t0 = Date.now(); !staged() && Date.now() - t0 < 60_000;) await new Promise((r) => setTimeout(r, 10));
      assert.ok(staged(), "nothing was staged");
      run.kill("SIGINT");
      const r = await run.done;
      assert.equal(r.code, 130, r.stderr);
      assert.ok(r.ms < 1000, `stopped after ${r.ms} ms`);
      assert.match(r.stderr, /^retrieve: interrupted: 0 objects done — rerun to resume$/m);
      assert.ok(!r.stderr.includes("before the work in flight could stop"), r.stderr);
      assert.deepEqual(filesUnder(out).filter((f) => TEMPORARY.test(f) || f.includes("staging")), []);
    } finally {
      slow.close();
    }
  });

  test("export-plan from a slow peer: SIGINT while a plan's objects arrive → exit 130 within 1 s, one interrupted line, staging removed", async () => {
    const listed = await rt(["list-patients", "--db", `sqlite:${bigCatalog}`, "--vault", bigVault, "-q"]);
    assert.equal(listed.code, 0, listed.stderr);
    const out = join(dir, "int-export-peer");
    const slow = await slowProxy(bigPort, 4 * 1024 * 1024);
    try {
      const run = start(["export-plan", "--host", "127.0.0.1", "--port", String(slow.port), "--called-aet", "SRV", "--get", "--out", out], { input: listed.stdout });
      const staged = () => filesUnder(out).some((f) => f.startsWith(".rtexport/staging-") || f.startsWith(".rtexport/.staging"));
      for (const t0 = Date.now(); !staged() && Date.now() - t0 < 60_000;) await new Promise((r) => setTimeout(r, 10));
      assert.ok(staged(), filesUnder(out).join("\n"));
      run.kill("SIGINT");
      const r = await run.done;
      assert.equal(r.code, 130, r.stderr);
      assert.ok(r.ms < 1000, `stopped after ${r.ms} ms`);
      assert.match(r.stderr, /^export-plan: interrupted: .* — rerun to resume$/m);
      assert.ok(!/before the work in flight could stop|Cannot /.test(r.stderr), r.stderr);
      assert.deepEqual(filesUnder(out).filter((f) => TEMPORARY.test(f) || f.includes("staging")), []);
    } finally {
      slow.close();
    }
  });

  test("push to a slow peer: SIGINT while objects are sent → exit 130 within 1 s, the interrupted line", async () => {
    const patient = readdirSync(big).find((n) => n.startsWith("RTX"))!;
    const slow = await slowProxy(bigPort, 4 * 1024 * 1024);
    try {
      const run = start(["push", "--host", "127.0.0.1", "--port", String(slow.port), "--called-aet", "SRV", join(big, patient)]);
      await run.lines(2);
      run.kill("SIGINT");
      const r = await run.done;
      assert.equal(r.code, 130, r.stderr);
      assert.ok(r.ms < 1000, `stopped after ${r.ms} ms`);
      assert.match(r.stderr, /^push: interrupted: \d+ objects done.* — rerun to resume$/m);
      assert.ok(!/before the work in flight could stop|Cannot /.test(r.stderr), r.stderr);
    } finally {
      slow.close();
    }
  });

  test("a second Ctrl-C ends at once, still without temporary files", async () => {
    const to = join(dir, "int-twice");
    const run = start(["copy-files", "--to", to, big]);
    await run.lines(10);
    run.kill("SIGINT");
    process.kill(run.child.pid!, "SIGINT");
    const r = await run.done;
    assert.equal(r.code, 130, r.stderr);
    assert.ok(r.ms < 1000, `stopped after ${r.ms} ms`);
    assert.match(r.stderr, /^copy-files: (interrupted again: stopped at once; rerun to resume|interrupted: \d+ files done, \d+ left — rerun to resume)$/m);
    assert.deepEqual(filesUnder(to).filter((f) => TEMPORARY.test(f)), []);
  });
});

describe("6. closing stdout ends every command promptly and cleanly", () => {
  test("copy-files, export-plan and retrieve | head -1: exit 0, soon, fewer files than a whole run, none partial, the ledger true", async () => {
    const to = join(dir, "head-copy");
    const c = await sh(`"\${RT[@]}" copy-files --to '${to}' '${big}' | head -1`);
    assert.equal(c.status, 0, c.stderr);
    const copied = filesUnder(to).filter((f) => !f.startsWith(".rtexport/"));
    assert.ok(copied.length < bigFiles / 2, `${copied.length} files copied`);
    assert.deepEqual(filesUnder(to).filter((f) => TEMPORARY.test(f)), []);
    const status = records((await rt(["status", "--json", to])).stdout)[0];
    assert.equal(status.kinds.file.done, copied.length, "every file in the tree is recorded done, and no other");

    const out = join(dir, "head-export");
    const e = await sh(`"\${RT[@]}" list-patients --db 'sqlite:${bigCatalog}' --vault '${bigVault}' | "\${RT[@]}" export-plan --out '${out}' | head -1`);
    assert.equal(e.status, 0, e.stderr);
    assert.ok(filesUnder(out).length < bigFiles / 2, `${filesUnder(out).length} files exported`);
    assert.deepEqual(filesUnder(out).filter((f) => TEMPORARY.test(f)), []);

    const rOut = join(dir, "head-retrieve");
    const patient = readdirSync(big).find((n) => n.startsWith("RTX"))!;
    const t0 = Date.now();
    const r = await sh(`"\${RT[@]}" retrieve --host 127.0.0.1 --port ${bigPort} --called-aet SRV --get --patient-id ${patient} --include-unapproved --out '${rOut}' | head -1`);
    const ms = Date.now() - t0;
    assert.equal(r.status, 0, r.stderr);
    const got = filesUnder(rOut).filter((f) => f.endsWith(".dcm"));
    assert.ok(got.length < filesUnder(join(big, patient)).length / 2, `${got.length} objects retrieved in ${ms} ms`);
    assert.deepEqual(filesUnder(rOut).filter((f) => TEMPORARY.test(f) || f.includes("staging")), []);
  });
});

describe("6. paths on stdin", () => {
  test("find | search: a stdin line that is not JSON is a path; find -print0 | search -0; a path that is not DICOM is a counted skip", async () => {
    const plans = manifest.patients.flatMap((p) => p.plans).length;
    const r = await sh(`find '${clinic}' -type f | "\${RT[@]}" search --tag Modality=RTPLAN`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(records(r.stdout).length, plans);
    assert.match(r.stderr, /^search: \d+ files done, 1 skipped \(1 not DICOM\), 0 failed /m); // the clinic's manifest.json
    const z = await sh(`find '${clinic}' -name '*.dcm' -print0 | "\${RT[@]}" search -0 --tag Modality=RTPLAN`);
    assert.equal(z.status, 0, z.stderr);
    assert.equal(records(z.stdout).length, plans);
  });
});

describe("7. upstream failure is visible", () => {
  test("list-patients fails inside list-patients | export-plan: export-plan warns that nothing came; pipefail makes the pipeline fail", async () => {
    const cmd = `"\${RT[@]}" list-patients --db 'sqlite:${join(dir, "missing.db")}' | "\${RT[@]}" export-plan --out '${join(dir, "upstream")}'`;
    const r = await sh(cmd); // sh() runs bash with set -o pipefail
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^list-patients: Cannot open database ".*missing\.db" \(SQLite\): no such file$/m);
    assert.match(r.stderr, /^export-plan: warning: No input on stdin: if a command before this one in a pipeline failed, nothing was passed on \(use set -o pipefail\)$/m);
    const readme = readFileSync(join(root, "README.md"), "utf8");
    assert.match(readme, /^set -o pipefail$/m, "the README's pipelines set pipefail");
  });
});

describe("8. errors name the thing and the fix", () => {
  test("databases: the URL (password hidden), the dialect and the reason, one line, exit 1", async () => {
    const readme = join(root, "README.md");
    const notDb = await rt(["list-patients", "--db", `sqlite:${readme}`]);
    assert.equal(notDb.code, 1);
    assert.equal(notDb.stderr, `list-patients: Cannot open database "sqlite:${readme}" (SQLite): not an SQLite database\n`);
    const port = await freePort();
    const pg = await rt(["list-patients", "--db", `postgres://reader:s3cret@127.0.0.1:${port}/idms`]);
    assert.equal(pg.code, 1);
    assert.equal(pg.stderr, `list-patients: Cannot connect to database "postgres://reader:***@127.0.0.1:${port}/idms" (PostgreSQL): connection refused\n`);
    const mssql = await rt(["list-patients", "--db", `mssql://reader:s3cret@127.0.0.1:${port}/IDMS`]);
    assert.equal(mssql.code, 1);
    assert.equal(mssql.stderr, `list-patients: Cannot connect to database "mssql://reader:***@127.0.0.1:${port}/IDMS" (SQL Server): connection refused\n`);
    assert.ok(mssql.ms < 5000, `${mssql.ms} ms`);
    const ledger = await rt(["copy-files", "--to", join(dir, "ledger-dead"), "--ledger", `postgres://rtx:s3cret@127.0.0.1:${port}/mig`, clinic]);
    assert.equal(ledger.code, 1);
    assert.equal(ledger.stderr, `copy-files: Cannot open ledger "postgres://rtx:***@127.0.0.1:${port}/mig" (PostgreSQL): connection refused\n`);
  });

  test("a SQL Server that never answers gives up after --db-timeout", async () => {
    const silent: Server = createServer(() => {}); // accepts, then says nothing
    await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
    const port = (silent.address() as { port: number }).port;
    try {
      const r = await rt(["list-patients", "--db-timeout", "1", "--db", `mssql://reader:s3cret@127.0.0.1:${port}/IDMS`]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `list-patients: Cannot connect to database "mssql://reader:***@127.0.0.1:${port}/IDMS" (SQL Server): no answer within 1 s (--db-timeout changes the limit)\n`);
      assert.ok(r.ms < 4000, `${r.ms} ms`);
    } finally {
      silent.close();
    }
  });

  test("a key file that is not there is one line naming it, exit 1", async () => {
    const r = await rt(["anonymize", "--key-file", "/nonexistent", "--out", join(dir, "nokey"), clinic]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `anonymize: Cannot read key file "/nonexistent": no such file\n`);
  });

  test("a port in use (serve; export-plan's C-MOVE receiver is the same SCP) is one line naming the address and the way out, exit 1", async () => {
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    const port = (taken.address() as { port: number }).port;
    try {
      const busy = `Cannot listen for DICOM associations on 127.0.0.1:${port}: the port is in use by another program (another rtexport, a storescp?); choose another port\n`;
      const serve = await rt(["serve", "--port", String(port), "--dir", join(dir, "busy-serve"), "--allow-store-any"]);
      assert.equal(serve.code, 1);
      assert.equal(serve.stderr, `serve: ${busy}`);
    } finally {
      taken.close();
    }
  });
});

describe("9. one default for unapproved plans", () => {
  const approved = () => manifest.patients.flatMap((p) => p.plans.filter((q) => q.approval === "APPROVED"));
  const all = () => manifest.patients.flatMap((p) => p.plans);

  test("list-patients, export-plan and retrieve take unapproved plans only with --include-unapproved", async () => {
    assert.ok(all().length > approved().length, "the clinic has unapproved plans");
    const list = await rt(["list-patients", "--db", `sqlite:${catalog}`, "--vault", vault]);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(records(list.stdout).filter((r) => r.type === "plan").length, approved().length);
    assert.equal(list.stderr, `list-patients: ${manifest.patients.length} patient(s) listed; ${all().length - approved().length} plan(s) not approved left out (--include-unapproved lists them)\n`);
    const listAll = await rt(["list-patients", "--db", `sqlite:${catalog}`, "--vault", vault, "--include-unapproved"]);
    assert.equal(records(listAll.stdout).filter((r) => r.type === "plan").length, all().length);

    // retrieve: where plans are selected (--plan, --only-approved), the same default; the whole
    // patient (no filter, issue 16) selects no plans and takes every series.
    const p = manifest.patients.find((x) => x.plans.some((q) => q.approval !== "APPROVED") && x.plans.some((q) => q.approval === "APPROVED"))!;
    const yes = p.plans.find((q) => q.approval === "APPROVED")!;
    const no = p.plans.find((q) => q.approval !== "APPROVED")!;
    const plansOf = (r: Done) => records(r.stdout).filter((x) => x.type === "file" && x.modality === "RTPLAN").map((x) => x.sopInstanceUid).sort();
    const labels = ["--plan", yes.label, "--plan", no.label];
    const byDefault = await rt(["retrieve", ...peer(), "--get", "--patient-id", p.patientId, ...labels, "--out", join(dir, "ret-default")]);
    assert.equal(byDefault.code, 0, byDefault.stderr);
    assert.deepEqual(plansOf(byDefault), [yes.planUid]);
    assert.match(byDefault.stderr, /^retrieve: \d+ objects done, 1 skipped \(1 unapproved\), 0 failed /m);
    const every = await rt(["retrieve", ...peer(), "--get", "--patient-id", p.patientId, ...labels, "--include-unapproved", "--out", join(dir, "ret-all")]);
    assert.equal(every.code, 0, every.stderr);
    assert.deepEqual(plansOf(every), [yes.planUid, no.planUid].sort());
    const alias = await rt(["retrieve", ...peer(), "--get", "--patient-id", p.patientId, "--only-approved", "--out", join(dir, "ret-alias")]);
    assert.equal(alias.code, 0, alias.stderr);
    assert.deepEqual(plansOf(alias), p.plans.filter((q) => q.approval === "APPROVED").map((q) => q.planUid).sort());
    const whole = await rt(["retrieve", ...peer(), "--get", "--patient-id", p.patientId, "--out", join(dir, "ret-whole")]);
    assert.equal(whole.code, 0, whole.stderr);
    assert.deepEqual(plansOf(whole), p.plans.map((q) => q.planUid).sort());
    const both = await rt(["retrieve", ...peer(), "--get", "--patient-id", p.patientId, "--include-unapproved", "--only-approved", "--out", join(dir, "ret-both")]);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /^retrieve: Give either --include-unapproved or --only-approved, not both$/m);
  });
});

describe("10. npm ci on a fresh clone, and the quick start leaves tracked files alone", () => {
  // npm, not the runtime, is under test: run once, under Node. The costliest check here (~30 s):
  // npm ci unpacks every package from the local npm cache (--prefer-offline: no registry round
  // trip for what the cache holds), and npm start builds and exports the demo. A fresh clone is
  // the only way to see what the lock file and the quick start do to tracked files.
  test("git clone, npm ci --prefer-offline, npm start, git status --porcelain is empty", { skip: isDeno ? "npm is runtime-independent: checked under Node" : false, timeout: 600_000 }, () => {
    const clone = join(dir, "clone");
    const head = spawnSync("git", ["-C", root, "rev-parse", "HEAD"], { encoding: "utf8" }).stdout.trim();
    const git = (...args: string[]) => spawnSync("git", args, { cwd: clone, encoding: "utf8" });
    assert.equal(spawnSync("git", ["clone", "-q", "--no-checkout", root, clone]).status, 0);
    assert.equal(git("checkout", "-q", head).status, 0);
    const npmEnv = { ...env(), npm_config_audit: "false", npm_config_fund: "false", npm_config_update_notifier: "false" };
    const ci = spawnSync("npm", ["ci", "--prefer-offline"], { cwd: clone, env: npmEnv, encoding: "utf8", timeout: 400_000 });
    assert.equal(ci.status, 0, ci.stderr);
    const startRun = spawnSync("npm", ["start"], { cwd: clone, env: npmEnv, encoding: "utf8", timeout: 180_000 });
    assert.equal(startRun.status, 0, startRun.stderr.slice(-2000));
    assert.match(startRun.stderr, /demo: \d+ files in the export/);
    assert.equal(git("status", "--porcelain").stdout, "");
  });
});
