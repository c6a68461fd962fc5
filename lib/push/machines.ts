/**
 * Treatment machine names in plans and treatment records: renamed (`OLD` → `NEW`) or filled in
 * where empty, for the machine IDs a target knows (seed 003: the machine must exist in ARIA with
 * the exact ID). Used by push (`--map-machine`) and check (`--fix machines`).
 */
import { type DataSet, textElement } from "../dicom/dataset.ts";
import { PLAN_SOP_CLASSES, RECORD_SOP_CLASSES } from "../dicom/rt.ts";

const TREATMENT_MACHINE_NAME = 0x300a00b2;
const BEAM_SEQUENCE = 0x300a00b0;
const ION_BEAM_SEQUENCE = 0x300a03a2;
const TREATMENT_MACHINE_SEQUENCE = 0x300a0206;
const MANUFACTURER_MODEL_NAME = 0x00081090;
const MODALITY = 0x00080060;

function setString(ds: DataSet, tag: number, vr: string, text: string): void {
  ds.set(textElement(tag, vr, text));
}

/**
 * Rewrites TreatmentMachineName (300A,00B2) wherever it occurs in an RTPLAN / RT Ion Plan /
 * treatment record (beam sequences, treatment machine sequence). Returns the changes as
 * `OLD=NEW` (empty when nothing changed).
 */
export function rewriteMachines(ds: DataSet, sopClassUid: string, map: Record<string, string>, defaults: Record<string, string>): string[] {
  if (!PLAN_SOP_CLASSES.has(sopClassUid) && !RECORD_SOP_CLASSES.has(sopClassUid)) return [];
  const changes: string[] = [];
  const topModel = ds.string(MANUFACTURER_MODEL_NAME);
  const modality = ds.string(MODALITY);
  const defaultFor = (model: string | undefined): string | undefined => {
    for (const [k, v] of Object.entries(defaults)) {
      if (k === "*" || (model !== undefined && k === model) || (modality !== undefined && k === modality)) return v;
    }
    return undefined;
  };
  const visit = (item: DataSet, inMachineContainer: boolean): void => {
    const el = item.get(TREATMENT_MACHINE_NAME);
    const current = el ? item.string(TREATMENT_MACHINE_NAME) : undefined;
    if (current !== undefined && Object.hasOwn(map, current)) {
      setString(item, TREATMENT_MACHINE_NAME, "SH", map[current]);
      changes.push(`${current}=${map[current]}`);
    } else if (current === undefined && (el || inMachineContainer)) {
      const name = defaultFor(item.string(MANUFACTURER_MODEL_NAME) ?? topModel);
      if (name !== undefined) {
        setString(item, TREATMENT_MACHINE_NAME, "SH", name);
        changes.push(`=${name}`);
      }
    }
    for (const e of item.elements.values()) {
      if (!e.items) continue;
      const container = e.tag === BEAM_SEQUENCE || e.tag === ION_BEAM_SEQUENCE || e.tag === TREATMENT_MACHINE_SEQUENCE;
      for (const sub of e.items) visit(sub, container);
    }
  };
  visit(ds, false);
  return changes;
}
