// The README's command reference is generated from each command's --help; it must be current,
// so every flag a command has is documented with its default.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { commandReference } from "../scripts/gen_readme.ts";
import { root } from "./_run.ts";

test("README.md's command reference equals every command's --help", () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const expected = commandReference();
  assert.ok(readme.includes(expected), "README.md is out of date: run node scripts/gen_readme.ts");
  for (const name of ["list-patients", "export-plan", "copy-files", "anonymize", "push", "retrieve", "show", "search", "echo", "serve", "status"]) {
    assert.match(expected, new RegExp(`### ${name}\\n`));
  }
});

test("README names the quick start, exit codes and what could not be tested", () => {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  for (const s of ["npm start", "npm test", "## Exit codes", "## What could not be tested here", "SQL Server", "rtexport.json", "RTEXPORT_"]) {
    assert.ok(readme.includes(s), `README.md lacks "${s}"`);
  }
});
