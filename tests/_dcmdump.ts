// Test helper: runs DCMTK's dcmdump and turns its output into comparable rows, and turns a data
// set read by lib/dicom into rows of the same shape, so a test can say "our reader sees exactly
// what DCMTK sees". Other tests may import it for fidelity checks (anonymize, copy, push …).
//
// A row is (path, VR, length, value):
//   path   "(0008,1140)[1]/(0008,1150)" — tags upper-case, item indexes from 0
//   vr     as printed by dcmdump ("SQ" for sequences, "OB"/"OW" for pixel data)
//   length the value length in bytes as stored (undefined for sequences and encapsulated data)
//   value  DCMTK's text: "[a\b]" for strings, "1\2" for numbers, "01\ff" for OB/UN,
//          "0001\fffe" for OW, "(0010,0020)" for AT, "#=3" for sequences (item count),
//          "(no value available)" when empty, "(not loaded)" for a value not read.
//
// Deliberate normalisations (documented in docs/reader.md):
//   - dcmdump's floating point printer is its own (e.g. it prints the double 1.234e-05 as
//     1.2340000000000004e-05), so FL/OF/FD/OD values are compared numerically with a relative
//     tolerance instead of as text;
//   - `+U8` makes dcmdump replace or insert (0008,0005) ISO_IR 192 at the top level; in UTF-8
//     mode the top-level (0008,0005) row is dropped from both sides (compare it in raw mode);
//   - item and delimitation lines are not rows; a sequence row carries its item count.

import { spawnSync } from "node:child_process";
import { type DataSet, type DicomElement } from "../lib/dicom/dataset.ts";
import { STRING_VRS } from "../lib/dicom/vr.ts";
import { formatTag } from "../lib/dicom/tag.ts";

export interface DumpRow {
  path: string;
  vr: string;
  length?: number;
  value: string;
}

export interface Dump {
  meta: DumpRow[];
  dataset: DumpRow[];
  /** dcmdump's "# Used TransferSyntax:" line for the data set. */
  transferSyntax: string;
  /** Warnings and errors dcmdump wrote to stderr. */
  stderr: string;
}

export interface DumpOptions {
  /** Convert text to UTF-8 with `+U8` (Specific Character Set decoding by DCMTK). */
  utf8?: boolean;
  /** Don't load values over 4 KiB (`-M`): they become "(not loaded)" rows. */
  loadShort?: boolean;
  /** Extra dcmdump arguments (e.g. `-f` to read a bare data set, `-ti` …). */
  args?: string[];
}

const ROW = /^( *)\(([0-9a-fA-F]{4}),([0-9a-fA-F]{4})\) ([A-Za-z?]{2}) (.*?) *# *(u\/l|\d+), *\d+ [^\n]*$/s;

/** Runs `dcmdump +L -Un` on a file and parses what it prints. Throws when dcmdump fails. */
export function runDcmdump(file: string, opts: DumpOptions = {}): Dump {
  const args = ["+L", "-Un", ...(opts.utf8 ? ["+U8"] : []), ...(opts.loadShort ? ["-M"] : []), ...(opts.args ?? []), file];
  const r = spawnSync("dcmdump", args, { maxBuffer: 1 << 30, timeout: 60_000 });
  if (r.error) throw new Error(`Cannot run dcmdump on "${file}": ${r.error.message}`);
  const stderr = new TextDecoder("latin1").decode(r.stderr);
  if (r.status !== 0) throw new Error(`dcmdump failed on "${file}" (exit ${r.status}): ${stderr.trim()}`);
  // Without +U8 dcmdump prints the value bytes as they are: decode 1:1 so bytes stay comparable.
  const text = opts.utf8 ? new TextDecoder("utf-8").decode(r.stdout) : latin1(r.stdout);
  const dump = parseDcmdump(text);
  dump.stderr = stderr;
  if (opts.utf8) dump.dataset = dump.dataset.filter((row) => row.path !== "(0008,0005)");
  return dump;
}

/**
 * Runs one dcmdump (`+F`) over many files, so process start-up doesn't dominate; returns each
 * file's dump by the path given. Throws when dcmdump reports an error for any of them.
 */
