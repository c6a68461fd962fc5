/**
 * The export tree of seed 000 (§1.1): `Last_First_MRN/DICOM/…` for the patient's series and
 * `Last_First_MRN/<Plan>/{DICOM,Documents,Fraction_Files,Live_Images,Logs,Plan_Files,Screenshots}`
 * for each plan. export-plan and `copy-files --layout seed` both place files through `treePlace`,
 * so the same object gets the same path from either.
 */
import { posix } from "node:path";
import { kindModality, objectKind } from "../dicom/rt.ts";
import { DICOM_CATEGORIES } from "../records/types.ts";
import { sanitizeName, type SanitizeOptions } from "./sanitize.ts";

/** What `--items` selects (seed 000 §6.2). */
export const ITEMS = {
  photo: "Patient image/picture (JPG, PNG)",
  "patient-dicom": "Patient DICOM series (CT, MR, PET, …), and RT objects no exported plan claims",
  "rt-objects": "A plan's RT objects: RTPLAN, RTSTRUCT, RTDOSE, RT records, RT images, registrations",
  "ttrx-context": "TT/RX planning and deliverable context (off by default)",
  "ttrx-fulfilment": "TT/RX treatment fraction data (off by default)",
  "fraction-files": "Fraction files: screenshots, live x-ray images, logs",
  "plan-files": "Plan files: plan XML, beam data",
  documents: "Scanned documents (PDF)",
} as const;
export type Item = keyof typeof ITEMS;
export const DEFAULT_ITEMS: Item[] = ["photo", "patient-dicom", "rt-objects", "fraction-files", "plan-files", "documents"];

/** The folders of a plan. */
export const PLAN_FOLDERS = ["DICOM", "Documents", "Fraction_Files", "Live_Images", "Logs", "Plan_Files", "Screenshots"];

/** Where the files of a category that is not DICOM go, and which item selects them. */
interface Placement {
  item: Item;
  /** Folder under the plan folder, or under the patient folder for patient-level files. */
  folder: string;
  /** Files of this category always sit at patient level. */
  patientLevel?: boolean;
}

const PLACEMENTS: Record<string, Placement> = {
  photo: { item: "photo", folder: "Photo", patientLevel: true },
  "ttrx-context": { item: "ttrx-context", folder: "Plan_Files/TTRX" },
  "ttrx-fulfilment": { item: "ttrx-fulfilment", folder: "Fraction_Files/TTRX" },
  "fraction-file": { item: "fraction-files", folder: "Fraction_Files" },
  "live-image": { item: "fraction-files", folder: "Live_Images" },
  log: { item: "fraction-files", folder: "Logs" },
  screenshot: { item: "fraction-files", folder: "Screenshots" },
  "plan-file": { item: "plan-files", folder: "Plan_Files" },
  document: { item: "documents", folder: "Documents" },
};

/**
 * True for a category that holds DICOM objects: `dicom`, and `image`/`rt-object`, which catalog
 * views (and records of earlier versions) use for the same thing.
 */
export function isDicomCategory(category: string | null | undefined): boolean {
  return category != null && DICOM_CATEGORIES.has(category);
}

/** True for a category the tree has a place for. */
export function isTreeCategory(category: string | null | undefined): boolean {
  return category != null && (isDicomCategory(category) || category in PLACEMENTS);
}

export function parseItems(list: string[]): Item[] {
  const out: Item[] = [];
  for (const raw of list.flatMap((s) => s.split(","))) {
    const name = raw.trim();
    if (!name) continue;
    if (name === "all") return Object.keys(ITEMS) as Item[];
    if (!(name in ITEMS)) {
      throw new Error(`Unknown item "${name}": expected one of ${Object.keys(ITEMS).join(", ")}, or all`);
    }
    out.push(name as Item);
  }
  return out;
}

/** A DICOM object as the tree files it: the fields of its `file` record. */
export interface TreeObject {
  sopClassUid?: string;
  modality?: string;
  seriesUid?: string;
  sopInstanceUid?: string;
}

/** One file to place: its category, its name at the source (may hold a sub-folder), and for DICOM the object. */
export interface TreeFile extends TreeObject {
  category: string;
  name: string;
}

/** Where a file goes (relative, `/`-separated) and the item that selects it. */
export interface TreePlace {
  path: string;
  item: Item;
}

/** The plan folder's name for a plan label (export-plan keeps two plans with one label apart). */
export function planFolderName(label: string): string {
  return sanitizeName(label);
}

/**
 * Where one file goes in the tree. `planFolder` is given when the file is exported as part of a
 * plan. A DICOM object is placed by what it is (`objectKind` of lib/dicom/rt.ts): exported with a
 * plan, an RT object (plan, structure set, dose, record, RT image, registration) goes to
 * `Patient/Plan/DICOM/<Modality>_<SOPInstanceUID>.dcm`; every other object (image series, and RT
 * objects no exported plan claims) to `Patient/DICOM/<Modality>_<SeriesUID>/<SOPInstanceUID>.dcm`.
 * Other files go to `Patient/[Plan/]<Folder>/<name>` by category. Every component is sanitized;
 * undefined for a category the tree does not know.
 */
export function treePlace(patientFolder: string, planFolder: string | undefined, f: TreeFile, opts?: SanitizeOptions): TreePlace | undefined {
  const parts = [patientFolder];
  let item: Item;
  let name: string;
  if (isDicomCategory(f.category)) {
    const kind = objectKind(f.sopClassUid, f.modality);
    const withPlan = planFolder !== undefined && kind !== "image";
    const file = f.sopInstanceUid ? `${f.sopInstanceUid}.dcm` : undefined;
    if (withPlan) {
      parts.push(planFolder, "DICOM");
      item = "rt-objects";
      name = file ? `${kindModality(kind, f.modality) ?? "RT"}_${file}` : f.name;
    } else {
      parts.push("DICOM");
      item = "patient-dicom";
      name = `${kindModality(kind, f.modality) ?? "OT"}_${f.seriesUid ?? "series"}/${file ?? f.name}`;
    }
  } else {
    const p = PLACEMENTS[f.category];
    if (!p) return undefined;
    if (!p.patientLevel && planFolder !== undefined) parts.push(planFolder);
    parts.push(...p.folder.split("/"));
    item = p.item;
    name = f.name;
  }
  for (const c of name.split(/[\\/]/).filter((c) => c && c !== "." && c !== "..")) parts.push(sanitizeName(c, { maxBytes: 128, ...opts }));
  return { path: posix.join(...parts), item };
}
