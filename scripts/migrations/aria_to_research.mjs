#!/usr/bin/env zx
// Migration: an ARIA-style Query/Retrieve peer → an anonymized research set, verified.
//
//   zx scripts/migrations/aria_to_research.mjs --host aria.example.org --port 105 --aec VMSDBD \
//      --get --key-file /secure/site.key --staging /secure/identified --out /research/study42
//   (or: node scripts/migrations/aria_to_research.mjs … — same flags)
//
// What it runs (each step's records are kept in STAGING/.rtexport/migration/; they hold PHI):
//   1. rtexport list-patients --from dicom (the peer)                         → patients.ndjson
//   2. rtexport export-plan (the peer, selective per plan) --out STAGING       → exported.ndjson
//      Only each plan's RTPLAN, its structure set, the images it was drawn on, its doses,
//      treatment records and RT images are retrieved; never whole studies.
//   3. the DICOM file records, each object once                               → identified.ndjson
//      rtexport anonymize --key-file K --out OUT                              → anonymized.ndjson
//      Keyed: the same key gives the same UIDs and pseudonyms on every run, so references
//      between plan, structure set, images and doses still resolve.
//   4. verification: rtexport show on the identified objects and on OUT must give the same plan
//      trees (structure set, image series and counts, doses, records, RT images, registrations);
//      and no file in OUT may contain a source patient's ID or name.
// STAGING holds identified copies: keep it on the clinical side, delete it when done
// (--remove-staging does that after a verified run). A rerun with the same STAGING resumes:
// files already retrieved are not fetched again.
// The id mapping (PHI) is written only when asked for with --write-map FILE.
// Exit status: 0 done and verified; 3 some items failed or the verification found a difference
// (each named above the summary); 1 or 2 a step could not run (its message says why).
import { $ } from "zx";
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { dicomRecords, migrationSteps, readRecords, rtexportCommand, scriptOptions, usageError, worstExit, writeRecords } from "./_rtexport.mjs";

// De-identification options beyond PS3.15 Table E.1-1 (see docs/anonymize.md). Edit for your
// protocol, e.g. ["--retain-dates", "modified", "--clean-descriptors"].
const ANONYMIZE_OPTIONS = [];

const usage = `Usage: zx aria_to_research.mjs --host HOST --port PORT --aec AE --key-file FILE --staging DIR --out DIR [options]

  --host HOST            Q/R peer (ARIA DB Service, PACS, Orthanc…)
  --port PORT            its port
  --aec AE               its called AE title
  --aet AE               our calling AE title (default RTEXPORT)
  --get                  retrieve with C-GET (default C-MOVE to us: the peer must know --aet at --move-port)
  --move-port PORT       port we receive C-MOVE on (default 11113)
  --patient ID           only this patient (repeatable; default every patient the peer lists)
  --include-unapproved   also take plans that are not APPROVED
  --key-file FILE        anonymization key (16+ bytes; same key, same research UIDs and pseudonyms)
  --map FILE.csv         patient map: old id,new id[,new name] per line
  --write-map FILE.csv   write the old → new mapping used (PHI: store it safely); not written otherwise
  --staging DIR          identified copies (PHI), reused by reruns
  --remove-staging       delete STAGING after a verified run
  --out DIR              the research set
  -h, --help             this help

rtexport: $RTEXPORT, else the checkout this script is in, else rtexport on PATH.`;

const o = scriptOptions(import.meta.url, {
  host: { type: "string" },
  port: { type: "string" },
  aec: { type: "string" },
  aet: { type: "string", default: "RTEXPORT" },
  get: { type: "boolean", default: false },
  "move-port": { type: "string" },
  patient: { type: "string", multiple: true, default: [] },
  "include-unapproved": { type: "boolean", default: false },
  "key-file": { type: "string" },
  map: { type: "string" },
  "write-map": { type: "string" },
  staging: { type: "string" },
  "remove-staging": { type: "boolean", default: false },
  out: { type: "string" },
}, usage);
for (const flag of ["host", "port", "aec", "key-file", "staging", "out"]) {
  if (!o[flag]) usageError(`aria_to_research: --${flag} is required\n\n${usage}`);
}
const out = resolve(o.out);
const staging = resolve(o.staging);
if (out === staging) usageError("aria_to_research: --out and --staging must be different folders");

const rt = rtexportCommand();
const work = join(staging, ".rtexport", "migration");
mkdirSync(work, { recursive: true });
const run = $({ stdio: ["ignore", "pipe", "inherit"], verbose: false });
const { say, step, codes } = migrationSteps("aria_to_research");
const peer = ["--host", o.host, "--port", o.port, "--called-aet", o.aec, "--calling-aet", o.aet];
const retrieveBy = o.get ? ["--get"] : o["move-port"] ? ["--move-port", o["move-port"]] : [];
const patientFlags = o.patient.flatMap((id) => ["--patient", id]);
const file = (name) => join(work, name);
// Unapproved plans only when asked for, by the same flag at each step.
const unapproved = o["include-unapproved"] ? ["--include-unapproved"] : [];