export function runDcmdumpMany(files: string[], opts: DumpOptions & { allowFailures?: boolean } = {}): Map<string, Dump> {
  const out = new Map<string, Dump>();
  for (let start = 0; start < files.length; start += 200) {
    const batch = files.slice(start, start + 200);
    const args = ["+F", "+L", "-Un", ...(opts.utf8 ? ["+U8"] : []), ...(opts.loadShort ? ["-M"] : []), ...(opts.args ?? []), ...batch];
    const r = spawnSync("dcmdump", args, { maxBuffer: 1 << 30, timeout: 120_000 });
    if (r.error) throw new Error(`Cannot run dcmdump: ${r.error.message}`);
    const stderr = new TextDecoder("latin1").decode(r.stderr);
    if (r.status !== 0 && !opts.allowFailures) throw new Error(`dcmdump failed (exit ${r.status}): ${stderr.trim()}`);
    const text = opts.utf8 ? new TextDecoder("utf-8").decode(r.stdout) : latin1(r.stdout);
    const parts = text.split(/^# dcmdump \(\d+\/\d+\): /m).slice(1);
    if (parts.length !== batch.length) throw new Error(`dcmdump printed ${parts.length} dumps for ${batch.length} files`);
    parts.forEach((part, i) => {
      // A file dcmdump cannot read gets its header line and nothing else (-E, the default).
      if (!part.includes("# Dicom-Data-Set") && !part.includes("# Dicom-Dataset")) return;
      const dump = parseDcmdump(part.slice(part.indexOf("\n") + 1));
      if (opts.utf8) dump.dataset = dump.dataset.filter((row) => row.path !== "(0008,0005)");
      out.set(batch[i], dump);
    });
  }
  return out;
}

/** Parses dcmdump's indented output (`-T` default, `+L`) into rows. */
export function parseDcmdump(text: string): Dump {
  const dump: Dump = { meta: [], dataset: [], transferSyntax: "", stderr: "" };
  let section: DumpRow[] = dump.dataset;
  // Path stack: one entry per indentation level: [tag of the sequence, item index].
  const stack: { tag: string; item: number }[] = [];
  let pending = "";
  for (const rawLine of text.split("\n")) {
    if (pending === "") {
      if (rawLine.startsWith("# Dicom-Meta-Information-Header")) { section = dump.meta; continue; }
      if (rawLine.startsWith("# Dicom-Data-Set")) { section = dump.dataset; stack.length = 0; continue; }
      const ts = /^# Used TransferSyntax: (.*)$/.exec(rawLine);
      if (ts) { if (section === dump.dataset) dump.transferSyntax = ts[1]; continue; }
      if (rawLine.startsWith("#") || rawLine.trim() === "") continue;
    }
    // A value with a line break continues on the next line; the "# length, vm" comment ends it.
    const line = pending === "" ? rawLine : pending + "\n" + rawLine;
    const m = ROW.exec(line);
    if (!m) {
      pending = line;
      continue;
    }
    pending = "";
    const depth = m[1].length / 2;
    const tag = `(${m[2]},${m[3]})`.toUpperCase();
    // dcmdump's "??": an implicit VR element not in its dictionary; "ox" and "lt": an implicit VR
    // element whose dictionary VR is OB|OW or OW|LT, which DCMTK writes as OB and OW once converted.
    const vr = m[4] === "??" ? "UN" : m[4] === "ox" ? "OB" : m[4] === "lt" ? "OW" : m[4];
    const value = m[5];
    const len = m[6];
    if (tag === "(FFFE,E00D)" || tag === "(FFFE,E0DD)") continue;
    stack.length = Math.min(stack.length, Math.ceil(depth / 2) + (depth % 2 === 1 ? 0 : 0));
    if (tag === "(FFFE,E000)") {
      // An item of the sequence (or pixel sequence) one level up.
      const seq = stack[(depth - 1) >> 1];
      if (!seq) throw new Error(`dcmdump output: item without a sequence: ${line}`);
      seq.item++;
      if (vr === "pi") {
        // A fragment of encapsulated pixel data: a row of its own.
        section.push({ path: `${pathOf(stack, depth >> 1)}${seq.tag}[${seq.item}]`, vr: "pi", length: Number(len), value: value === "(no value available)" ? value : value });
      }
      continue;
    }
    const level = depth >> 1;
    stack.length = level;
    const path = pathOf(stack, level) + tag;
    if (vr === "SQ" || value.startsWith("(PixelSequence")) {
      const count = /#=(\d+)/.exec(value);
      section.push({ path, vr, value: `#=${count ? count[1] : "?"}` });
      stack.push({ tag, item: -1 });
      continue;
    }
    section.push({ path, vr, length: len === "u/l" ? undefined : Number(len), value: normaliseValue(vr, value) });
  }
  return dump;
}

function pathOf(stack: { tag: string; item: number }[], level: number): string {
  let p = "";
  for (let i = 0; i < level; i++) p += `${stack[i].tag}[${stack[i].item}]/`;
  return p;
}

function normaliseValue(vr: string, value: string): string {
  if (vr === "AT") return value.toUpperCase();
  if (vr === "UI" && value.startsWith("=")) return `[${value.slice(1)}]`; // -Un should prevent this
  return value;
}

function latin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  }
  return s;
}

