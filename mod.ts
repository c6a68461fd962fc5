/**
 * rtexport as a library: each command's stage (records in, records out, the same as on the
 * command line), the DICOM reader and writer, the DIMSE client and SCP, and the NDJSON records
 * the commands exchange. Each export is documented, with an example, where it is defined.
 *
 * @example
 * ```ts
 * import { copyFiles, exportPlans, listPatients } from "./mod.ts";
 * const plans = listPatients({ from: "catalog", db: "sqlite:catalog.db", vault: "vault" });
 * for await (const r of copyFiles(exportPlans(plans), { to: "export" })) {
 *   if (r.type === "file") console.log(r.path);
 * }
 * ```
 * @module
 */

// DICOM files: reading, writing, the data model, tags and dictionary, character sets, UIDs.
export { DicomParseError, parseDataSet, parseDicom, readDicomFile, readSkippedValue } from "./lib/dicom/reader.ts";
export type { DicomFile, ReadOptions } from "./lib/dicom/reader.ts";
export { buildMeta, encodeDataSet, encodeFile, encodeMeta } from "./lib/dicom/writer.ts";
export { DataSet, elementValues } from "./lib/dicom/dataset.ts";
export type { DicomElement, Encoding } from "./lib/dicom/dataset.ts";
export { dictionaryVr, lookupKeyword, lookupTag, resolveTag } from "./lib/dicom/dictionary.ts";
export type { DictionaryEntry } from "./lib/dicom/dictionary.ts";
export { formatTag, isPrivateTag, parseTag, privateCreatorTagOf, tagOf } from "./lib/dicom/tag.ts";
export type { Tag } from "./lib/dicom/tag.ts";
export { characterSet } from "./lib/dicom/charset.ts";
export type { CharacterSet } from "./lib/dicom/charset.ts";
export {
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN,
  RT_SOP_CLASSES, SOP_CLASS_NAMES, STORAGE_SOP_CLASSES, TRANSFER_SYNTAX_NAMES, transferSyntaxEncoding,
  VERIFICATION_SOP_CLASS,
} from "./lib/dicom/uids.ts";

// Records: the types commands exchange, and reading, writing and passing them through.
export type {
  ApprovalStatus, FileCategory, FileRecord, PatientRecord, PersonName, PlanRecord, PlanStatus, RtRecord,
} from "./lib/records/types.ts";
export { isFileRecord, isPatientRecord, isPlanRecord, isRecord } from "./lib/records/types.ts";
export { readRecords, RecordParseError, RecordWriter, writeRecords } from "./lib/records/ndjson.ts";
export type { ReadRecordsOptions, RecordSource, WritableLike } from "./lib/records/ndjson.ts";
export { collectRecords, mapRecords, splitRecords } from "./lib/records/pass_through.ts";
export type { HandlerOutput, RecordSelector, SplitRecord } from "./lib/records/pass_through.ts";

// Stages: what every acting command's library function takes beside its own options.
export { FatalStageError } from "./lib/stage/stage.ts";
export type { SkipReason, StageCounts, StageEvent, StageOptions } from "./lib/stage/stage.ts";

// Files: walking trees, reading headers.
export { pathRecords, walkFiles } from "./lib/fs/walk.ts";
export type { WalkEntry, WalkOptions } from "./lib/fs/walk.ts";
export { scanDicom } from "./lib/fs/scan.ts";
export type { ScanOptions, ScanResult } from "./lib/fs/scan.ts";

// show: the RT reference tree.
export { showRecords } from "./lib/rt/show.ts";
export type { ShowOptions } from "./lib/rt/show.ts";
export { summarizeObject } from "./lib/rt/summary.ts";
export type { RtObjectKind, RtObjectSummary } from "./lib/rt/summary.ts";
export { buildReferenceTree, ReferenceTreeBuilder, treeRecords } from "./lib/rt/tree.ts";
export type { PatientTree, ReferenceTree, ShowPlanRecord, UnconnectedRecord } from "./lib/rt/tree.ts";
export { renderTree } from "./lib/rt/render.ts";

// search: tag expressions.
export { searchFiles, ValueStats } from "./lib/search/search.ts";
export type { SearchFileRecord, SearchOptions, SearchResult } from "./lib/search/search.ts";
export { parseTagExpression } from "./lib/search/expression.ts";
export type { TagExpression } from "./lib/search/expression.ts";

