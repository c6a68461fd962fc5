// The docs a newcomer reads: docs/cli.md is generated from each command's --help and must be
// current (every flag a command has is documented with its default); the README stays short,
// names what a user needs, links to pages that exist, and its pipelines run as written.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { buildDemoCatalog } from "../lib/catalog/demo.ts";
import { type ClinicManifest, generateClinic } from "../lib/fixtures/clinic.ts";
import { CLI_DOCS, cliReference } from "../scripts/gen_cli_docs.ts";
import { freePort, waitForPort } from "./_peers.ts";
import { cliCommand, records, root, type Run, sh } from "./_run.ts";

const COMMANDS = ["list-patients", "export-plan", "copy-files", "anonymize", "push", "retrieve", "show", "search", "echo", "serve", "status", "ui"];

test("docs/cli.md equals every command's --help", () => {
  const expected = cliReference();
  assert.ok(readFileSync(CLI_DOCS, "utf8") === expected, "docs/cli.md is out of date: run node scripts/gen_cli_docs.ts");
  for (const name of COMMANDS) assert.match(expected, new RegExp(`^## ${name}\\n\\n\`\`\`\\nUsage: rtexport ${name} `, "m"));
});

test("README is at most 350 lines and names the quick start, every command, exit codes and what could not be tested", () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const lines = readme.split("\n").length;
  assert.ok(lines <= 350, `README.md has ${lines} lines`);
  for (const s of ["npm start", "npm test", "## Exit codes", "| 130 |", "## What could not be tested here", "SQL Server", "rtexport.json", "RTEXPORT_", "docs/cli.md"]) {
    assert.ok(readme.includes(s), `README.md lacks "${s}"`);
  }
  for (const name of COMMANDS) assert.ok(readme.includes(`\`${name}\``), `README.md does not name ${name}`);
});

test("every relative link in README.md, bench/README.md and docs/ points at a file that exists", () => {
  const pages = [join(root, "README.md"), join(root, "bench", "README.md"), ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => join(root, "docs", f))];
  const broken: string[] = [];
  for (const page of pages) {
    const text = readFileSync(page, "utf8");
    for (const m of text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)) {
      const target = m[1];
      if (/^[a-z]+:/.test(target)) continue;
      if (!existsSync(join(dirname(page), target))) broken.push(`${page.slice(root.length)} → ${target}`);
    }
  }
  assert.deepEqual(broken, []);
});

test("no diary in the docs: no dated sections, rounds of work or review fixes", () => {
  const pages = [join(root, "README.md"), join(root, "bench", "README.md"), ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => join(root, "docs", f))];
  const diary = /^#+ .*\b20\d\d-\d\d-\d\d\b|^#+ .*\bwhat changed\b|\b(first|second|third) session\b|review fix|after the review|this session's/im;
  const found = pages.filter((p) => diary.test(readFileSync(p, "utf8"))).map((p) => `${p.slice(root.length)}: ${diary.exec(readFileSync(p, "utf8"))![0]}`);
  assert.deepEqual(found, []);
});

