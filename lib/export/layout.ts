import { posix } from "node:path";
import { sanitizeName, type SanitizeOptions } from "../layout/sanitize.ts";

/** What `--items` selects (seed 000 §6.2). */
export const ITEMS = {
  photo: "Patient image/picture (JPG, PNG)",
  "patient-dicom": "Patient DICOM series (CT, MR, PET, …)",
  "rt-objects": "RTSTRUCT, RTPLAN, RTDOSE, RT records, RT images, registrations",
  "ttrx-context": "TT/RX planning and deliverable context (off by default)",
  "ttrx-fulfilment": "TT/RX treatment fraction data (off by default)",
  "fraction-files": "Fraction files: screenshots, live x-ray images, logs",
  "plan-files": "Plan files: plan XML, beam data",
  documents: "Scanned documents (PDF)",
} as const;
export type Item = keyof typeof ITEMS;
export const DEFAULT_ITEMS: Item[] = ["photo", "patient-dicom", "rt-objects", "fraction-files", "plan-files", "documents"];

/** A file category of the catalog: which item selects it and where it goes in the tree. */
interface Placement {
  item: Item;
  /** Folder under the patient folder (patient-level files) or under the plan folder. */
  folder: string;
  /** Files of this category always sit at patient level. */
  patientLevel?: boolean;
}

const PLACEMENTS: Record<string, Placement> = {
  photo: { item: "photo", folder: "Photo", patientLevel: true },
  image: { item: "patient-dicom", folder: "DICOM", patientLevel: true },
  dicom: { item: "rt-objects", folder: "DICOM" },
  "rt-object": { item: "rt-objects", folder: "DICOM" },
  "ttrx-context": { item: "ttrx-context", folder: "Plan_Files/TTRX" },
  "ttrx-fulfilment": { item: "ttrx-fulfilment", folder: "Fraction_Files/TTRX" },
  "fraction-file": { item: "fraction-files", folder: "Fraction_Files" },
  "live-image": { item: "fraction-files", folder: "Live_Images" },
  log: { item: "fraction-files", folder: "Logs" },
  screenshot: { item: "fraction-files", folder: "Screenshots" },
  "plan-file": { item: "plan-files", folder: "Plan_Files" },
  document: { item: "documents", folder: "Documents" },
};

export const PLAN_FOLDERS = ["DICOM", "Documents", "Fraction_Files", "Live_Images", "Logs", "Plan_Files", "Screenshots"];

export function placementOf(category: string): Placement | undefined {
  return PLACEMENTS[category];
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

/**
 * The tree path (relative, `/`-separated) of one file: `Patient/DICOM/…` for patient-level
 * files, `Patient/Plan/<Folder>/…` for a plan's. Every component is sanitized; `subPath` keeps
 * its own folder structure (e.g. a series folder) below the category folder.
 */
export function treePath(
  patientFolder: string, planFolder: string | undefined, category: string, fileName: string, opts?: SanitizeOptions,
): string | undefined {
  const p = placementOf(category);
  if (!p) return undefined;
  const parts = [patientFolder];
  if (!p.patientLevel && planFolder) parts.push(planFolder);
  parts.push(...p.folder.split("/"));
  for (const c of fileName.split(/[\\/]/).filter((c) => c && c !== "." && c !== "..")) parts.push(sanitizeName(c, { maxBytes: 128, ...opts }));
  return posix.join(...parts);
}
