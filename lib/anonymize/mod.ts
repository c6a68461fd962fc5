/** De-identification per DICOM PS3.15 Annex E that keeps RT references intact. */
export {
  AnonymizeContext, type AnonymizedIds, anonymizeDataSet, type AnonymizeOptions, BurnedInAnnotationError,
  createAnonymizeContext, methodCodes, type PatientIdentity,
} from "./anonymize.ts";
export {
  anonymizeFile, anonymizeFileAsync, type AnonymizeFileResult, anonymizeFiles, anonymizeStream, anonymizeToParts, encodeParts, orderedMap, type AnonymizeFilesOptions, type FileInput,
  writeFileAtomic,
} from "./files.ts";
export { anonymizeRecords, type AnonymizeRecordsOptions } from "./stage.ts";
export { parsePatientMap, PatientMapError, readPatientMap, writePatientMap } from "./patient_map.ts";
export {
  type Action, parseProfileCsv, ProfileError, type ProfileOptions, type ProfileOverride, readProfileCsv, resolveProfile,
} from "./profile.ts";
export { IOD_TYPES, resolveCombined } from "./iod_types.ts";
export { SAFE_PRIVATE_ATTRIBUTES } from "./safe_private.ts";
export { keyedDateShiftDays, keyedPseudonym, keyedUid } from "./keyed.ts";