// The README's pipelines, run as written against real peers: two `serve` nodes named `aria` and
// `pacs` in an rtexport.json, the demo catalog and vault, and the clinic's DICOM on `aria`. Only
// site-specific values are replaced (the SQL Server URL, the vault share, absolute folders, the
// patient ID, the C-MOVE port); the tree the first pipeline exports is the "old export" the last
// two commands look at, documents, images and its .rtexport ledger included.
describe("the README's pipelines, run as written", () => {
  let dir: string;
  let manifest: ClinicManifest;
  const peers: ChildProcess[] = [];
  const pacsStored: string[] = [];
  let movePort: number;

  async function startServe(name: string, aet: string, folder: string, extra: string[] = []): Promise<number> {
    const port = await freePort();
    const [cmd, ...pre] = cliCommand();
    const p = spawn(cmd, [...pre, "serve", "--dir", folder, "--port", String(port), "--host", "127.0.0.1", "--aet", aet, "--allow", "RTEXPORT@127.0.0.1", "-q", ...extra], { stdio: ["ignore", "pipe", "inherit"] });
    if (name === "pacs") p.stdout!.setEncoding("utf8").on("data", (d: string) => pacsStored.push(d));
    else p.stdout!.resume();
    peers.push(p);
    await waitForPort(port, "127.0.0.1", 30_000, p);
    return port;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "rtx-readme-"));
    manifest = await generateClinic({ out: join(dir, "clinic"), patients: 2, slices: 3, seed: 23 });
    await buildDemoCatalog({ clinic: join(dir, "clinic"), manifest, catalogPath: join(dir, "catalog.db"), vault: join(dir, "vault") });
    cpSync(join(dir, "clinic"), join(dir, "aria-store"), { recursive: true });
    movePort = await freePort();
    const aria = await startServe("aria", "ARIA", join(dir, "aria-store"), ["--move-dest", `RTEXPORT=127.0.0.1:${movePort}`]);
    const pacs = await startServe("pacs", "PACS", join(dir, "pacs-store"));
    writeFileSync(join(dir, "rtexport.json"), JSON.stringify({
      peers: {
        aria: { host: "127.0.0.1", port: aria, calledAet: "ARIA" },
        pacs: { host: "127.0.0.1", port: pacs, calledAet: "PACS" },
      },
    }));
    writeFileSync(join(dir, "research.key"), "0123456789abcdef0123456789abcdef\n");
  });

  after(async () => {
    for (const p of peers) {
      if (p.exitCode !== null) continue;
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      const t = setTimeout(() => p.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  /** The commands of the README's Pipelines block, continuation lines joined, comments dropped. */
  function pipelines(): string[] {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Pipelines"));
    const block = /```sh\n([\s\S]*?)```/.exec(section)![1];
    return block.replace(/\\\n\s*/g, "").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#") && l !== "set -o pipefail");
  }

  /** The command with this site's values, and `rtexport` as the checkout's command. */
  function local(command: string): string {
    const patient = manifest.patients[0].patientId;
    return command
      .replace(`'mssql://reader:…@idms-sql/IDMS'`, "sqlite:catalog.db")
      .replace(`'\\\\vault\\share'`, "vault")
      .replace(/ \/(mnt|data)\//g, " $1/")
      .replace("/data/old-export", "mnt/export")
      .replace(/--patient-id 123456/g, `--patient-id ${patient}`)
      .replace("--move-port 11113", `--move-port ${movePort}`)
      .replace(/(^|\| *)rtexport /g, `$1"\${RT[@]}" `)
      .replace(/data\/old-export/g, "mnt/export");
  }

  /**
   * Pipelines that fail today for a reason an open issue names, with the stderr that says so.
   * When the reason is fixed the pipeline exits 0, this test fails, and the entry goes.
   */
  const KNOWN_FAILURES: Record<number, { status: number; stderr: RegExp; why: string }> = {};

  test("every pipeline exits 0 and does what its comment says", { timeout: 240_000 }, async () => {
    const commands = pipelines();
    assert.equal(commands.length, 6, commands.join("\n"));
    const results: Run[] = [];
    for (const [i, c] of commands.entries()) {
      const script = local(c);
      const r = await sh(script, { cwd: dir, timeoutMs: 120_000 });
      const known = KNOWN_FAILURES[i];
      if (known) {
        assert.equal(r.status, known.status, `${script} now exits ${r.status}: remove it from KNOWN_FAILURES (${known.why})\n${r.stderr}`);
        assert.match(r.stderr, known.stderr);
      } else {
        assert.equal(r.status, 0, `${script}\n${r.stderr}`);
      }
      results.push(r);
    }
    const approved = manifest.patients.flatMap((p) => p.plans.filter((x) => x.approval === "APPROVED"));
    // 1: the approved plans in the tree, their DICOM on the PACS.
    const tree = readdirSync(join(dir, "mnt", "export"));
    assert.ok(tree.includes(".rtexport"), tree.join(", "));
    const pushed = records(results[0].stdout).filter((r) => r.type === "file" && r.push);
    assert.ok(pushed.length > 0 && pushed.every((r) => r.push.status !== "failed"), results[0].stdout.slice(0, 500));
    assert.ok(records(pacsStored.join("")).filter((r) => r.type === "file").length > 0, "nothing arrived on the PACS");
    // 2: an anonymized research set, no source patient ID in its paths; the structure set two plans
    // share was exported under each plan and is one object in the research set.
    const research = readdirSync(join(dir, "data", "research"), { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".dcm"));
    assert.ok(research.length > 0);
    assert.match(results[1].stderr, /anonymize: \d+ files done, \d+ skipped \(\d+ identical\), 0 failed/);
    for (const p of manifest.patients) assert.ok(research.every((f) => !f.includes(p.patientId)), research.join(", "));
    // 3 and 4: the patient's approved plans by C-MOVE, then by C-GET de-identified.
    const mine = approved.filter((x) => manifest.patients[0].plans.includes(x));
    assert.equal(records(results[2].stdout).filter((r) => r.type === "file" && r.modality === "RTPLAN").length, mine.length);
    assert.ok(readdirSync(join(dir, "research"), { recursive: true, encoding: "utf8" }).every((f) => !f.includes(manifest.patients[0].patientId)));
    // 5 and 6: the old export's tree and machines; its documents and ledger are counted, not failed.
    assert.equal(records(results[4].stdout).filter((r) => r.type === "plan").length, approved.length);
    assert.match(results[4].stderr, /skipped \(\d+ not DICOM\), 0 failed/);
    assert.equal(records(results[5].stdout).filter((r) => r.type === "stats").length, 1);
  });
});
