/**
 * Tag search over DICOM files, as DicomTools' `search` does: tag expressions with sequence paths,
 * DICOM wild card matching, value statistics.
 *
 * @example
 * ```ts
 * import { parseTagExpression, searchFiles } from "./lib/search/mod.ts";
 * const machines = parseTagExpression("BeamSequence/TreatmentMachineName=?");
 * for await (const r of searchFiles(["export/"], { tags: [machines, "Modality=RTPLAN"] })) {
 *   console.log(r.path, (r.tags as Record<string, string[]>)[machines.key]);
 * }
 * ```
 * @module
 */
export { parseTagExpression, type TagExpression, TagExpressionError } from "./expression.ts";
export { matchValue, wildcardMatch } from "./match.ts";
export {
  fileRecord, matchFile, searchFile, type SearchFileRecord, searchFiles, type SearchOptions, type SearchResult, ValueStats,
} from "./search.ts";
