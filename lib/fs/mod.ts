/**
 * Walking file trees and reading DICOM headers from them, one result per file.
 * @module
 */
export { sha256File } from "./hash.ts";
export { globMatcher, pathRecords, walkEntriesSync, type WalkEntry, walkFiles, type WalkOptions } from "./walk.ts";
export { scanDicom, scanDicomSync, scanFile, type ScanOptions, type ScanResult } from "./scan.ts";
