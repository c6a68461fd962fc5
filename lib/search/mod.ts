/**
 * Tag search over DICOM files, as DicomTools' `search` does: tag expressions with sequence paths,
 * DICOM wild card matching, value statistics.
 *
 * @example
 * ```ts
 * import { parseTagExpression, searchFiles } from "./lib/search/mod.ts";
 * const machines = parseTagExpression("BeamSequence/TreatmentMachineName=?");
 * for await (const r of searchFiles(["export/"], [machines, "Modality=RTPLAN"])) {
 *   if (r.record) console.log(r.record.path, r.record.tags[machines.key]);
 *   else console.error(r.error);
 * }
 * ```
 * @module
 */
export { parseTagExpression, type TagExpression, TagExpressionError } from "./expression.ts";
export { matchValue, wildcardMatch } from "./match.ts";
export {
  fileRecord, matchFile, searchFile, type SearchFileRecord, searchFiles, type SearchResult, ValueStats,
} from "./search.ts";