export interface RowOptions {
  /** Decode text with the data set's Specific Character Set (compare with `runDcmdump(…, {utf8: true})`). */
  utf8?: boolean;
}

/** The rows of a data set read by lib/dicom, formatted as dcmdump prints them. */
export function rowsOf(ds: DataSet, opts: RowOptions = {}, prefix = ""): DumpRow[] {
  const rows: DumpRow[] = [];
  for (const el of ds.sorted()) {
    // `+U8` replaces the top-level character set with its own ISO_IR 192 (or adds it): not compared.
    if (opts.utf8 && prefix === "" && el.tag === 0x00080005) continue;
    const path = prefix + formatTag(el.tag);
    if (el.items && !(el.vr === "UN" && el.value)) { // a UN sequence with its bytes kept prints as UN
      rows.push({ path, vr: "SQ", value: `#=${el.items.length}` });
      el.items.forEach((item, i) => rows.push(...rowsOf(item, opts, `${path}[${i}]/`)));
      continue;
    }
    if (el.fragments) {
      // dcmdump shows a pixel sequence as OB whatever the file says (PS3.5 A.4 makes it OB).
      rows.push({ path, vr: "OB", value: `#=${el.fragments.length}` });
      el.fragments.forEach((f, i) => rows.push({ path: `${path}[${i}]`, vr: "pi", length: f.length, value: f.length ? hex(f, 1) : "(no value available)" }));
      continue;
    }
    rows.push({ path, vr: el.vr, length: el.length, value: formatValue(el, ds, opts) });
  }
  return rows;
}

function formatValue(el: DicomElement, ds: DataSet, opts: RowOptions): string {
  if (el.skipped) return "(not loaded)";
  const bytes = el.value;
  if (!bytes || bytes.length === 0) return "(no value available)";
  const vr = el.vr;
  if (STRING_VRS.has(vr)) {
    let text = opts.utf8 && ["SH", "LO", "ST", "LT", "PN", "UC", "UT"].includes(vr)
      ? ds.charset.decode(bytes, vr === "PN")
      : latin1(bytes);
    // As DCMTK prints: trailing spaces removed, and for UI trailing NULs (its padding) too.
    text = text.replace(vr === "UI" ? /[\0 ]+$/ : / +$/, "");
    return text === "" ? "(no value available)" : `[${text}]`;
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = ds.littleEndian;
  const out: string[] = [];
  const each = (w: number, f: (o: number) => string) => {
    for (let o = 0; o + w <= bytes.length; o += w) out.push(f(o));
  };
  switch (vr) {
    case "OB": case "UN": return hex(bytes, 1);
    case "OW": each(2, (o) => dv.getUint16(o, le).toString(16).padStart(4, "0")); break;
    case "US": each(2, (o) => String(dv.getUint16(o, le))); break;
    case "SS": each(2, (o) => String(dv.getInt16(o, le))); break;
    case "UL": case "OL": each(4, (o) => String(dv.getUint32(o, le))); break;
    case "SL": each(4, (o) => String(dv.getInt32(o, le))); break;
    case "SV": each(8, (o) => String(dv.getBigInt64(o, le))); break;
    case "UV": case "OV": each(8, (o) => String(dv.getBigUint64(o, le))); break;
    case "FL": case "OF": each(4, (o) => String(dv.getFloat32(o, le))); break;
    case "FD": case "OD": each(8, (o) => String(dv.getFloat64(o, le))); break;
    case "AT": each(4, (o) => formatTag(((dv.getUint16(o, le) << 16) | dv.getUint16(o + 2, le)) >>> 0)); break;
    default: return hex(bytes, 1);
  }
  return out.join("\\");
}

function hex(bytes: Uint8Array, _w: number): string {
  const parts: string[] = new Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) parts[i] = bytes[i].toString(16).padStart(2, "0");
  return parts.join("\\");
}

