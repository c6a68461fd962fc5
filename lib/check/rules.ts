/**
 * The import rules of a target profile, applied to one object's header: each broken rule is a
 * {@link Violation} saying what the target refuses, in words, and whether a lossless fix exists.
 * Rules about other objects (a structure set's images, a plan's structure set) are
 * {@link Reference}s the caller resolves against what it sends and what the target has.
 */
import type { DataSet } from "../dicom/dataset.ts";
import { lookupKeyword } from "../dicom/dictionary.ts";
import { PLAN_SOP_CLASSES, RECORD_SOP_CLASSES } from "../dicom/rt.ts";
import { RT_SOP_CLASSES, SOP_CLASS_NAMES } from "../dicom/uids.ts";
import type { Profile, RuleId } from "./profile.ts";

/** A fix the user may choose: re-encode text in ISO_IR 100, or map machine names. */
export type FixKind = "charset" | "machines";
export const FIX_KINDS: readonly FixKind[] = ["charset", "machines"];

/** One broken rule. */
export interface Violation {
  rule: RuleId;
  message: string;
  /** The attribute, `(gggg,eeee)`. */
  tag?: string;
  /** The fix that can mend it, when one can. */
  fix?: FixKind;
}

/** Objects an object needs at the target (its images, its structure set). */
export interface Reference {
  rule: "structure-set-images" | "plan-structure-set";
  /** SOP Instance UIDs needed. */
  uids: string[];
  /** Series they are in (study when known), to ask the target for. */
  series: { studyUid?: string; seriesUid: string }[];
}

const T = {
  SpecificCharacterSet: 0x00080005,
  Modality: 0x00080060,
  PatientID: 0x00100020,
  GantryDetectorTilt: 0x00181120,
  SamplesPerPixel: 0x00280002,
  PhotometricInterpretation: 0x00280004,
  Rows: 0x00280010,
  Columns: 0x00280011,
  BeamSequence: 0x300a00b0,
  IonBeamSequence: 0x300a03a2,
  TreatmentMachineName: 0x300a00b2,
  TreatmentMachineSequence: 0x300a0206,
  BrachyTreatmentType: 0x300a0202,
  ApplicationSetupSequence: 0x300a0230,
  ReferencedStructureSetSequence: 0x300c0060,
  ReferencedSOPInstanceUID: 0x00081155,
  ReferencedFrameOfReferenceSequence: 0x30060010,
  RTReferencedStudySequence: 0x30060012,
  RTReferencedSeriesSequence: 0x30060014,
  ContourImageSequence: 0x30060016,
  ROIContourSequence: 0x30060039,
  ContourSequence: 0x30060040,
  SeriesInstanceUID: 0x0020000e,
} as const;

function tagText(tag: number): string {
  return `(${(tag >>> 16).toString(16).toUpperCase().padStart(4, "0")},${(tag & 0xffff).toString(16).toUpperCase().padStart(4, "0")})`;
}

function className(uid: string): string {
  const name = SOP_CLASS_NAMES.get(uid);
  return name ? `${name} (${uid})` : uid;
}

const quote = (s: string) => JSON.stringify(s);

/** Treatment machine names an RT plan or treatment record names (beams, ion beams, the record's machine sequence). */
export function machineNames(ds: DataSet): string[] {
  const names = new Set<string>();
  const visit = (item: DataSet) => {
    const n = item.string(T.TreatmentMachineName);
    if (n !== undefined) names.add(n);
    for (const e of item.elements.values()) for (const sub of e.items ?? []) visit(sub);
  };
  visit(ds);
  return [...names];
}

/** True for objects that carry treatment machine names (plans and treatment records). */
export function namesMachines(sopClassUid: string): boolean {
  return PLAN_SOP_CLASSES.has(sopClassUid) || RECORD_SOP_CLASSES.has(sopClassUid);
}

/**
 * Applies a profile to object headers.
 *
 * @example
 * ```ts
 * const checker = new Checker(loadProfile("idms"));
 * const file = readDicomFile("CT.1.dcm");
 * for (const v of checker.check(file.dataset, file.meta.string(0x00020002)!)) console.log(v.rule, v.message);
 * ```
 */
export class Checker {
  readonly profile: Profile;
  /** Machines the target knows (upper case for comparison, as ARIA compares IDs). */
  #machines: Map<string, string> | undefined;
  readonly #patientId: RegExp | undefined;

