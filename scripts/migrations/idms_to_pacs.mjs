#!/usr/bin/env zx
// Migration: an iDMS-style planning catalog → the per-patient/per-plan export tree → a PACS.
//
//   zx scripts/migrations/idms_to_pacs.mjs --db sqlite:/data/catalog.db --vault /mnt/vault \
//      --out /data/export --pacs-host pacs.example.org --pacs-port 104 --pacs-aet PACS
//   (or: node scripts/migrations/idms_to_pacs.mjs … — same flags)
//
// What it runs (each step's records are kept in OUT/.rtexport/migration/ for the record):
//   1. rtexport list-patients --from catalog --db DB --vault VAULT          → patients.ndjson
//   2. rtexport export-plan --out OUT  < patients.ndjson                    → exported.ndjson
//   3. the DICOM file records of the tree, each object once                 → to-pacs.ndjson
//      rtexport push --host … --status-file OUT/.rtexport/push-status.ndjson \
//        --ledger sqlite:OUT/.rtexport/ledger.sqlite                        → pushed.ndjson
//   4. rtexport status OUT (the ledger: exported files, plans and pushed objects)
// Resumable: rerun the same command after an interruption or a failure. export-plan's ledger
// (OUT/.rtexport/ledger.sqlite) skips files already in the tree; push's status file skips objects
// the PACS already acknowledged, so nothing is sent twice.
// Exit status: 0 all done; 3 some items failed (each named above the summary; see also
// `rtexport status OUT`); 1 or 2 a step could not run at all (its message says why).
import { $ } from "zx";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { dicomRecords, migrationSteps, readRecords, rtexportCommand, scriptOptions, usageError, worstExit, writeRecords } from "./_rtexport.mjs";

const usage = `Usage: zx idms_to_pacs.mjs --db URL --vault DIR --out DIR --pacs-host HOST --pacs-port PORT --pacs-aet AE [options]

  --db URL               catalog database (sqlite:PATH, postgres://…, mssql://…)
  --vault DIR            storage vault the catalog's file paths are relative to
  --out DIR              export tree (created; reruns resume in it)
  --pacs-host HOST       PACS host
  --pacs-port PORT       PACS port
  --pacs-aet AE          PACS called AE title
  --aet AE               our calling AE title (default RTEXPORT)
  --patient ID           only this patient (repeatable; default all)
  --include-unapproved   also export and send plans that are not APPROVED
  --parallel N           associations in parallel for push (default 1)
  --retries N            push's retries of a peer that fails for a transient reason (default: push's)
  -h, --help             this help

rtexport: $RTEXPORT, else the checkout this script is in, else rtexport on PATH.`;

const o = scriptOptions(import.meta.url, {
  db: { type: "string" },
  vault: { type: "string" },
  out: { type: "string" },
  "pacs-host": { type: "string" },
  "pacs-port": { type: "string" },
  "pacs-aet": { type: "string" },
  aet: { type: "string", default: "RTEXPORT" },
  patient: { type: "string", multiple: true, default: [] },
  "include-unapproved": { type: "boolean", default: false },
  parallel: { type: "string", default: "1" },
  retries: { type: "string" },
}, usage);
for (const flag of ["db", "vault", "out", "pacs-host", "pacs-port", "pacs-aet"]) {
  if (!o[flag]) usageError(`idms_to_pacs: --${flag} is required\n\n${usage}`);
}

const rt = rtexportCommand();
const out = resolve(o.out);
const work = join(out, ".rtexport", "migration");
mkdirSync(work, { recursive: true });
// rtexport's messages (warnings, failures, progress) go straight to our stderr; records to files.
const run = $({ stdio: ["ignore", "pipe", "inherit"], verbose: false });
const { say, step, codes } = migrationSteps("idms_to_pacs");

// 1. Patients and their plans from the catalog (unapproved plans only when asked for, by the same flag at each step).
const patientFlags = o.patient.flatMap((id) => ["--patient", id]);
const unapproved = o["include-unapproved"] ? ["--include-unapproved"] : [];
await step(
  "listing patients from the catalog",
  run`${rt} list-patients --json --from catalog --db ${o.db} --vault ${o.vault} ${patientFlags} ${unapproved} > ${join(work, "patients.ndjson")}`,
);

// 2. The tree: Last_First_MRN/DICOM/… and Last_First_MRN/<Plan>/{DICOM,Documents,…}.
await step(
  `exporting plans into ${out}`,
  run`${rt} export-plan --json --out ${out} ${unapproved} < ${join(work, "patients.ndjson")} > ${join(work, "exported.ndjson")}`,
);

// 3. Only DICOM goes to the PACS (documents, plan files, logs… stay in the tree), each object once.
const exported = readRecords(join(work, "exported.ndjson"));
writeRecords(join(work, "to-pacs.ndjson"), dicomRecords(exported));
const pacs = `${o["pacs-aet"]}@${o["pacs-host"]}:${o["pacs-port"]}`;
await step(
  `sending DICOM objects to ${pacs}`,
  run`${rt} push --json --host ${o["pacs-host"]} --port ${o["pacs-port"]} --called-aet ${o["pacs-aet"]} --calling-aet ${o.aet} --parallel ${o.parallel} ${o.retries !== undefined ? ["--retries", o.retries] : []} --status-file ${join(out, ".rtexport", "push-status.ndjson")} --ledger ${`sqlite:${join(out, ".rtexport", "ledger.sqlite")}`} < ${join(work, "to-pacs.ndjson")} > ${join(work, "pushed.ndjson")}`,
);

// 4. Summary: ours from the records, then the ledger's view (stdout: a table on a terminal, NDJSON when piped).
const listed = readRecords(join(work, "patients.ndjson"));
// "12 copied, 3 done-before": how many file records have each outcome.
const tally = (records, outcome) => {
  const c = {};
  for (const r of records.filter((r) => r.type === "file")) c[outcome(r) ?? "none"] = (c[outcome(r) ?? "none"] ?? 0) + 1;
  return Object.entries(c).map(([k, n]) => `${n} ${k}`).join(", ") || "none";
};
const pushed = readRecords(join(work, "pushed.ndjson"));
say(`${listed.filter((r) => r.type === "patient").length} patient(s), ${listed.filter((r) => r.type === "plan").length} plan(s) listed`);
say(`tree ${out}: ${exported.filter((r) => r.type === "file").length} file(s) (${tally(exported, (r) => r.copy)})`);
say(`PACS ${pacs}: ${pushed.length} DICOM object(s) (${tally(pushed, (r) => r.push?.status)})`);
await $({ stdio: "inherit", verbose: false })`${rt} status ${out}`.nothrow();

const exit = worstExit(codes);
say(exit === 0 ? "done" : "done with failures: rerun the same command to retry what failed");
process.exit(exit);
