/**
 * rtexport as a library: read and write DICOM, and the NDJSON records the commands exchange.
 * Only `lib/` is exported; commands are thin front ends over these functions.
 *
 * @example
 * ```ts
 * import { readDicomFile } from "./mod.ts";
 * const file = readDicomFile("CT.1.dcm");
 * console.log(file.dataset.string("PatientID"), file.transferSyntaxUid);
 * ```
 * @module
 */

import * as reader from "./lib/dicom/reader.ts";
import * as writer from "./lib/dicom/writer.ts";
import * as dictionary from "./lib/dicom/dictionary.ts";
import * as tag from "./lib/dicom/tag.ts";
import * as charset from "./lib/dicom/charset.ts";
import * as dataset from "./lib/dicom/dataset.ts";
import * as ndjson from "./lib/records/ndjson.ts";
import * as passThrough from "./lib/records/pass_through.ts";

// ---- DICOM reading -------------------------------------------------------------------------

export type { DicomFile, ReadOptions } from "./lib/dicom/reader.ts";

/**
 * Read a DICOM file (Part 10, or a bare data set without preamble/meta). Header-only by default:
 * stops before Pixel Data and skips bulk values over 4096 bytes (marked `skipped`); `{full: true}`
 * reads everything. Throws {@linkcode DicomParseError} naming the file and offset.
 *
 * @example
 * ```ts
 * const { dataset } = readDicomFile("RP.1.dcm");
 * dataset.string("RTPlanLabel");
 * ```
 */
export const readDicomFile: typeof reader.readDicomFile = reader.readDicomFile;

/**
 * Parse a DICOM file held in memory.
 *
 * @example
 * ```ts
 * const file = parseDicom(new Uint8Array(await Deno.readFile("a.dcm")), { full: true });
 * ```
 */
export const parseDicom: typeof reader.parseDicom = reader.parseDicom;

/**
 * Parse a bare data set (e.g. from a DIMSE message) in the given transfer syntax.
 *
 * @example
 * ```ts
 * const ds = parseDataSet(bytes, EXPLICIT_VR_LITTLE_ENDIAN);
 * ```
 */
export const parseDataSet: typeof reader.parseDataSet = reader.parseDataSet;

/**
 * Read the bytes of a value a header-only read skipped.
 *
 * @example
 * ```ts
 * const file = readDicomFile("CT.dcm");
 * const el = file.dataset.get("PixelData");
 * if (el?.skipped) readSkippedValue(file.path, el);
 * ```
 */
export const readSkippedValue: typeof reader.readSkippedValue = reader.readSkippedValue;

/**
 * A DICOM parse failure; `offset` says where.
 *
 * @example
 * ```ts
 * try { readDicomFile("x"); } catch (e) { if (e instanceof DicomParseError) console.error(e.offset); }
 * ```
 */
export const DicomParseError: typeof reader.DicomParseError = reader.DicomParseError;
/** A DICOM parse failure; `offset` says where. */
export type DicomParseError = reader.DicomParseError;

// ---- DICOM writing -------------------------------------------------------------------------

/**
 * Encode a data set (no preamble or meta) in a transfer syntax.
 *
 * @example
 * ```ts
 * const bytes = encodeDataSet(ds, EXPLICIT_VR_LITTLE_ENDIAN);
 * ```
 */
export const encodeDataSet: typeof writer.encodeDataSet = writer.encodeDataSet;

/**
 * Encode a Part 10 file: preamble, `DICM`, meta information and data set.
 *
 * @example
 * ```ts
 * const bytes = encodeFile(file.dataset, { meta: file.meta });
 * ```
 */
export const encodeFile: typeof writer.encodeFile = writer.encodeFile;

/**
 * Build file meta information for a SOP instance.
 *
 * @example
 * ```ts
 * const meta = buildMeta(RT_SOP_CLASSES.RTPlan, "1.2.3", EXPLICIT_VR_LITTLE_ENDIAN);
 * ```
 */
