// Builds the demo catalog (SQLite) and storage vault from a generated clinic:
//   node scripts/make_demo_catalog.ts --clinic DIR --catalog FILE --vault DIR [--with-problems]
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { buildDemoCatalog } from "../lib/catalog/demo.ts";

const { values } = parseArgs({
  options: { clinic: { type: "string" }, catalog: { type: "string" }, vault: { type: "string" }, "with-problems": { type: "boolean" } },
});
if (!values.clinic || !values.catalog || !values.vault) {
  console.error("usage: make_demo_catalog.ts --clinic DIR --catalog FILE --vault DIR [--with-problems]");
  process.exit(2);
}
const manifest = JSON.parse(readFileSync(`${values.clinic}/manifest.json`, "utf8"));
const r = await buildDemoCatalog({ clinic: values.clinic, manifest, catalogPath: values.catalog, vault: values.vault, withProblems: values["with-problems"] });
console.error(`catalog: ${r.patients} patients, ${r.plans} plans, ${r.files} files`);
