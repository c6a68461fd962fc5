/**
 * Outcomes the ledger database refused (a full disk under an SQLite ledger, a PostgreSQL server
 * gone) are not dropped: they are appended to a journal file, one JSON object per line, beside
 * the ledger when that works and in the system's temporary folder otherwise. The next process
 * that opens the same ledger for writing records them and removes the file; `status` counts them
 * meanwhile. So a failure is never lost because the place failures are written to failed too.
 */
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseDatabaseUrl } from "../sql/url.ts";
import type { LedgerEntry } from "./schema.ts";

/** One line of a journal: an item outcome, or how a run ended. */
export interface JournalLine {
  /** The run that could not write it. */
  runId: string;
  /** When it was journaled (ISO 8601). */
  at: string;
  entry?: LedgerEntry;
  run?: { finishedAt: string; outcome: string };
}

/** A journal file found for a ledger. */
export interface JournalFile {
  path: string;
  runId: string;
  lines: JournalLine[];
}

/** The identity of a ledger in journal names: a hash of its resolved SQLite path or its URL without password. */
export function ledgerIdentity(url: string): string {
  let id = url;
  try {
    const p = parseDatabaseUrl(url);
    id = p.dialect === "sqlite" ? `sqlite:${resolve(p.path!)}` : p.display;
  } catch { /* the URL as given */ }
  return createHash("sha256").update(id).digest("hex").slice(0, 16);
}

/** Where journals of a ledger go, in order of preference: beside an SQLite ledger, then the temporary folder. */
export function defaultJournalDirs(url: string, extra: string[] = []): string[] {
  const dirs = [...extra];
  try {
    const p = parseDatabaseUrl(url);
    if (p.dialect === "sqlite" && p.path !== ":memory:") dirs.push(dirname(resolve(p.path!)));
  } catch { /* no SQLite folder */ }
  dirs.push(join(tmpdir(), "rtexport-journal"));
  return [...new Set(dirs.map((d) => resolve(d)))];
}

function fileName(identity: string, runId: string): string {
  return `unwritten-${identity}-${runId}.ndjson`;
}

/**
 * Appends lines to the run's journal in the first folder that takes them; returns its path.
 * Throws (naming every folder tried) when none does.
 */
export function appendJournal(dirs: string[], identity: string, runId: string, lines: JournalLine[]): string {
  const text = lines.map((l) => JSON.stringify(l)).join("\n") + "\n";
  const errors: string[] = [];
  for (const dir of dirs) {
    const path = join(dir, fileName(identity, runId));
    const existed = existsSync(path);
    try {
      mkdirSync(dir, { recursive: true });
      appendFileSync(path, text);
      return path;
    } catch (e) {
      errors.push(`"${path}": ${(e as Error).message}`);
      // A full disk may leave the file created but empty: not a journal.
      if (!existed) {
        try {
          if (statSync(path).size === 0) unlinkSync(path);
        } catch { /* not created */ }
      }
    }
  }
  throw new Error(`Cannot write the ledger's journal of unwritten outcomes: ${errors.join("; ")}`);
}

/** Every journal of a ledger in `dirs` (a line that does not parse, from a write cut short, is left out). */
export function readJournals(dirs: string[], identity: string): JournalFile[] {
  const out: JournalFile[] = [];
  const prefix = `unwritten-${identity}-`;
  for (const dir of dirs) {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names.sort()) {
      if (!name.startsWith(prefix) || !name.endsWith(".ndjson")) continue;
      const path = join(dir, name);
      const lines: JournalLine[] = [];
      try {
        for (const line of readFileSync(path, "utf8").split("\n")) {
          if (!line.trim()) continue;
          try {
            lines.push(JSON.parse(line));
          } catch { /* a line cut short by a full disk */ }
        }
      } catch {
        continue;
      }
      if (lines.length) out.push({ path, runId: name.slice(prefix.length, -".ndjson".length), lines });
    }
  }
  return out;
}
