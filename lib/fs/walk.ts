import { readdirSync, realpathSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import type { FileRecord } from "../records/types.ts";
import { fsReason } from "./errors.ts";

/** Options for walking a file tree. */
export interface WalkOptions {
  /**
   * File name filter, a glob (`*.dcm`, `RP*.dcm`, `CT.?.dcm`, `*.{dcm,DCM}`, `[Rr]*`). Matched against the file
   * name, or against the path relative to the walked directory when it contains `/` (then `**` spans
   * directories). Case-insensitive, as on the Windows systems the data usually comes from. Files named
   * explicitly are taken whatever the pattern.
   */
  pattern?: string;
}

/** The folder rtexport keeps its own state in (ledger, staging); walks never enter it. */
export const TOOL_FOLDER = ".rtexport";

/** One entry met while walking: a file, or a path that could not be walked and why. */
export type WalkEntry = { path: string; error?: undefined } | { path: string; error: string };

/**
 * Walks files and directories synchronously, depth first, names in code-unit order so the order is
 * the same on every machine. Symbolic links are followed; a directory already visited (a link loop,
 * or two links to one place) is not entered twice, nor is a `.rtexport` folder found on the way
 * (the tool's own ledger and staging). A path that cannot be read becomes an entry with `error` and
 * the walk goes on.
 */
export function* walkEntriesSync(paths: Iterable<string>, opts: WalkOptions = {}): Generator<WalkEntry> {
  const match = opts.pattern ? globMatcher(opts.pattern) : undefined;
  const visited = new Set<string>();
  for (const root of paths) {
    let st;
    try {
      st = statSync(root);
    } catch (e) {
      yield { path: root, error: `Cannot read "${root}": ${fsReason(e)}` };
      continue;
    }
    if (!st.isDirectory()) {
      yield { path: root };
      continue;
    }
    yield* walkDir(root, root, match, visited);
  }
}

function* walkDir(
  dir: string,
  root: string,
  match: ((name: string, rel: string) => boolean) | undefined,
  visited: Set<string>,
): Generator<WalkEntry> {
  let real: string;
  let names: string[];
  try {
    real = realpathSync(dir);
    if (visited.has(real)) return;
    visited.add(real);
    names = readdirSync(dir);
  } catch (e) {
    yield { path: dir, error: `Cannot read directory "${dir}": ${fsReason(e)}` };
    return;
  }
  names.sort(compareCodeUnits);
  for (const name of names) {
    const path = join(dir, name);
    let isDir: boolean;
    try {
      // statSync follows links: a link to a directory is walked, a dangling link is an error.
      const st = statSync(path);
      isDir = st.isDirectory();
      if (!isDir && !st.isFile()) continue; // sockets, FIFOs, devices: nothing to read
    } catch (e) {
      yield { path, error: `Cannot read "${path}": ${fsReason(e)}` };
      continue;
    }
    if (isDir) {
      // The tool's own state (ledger, staging) lives in `.rtexport/` inside its output trees; a
      // walk of such a tree is after the user's files. Named explicitly, the folder is walked.
      if (name === TOOL_FOLDER) continue;
      yield* walkDir(path, root, match, visited);
    } else if (!match || match(name, relative(root, path).split(sep).join("/"))) {
      yield { path };
    }
  }
}

/**
 * Yields the files under the given paths (files named directly are yielded as they are), in a
 * stable sorted order, following symbolic links without looping.
 *
 * @example
 * ```ts
 * for await (const path of walkFiles(["export/"], { pattern: "RP*.dcm" })) console.log(path);
 * ```
 * Paths that cannot be read are passed to `onError` (default: thrown).
 */
export async function* walkFiles(
  paths: Iterable<string> | AsyncIterable<string>,
  opts: WalkOptions & { onError?: (path: string, message: string) => void } = {},
): AsyncGenerator<string> {
  const roots: string[] = [];
  for await (const p of paths) roots.push(p);
  for (const entry of walkEntriesSync(roots, opts)) {
    if (entry.error === undefined) yield entry.path;
    else if (opts.onError) opts.onError(entry.path, entry.error);
    else throw new Error(entry.error);
  }
}

/**
 * `file` records for the files under `paths`, as a stage's input when a command is given paths
 * instead of records. A path that cannot be read (a dangling link, no permission) becomes a
 * record with `error`, so the stage fails that item alone and goes on.
 *
 * @example
 * ```ts
 * for await (const r of pathRecords(["export/"], { pattern: "*.dcm" })) console.log(r.path, r.error ?? "");
 * ```
 */
export async function* pathRecords(paths: Iterable<string>, opts: WalkOptions = {}): AsyncGenerator<FileRecord> {
  for (const entry of walkEntriesSync(paths, opts)) {
    yield entry.error === undefined ? { type: "file", path: entry.path } : { type: "file", path: entry.path, error: entry.error };
  }
}

function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Compiles a glob to a predicate over (file name, path relative to the walk root with `/`).
 * `*` and `?` stay within one path segment, `**` spans segments, `[…]`/`[!…]` are classes,
 * `{a,b}` alternatives. Case-insensitive.
 */
export function globMatcher(pattern: string): (name: string, rel: string) => boolean {
  const re = new RegExp(`^${globToRegExpSource(pattern)}$`, "is");
  if (pattern.includes("/")) return (_name, rel) => re.test(rel);
  return (name) => re.test(name);
}

function globToRegExpSource(glob: string): string {
  let out = "";
  let depth = 0; // inside {…}
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") {
      if (glob[i + 1] === "*") {
        i++;
        if (glob[i + 1] === "/") {
          i++;
          out += "(?:.*/)?";
        } else out += ".*";
      } else out += "[^/]*";
    } else if (c === "?") out += "[^/]";
    else if (c === "[") {
      const close = glob.indexOf("]", i + 2);
      if (close < 0) {
        out += "\\[";
        continue;
      }
      let body = glob.slice(i + 1, close);
      if (body[0] === "!") body = "^" + body.slice(1);
      out += `[${body.replace(/\\/g, "\\\\")}]`;
      i = close;
    } else if (c === "{") {
      depth++;
      out += "(?:";
    } else if (c === "}" && depth > 0) {
      depth--;
      out += ")";
    } else if (c === "," && depth > 0) out += "|";
    else if (c === "\\" && i + 1 < glob.length) {
      out += escapeRegExp(glob[++i]);
    } else out += escapeRegExp(c);
  }
  return out;
}

function escapeRegExp(c: string): string {
  return /[.*+?^${}()|[\]\\/]/.test(c) ? `\\${c}` : c;
}