// 1. Patients and their plans, by C-FIND.
await step(
  `listing patients at ${o.aec}@${o.host}:${o.port}`,
  run`${rt} list-patients --json --from dicom ${peer} ${patientFlags} ${unapproved} > ${file("patients.ndjson")}`,
);

// 2. Per patient, per plan: selective retrieval into the staging tree.
await step(
  `retrieving each plan with what it references into ${staging}`,
  run`${rt} export-plan --json ${peer} ${retrieveBy} ${unapproved} --out ${staging} < ${file("patients.ndjson")} > ${file("exported.ndjson")}`,
);

// 3. Anonymize every DICOM object once.
writeRecords(file("identified.ndjson"), dicomRecords(readRecords(file("exported.ndjson"))));
const mapFlags = [...(o.map ? ["--map", o.map] : []), ...(o["write-map"] ? ["--write-map", o["write-map"]] : [])];
await step(
  `anonymizing into ${out}`,
  run`${rt} anonymize --json --key-file ${o["key-file"]} ${mapFlags} ${ANONYMIZE_OPTIONS} --out ${out} < ${file("identified.ndjson")} > ${file("anonymized.ndjson")}`,
);

// 4a. Same plan trees before and after: what each plan has, without names and UIDs.
await step("reading the plan trees before anonymization", run`${rt} show --json < ${file("identified.ndjson")} > ${file("show-identified.ndjson")}`);
await step("reading the plan trees of the research set", run`${rt} show --json ${out} > ${file("show-research.ndjson")}`);
const shapes = (records) => records.flatMap((r) => {
  const sorted = (xs) => xs.map((x) => JSON.stringify(x)).sort();
  if (r.type === "plan") {
    return [JSON.stringify({
      plan: r.approval,
      beams: r.beams,
      structureSet: r.structureSet ? sorted((r.structureSet.imageSeries ?? []).map((s) => [s.modality, s.count, s.referenced])) : "none",
      doses: sorted((r.doses ?? []).map((d) => [d.summation, d.beams ?? []])),
      records: sorted((r.records ?? []).map((t) => [t.kind, t.fraction])),
      images: (r.images ?? []).length,
      registrations: (r.registrations ?? []).length,
      missing: (r.missing ?? []).length,
    })];
  }
  if (r.type === "unconnected") return [JSON.stringify({ unconnected: sorted((r.objects ?? []).map((x) => [x.modality, x.count])) })];
  return [];
}).sort();
const before = shapes(readRecords(file("show-identified.ndjson")));
const after = shapes(readRecords(file("show-research.ndjson")));
const differences = [...new Set([...before, ...after])].filter((s) => before.filter((x) => x === s).length !== after.filter((x) => x === s).length);
for (const d of differences) say(`verification: plan tree differs after anonymization: ${before.filter((x) => x === d).length} before, ${after.filter((x) => x === d).length} after: ${d}`);

// 4b. No source patient ID or name (UTF-8 or Latin-1 bytes) in any research file.
const patients = readRecords(file("patients.ndjson")).filter((r) => r.type === "patient");
const needles = patients.flatMap((p) => [p.patientId, p.name?.family, p.name?.given])
  .filter((s) => typeof s === "string" && s.length >= 3)
  .flatMap((s) => [Buffer.from(s, "utf8"), Buffer.from(s, "latin1")]);
const researchFiles = readdirSync(out, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
const leaking = researchFiles.filter((f) => {
  const bytes = readFileSync(f);
  return needles.some((n) => bytes.includes(n)) || needles.some((n) => f.includes(n.toString("utf8")));
});
for (const f of leaking) say(`verification: "${f}" still contains a source patient ID or name`);

// Summary.
const anonymized = readRecords(file("anonymized.ndjson")).filter((r) => r.type === "file");
const plans = before.filter((s) => s.startsWith('{"plan"')).length;
say(`${patients.length} patient(s); ${dicomRecords(readRecords(file("exported.ndjson"))).length} object(s) retrieved; ${anonymized.length} anonymized into ${out}`);
say(`verification: ${plans} plan tree(s) ${differences.length === 0 ? "unchanged" : "CHANGED"}; ${researchFiles.length} research file(s) scanned, ${leaking.length} with a source ID or name`);
if (differences.length > 0 || leaking.length > 0) codes.push(3);
const exit = worstExit(codes);
if (exit === 0 && o["remove-staging"]) {
  rmSync(staging, { recursive: true, force: true });
  say(`removed ${staging}`);
}
say(exit === 0 ? "done" : "done with failures: fix what is named above and rerun the same command");
process.exit(exit);
