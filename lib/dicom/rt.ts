/**
 * The one RT vocabulary: which SOP classes and modalities are plans, structure sets, doses,
 * treatment records, RT images and registrations, and what an object is. Every room that asks
 * "is this a plan?" or "does this belong to a plan?" asks here, so the answers cannot drift.
 */
import { RT_SOP_CLASSES } from "./uids.ts";

/** What an object is in the RT reference tree. */
export type RtObjectKind = "plan" | "structureSet" | "dose" | "record" | "rtImage" | "registration" | "image";

/** RT Plan and RT Ion Plan. */
export const PLAN_SOP_CLASSES: ReadonlySet<string> = new Set([RT_SOP_CLASSES.RTPlan, RT_SOP_CLASSES.RTIonPlan]);

/** Treatment records: beams, brachy, summary, ion beams. */
export const RECORD_SOP_CLASSES: ReadonlySet<string> = new Set([
  RT_SOP_CLASSES.RTBeamsTreatmentRecord,
  RT_SOP_CLASSES.RTBrachyTreatmentRecord,
  RT_SOP_CLASSES.RTTreatmentSummaryRecord,
  RT_SOP_CLASSES.RTIonBeamsTreatmentRecord,
]);

/** Spatial and deformable spatial registrations. */
export const REGISTRATION_SOP_CLASSES: ReadonlySet<string> = new Set([
  RT_SOP_CLASSES.SpatialRegistration,
  RT_SOP_CLASSES.DeformableSpatialRegistration,
]);

/** The modality of each kind of RT object (images have their own: CT, MR, PT, …). */
export const KIND_MODALITY: Readonly<Record<Exclude<RtObjectKind, "image">, string>> = {
  plan: "RTPLAN",
  structureSet: "RTSTRUCT",
  dose: "RTDOSE",
  record: "RTRECORD",
  rtImage: "RTIMAGE",
  registration: "REG",
};

const MODALITY_KIND: ReadonlyMap<string, RtObjectKind> = new Map(
  Object.entries(KIND_MODALITY).map(([kind, modality]) => [modality, kind as RtObjectKind]),
);

/** Every RT object modality: RTPLAN, RTSTRUCT, RTDOSE, RTRECORD, RTIMAGE and REG. */
export const RT_MODALITIES: ReadonlySet<string> = new Set(MODALITY_KIND.keys());

/**
 * Modalities of a plan's own objects, fetched and filed with the plan: the plan, its structure
 * set, and the doses, records and RT images that reference it. Registrations relate image series
 * and are found through the images (see the retrieval planner), not through the plan.
 */
export const PLAN_OBJECT_MODALITIES: ReadonlySet<string> = new Set(["RTPLAN", "RTSTRUCT", "RTDOSE", "RTRECORD", "RTIMAGE"]);

/** Modalities of objects that reference a plan (found by the plan's UID): doses, records, RT images. */
export const PLAN_DEPENDENT_MODALITIES: ReadonlySet<string> = new Set(["RTDOSE", "RTRECORD", "RTIMAGE"]);

/**
 * What an object is: decided by its SOP class, the modality only when the SOP class is absent
 * (a structure set whose Modality says RTDOSE, a real TPS bug, is still a structure set).
 */
export function objectKind(sopClassUid: string | undefined, modality: string | undefined): RtObjectKind {
  switch (sopClassUid) {
    case RT_SOP_CLASSES.RTPlan: case RT_SOP_CLASSES.RTIonPlan: return "plan";
    case RT_SOP_CLASSES.RTStructureSet: return "structureSet";
    case RT_SOP_CLASSES.RTDose: return "dose";
    case RT_SOP_CLASSES.RTImage: return "rtImage";
  }
  if (sopClassUid && RECORD_SOP_CLASSES.has(sopClassUid)) return "record";
  if (sopClassUid && REGISTRATION_SOP_CLASSES.has(sopClassUid)) return "registration";
  if (sopClassUid === undefined && modality !== undefined) return MODALITY_KIND.get(modality) ?? "image";
  return "image";
}

/** The modality an object should carry for its kind (its own Modality for images). */
export function kindModality(kind: RtObjectKind, modality: string | undefined): string | undefined {
  return kind === "image" ? modality : KIND_MODALITY[kind];
}

/** True for RT objects (plans, structure sets, doses, records, RT images, registrations). */
export function isRtObject(sopClassUid: string | undefined, modality: string | undefined): boolean {
  return objectKind(sopClassUid, modality) !== "image";
}
