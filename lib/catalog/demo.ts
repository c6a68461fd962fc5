import { createHash } from "node:crypto";
import { copyFile, link, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { ClinicManifest } from "../fixtures/clinic.ts";
import { openSqlite } from "../db/sqlite.ts";
import { type CatalogFileRow, type CatalogPlanRow, type CatalogSchema, createCatalogTables } from "./catalog.ts";

export interface DemoCatalogOptions {
  /** The generated clinic folder (with manifest.json). */
  clinic: string;
  manifest: ClinicManifest;
  /** Where the SQLite catalog goes. */
  catalogPath: string;
  /** The storage vault folder to build. */
  vault: string;
  /** Add the rows a real catalog gets wrong (NULLs, a missing vault file, an unknown category). */
  withProblems?: boolean;
}

const STATUSES = ["Deliverable", "Completed", "Under Treatment", "Authorized", "Discontinued", "Disallowed"];

function sha(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Small deterministic stand-ins for the non-DICOM files of a planning system's vault. */
function fakeFile(kind: string, seed: string, n: number): Uint8Array {
  const text = `${kind} ${seed} #${n}\n`;
  const body = new TextEncoder().encode(text.repeat(8 + (n % 5) * 40));
  const magic: Record<string, number[]> = {
    png: [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a],
    jpg: [0xff, 0xd8, 0xff, 0xe0],
    pdf: [...new TextEncoder().encode("%PDF-1.4\n")],
  };
  const head = magic[kind] ?? [];
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/**
 * Builds an iDMS-like catalog (SQLite, the rtx_* views as tables) and storage vault from a
 * generated clinic: the clinic's DICOM files go into the vault with catalog rows (images at
 * patient level, RT objects per plan), plus plan files, fraction files, live images, logs,
 * screenshots, documents and a photo per patient; a phantom patient and QA/physician plans that
 * list-patients must leave out by default; with `withProblems`, rows a real catalog gets wrong.
 */
export async function buildDemoCatalog(opts: DemoCatalogOptions): Promise<{ patients: number; plans: number; files: number }> {
  await rm(opts.catalogPath, { force: true });
  await mkdir(dirname(opts.catalogPath), { recursive: true });
  const db = openSqlite<CatalogSchema>(opts.catalogPath, { wal: false });
  await createCatalogTables(db);
  const files: CatalogFileRow[] = [];
  const plans: CatalogPlanRow[] = [];
  let fileNo = 0;
  const updated = (i: number) => `2024-${String((i % 12) + 1).padStart(2, "0")}-15T10:00:00Z`;

  async function vaultFile(rel: string, data: Uint8Array | { from: string }): Promise<{ bytes: number; sha256: string }> {
    const dest = join(opts.vault, rel);
    await mkdir(dirname(dest), { recursive: true });
    await rm(dest, { force: true });
    if ("from" in data) {
      await link(data.from, dest).catch(() => copyFile(data.from, dest));
      const bytes = await readFile(dest);
      return { bytes: bytes.length, sha256: sha(bytes) };
    }
    await writeFile(dest, data);
    return { bytes: data.length, sha256: sha(data) };
  }

  async function addFile(patientId: string, planId: string | null, category: string, rel: string, data: Uint8Array | { from: string }, dicom?: { sop: string; modality: string }) {
    const { bytes, sha256 } = await vaultFile(rel, data);
    files.push({
      file_id: `F${String(++fileNo).padStart(6, "0")}`, patient_id: patientId, plan_id: planId, category,
      vault_path: rel.replace(/\//g, "\\"), sop_instance_uid: dicom?.sop ?? null, modality: dicom?.modality ?? null,
      sha256, bytes, updated_at: "2024-06-01T00:00:00Z",
    });
  }

  const patientRows = [];
  for (const [i, p] of opts.manifest.patients.entries()) {
    const pv = `Patients/${String(i + 1).padStart(5, "0")}`;
    patientRows.push({
      patient_id: p.patientId, family_name: p.nameParts.family, given_name: p.nameParts.given, birth_date: p.birthDate,
      sex: p.sex, is_phantom: 0, updated_at: updated(i),
    });
    await addFile(p.patientId, null, "photo", `${pv}/photo.jpg`, fakeFile("jpg", p.patientId, i));
    await addFile(p.patientId, null, "document", `${pv}/Documents/consent.pdf`, fakeFile("pdf", p.patientId, i));
    for (const study of p.studies) {
      for (const series of study.series) {
        if (series.modality !== "CT" && series.modality !== "MR") continue;
        for (const inst of series.instances) {
          await addFile(p.patientId, null, "image", `${pv}/Images/${series.modality}_${series.seriesUid}/${inst.sopInstanceUid}.dcm`, { from: join(opts.clinic, inst.path) }, { sop: inst.sopInstanceUid, modality: series.modality });
        }
      }
    }
    for (const [j, plan] of p.plans.entries()) {
      const planId = `${p.patientId}-P${j + 1}`;
      plans.push({
        plan_id: planId, patient_id: p.patientId, plan_uid: plan.planUid, label: plan.label, name: plan.name,
        status: STATUSES[(i + j) % STATUSES.length], plan_type: "CLINICAL", approval: plan.approval,
        machines: plan.machines.join("\\"), updated_at: updated(i + j),
      });
      const pp = `${pv}/Plans/${planId}`;
      const rt = (ref: { sopInstanceUid: string; path: string }, modality: string) =>
        addFile(p.patientId, planId, "rt-object", `${pp}/DICOM/${modality}_${ref.sopInstanceUid}.dcm`, { from: join(opts.clinic, ref.path) }, { sop: ref.sopInstanceUid, modality });
      await rt({ sopInstanceUid: plan.planUid, path: plan.path }, "RTPLAN");
      await rt(p.structureSet, "RTSTRUCT");
      for (const d of plan.doses) await rt(d, "RTDOSE");
      for (const r of plan.records) await rt(r, "RTRECORD");
      for (const r of plan.rtImages) await rt(r, "RTIMAGE");
      for (const r of plan.registrations) await rt(r, "REG");
      await addFile(p.patientId, planId, "plan-file", `${pp}/plan.xml`, fakeFile("xml", planId, j));
      await addFile(p.patientId, planId, "plan-file", `${pp}/beamdata.bin`, fakeFile("bin", planId, j + 1));
      await addFile(p.patientId, planId, "ttrx-context", `${pp}/ttrx/context.xml`, fakeFile("xml", `${planId}-ttrx`, j));
      for (let f = 1; f <= 2; f++) {
        await addFile(p.patientId, planId, "fraction-file", `${pp}/Fractions/${f}/fraction.xml`, fakeFile("xml", `${planId}-fx${f}`, f));
        await addFile(p.patientId, planId, "log", `${pp}/Fractions/${f}/treatment.log`, fakeFile("log", `${planId}-fx${f}`, f));
        await addFile(p.patientId, planId, "live-image", `${pp}/Fractions/${f}/live_${f}.png`, fakeFile("png", `${planId}-live${f}`, f));
        await addFile(p.patientId, planId, "screenshot", `${pp}/Fractions/${f}/screen_${f}.png`, fakeFile("png", `${planId}-shot${f}`, f));
        await addFile(p.patientId, planId, "ttrx-fulfilment", `${pp}/ttrx/fraction_${f}.xml`, fakeFile("xml", `${planId}-ttrxf${f}`, f));
      }
      await addFile(p.patientId, planId, "document", `${pp}/Documents/plan_report.pdf`, fakeFile("pdf", planId, j));
    }
    if (i === 0) {
      // Plans list-patients leaves out unless asked: QA, physician (contour only), setup.
      for (const [k, type] of ["QA", "PHYSICIAN", "SETUP", "LOT_SIMULATION"].entries()) {
        plans.push({
          plan_id: `${p.patientId}-X${k + 1}`, patient_id: p.patientId, plan_uid: null, label: `${type} plan`, name: null,
          status: "Completed", plan_type: type, approval: "APPROVED", machines: null, updated_at: updated(k),
        });
      }
    }
  }
  patientRows.push({ patient_id: "PHANTOM-1", family_name: "Phantom", given_name: "Head", birth_date: null, sex: "O", is_phantom: 1, updated_at: updated(1) });
  plans.push({ plan_id: "PHANTOM-1-P1", patient_id: "PHANTOM-1", plan_uid: null, label: "Phantom QA", name: null, status: "Completed", plan_type: "CLINICAL", approval: "APPROVED", machines: "CyberKnife M6", updated_at: updated(1) });
  if (opts.withProblems) {
    const first = opts.manifest.patients[0].patientId;
    const planId = `${first}-P1`;
    patientRows.push({ patient_id: "NOPLANS-1", family_name: "Empty", given_name: "Patient", birth_date: null, sex: null, is_phantom: 0, updated_at: updated(2) });
    patientRows.push({ patient_id: null as unknown as string, family_name: "Nullid", given_name: null as unknown as string, birth_date: null, sex: null, is_phantom: 0, updated_at: null as unknown as string });
    files.push({ file_id: "BAD-1", patient_id: first, plan_id: planId, category: "log", vault_path: "Patients/missing/lost.log", sop_instance_uid: null, modality: null, sha256: null, bytes: null, updated_at: null });
    files.push({ file_id: "BAD-2", patient_id: first, plan_id: planId, category: null, vault_path: "Patients/x.bin", sop_instance_uid: null, modality: null, sha256: null, bytes: null, updated_at: null });
    files.push({ file_id: "BAD-3", patient_id: first, plan_id: planId, category: "fraction-file", vault_path: null, sop_instance_uid: null, modality: null, sha256: null, bytes: null, updated_at: null });
  }
  for (const r of patientRows) await db.insertInto("rtx_patients").values(r).execute();
  for (const r of plans) await db.insertInto("rtx_plans").values(r).execute();
  for (let k = 0; k < files.length; k += 200) await db.insertInto("rtx_files").values(files.slice(k, k + 200)).execute();
  await db.destroy();
  return { patients: patientRows.length, plans: plans.length, files: files.length };
}
