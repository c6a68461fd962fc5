import type { DataSet } from "../dicom/dataset.ts";
import type { DicomFile } from "../dicom/reader.ts";
import { objectKind, type RtObjectKind } from "../dicom/rt.ts";
import { SOP_CLASS_NAMES } from "../dicom/uids.ts";

export { objectKind, type RtObjectKind };

/**
 * The few fields of one DICOM object that the reference tree needs: identity, and the references
 * it makes. Small on purpose, so that a tree over thousands of files holds no data sets.
 */
export interface RtObjectSummary {
  kind: RtObjectKind;
  path?: string;
  sopClassUid?: string;
  sopInstanceUid?: string;
  modality?: string;
  patientId?: string;
  patientName?: string;
  studyUid?: string;
  seriesUid?: string;
  frameOfReferenceUid?: string;
  /** The transfer syntax the object is stored in (from its meta header, or detected). */
  transferSyntaxUid?: string;
  /** RTPLAN: RT Plan Label; RTSTRUCT: Structure Set Label; RTIMAGE: RT Image Label. */
  label?: string;
  /** RTPLAN: RT Plan Name. */
  name?: string;
  /** RTPLAN, RTSTRUCT, RTDOSE: Approval Status. */
  approval?: string;
  /** RTPLAN: treatment machine names, in order of first appearance. */
  machines?: string[];
  /** RTPLAN: number of beams (BeamSequence or IonBeamSequence items). */
  beams?: number;
  /** RTPLAN: Referenced Structure Set Sequence. */
  structureSetUids?: string[];
  /** RTSTRUCT: referenced image series with the instances listed for each. */
  referencedSeries?: { seriesUid: string; instanceUids: string[] }[];
  /** RTSTRUCT: contour image instances not listed under a series (resolved to series when found). */
  contourInstanceUids?: string[];
  /** RTSTRUCT and registrations: frames of reference referenced. */
  referencedFrameUids?: string[];
  /** Registrations: series referenced (directly, or through referenced image instances). */
  referencedSeriesUids?: string[];
  referencedInstanceUids?: string[];
  /** RTDOSE, treatment records, RTIMAGE: Referenced RT Plan Sequence. */
  referencedPlanUids?: string[];
  /** RTDOSE: Dose Summation Type (PLAN, BEAM, FRACTION, …). */
  summation?: string;
  /** RTDOSE, RTIMAGE: referenced beam numbers. */
  beamNumbers?: number[];
  /** Treatment records: treatment date and fraction number. */
  date?: string;
  fraction?: number;
  /** RTPLAN: Plan Intent (CURATIVE, PALLIATIVE, VERIFICATION, MACHINE_QA, …). */
  planIntent?: string;
  /** RTPLAN: true when it has beams and every one is a setup beam (Treatment Delivery Type SETUP). */
  setupOnly?: boolean;
  /**
   * The latest date the object carries (ISO): Instance Creation, Study, Series, Content, RT Plan,
   * Structure Set or Treatment Date. What `list-patients --from folder --since` compares.
   */
  latestDate?: string;
}

/** Top-level dates an object may carry, compared for {@linkcode RtObjectSummary.latestDate}. */
const DATE_TAGS = [0x00080012, 0x00080020, 0x00080021, 0x00080023, 0x300a0006, 0x30060008, 0x30080250];