export const buildMeta: typeof writer.buildMeta = writer.buildMeta;

/**
 * Encode file meta information (group 0002, explicit VR little endian).
 *
 * @example
 * ```ts
 * const bytes = encodeMeta(buildMeta(sopClass, sopInstance, tsUid));
 * ```
 */
export const encodeMeta: typeof writer.encodeMeta = writer.encodeMeta;

// ---- Data model ----------------------------------------------------------------------------

export type { DicomElement, Encoding } from "./lib/dicom/dataset.ts";

/**
 * A DICOM data set: elements by tag, with typed accessors by tag or keyword.
 *
 * @example
 * ```ts
 * const ds = readDicomFile("a.dcm").dataset;
 * ds.string("PatientID"); ds.items("ReferencedRTPlanSequence");
 * ```
 */
export const DataSet: typeof dataset.DataSet = dataset.DataSet;
/** A DICOM data set. */
export type DataSet = dataset.DataSet;

/**
 * Decode the values of an element (strings decoded with the data set's character set, numbers by VR).
 *
 * @example
 * ```ts
 * elementValues(ds.get("ImagePositionPatient")!, ds); // [-250, -250, 12.5]
 * ```
 */
export const elementValues: typeof dataset.elementValues = dataset.elementValues;

// ---- Tags and dictionary -------------------------------------------------------------------

export type { Tag } from "./lib/dicom/tag.ts";
export type { DictionaryEntry } from "./lib/dicom/dictionary.ts";

/**
 * Look up a tag in the data dictionary.
 *
 * @example
 * ```ts
 * lookupTag(0x00100020)?.keyword; // "PatientID"
 * ```
 */
export const lookupTag: typeof dictionary.lookupTag = dictionary.lookupTag;

/**
 * Look up a keyword in the data dictionary.
 *
 * @example
 * ```ts
 * lookupKeyword("PatientID")?.tag; // 0x00100020
 * ```
 */
export const lookupKeyword: typeof dictionary.lookupKeyword = dictionary.lookupKeyword;

/**
 * Resolve `(gggg,eeee)`, `ggggeeee` or a keyword to a tag.
 *
 * @example
 * ```ts
 * resolveTag("(300A,00B0)") === resolveTag("BeamSequence");
 * ```
 */
export const resolveTag: typeof dictionary.resolveTag = dictionary.resolveTag;

/**
 * The dictionary VR of a tag (`UN` when unknown).
 *
 * @example
 * ```ts
 * dictionaryVr(0x00100010); // "PN"
 * ```
 */
export const dictionaryVr: typeof dictionary.dictionaryVr = dictionary.dictionaryVr;

/**
 * Build a tag from group and element.
 *
 * @example
 * ```ts
 * tagOf(0x0010, 0x0020); // 0x00100020
 * ```
 */
export const tagOf: typeof tag.tagOf = tag.tagOf;

/**
 * Format a tag as `(GGGG,EEEE)`.
 *
 * @example
 * ```ts
 * formatTag(0x00100020); // "(0010,0020)"
 * ```
 */
export const formatTag: typeof tag.formatTag = tag.formatTag;

/**
 * Parse `(gggg,eeee)` or `ggggeeee`.
 *
 * @example
 * ```ts
 * parseTag("(0010,0020)"); // 0x00100020
 * ```
 */
export const parseTag: typeof tag.parseTag = tag.parseTag;

/**
 * True for a private tag (odd group).
 *
 * @example
 * ```ts
 * isPrivateTag(0x00291010); // true
 * ```
 */
export const isPrivateTag: typeof tag.isPrivateTag = tag.isPrivateTag;

/**
 * The private creator element that reserves a private tag's block.
 *
 * @example
 * ```ts
 * privateCreatorTagOf(0x00291010); // 0x00290010
 * ```
 */