  constructor(profile: Profile, opts: { machines?: Iterable<string> } = {}) {
    this.profile = profile;
    const names = [...(profile.rules["machine-name"]?.names ?? []), ...(opts.machines ?? [])];
    if (names.length) this.#machines = new Map(names.map((n) => [n, n]));
    const p = profile.rules["patient-id"];
    if (p) this.#patientId = new RegExp(p.pattern, "u");
  }

  /** True when the profile checks machine names but knows none yet (give `--machines`, or ask the target). */
  get needsMachines(): boolean {
    return this.profile.rules["machine-name"] !== undefined && this.#machines === undefined;
  }

  /** Adds machines the target knows (from a C-FIND). */
  addMachines(names: Iterable<string>): void {
    this.#machines ??= new Map();
    for (const n of names) this.#machines.set(n, n);
  }

  /** The machines known, for messages. */
  get machines(): string[] {
    return [...(this.#machines?.keys() ?? [])];
  }

  /** The rules this object breaks (those about other objects are {@link Checker.references}). */
  check(ds: DataSet, sopClassUid: string): Violation[] {
    const r = this.profile.rules;
    const target = this.profile.name;
    const out: Violation[] = [];
    const modality = ds.string(T.Modality) ?? "";
    if (r["sop-class"] && !r["sop-class"].accepted.includes(sopClassUid)) {
      out.push({ rule: "sop-class", tag: "(0008,0016)", message: `${target} does not accept ${className(sopClassUid)}` });
    }
    if (r.required) {
      for (const kw of r.required.attributes) {
        const e = lookupKeyword(kw);
        if (e && ds.string(e.tag) === undefined) out.push({ rule: "required", tag: tagText(e.tag), message: `${kw} ${tagText(e.tag)} is missing or empty` });
      }
    }
    if (this.#patientId && r["patient-id"]) {
      const id = ds.string(T.PatientID) ?? "";
      if (!this.#patientId.test(id)) {
        // The characters themselves, not the ID: the ID is the patient's, the characters are the problem.
        const bad = [...new Set([...id].filter((c) => !this.#patientId!.test(c)))];
        const what = bad.length ? `characters ${target} does not allow: ${bad.map((c) => quote(c)).join(", ")}` : `a form ${target} does not allow`;
        out.push({ rule: "patient-id", tag: "(0010,0020)", message: `Patient ID has ${what}${r["patient-id"].allowed ? ` (allowed: ${r["patient-id"].allowed})` : ""}` });
      }
    }
    if (r.matrix && r.matrix.modalities.includes(modality)) {
      const rows = ds.number(T.Rows), cols = ds.number(T.Columns);
      if (rows !== undefined && cols !== undefined) {
        const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
        if (r.matrix.square && rows !== cols) out.push({ rule: "matrix", tag: "(0028,0010)", message: `${modality} matrix ${rows}×${cols} is not square (${target} needs Rows = Columns)` });
        else if (r.matrix.powerOfTwo && (!pow2(rows) || !pow2(cols))) {
          out.push({ rule: "matrix", tag: "(0028,0010)", message: `${modality} matrix ${rows}×${cols} is not a power of two (${target} needs 256, 512, 1024…)` });
        }
      }
    }
    if (r["gantry-tilt"] && r["gantry-tilt"].modalities.includes(modality)) {
      const tilt = ds.number(T.GantryDetectorTilt);
      if (tilt !== undefined && tilt !== r["gantry-tilt"].value) {
        out.push({ rule: "gantry-tilt", tag: "(0018,1120)", message: `Gantry/Detector Tilt is ${tilt} (${target} takes only ${r["gantry-tilt"].value})` });
      }
    }
    const spp = r["samples-per-pixel"];
    if (spp && (!spp.modalities || spp.modalities.includes(modality))) {
      const n = ds.number(T.SamplesPerPixel);
      if (n !== undefined && n !== spp.value) out.push({ rule: "samples-per-pixel", tag: "(0028,0002)", message: `Samples per Pixel is ${n} (${target} takes only ${spp.value})` });
    }
    if (r.photometric) {
      const allowed = r.photometric.allowed[modality] ?? r.photometric.allowed["*"];
      const pi = ds.string(T.PhotometricInterpretation);
      if (allowed && pi !== undefined && !allowed.includes(pi)) {
        out.push({ rule: "photometric", tag: "(0028,0004)", message: `Photometric Interpretation ${pi} is not one ${target} takes for ${modality} (${allowed.join(", ")})` });
      }
    }
    if (r["character-set"]) {
      const terms = ds.strings(T.SpecificCharacterSet);
      const value = terms.join("\\");
      if (terms.some((t) => t !== "") && !r["character-set"].allowed.includes(value)) {
        out.push({
          rule: "character-set", tag: "(0008,0005)", fix: "charset",
          message: `Specific Character Set ${value} is not one ${target} reads (${r["character-set"].allowed.join(", ")})`,
        });
      }
    }
    if (r["machine-name"] && this.#machines && namesMachines(sopClassUid)) {
      for (const name of machineNames(ds)) {
        if (!this.#machines.has(name)) {
          out.push({
            rule: "machine-name", tag: "(300A,00B2)", fix: "machines",
            message: `treatment machine ${quote(name)} is not known to ${target} (known: ${this.machines.join(", ")})`,
          });
        }
      }
    }
    if (r["empty-beams"] && PLAN_SOP_CLASSES.has(sopClassUid)) {
      const brachy = ds.has(T.BrachyTreatmentType) || ds.has(T.ApplicationSetupSequence);
      const seq = sopClassUid === RT_SOP_CLASSES.RTIonPlan ? T.IonBeamSequence : T.BeamSequence;
      if (!brachy && ds.items(seq).length === 0) {
        out.push({ rule: "empty-beams", tag: tagText(seq), message: `the plan has no beams (${sopClassUid === RT_SOP_CLASSES.RTIonPlan ? "Ion " : ""}Beam Sequence ${ds.has(seq) ? "is empty" : "is missing"}); ${target} cannot import it` });
      }
    }
    return out;
  }

  /** Objects this one needs at the target, for the rules the profile has on. */
  references(ds: DataSet, sopClassUid: string): Reference[] {
    const r = this.profile.rules;
    const out: Reference[] = [];
    if (r["structure-set-images"] && sopClassUid === RT_SOP_CLASSES.RTStructureSet) {
      const uids = new Set<string>();
      const series = new Map<string, string | undefined>();
      for (const f of ds.items(T.ReferencedFrameOfReferenceSequence)) {
        for (const st of f.items(T.RTReferencedStudySequence)) {
          const studyUid = st.string(T.ReferencedSOPInstanceUID);
          for (const se of st.items(T.RTReferencedSeriesSequence)) {
            const seriesUid = se.string(T.SeriesInstanceUID);
            if (seriesUid) series.set(seriesUid, studyUid);
            for (const img of se.items(T.ContourImageSequence)) {
              const u = img.string(T.ReferencedSOPInstanceUID);
              if (u) uids.add(u);
            }
          }
        }
      }
      for (const roi of ds.items(T.ROIContourSequence)) {
        for (const c of roi.items(T.ContourSequence)) {
          for (const img of c.items(T.ContourImageSequence)) {
            const u = img.string(T.ReferencedSOPInstanceUID);
            if (u) uids.add(u);
          }
        }
      }
      if (uids.size || series.size) {
        out.push({ rule: "structure-set-images", uids: [...uids], series: [...series].map(([seriesUid, studyUid]) => (studyUid ? { studyUid, seriesUid } : { seriesUid })) });
      }
    }
    if (r["plan-structure-set"] && PLAN_SOP_CLASSES.has(sopClassUid)) {
      const uids = ds.items(T.ReferencedStructureSetSequence).map((i) => i.string(T.ReferencedSOPInstanceUID)).filter((u): u is string => !!u);
      if (uids.length) out.push({ rule: "plan-structure-set", uids, series: [] });
    }
    return out;
  }
}

/** The violation for references the target will not have. */
export function missingReference(ref: Reference, missing: string[], target: string): Violation {
  const some = missing.slice(0, 3).join(", ") + (missing.length > 3 ? `, … (${missing.length} in all)` : "");
  return ref.rule === "structure-set-images"
    ? { rule: ref.rule, tag: "(3006,0016)", message: `${missing.length} of the structure set's ${ref.uids.length || ref.series.length} referenced images are neither sent nor at ${target} (${some}); ${target} imports a structure set only onto its images` }
    : { rule: ref.rule, tag: "(300C,0060)", message: `the plan's structure set is neither sent nor at ${target} (${some}); ${target} imports a plan only with its structure set` };
}
