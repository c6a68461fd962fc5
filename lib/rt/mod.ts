/**
 * The RT reference tree, as DicomTools' `show` draws it: RTPLAN → RTSTRUCT → image series, with
 * each plan's RTDOSEs, treatment records, RT images and registrations, and what no plan references.
 *
 * @example
 * ```ts
 * import { scanDicom } from "./lib/fs/mod.ts";
 * import { buildReferenceTree, renderTree, summarizeObject } from "./lib/rt/mod.ts";
 * const summaries = [];
 * for await (const r of scanDicom(["export/"])) if (r.file) summaries.push(summarizeObject(r.file, r.path));
 * const tree = buildReferenceTree(summaries);
 * console.log(renderTree(tree).join("\n"));
 * ```
 * @module
 */
export { objectKind, type RtObjectKind, type RtObjectSummary, sopClassLabel, summarizeObject } from "./summary.ts";
export {
  buildReferenceTree, ReferenceTreeBuilder, type DoseNode, type ImageSeriesNode, type MissingReference, type PatientTree, type ReferenceTree,
  type RegistrationNode, type RtImageNode, type ShowPlanRecord, type TreatmentRecordNode, treeRecords,
  type UnconnectedRecord,
} from "./tree.ts";
export { renderTree } from "./render.ts";
export { type ShowOptions, showRecords } from "./show.ts";
