// The UI's hand-off files and generated scripts, with hostile values: what other tools write is
// read (or refused with one sentence), and every argument reaches the program as it was, through
// bash and zx for real (cmd.exe is not here: the .bat text is checked).
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { batQuote, shQuote } from "../ui/shared/argv.ts";
import { buildHandoff, HandoffError, parseHandoff } from "../ui/shared/handoff.ts";
import { generateScript } from "../ui/shared/scripts.ts";
import type { ScriptSpec } from "../ui/shared/types.ts";
import { root, sh } from "./_run.ts";

const dir = mkdtempSync(join(tmpdir(), "rtx-ui-scripts-"));
after(() => rmSync(dir, { recursive: true, force: true }));

describe("hand-off files", () => {
  const cases: [string, string, { patients: [string, string[]][]; warnings: number }][] = [
    ["rtexport's own", buildHandoff([{ patientId: "P1", plans: [{ planId: "P1-A", label: "Plan A" }, { planUid: "1.2.3" }] }], "2025-01-01T00:00:00Z"), {
      patients: [["P1", ["P1-A", "1.2.3"]]], warnings: 0,
    }],
    ["DicomTools' letter case, plans as strings", '{"Patients":[{"PatientId":"KU_PMRT_9","PlanIds":["RAD Model2"]},{"PatientID":"X"}]}', {
      patients: [["KU_PMRT_9", ["RAD Model2"]], ["X", []]], warnings: 0,
    }],
    ["a top-level array, numeric IDs, one plan not in a list", '[{"patient_id":12345,"plan":"P"},"67890"]', {
      patients: [["12345", ["P"]], ["67890", []]], warnings: 0,
    }],
    ["a patient twice: plans merged; entries without an ID or plan warned about", '{"patients":[{"patientId":"A","plans":["1"]},{"patientId":"A","plans":["1","2",{}]},{"name":"x"}]}', {
      patients: [["A", ["1", "2"]]], warnings: 2,
    }],
  ];
  for (const [what, text, want] of cases) {
    test(what, () => {
      const h = parseHandoff(text);
      assert.deepEqual(h.patients.map((p) => [p.patientId, p.plans]), want.patients);
      assert.equal(h.warnings.length, want.warnings, h.warnings.join("; "));
    });
  }
  test("no names go out in a hand-off", () => {
    const text = buildHandoff([{ patientId: "P1", name: { family: "Secret" }, plans: [{ planId: "A" }] } as never], "2025-01-01T00:00:00Z");
    assert.ok(!text.includes("Secret"));
  });
  for (const [text, message] of [
    ["{not json", /^Cannot read "h\.json": not JSON/],
    ['{"plans":[]}', /^Cannot read "h\.json": expected a "patients" list$/],
    ["x".repeat(5 * 1024 * 1024), /^Cannot read "h\.json": larger than 4 MB$/],
  ] as const) {
    test(`refused with one sentence: ${message}`, () => {
      assert.throws(() => parseHandoff(text, '"h.json"'), (e: Error) => e instanceof HandoffError && message.test(e.message));
    });
  }
});

describe("quoting", () => {
  for (const [word, shWant, batWant] of [
    ["plain-1.2/x", "plain-1.2/x", "plain-1.2/x"],
    ["Dr. Jane Roe", "'Dr. Jane Roe'", '"Dr. Jane Roe"'],
    ["it's", `'it'\\''s'`, `"it's"`],
    ["100%PATH%", "100%PATH%", '"100%%PATH%%"'],
    ["a&b|c>d", "'a&b|c>d'", '"a&b|c>d"'],
    ["", "''", '""'],
  ]) {
    test(`${JSON.stringify(word)}`, () => {
      assert.equal(shQuote(word), shWant);
      assert.equal(batQuote(word), batWant);
    });
  }
  test("a double quote or a line break cannot go into a .bat file: an error naming the value", () => {
    assert.throws(() => batQuote('say "hi"'), /Cannot write "say \\"hi\\"" into a \.bat file/);
    assert.throws(() => batQuote("a\nb"), /line break/);
  });
});