export const privateCreatorTagOf: typeof tag.privateCreatorTagOf = tag.privateCreatorTagOf;

// ---- Character sets ------------------------------------------------------------------------

/**
 * The character set for Specific Character Set (0008,0005) terms, with `decode`/`encode`.
 *
 * @example
 * ```ts
 * characterSet(["ISO_IR 192"]).decode(bytes, false);
 * ```
 */
export const characterSet: typeof charset.characterSet = charset.characterSet;
/** A DICOM character set (decode/encode). */
export type CharacterSet = charset.CharacterSet;

// ---- UIDs ----------------------------------------------------------------------------------

/**
 * Transfer syntax and SOP class UIDs: `EXPLICIT_VR_LITTLE_ENDIAN`, `STORAGE_SOP_CLASSES`,
 * `SOP_CLASS_NAMES`, `RT_SOP_CLASSES`, `transferSyntaxEncoding(uid)`.
 *
 * @example
 * ```ts
 * SOP_CLASS_NAMES.get(RT_SOP_CLASSES.RTPlan); // "RT Plan Storage"
 * ```
 */
export {
  DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN,
  EXPLICIT_VR_BIG_ENDIAN,
  EXPLICIT_VR_LITTLE_ENDIAN,
  IMPLICIT_VR_LITTLE_ENDIAN,
  RT_SOP_CLASSES,
  SOP_CLASS_NAMES,
  STORAGE_SOP_CLASSES,
  TRANSFER_SYNTAX_NAMES,
  transferSyntaxEncoding,
  VERIFICATION_SOP_CLASS,
} from "./lib/dicom/uids.ts";

// ---- Records -------------------------------------------------------------------------------

export type {
  ApprovalStatus,
  FileCategory,
  FileRecord,
  PatientRecord,
  PersonName,
  PlanRecord,
  PlanStatus,
  RtRecord,
} from "./lib/records/types.ts";
export { isFileRecord, isPatientRecord, isPlanRecord, isRecord } from "./lib/records/types.ts";
export type { ReadRecordsOptions, RecordSource, WritableLike } from "./lib/records/ndjson.ts";
export type { HandlerOutput, RecordSelector, SplitRecord } from "./lib/records/pass_through.ts";

/**
 * Read NDJSON records from a stream (CRLF, blank lines, split chunks); a bad line throws
 * {@linkcode RecordParseError} naming its line number.
 *
 * @example
 * ```ts
 * for await (const record of readRecords(process.stdin)) console.error(record.type);
 * ```
 */
export const readRecords: typeof ndjson.readRecords = ndjson.readRecords;

/**
 * Write records to a stream as NDJSON, with back-pressure; stops quietly on EPIPE.
 *
 * @example
 * ```ts
 * await writeRecords([{ type: "patient", patientId: "1" }], process.stdout);
 * ```
 */
export const writeRecords: typeof ndjson.writeRecords = ndjson.writeRecords;

/**
 * NDJSON writer for one stream: `await writer.write(record)`; `writer.closed` after EPIPE.
 *
 * @example
 * ```ts
 * const out = new RecordWriter(process.stdout);
 * await out.write({ type: "file", path: "a.dcm" });
 * ```
 */
export const RecordWriter: typeof ndjson.RecordWriter = ndjson.RecordWriter;
/** NDJSON writer for one stream. */
export type RecordWriter = ndjson.RecordWriter;

/**
 * A bad NDJSON line: `line` and `input` say where.
 *
 * @example
 * ```ts
 * try { for await (const r of readRecords(["{"])) {} } catch (e) { (e as RecordParseError).line; }
 * ```
 */
export const RecordParseError: typeof ndjson.RecordParseError = ndjson.RecordParseError;
/** A bad NDJSON line. */
export type RecordParseError = ndjson.RecordParseError;