// Tags used below, by keyword for the reader.
const T = {
  SOPClassUID: 0x00080016,
  SOPInstanceUID: 0x00080018,
  Modality: 0x00080060,
  PatientName: 0x00100010,
  PatientID: 0x00100020,
  StudyInstanceUID: 0x0020000d,
  SeriesInstanceUID: 0x0020000e,
  FrameOfReferenceUID: 0x00200052,
  ReferencedSOPInstanceUID: 0x00081155,
  ReferencedSeriesSequence: 0x00081115,
  ReferencedImageSequence: 0x00081140,
  StudiesContainingOtherReferencedInstancesSequence: 0x00081200,
  RTPlanLabel: 0x300a0002,
  RTPlanName: 0x300a0003,
  PlanIntent: 0x300a000a,
  TreatmentDeliveryType: 0x300a00ce,
  ApprovalStatus: 0x300e0002,
  BeamSequence: 0x300a00b0,
  IonBeamSequence: 0x300a03a2,
  TreatmentMachineName: 0x300a00b2,
  TreatmentMachineSequence: 0x300a0206,
  ReferencedStructureSetSequence: 0x300c0060,
  StructureSetLabel: 0x30060002,
  ReferencedFrameOfReferenceSequence: 0x30060010,
  RTReferencedStudySequence: 0x30060012,
  RTReferencedSeriesSequence: 0x30060014,
  ContourImageSequence: 0x30060016,
  ROIContourSequence: 0x30060039,
  ContourSequence: 0x30060040,
  ReferencedRTPlanSequence: 0x300c0002,
  ReferencedFractionGroupSequence: 0x300c0020,
  ReferencedBeamSequence: 0x300c0004,
  ReferencedBeamNumber: 0x300c0006,
  DoseSummationType: 0x3004000a,
  TreatmentDate: 0x30080250,
  CurrentFractionNumber: 0x30080022,
  TreatmentSessionBeamSequence: 0x30080020,
  TreatmentSessionIonBeamSequence: 0x30080021,
  RTImageLabel: 0x30020002,
  RegistrationSequence: 0x00700308,
  DeformableRegistrationSequence: 0x00640002,
  SourceFrameOfReferenceUID: 0x00640003,
} as const;

function add(list: string[], v: string | undefined): void {
  if (v !== undefined && v !== "" && !list.includes(v)) list.push(v);
}

function refUids(ds: DataSet, seqTag: number): string[] {
  const out: string[] = [];
  for (const item of ds.items(seqTag)) add(out, item.string(T.ReferencedSOPInstanceUID));
  return out;
}

/**
 * Private elements known to hold a plan's treatment machine name when the plan has no beams
 * (skeleton plans, as CyberKnife-like systems export them): creator, group, and the element's
 * offset in the creator's block. The rtexport test clinic (lib/fixtures) writes its skeleton
 * plans' machine under "RTEXPORT TEST 1.0" (3253,xx10); add a vendor's element here once its
 * conformance statement or a real export names it.
 */
export const PRIVATE_MACHINE_NAME_ELEMENTS: readonly { creator: string; group: number; offset: number }[] = [
  { creator: "RTEXPORT TEST 1.0", group: 0x3253, offset: 0x10 },
];

/** Machine names found in the private elements listed above, resolving each creator's block. */
function privateMachineNames(ds: DataSet): string[] {
  const out: string[] = [];
  for (const { creator, group, offset } of PRIVATE_MACHINE_NAME_ELEMENTS) {
    for (let block = 0x10; block <= 0xff; block++) {
      const creatorEl = ds.elements.get(((group << 16) | block) >>> 0);
      if (!creatorEl) continue;
      if (textOf(ds, creatorEl.tag) !== creator) continue;
      const v = textOf(ds, ((group << 16) | (block << 8) | offset) >>> 0);
      if (v) out.push(v);
    }
  }
  return out;
}

/** An element's value as text, also when its VR is UN (private elements of implicit VR files). */
function textOf(ds: DataSet, tag: number): string | undefined {
  const el = ds.elements.get(tag);
  if (!el?.value) return undefined;
  if (el.vr === "UN" || el.vr === "OB") {
    let text = "";
    for (const b of el.value) text += String.fromCharCode(b);
    return text.replace(/[\0 ]+$/, "").replace(/^ +/, "") || undefined;
  }
  return ds.string(tag);
}

/**
 * Extracts from a parsed file what the reference tree needs (a header-only read is enough): kind,
 * UIDs, references, plan label, approval and machines.
 *
 * Treatment machines of a plan come from BeamSequence and IonBeamSequence (Treatment Machine Name
 * per beam), and from TreatmentMachineSequence (brachytherapy). A skeleton plan without beams
 * (CyberKnife-like exports) may still carry a Treatment Machine Name at the top level of the plan,
 * which is taken too.
 *
 * @example
 * ```ts
 * const summary = summarizeObject(readDicomFile("RP1.dcm"));
 * console.log(summary.kind, summary.label, summary.machines);
 * ```
 */