const FLOAT_VRS = new Set(["FL", "OF", "FD", "OD"]);

/** Differences between two row lists (ours first), as readable lines; empty when they agree. */
export function compareRows(ours: DumpRow[], theirs: DumpRow[], opts: { ignoreLengths?: boolean } = {}): string[] {
  const diffs: string[] = [];
  const byPath = new Map(theirs.map((r) => [r.path, r]));
  const seen = new Set<string>();
  // Rows under a value one side did not load (fragments of skipped pixel data) are not compared.
  const notLoaded = [...ours, ...theirs].filter((r) => r.value === "(not loaded)").map((r) => r.path + "[");
  const underNotLoaded = (p: string) => notLoaded.some((n) => p.startsWith(n));
  for (const o of ours) {
    seen.add(o.path);
    const t = byPath.get(o.path);
    if (!t) { diffs.push(`${o.path}: only in ours (${o.vr} ${clip(o.value)})`); continue; }
    if (o.vr !== t.vr) { diffs.push(`${o.path}: VR ${o.vr} vs dcmdump ${t.vr}`); continue; }
    // DCMTK pads an odd-length value by one byte when it loads it (NUL, or a space for text);
    // we keep the value as it was. Compare our value with dcmdump's minus that byte.
    let theirValue = t.value;
    if (o.length !== undefined && t.length === o.length + 1 && o.length % 2 === 1) {
      theirValue = theirValue.replace(/\\00$|\0(?=\]$)/, "");
    } else if (!opts.ignoreLengths && o.length !== undefined && t.length !== undefined && o.length !== t.length) {
      diffs.push(`${o.path}: length ${o.length} vs dcmdump ${t.length}`);
    }
    if (o.value === "(not loaded)" || t.value === "(not loaded)") continue;
    if (FLOAT_VRS.has(o.vr)) {
      if (!floatsAgree(o.value, theirValue, o.vr === "FL" || o.vr === "OF")) diffs.push(`${o.path}: ${clip(o.value)} vs dcmdump ${clip(t.value)}`);
      continue;
    }
    if (o.value !== theirValue) diffs.push(`${o.path}: ${clip(o.value)} vs dcmdump ${clip(t.value)}`);
  }
  for (const t of theirs) if (!seen.has(t.path) && !underNotLoaded(t.path)) diffs.push(`${t.path}: only in dcmdump (${t.vr} ${clip(t.value)})`);
  return diffs;
}

function floatsAgree(a: string, b: string, single: boolean): boolean {
  const xs = a.split("\\"), ys = b.split("\\");
  if (xs.length !== ys.length) return false;
  for (let i = 0; i < xs.length; i++) {
    const x = Number(xs[i]), y = Number(ys[i]);
    if (Number.isNaN(x) || Number.isNaN(y)) { if (xs[i].toLowerCase() !== ys[i].toLowerCase()) return false; continue; }
    if (x === y) continue;
    const tol = single ? 1e-6 : 1e-14;
    if (Math.abs(x - y) > tol * Math.max(Math.abs(x), Math.abs(y))) return false;
  }
  return true;
}

function clip(s: string): string {
  return s.length > 80 ? s.slice(0, 77) + "..." : s;
}

/**
 * Differences between what dcmdump prints for two files (data set and, unless `metaToo` is
 * false, meta information), e.g. an original and its copy, anonymized version or received
 * object. `ignore` drops rows whose path starts with one of the given prefixes
 * ("(0008,0018)", "(0002,"). Empty when the files dump the same.
 */
export function diffFiles(a: string, b: string, opts: { ignore?: string[]; metaToo?: boolean } = {}): string[] {
  const dumps = runDcmdumpMany([a, b]);
  const keep = (rows: DumpRow[]) => rows.filter((r) => !(opts.ignore ?? []).some((p) => r.path.startsWith(p)));
  const da = dumps.get(a)!, db = dumps.get(b)!;
  const diffs = compareRows(keep(da.dataset), keep(db.dataset));
  if (opts.metaToo !== false) diffs.push(...compareRows(keep(da.meta), keep(db.meta)).map((d) => `meta ${d}`));
  return diffs.map((d) => d.replace(/ vs dcmdump /g, " vs ").replace(/only in ours/g, `only in "${a}"`).replace(/only in dcmdump/g, `only in "${b}"`));
}