/**
 * Apply a handler to selected record types and pass the others through unchanged, in order.
 *
 * @example
 * ```ts
 * const out = mapRecords(records, ["file"], (file) => ({ ...file, checked: true }));
 * ```
 */
export const mapRecords: typeof passThrough.mapRecords = passThrough.mapRecords;

/**
 * Tag each record as handled or pass-through, in order.
 *
 * @example
 * ```ts
 * for await (const { handled, record } of splitRecords(records, ["plan"])) {}
 * ```
 */
export const splitRecords: typeof passThrough.splitRecords = passThrough.splitRecords;

/**
 * Collect an (async) iterable into an array.
 *
 * @example
 * ```ts
 * const all = await collectRecords(readRecords(process.stdin));
 * ```
 */
export const collectRecords: typeof passThrough.collectRecords = passThrough.collectRecords;

// ---- Files, RT reference tree, search, anonymization ---------------------------------------

import * as scan from "./lib/fs/scan.ts";
import * as walk from "./lib/fs/walk.ts";
import * as rtTree from "./lib/rt/tree.ts";
import * as rtSummary from "./lib/rt/summary.ts";
import * as rtRender from "./lib/rt/render.ts";
import * as searchLib from "./lib/search/search.ts";
import * as searchExpr from "./lib/search/expression.ts";
import * as anonymizeLib from "./lib/anonymize/anonymize.ts";
import * as anonymizeFilesLib from "./lib/anonymize/files.ts";

export type { ScanOptions, ScanResult } from "./lib/fs/scan.ts";
export type { WalkEntry, WalkOptions } from "./lib/fs/walk.ts";
export type { RtObjectKind, RtObjectSummary } from "./lib/rt/summary.ts";
export type {
  PatientTree,
  ReferenceTree,
  ShowPlanRecord,
  UnconnectedRecord,
} from "./lib/rt/tree.ts";
export type { SearchFileRecord, SearchResult } from "./lib/search/search.ts";
export type { TagExpression } from "./lib/search/expression.ts";
export type { AnonymizeOptions } from "./lib/anonymize/anonymize.ts";
export type { AnonymizeFilesOptions } from "./lib/anonymize/files.ts";

/**
 * Walk files and directories recursively (with `pattern`), yielding paths or per-path errors.
 *
 * @example
 * ```ts
 * for await (const entry of walkFiles(["export/"], { pattern: "*.dcm" })) console.log(entry);
 * ```
 */
export const walkFiles: typeof walk.walkFiles = walk.walkFiles;

/**
 * Read the header of every DICOM file under the given paths; each result has `file` or `error`.
 *
 * @example
 * ```ts
 * for await (const r of scanDicom(["export/"])) if (r.file) console.log(r.path, r.file.transferSyntaxUid);
 * ```
 */
export const scanDicom: typeof scan.scanDicom = scan.scanDicom;

/**
 * Summarize a DICOM object for the reference tree (kind, UIDs, references, plan label/approval).
 *
 * @example
 * ```ts
 * const summary = summarizeObject(readDicomFile("RP1.dcm"));
 * ```
 */
export const summarizeObject: typeof rtSummary.summarizeObject = rtSummary.summarizeObject;

/**
 * Build the RT reference tree (RTPLAN → RTSTRUCT → image series; doses, records, RT images,
 * registrations; what no plan references; missing references) from object summaries.
 *
 * @example
 * ```ts
 * const summaries = [];
 * for await (const r of scanDicom(["export/"])) if (r.file) summaries.push(summarizeObject(r.file, r.path));
 * const tree = buildReferenceTree(summaries);
 * ```
 */
export const buildReferenceTree: typeof rtTree.buildReferenceTree = rtTree.buildReferenceTree;

/**
 * Build the reference tree one object at a time (streaming scans keep only series counts for images).
 *
 * @example
 * ```ts
 * const builder = new ReferenceTreeBuilder();
 * for await (const r of scanDicom(["export/"])) if (r.file) builder.add(summarizeObject(r.file, r.path));
 * const tree = builder.build();
 * ```
 */