export function summarizeObject(file: DicomFile, path: string | undefined = file.path): RtObjectSummary {
  const ds = file.dataset;
  const sopClassUid = ds.string(T.SOPClassUID) ?? file.meta.string(0x00020002);
  const modality = ds.string(T.Modality);
  const kind = objectKind(sopClassUid, modality);
  const s: RtObjectSummary = {
    kind,
    path,
    sopClassUid,
    sopInstanceUid: ds.string(T.SOPInstanceUID) ?? file.meta.string(0x00020003),
    modality,
    patientId: ds.string(T.PatientID),
    studyUid: ds.string(T.StudyInstanceUID),
    seriesUid: ds.string(T.SeriesInstanceUID),
    frameOfReferenceUid: ds.string(T.FrameOfReferenceUID),
    transferSyntaxUid: file.transferSyntaxUid,
  };
  if (kind !== "image") s.patientName = ds.string(T.PatientName);
  for (const tag of DATE_TAGS) {
    const d = isoDate(ds.string(tag));
    if (d && /^\d{4}-\d{2}-\d{2}$/.test(d) && (s.latestDate === undefined || d > s.latestDate)) s.latestDate = d;
  }
  switch (kind) {
    case "plan": {
      s.label = ds.string(T.RTPlanLabel);
      s.name = ds.string(T.RTPlanName);
      s.approval = ds.string(T.ApprovalStatus);
      s.planIntent = ds.string(T.PlanIntent);
      const machines: string[] = [];
      let beams = 0, setupBeams = 0;
      for (const seq of [T.BeamSequence, T.IonBeamSequence]) {
        for (const beam of ds.items(seq)) {
          beams++;
          if (beam.string(T.TreatmentDeliveryType) === "SETUP") setupBeams++;
          add(machines, beam.string(T.TreatmentMachineName));
        }
      }
      if (beams > 0 && setupBeams === beams) s.setupOnly = true;
      for (const m of ds.items(T.TreatmentMachineSequence)) add(machines, m.string(T.TreatmentMachineName));
      add(machines, ds.string(T.TreatmentMachineName));
      if (machines.length === 0) for (const m of privateMachineNames(ds)) add(machines, m);
      s.machines = machines;
      s.beams = beams;
      s.structureSetUids = refUids(ds, T.ReferencedStructureSetSequence);
      break;
    }
    case "structureSet": {
      s.label = ds.string(T.StructureSetLabel);
      s.approval = ds.string(T.ApprovalStatus);
      const series = new Map<string, string[]>();
      const frames: string[] = [];
      for (const fr of ds.items(T.ReferencedFrameOfReferenceSequence)) {
        add(frames, fr.string(T.FrameOfReferenceUID));
        for (const st of fr.items(T.RTReferencedStudySequence)) {
          for (const se of st.items(T.RTReferencedSeriesSequence)) {
            const uid = se.string(T.SeriesInstanceUID);
            if (!uid) continue;
            const list = series.get(uid) ?? [];
            series.set(uid, list);
            for (const img of se.items(T.ContourImageSequence)) add(list, img.string(T.ReferencedSOPInstanceUID));
          }
        }
      }
      s.referencedFrameUids = frames;
      s.referencedSeries = [...series].map(([seriesUid, instanceUids]) => ({ seriesUid, instanceUids }));
      if (series.size === 0) {
        // Older exports list contour images only per contour.
        const inst = new Set<string>();
        for (const roi of ds.items(T.ROIContourSequence)) {
          for (const c of roi.items(T.ContourSequence)) {
            for (const img of c.items(T.ContourImageSequence)) {
              const u = img.string(T.ReferencedSOPInstanceUID);
              if (u) inst.add(u);
            }
          }
        }
        if (inst.size) s.contourInstanceUids = [...inst];
      }
      break;
    }
    case "dose": {
      s.summation = ds.string(T.DoseSummationType);
      s.approval = ds.string(T.ApprovalStatus);
      s.referencedPlanUids = refUids(ds, T.ReferencedRTPlanSequence);
      const beams: number[] = [];
      for (const p of ds.items(T.ReferencedRTPlanSequence)) {
        for (const fg of p.items(T.ReferencedFractionGroupSequence)) {
          for (const b of fg.items(T.ReferencedBeamSequence)) {
            const n = b.number(T.ReferencedBeamNumber);
            if (n !== undefined && !beams.includes(n)) beams.push(n);
          }
        }
      }
      if (beams.length) s.beamNumbers = beams;
      break;
    }
    case "record": {
      s.referencedPlanUids = refUids(ds, T.ReferencedRTPlanSequence);
      s.date = isoDate(ds.string(T.TreatmentDate));
      // Current Fraction Number sits in each session beam (RT Beams Session Record module).
      s.fraction = ds.number(T.CurrentFractionNumber) ??
        ds.items(T.TreatmentSessionBeamSequence).map((b) => b.number(T.CurrentFractionNumber)).find((n) => n !== undefined) ??
        ds.items(T.TreatmentSessionIonBeamSequence).map((b) => b.number(T.CurrentFractionNumber)).find((n) => n !== undefined);
      const machines: string[] = [];
      for (const m of ds.items(T.TreatmentMachineSequence)) add(machines, m.string(T.TreatmentMachineName));
      if (machines.length) s.machines = machines;
      break;
    }
    case "rtImage": {
      s.label = ds.string(T.RTImageLabel);
      s.referencedPlanUids = refUids(ds, T.ReferencedRTPlanSequence);
      const n = ds.number(T.ReferencedBeamNumber);
      if (n !== undefined) s.beamNumbers = [n];
      break;
    }
    case "registration": {
      const frames: string[] = [];
      const series: string[] = [];
      const instances: string[] = [];
      add(frames, s.frameOfReferenceUid);
      for (const r of ds.items(T.RegistrationSequence)) {
        add(frames, r.string(T.FrameOfReferenceUID));
        for (const img of r.items(T.ReferencedImageSequence)) add(instances, img.string(T.ReferencedSOPInstanceUID));
      }
      for (const r of ds.items(T.DeformableRegistrationSequence)) {
        add(frames, r.string(T.SourceFrameOfReferenceUID));
        for (const img of r.items(T.ReferencedImageSequence)) add(instances, img.string(T.ReferencedSOPInstanceUID));
      }
      for (const se of ds.items(T.ReferencedSeriesSequence)) add(series, se.string(T.SeriesInstanceUID));
      for (const st of ds.items(T.StudiesContainingOtherReferencedInstancesSequence)) {
        for (const se of st.items(T.ReferencedSeriesSequence)) add(series, se.string(T.SeriesInstanceUID));
      }
      s.referencedFrameUids = frames;
      s.referencedSeriesUids = series;
      if (instances.length) s.referencedInstanceUids = instances;
      break;
    }
  }
  for (const k of Object.keys(s) as (keyof RtObjectSummary)[]) if (s[k] === undefined) delete s[k];
  return s;
}

/** A readable name for an object's SOP class ("RT Beams Treatment Record Storage" → "RT Beams Treatment Record"). */
export function sopClassLabel(uid: string | undefined): string | undefined {
  const name = uid ? SOP_CLASS_NAMES.get(uid) : undefined;
  return name?.replace(/ (Image )?Storage$/, (m) => m.startsWith(" Image") ? " Image" : "");
}

/** DA `20240102` → ISO `2024-01-02` (other forms are kept as they are). */
function isoDate(da: string | undefined): string | undefined {
  const m = da ? /^(\d{4})(\d{2})(\d{2})$/.exec(da) : null;
  return m ? `${m[1]}-${m[2]}-${m[3]}` : da;
}