// anonymize: PS3.15 Annex E.
export { anonymizeDataSet, createAnonymizeContext } from "./lib/anonymize/anonymize.ts";
export type { AnonymizeOptions } from "./lib/anonymize/anonymize.ts";
export { anonymizeFiles } from "./lib/anonymize/files.ts";
export type { AnonymizeFilesOptions } from "./lib/anonymize/files.ts";
export { anonymizeRecords } from "./lib/anonymize/stage.ts";
export type { AnonymizeRecordsOptions } from "./lib/anonymize/stage.ts";

// list-patients, export-plan, copy-files, status.
export { listPatients } from "./lib/sources/list.ts";
export type { ListFilter, ListProblem, ListSource } from "./lib/sources/list.ts";
export { checkListFilter, ListFilterError } from "./lib/sources/filter.ts";
export type { CatalogFilter } from "./lib/catalog/catalog.ts";
export { exportPlans } from "./lib/export/export.ts";
export type { ExportPlanOptions } from "./lib/export/export.ts";
export { copyFiles } from "./lib/copy/copy_files.ts";
export type { CopyFilesOptions, CopyLayout } from "./lib/copy/copy_files.ts";
export { copyFileVerified } from "./lib/copy/copy.ts";
export type { CopyOptions, CopyOutcome } from "./lib/copy/copy.ts";
export { Ledger } from "./lib/ledger/ledger.ts";
export { summarizeLedger } from "./lib/ledger/status.ts";
export type { LedgerEntry } from "./lib/ledger/schema.ts";
export type { LedgerSummary } from "./lib/ledger/status.ts";

// push, retrieve, serve, and the DIMSE client and SCP framework under them.
export { pushRecords } from "./lib/push/push.ts";
export type { PushOptions } from "./lib/push/push.ts";
export { retrieveFiles } from "./lib/retrieve/retrieve.ts";
export { retrieveRecords } from "./lib/retrieve/stage.ts";
export type { RetrieveRecordsOptions } from "./lib/retrieve/stage.ts";
export type { RetrieveFilesOptions } from "./lib/retrieve/retrieve.ts";
export type { RetrieveSummary } from "./lib/retrieve/planner.ts";
export { startQrScp } from "./lib/qr/scp.ts";
export type { QrScpOptions } from "./lib/qr/scp.ts";
export { connect } from "./lib/net/association.ts";
export type { Association, ConnectOptions } from "./lib/net/association.ts";
export { echo, find, get, move, QR_MODELS, store } from "./lib/net/scu.ts";
export { createScp } from "./lib/net/scp.ts";
export type { ScpOptions } from "./lib/net/scp.ts";

// Clinical safety: pre-flight checks, Storage Commitment, retries, pacing, the audit trail.
export { checkRecords, loadProfile } from "./lib/check/mod.ts";
export type { CheckOptions, CheckOutcome, CheckSummary, Profile } from "./lib/check/mod.ts";
export type { CommitmentRecord, PushOutcome } from "./lib/push/push.ts";
export { Committer } from "./lib/net/commitment_scu.ts";
export type { CommitOutcome, CommitterOptions } from "./lib/net/commitment_scu.ts";
export { classify, DEFAULT_RETRY_POLICY, withRetries } from "./lib/net/retry.ts";
export type { RetryPolicy } from "./lib/net/retry.ts";
export { jumpingClock, Pacer, parseBandwidth, parseRate, parseWindows } from "./lib/stage/pace.ts";
export type { Clock, PaceOptions, TimeWindow } from "./lib/stage/pace.ts";
export { AuditTrail, LedgerAuditSink, SyslogSink } from "./lib/audit/mod.ts";
export type { AuditEvent, AuditSink, AuditSpec } from "./lib/audit/mod.ts";

// Test data and storage.
export { generateClinic } from "./lib/fixtures/clinic.ts";
export type { ClinicManifest, ClinicOptions } from "./lib/fixtures/clinic.ts";
export { openSqlite } from "./lib/db/sqlite.ts";

// transcode: lossless decoding and transfer syntax changes (codecs load on first use).
export { transcodeFiles } from "./lib/codec/transcode.ts";
export type { TranscodeOptions, TranscodeResult } from "./lib/codec/transcode.ts";
export { decodeDataSet, decodeToNative, transcodeFile, transcodeRefusal } from "./lib/codec/decode.ts";
export { CodecError } from "./lib/codec/pixel.ts";