export const ReferenceTreeBuilder: typeof rtTree.ReferenceTreeBuilder = rtTree.ReferenceTreeBuilder;
/** Streaming reference tree builder. */
export type ReferenceTreeBuilder = rtTree.ReferenceTreeBuilder;

/**
 * The `plan` and `unconnected` records of a reference tree (what `show` writes as NDJSON).
 *
 * @example
 * ```ts
 * await writeRecords(treeRecords(tree), process.stdout);
 * ```
 */
export const treeRecords: typeof rtTree.treeRecords = rtTree.treeRecords;

/**
 * Render a reference tree as text lines (`tree` or `flat`).
 *
 * @example
 * ```ts
 * console.log(renderTree(tree, "tree").join("\n"));
 * ```
 */
export const renderTree: typeof rtRender.renderTree = rtRender.renderTree;

/**
 * Parse a tag expression: `(gggg,eeee)=value`, `Keyword=value`, `=?` to report, `*`/`?` wildcards,
 * sequence paths `(300A,00B0)/(300A,00B2)=?`.
 *
 * @example
 * ```ts
 * const expr = parseTagExpression("BeamSequence/TreatmentMachineName=?");
 * ```
 */
export const parseTagExpression: typeof searchExpr.parseTagExpression = searchExpr.parseTagExpression;

/**
 * Search DICOM files by tag expressions (all must match); yields `file` records with the reported values.
 *
 * @example
 * ```ts
 * for await (const r of searchFiles(["export/"], ["PatientID=?", "Modality=RTPLAN"])) {
 *   if (r.record) console.log(r.record.path, r.record.tags["PatientID"]);
 * }
 * ```
 */
export const searchFiles: typeof searchLib.searchFiles = searchLib.searchFiles;

/**
 * Distinct values with counts per expression (`search --stats`).
 *
 * @example
 * ```ts
 * const stats = new ValueStats(["Modality"]);
 * stats.add({ Modality: ["RTPLAN"] });
 * ```
 */
export const ValueStats: typeof searchLib.ValueStats = searchLib.ValueStats;
/** Distinct values with counts per expression. */
export type ValueStats = searchLib.ValueStats;

/**
 * De-identify a data set in place per PS3.15 Annex E, keeping RT references consistent through
 * the shared context (UID and date remapping).
 *
 * @example
 * ```ts
 * const ctx = createAnonymizeContext(options);
 * anonymizeDataSet(file.dataset, options, ctx);
 * ```
 */
export const anonymizeDataSet: typeof anonymizeLib.anonymizeDataSet = anonymizeLib.anonymizeDataSet;

/**
 * Create the shared state (UID map, date shift, patient map) for anonymizing several files consistently.
 *
 * @example
 * ```ts
 * const ctx = createAnonymizeContext(options);
 * ```
 */
export const createAnonymizeContext: typeof anonymizeLib.createAnonymizeContext = anonymizeLib.createAnonymizeContext;

/**
 * Anonymize files into an output tree (atomic writes), yielding one result per input.
 *
 * @example
 * ```ts
 * const ctx = createAnonymizeContext({ key: process.env.KEY! });
 * for await (const r of anonymizeFiles(walkInputs(["in/"]), ctx.options, { out: "anon/" }, ctx)) {
 *   if (!r.ok) console.error(r.message);
 * }
 * ```
 */
export const anonymizeFiles: typeof anonymizeFilesLib.anonymizeFiles = anonymizeFilesLib.anonymizeFiles;

/**
 * The inputs (files under the given paths) for {@linkcode anonymizeFiles}.
 *
 * @example
 * ```ts
 * const inputs = walkInputs(["in/"]);
 * ```
 */
export const walkInputs: typeof anonymizeFilesLib.walkInputs = anonymizeFilesLib.walkInputs;

