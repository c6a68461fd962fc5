/**
 * The patient mapping CSV: `old id,new id[,new name]` per line. Read with `--map`, written with
 * `--write-map` (only when asked: it links pseudonyms to real identities, so it is PHI).
 */
import { readTextFile } from "../fs/text.ts";
import type { PatientIdentity } from "./anonymize.ts";
import { writeFileAtomic } from "./files.ts";
import { splitCsvLine } from "./profile.ts";

/** A patient map CSV could not be read; the message names the file and line. */
export class PatientMapError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PatientMapError";
  }
}


function csvField(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Parses a patient map. A first line starting with `old` or `patientid` (any case) is a header. */
export function parsePatientMap(text: string, name = "map"): Map<string, PatientIdentity> {
  const map = new Map<string, PatientIdentity>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    if (raw.trim() === "" || raw.trim().startsWith("#")) continue;
    const f = splitCsvLine(raw);
    if (i === 0 && /^(old|patientid|patient_id|original)/i.test(f[0])) continue;
    if (f.length < 2 || f.length > 3 || f[0] === "" || f[1] === "") {
      throw new PatientMapError(`Cannot read patient map "${name}": line ${i + 1}: expected "old id,new id[,new name]"`);
    }
    if (f[1].length > 64) throw new PatientMapError(`Cannot read patient map "${name}": line ${i + 1}: the new id is longer than 64 characters`);
    if (map.has(f[0])) throw new PatientMapError(`Cannot read patient map "${name}": line ${i + 1}: the old id appears twice`);
    map.set(f[0], f[2] ? { id: f[1], name: f[2] } : { id: f[1] });
  }
  return map;
}

/** Reads a patient map file. */
export function readPatientMap(path: string): Map<string, PatientIdentity> {
  let text: string;
  try {
    text = readTextFile(path);
  } catch (e) {
    throw new PatientMapError(`Cannot read patient map "${path}": ${(e as { code?: string }).code ?? (e as Error).message}`);
  }
  return parsePatientMap(text, path);
}

/** Writes the mapping used (old id, new id, new name), sorted by old id, atomically. */
export function writePatientMap(path: string, patients: ReadonlyMap<string, PatientIdentity>): void {
  const rows = [...patients].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const text = ["old_id,new_id,new_name", ...rows.map(([old, p]) => [old, p.id, p.name ?? p.id].map(csvField).join(","))].join("\n") + "\n";
  writeFileAtomic(path, new TextEncoder().encode(text));
}
