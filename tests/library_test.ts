// mod.ts used the way a migration script uses it: from source, under the runtime running the
// suite (Node and Deno). The npm build's import is tested in build_test.ts.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as rtexport from "../mod.ts";
import type { ClinicManifest, RtRecord } from "../mod.ts";

let dir: string;
let manifest: ClinicManifest;
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtx-lib-"));
  manifest = await rtexport.generateClinic({ out: join(dir, "clinic"), patients: 2, slices: 3, seed: 5 });
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("listPatients | exportPlans | copyFiles as async iterables, then the reference tree of the copy", async () => {
  const plans = rtexport.listPatients({ from: "folder", paths: [join(dir, "clinic")] }, { includeUnapproved: true });
  const exported = rtexport.exportPlans(plans, { includeUnapproved: true });
  const out: RtRecord[] = [];
  for await (const r of rtexport.copyFiles(exported, { to: join(dir, "tree") })) out.push(r);
  const files = out.filter((r) => r.type === "file");
  const expected = manifest.patients.reduce((n, p) => n + p.studies.reduce((m, s) => m + s.series.reduce((k, x) => k + x.instances.length, 0), 0), 0);
  // Every object lands in the tree (a structure set shared by plans sits in each plan's folder).
  assert.equal(new Set(files.map((f) => f.sopInstanceUid)).size, expected);
  const summaries = files.map((f) => rtexport.summarizeObject(rtexport.readDicomFile(String(f.path)), String(f.path)));
  const tree = rtexport.buildReferenceTree(summaries);
  assert.equal(tree.patients.reduce((n, p) => n + p.plans.length, 0), manifest.patients.reduce((n, p) => n + p.plans.length, 0));
  assert.ok(tree.patients.every((p) => p.plans.every((plan) => plan.missing.length === 0)));
});

test("anonymizeDataSet keeps the references consistent under one key", () => {
  const p = manifest.patients[0];
  const plan = rtexport.readDicomFile(join(dir, "clinic", p.plans[0].path), { full: true });
  const struct = rtexport.readDicomFile(join(dir, "clinic", p.structureSet.path), { full: true });
  const ctx = rtexport.createAnonymizeContext({ key: "0123456789abcdef0123456789abcdef" });
  rtexport.anonymizeDataSet(plan.dataset, ctx.options, ctx);
  rtexport.anonymizeDataSet(struct.dataset, ctx.options, ctx);
  const ref = plan.dataset.items("ReferencedStructureSetSequence")[0].string("ReferencedSOPInstanceUID");
  assert.equal(ref, struct.dataset.string("SOPInstanceUID"));
  assert.notEqual(ref, p.structureSet.sopInstanceUid);
  assert.notEqual(plan.dataset.string("PatientID"), p.patientId);
});

/** One name mod.ts exports: its name, the module it comes from, and whether it is a type only. */
interface ModExport {
  name: string;
  from: URL;
  typeOnly: boolean;
}

/** The `export { … } from "…"` lists of a module, as (exported name, local name, source) triples. */
function reExports(text: string, base: URL): { name: string; local: string; from: URL; typeOnly: boolean }[] {
  const out: { name: string; local: string; from: URL; typeOnly: boolean }[] = [];
  for (const m of text.matchAll(/^export (type )?\{([^}]*)\} from "([^"]+)";/gm)) {
    for (const raw of m[2].split(",").map((x) => x.trim()).filter(Boolean)) {
      const typeOnly = m[1] !== undefined || raw.startsWith("type ");
      const [local, name = local] = raw.replace(/^type /, "").split(/\s+as\s+/);
      out.push({ name, local, from: new URL(m[3], base), typeOnly });
    }
  }
  return out;
}

/**
 * The JSDoc comment right above the declaration of `name` in `file`, following re-exports
 * (`export { x } from`, `export { x }` of an import) to where it is declared; undefined when there is none.
 */
function docAt(file: URL, name: string, seen = new Set<string>()): { doc?: string; where: string } {
  const key = `${file.href}#${name}`;
  if (seen.has(key)) return { where: key };
  seen.add(key);
  const text = readFileSync(file, "utf8");
  const decl = new RegExp(`^export (?:declare )?(?:abstract )?(?:async )?(?:function\\*?|class|const|let|interface|type|enum) ${name}\\b`, "m").exec(text);
  if (decl) {
    const before = text.slice(0, decl.index).trimEnd();
    const where = `${file.pathname.replace(/^.*?\/(lib\/)/, "$1")}:${text.slice(0, decl.index).split("\n").length}`;
    if (!before.endsWith("*/")) return { where };
    return { doc: before.slice(before.lastIndexOf("/**")), where };
  }
  const re = reExports(text, file).find((e) => e.name === name);
  if (re) return docAt(re.from, re.local, seen);
  // `export { x };` of something imported.
  if (new RegExp(`^export (?:type )?\\{[^}]*\\b${name}\\b[^}]*\\};`, "m").test(text)) {
    const imp = new RegExp(`^import \\{[^}]*\\b${name}\\b[^}]*\\} from "([^"]+)";`, "m").exec(text);
    if (imp) return docAt(new URL(imp[1], file), name, seen);
  }
  return { where: `${file.pathname} (no declaration of ${name})` };
}

function modExports(): ModExport[] {
  const mod = new URL("../mod.ts", import.meta.url);
  return reExports(readFileSync(mod, "utf8"), mod).map(({ name, from, typeOnly, local }) => ({ name: local === name ? name : local, from, typeOnly }));
}

test("mod.ts is export-from lines only, and every export is documented at its definition with an @example", () => {
  const text = readFileSync(new URL("../mod.ts", import.meta.url), "utf8");
  // Without its comments, mod.ts is nothing but `export { … } from "./lib/…";` lists.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "").replace(/^export (type )?\{[^}]*\} from "\.\/lib\/[^"]+";$/gm, "").trim();
  assert.equal(code, "", "mod.ts holds something other than export-from lines");
  const exports = modExports();
  assert.ok(exports.length > 100, `only ${exports.length} exports found`);
  const missing: string[] = [];
  for (const e of exports) {
    const { doc, where } = docAt(e.from, e.name);
    // Values (functions, classes, constants) show how they are called; types say what they are.
    if (!doc) missing.push(`${e.name} (${where}): no JSDoc`);
    else if (!e.typeOnly && !doc.includes("@example")) missing.push(`${e.name} (${where}): no @example`);
  }
  assert.deepEqual(missing, []);
  for (const name of ["listPatients", "exportPlans", "copyFiles", "anonymizeFiles", "pushRecords", "retrieveFiles", "showRecords", "searchFiles", "startQrScp", "summarizeLedger", "readDicomFile", "buildReferenceTree", "anonymizeDataSet", "connect"]) {
    assert.equal(typeof (rtexport as Record<string, unknown>)[name], "function", `mod.ts exports ${name}`);
  }
});