// ---- One async-iterable function per command ------------------------------------------------

import * as sourcesList from "./lib/sources/list.ts";
import * as rtShow from "./lib/rt/show.ts";
import * as exportLib from "./lib/export/export.ts";
import * as copyFilesLib from "./lib/copy/copy_files.ts";
import * as copyLib from "./lib/copy/copy.ts";
import * as ledgerLib from "./lib/ledger/ledger.ts";
import * as pushLib from "./lib/push/push.ts";
import * as retrieveLib from "./lib/retrieve/retrieve.ts";
import * as qrScp from "./lib/qr/scp.ts";
import * as net from "./lib/net/mod.ts";
import * as fixtures from "./lib/fixtures/clinic.ts";
import * as sqlite from "./lib/db/sqlite.ts";

export type { ListProblem, ListSource } from "./lib/sources/list.ts";
export type { CatalogFilter } from "./lib/catalog/catalog.ts";
export type { ExportPlanOptions } from "./lib/export/export.ts";
export type { CopyFilesOptions, CopyLayout } from "./lib/copy/copy_files.ts";
export type { CopyOptions, CopyOutcome } from "./lib/copy/copy.ts";
export type { LedgerEntry, LedgerSummary } from "./lib/ledger/ledger.ts";
export type { PushOptions } from "./lib/push/push.ts";
export type { RetrieveFilesOptions } from "./lib/retrieve/retrieve.ts";
export type { RetrieveSummary } from "./lib/retrieve/planner.ts";
export type { QrScpOptions } from "./lib/qr/scp.ts";
export type { ClinicManifest, ClinicOptions } from "./lib/fixtures/clinic.ts";

/**
 * `list-patients`: patient records, each followed by its plan records, from a catalog database,
 * a folder or a Q/R peer.
 *
 * @example
 * ```ts
 * for await (const r of listPatients({ from: "folder", paths: ["old-export/"] })) console.log(r.type, r.patientId);
 * ```
 */
export const listPatients: typeof sourcesList.listPatients = sourcesList.listPatients;

/**
 * `export-plan`: takes patient/plan records and yields a `file` record per file of each plan,
 * written into the per-patient/per-plan tree under `out` (other records pass through).
 *
 * @example
 * ```ts
 * const plans = listPatients({ from: "catalog", db: "sqlite:catalog.db", vault: "vault" });
 * for await (const r of exportPlans(plans, { out: "export" })) if (r.type === "file") console.log(r.path);
 * ```
 */
export const exportPlans: typeof exportLib.exportPlans = exportLib.exportPlans;

/**
 * `copy-files`: copies each `file` record's file into a folder, atomically and verified by hash;
 * never overwrites a different file.
 *
 * @example
 * ```ts
 * for await (const r of copyFiles([{ type: "file", path: "a.dcm" }], { to: "backup", layout: "series" })) console.log(r.copy);
 * ```
 */
export const copyFiles: typeof copyFilesLib.copyFiles = copyFilesLib.copyFiles;

/**
 * One verified, atomic copy: temp file, fsync, read-back hash, link into place.
 *
 * @example
 * ```ts
 * const { status, sha256 } = await copyFileVerified("vault/plan.xml", "export/P/Plan/Plan_Files/plan.xml");
 * ```
 */
export const copyFileVerified: typeof copyLib.copyFileVerified = copyLib.copyFileVerified;

/**
 * The migration ledger (SQLite, PostgreSQL or SQL Server through kysely).
 *
 * @example
 * ```ts
 * const ledger = await Ledger.open("sqlite:export/.rtexport/ledger.sqlite", "my-script");
 * await ledger.record({ kind: "file", key: "P/DICOM/x.dcm", status: "done", bytes: 1234 });
 * await ledger.close();
 * ```
 */
export const Ledger: typeof ledgerLib.Ledger = ledgerLib.Ledger;
export type Ledger = ledgerLib.Ledger;

