// The docs a newcomer reads: docs/cli.md is generated from each command's --help and must be
// current (every flag a command has is documented with its default); the README stays short,
// names what a user needs, and links to pages that exist.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { CLI_DOCS, cliReference } from "../scripts/gen_cli_docs.ts";
import { root } from "./_run.ts";

const COMMANDS = ["list-patients", "export-plan", "copy-files", "anonymize", "push", "retrieve", "show", "search", "echo", "serve", "status"];

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
