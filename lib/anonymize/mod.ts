/** De-identification per DICOM PS3.15 Annex E that keeps RT references intact. */
export {
  AnonymizeContext, type AnonymizedIds, anonymizeDataSet, type AnonymizeOptions, BurnedInAnnotationError,
  createAnonymizeContext, methodCodes, type PatientIdentity, type Replacement,
} from "./anonymize.ts";
export {
  anonymizeFile, anonymizeFileAsync, type AnonymizeFileResult, anonymizeFiles, anonymizeStream, anonymizeToParts, encodeParts, orderedMap, type AnonymizeFilesOptions, type FileInput,
  writeFileAtomic,
} from "./files.ts";
export { anonymizeRecords, type AnonymizeRecordsOptions } from "./stage.ts";
export { parsePatientMap, PatientMapError, readPatientMap, writePatientMap } from "./patient_map.ts";
export {
  type Action, parseProfileCsv, ProfileError, type ProfileOptions, type ProfileOverride, readProfileCsv, resolveProfile,
  SUPPLEMENT_ROWS,
} from "./profile.ts";
export { IOD_TYPES, isStructuredReport, resolveCombined } from "./iod_types.ts";
export { SAFE_PRIVATE_ATTRIBUTES } from "./safe_private.ts";
export { keyedDateShiftDays, keyedPseudonym, keyedUid, shiftDateValue } from "./keyed.ts";
export { buildScrubber, type ReplacementCounts, type ReplacementKind, Scrubber } from "./scrub.ts";
export { type AnonymizePreset, PresetError, PRESETS, withPreset } from "./presets.ts";