/**
 * `status`: counts per kind and status, bytes, the last errors and runs of a ledger.
 *
 * @example
 * ```ts
 * const ledger = await Ledger.open("sqlite:export/.rtexport/ledger.sqlite", "status");
 * console.log((await summarizeLedger(ledger.db)).kinds);
 * ```
 */
export const summarizeLedger: typeof ledgerLib.summarizeLedger = ledgerLib.summarizeLedger;

/**
 * `show`: the RT reference tree of files (paths or `file` records) as `plan` and `unconnected`
 * records.
 *
 * @example
 * ```ts
 * for await (const r of showRecords(["old-export/"])) console.log(r.type, r.patientId);
 * ```
 */
export const showRecords: typeof rtShow.showRecords = rtShow.showRecords;

/**
 * `push`: C-STORE of `file` records to a peer in dependency order; each record comes back with
 * `push: {status, peer, …}`.
 *
 * @example
 * ```ts
 * const files = [{ type: "file", path: "export/P/Plan/DICOM/RTPLAN_1.dcm" }];
 * for await (const r of pushRecords(files, { peer: { host: "pacs", port: 104, callingAet: "RTEXPORT", calledAet: "PACS" } })) console.log(r.push);
 * ```
 */
export const pushRecords: typeof pushLib.pushRecords = pushLib.pushRecords;

/**
 * `retrieve`: selective retrieval of a patient's plans by C-GET or C-MOVE; yields `file` records
 * and a closing `retrieve-summary` record.
 *
 * @example
 * ```ts
 * for await (const r of retrieveFiles({ host: "pacs", port: 104, callingAet: "RTEXPORT", calledAet: "PACS", patientId: "123", get: true, out: "export" })) console.log(r.type);
 * ```
 */
export const retrieveFiles: typeof retrieveLib.retrieveFiles = retrieveLib.retrieveFiles;

/**
 * `serve`: a DICOM node over a folder (Verification, Storage, Q/R with C-FIND/C-MOVE/C-GET).
 *
 * @example
 * ```ts
 * const scp = await startQrScp({ dir: "store", aeTitle: "RTEXPORT-SCP", port: 11112 });
 * // … later: await scp.close();
 * ```
 */
export const startQrScp: typeof qrScp.startQrScp = qrScp.startQrScp;

// ---- DIMSE client and SCP framework ---------------------------------------------------------

export type { Association, ConnectOptions, ScpOptions } from "./lib/net/mod.ts";

/**
 * Opens an association (TCP or TLS) and negotiates presentation contexts.
 *
 * @example
 * ```ts
 * const assoc = await connect({ host: "pacs", port: 104, callingAet: "RTEXPORT", calledAet: "PACS",
 *   contexts: [{ abstractSyntax: "1.2.840.10008.1.1", transferSyntaxes: ["1.2.840.10008.1.2"] }] });
 * await echo(assoc);
 * await assoc.release();
 * ```
 */
export const connect: typeof net.connect = net.connect;
/** C-ECHO on an open association; resolves with the DIMSE status. See {@linkcode connect}. */
export const echo: typeof net.echo = net.echo;
/** C-STORE of one object (streamed unchanged when the transfer syntax matches). See {@linkcode connect}. */
export const store: typeof net.store = net.store;
/** C-FIND: yields each matching identifier. See {@linkcode connect}. */
export const find: typeof net.find = net.find;
/** C-MOVE: yields sub-operation progress. See {@linkcode connect}. */
export const move: typeof net.move = net.move;
/** C-GET: objects arrive on the same association (role selection). See {@linkcode connect}. */
export const get: typeof net.get = net.get;
/** The SCP framework `serve` is built on (accept rules, handlers for echo/store/find/move/get). */
export const createScp: typeof net.createScp = net.createScp;
/** Query/Retrieve information model UIDs (Patient Root, Study Root). */
export const QR_MODELS: typeof net.QR_MODELS = net.QR_MODELS;