describe("scripts run as written", () => {
  const hostile = `Dr. O'Brien $(touch pwned) "x" \`y\` %PATH% ; &`;
  const spec: ScriptSpec = {
    title: "Export\nrm -rf /", created: "2025-01-01T00:00:00Z",
    vars: [{ name: "OUT", value: join(dir, "out dir $HOME"), comment: "the export folder" }],
    steps: [
      { comment: "patient 1\necho injected", pipeline: [["list-patients", "--patient", "P 1"], ["export-plan", "--out", { var: "OUT" }, "--authorized-by", hostile]] },
      { pipeline: [["search", "--tag", "Modality=?"]] },
    ],
  };
  // A stand-in for rtexport that prints its arguments, one per line, and fails for `search`.
  const program = join(dir, "args.mjs");
  writeFileSync(program, 'for (const a of process.argv.slice(2)) console.log(JSON.stringify(a));\nif (process.argv[2] === "search") process.exit(1);\n');

  test("sh: every argument arrives unchanged, a failed step is counted (exit 3), comments cannot inject", async () => {
    const text = generateScript("sh", spec);
    assert.ok(!/^rm -rf|^echo injected/m.test(text), text);
    writeFileSync(join(dir, "s.sh"), text);
    const r = await sh(`cd '${dir}' && bash s.sh`, { env: { RTEXPORT: `${process.execPath} ${program}` } });
    assert.equal(r.status, 3, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n").map((l) => JSON.parse(l)), [
      "export-plan", "--out", join(dir, "out dir $HOME"), "--authorized-by", hostile, "search", "--tag", "Modality=?",
    ]);
    assert.match(r.stderr, /step 2 of 2 failed \(exit status 1\)/);
    assert.match(r.stderr, /1 of 2 step\(s\) failed/);
  });

  test("zx: the same", async () => {
    writeFileSync(join(dir, "s.mjs"), generateScript("zx", spec));
    const r = await sh(`cd '${dir}' && '${join(root, "node_modules", ".bin", "zx")}' s.mjs`, { env: { RTEXPORT: `${process.execPath} ${program}` } });
    assert.equal(r.status, 3, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n").map((l) => JSON.parse(l)), [
      "export-plan", "--out", join(dir, "out dir $HOME"), "--authorized-by", hostile, "search", "--tag", "Modality=?",
    ]);
  });

  test("zx: a stage that fails at once, while the one before still writes, is a failed step, not a crash (EPIPE)", async () => {
    const loud = join(dir, "loud.mjs");
    writeFileSync(loud, 'if (process.argv[2] === "list-patients") { for (let i = 0; i < 20000; i++) process.stdout.write("x".repeat(100) + "\\n"); } else process.exit(2);\n');
    writeFileSync(join(dir, "epipe.mjs"), generateScript("zx", { title: "t", created: "x", vars: [], steps: [{ pipeline: [["list-patients"], ["export-plan"]] }] }));
    const r = await sh(`cd '${dir}' && '${join(root, "node_modules", ".bin", "zx")}' epipe.mjs`, { env: { RTEXPORT: `${process.execPath} ${loud}` } });
    assert.equal(r.status, 3, r.stderr);
    assert.doesNotMatch(r.stderr, /EPIPE|\n\s+at /);
    assert.match(r.stderr, /step 1 of 1 failed \(exit status 2\)/);
  });

  test(".bat: CRLF, %% for %, quoted words, comments and echo text escaped; a value with a double quote is refused", () => {
    const text = generateScript("bat", { ...spec, steps: [{ comment: "50% & more", pipeline: [["export-plan", "--out", { var: "OUT" }, "--authorized-by", "Dr. O'Brien 100%"]] }] });
    const lines = text.split("\r\n");
    assert.ok(!/[^\r]\n/.test(text));
    assert.ok(lines.includes("rem 50%% ^& more"), text);
    assert.ok(lines.includes(`%RTEXPORT% export-plan --out "%OUT%" --authorized-by "Dr. O'Brien 100%%"`), text);
    assert.ok(lines.includes(`if not defined OUT set "OUT=${join(dir, "out dir $HOME")}"`), text);
    assert.throws(() => generateScript("bat", spec), /Cannot write .* into a \.bat file: it holds a double quote/);
  });
});