// ---- Test data and storage --------------------------------------------------------------------

/**
 * Generates the deterministic synthetic RT clinic (CT, MR, RTSTRUCT, RTPLANs, RTDOSEs, records,
 * RT images, registrations) and returns its manifest.
 *
 * @example
 * ```ts
 * const manifest = await generateClinic({ out: "clinic", patients: 5, seed: 1 });
 * ```
 */
export const generateClinic: typeof fixtures.generateClinic = fixtures.generateClinic;

/**
 * Kysely over the SQLite built into Node ≥ 22 and Deno (no native module).
 *
 * @example
 * ```ts
 * const db = openSqlite<{ t: { a: number } }>(":memory:");
 * ```
 */
export const openSqlite: typeof sqlite.openSqlite = sqlite.openSqlite;

// ---- Compressed images ----------------------------------------------------------------------
// The codecs themselves load on first use: importing these costs nothing until an object is decoded.

import * as codecDecode from "./lib/codec/decode.ts";
import * as codecTranscode from "./lib/codec/transcode.ts";
import * as codecPixel from "./lib/codec/pixel.ts";
export type { TranscodeOptions, TranscodeResult } from "./lib/codec/transcode.ts";

/**
 * The transcode stage: DICOM `file` records' files rewritten in another transfer syntax
 * (lossless decoding, RLE encoding, native to native); one `file` record per file written.
 *
 * @example
 * ```ts
 * for await (const r of transcodeFiles([{ type: "file", path: "ct_jpegls.dcm" }], { to: "1.2.840.10008.1.2.1", out: "raw/" })) {
 *   console.log(r.path);
 * }
 * ```
 */
export const transcodeFiles: typeof codecTranscode.transcodeFiles = codecTranscode.transcodeFiles;

/**
 * A Part 10 file read in full, as the bytes of the same object in a native transfer syntax
 * (Explicit VR Little Endian by default). Lossy objects are refused with a `CodecError`.
 *
 * @example
 * ```ts
 * writeFileSync("ct.dcm", await decodeToNative(readDicomFile("ct_j2k.dcm", { full: true })));
 * ```
 */
export const decodeToNative: typeof codecDecode.decodeToNative = codecDecode.decodeToNative;

/**
 * A Part 10 file read in full, transcoded to any supported syntax (native ones and RLE Lossless).
 *
 * @example
 * ```ts
 * writeFileSync("ct_rle.dcm", await transcodeFile(readDicomFile("ct.dcm", { full: true }), "1.2.840.10008.1.2.5"));
 * ```
 */
export const transcodeFile: typeof codecDecode.transcodeFile = codecDecode.transcodeFile;

/**
 * A copy of a data set with its encapsulated pixel data decoded to native.
 *
 * @example
 * ```ts
 * const f = readDicomFile("ct_jpeg.dcm", { full: true });
 * const native = await decodeDataSet(f.dataset, f.transferSyntaxUid);
 * ```
 */
export const decodeDataSet: typeof codecDecode.decodeDataSet = codecDecode.decodeDataSet;

/**
 * Why converting transfer syntax `from` to `to` would lose information or is not supported, or
 * undefined when it can be done.
 *
 * @example
 * ```ts
 * transcodeRefusal("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.1"); // "JPEG Baseline (Process 1) (…) is lossy: …"
 * ```
 */
export const transcodeRefusal: typeof codecDecode.transcodeRefusal = codecDecode.transcodeRefusal;

/**
 * A decoding failure; the message says what is wrong with which frame.
 *
 * @example
 * ```ts
 * try { await decodeDataSet(ds, ts); } catch (e) { if (e instanceof CodecError) console.error(e.message); }
 * ```
 */
export const CodecError: typeof codecPixel.CodecError = codecPixel.CodecError;
/** A decoding failure. */
export type CodecError = codecPixel.CodecError;
