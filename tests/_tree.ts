// Comparing output trees and ledgers in tests: relative path → sha256, and a ledger's item rows.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { connectDatabase } from "../lib/sql/connect.ts";

/** Every file under `root` (the tool's own `.rtexport/` left out): relative path → sha256. */
export function treeHashes(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        if (e.name !== ".rtexport") walk(p);
      } else out.set(relative(root, p), createHash("sha256").update(readFileSync(p)).digest("hex"));
    }
  };
  walk(root);
  return out;
}

/** Same relative paths with the same hashes; on a difference, names the first few. */
export function assertSameTree(actual: string, expected: string): void {
  const a = treeHashes(actual), e = treeHashes(expected);
  const missing = [...e.keys()].filter((k) => !a.has(k));
  const extra = [...a.keys()].filter((k) => !e.has(k));
  const differ = [...e.keys()].filter((k) => a.has(k) && a.get(k) !== e.get(k));
  assert.deepEqual({ missing: missing.slice(0, 5), extra: extra.slice(0, 5), differ: differ.slice(0, 5) }, { missing: [], extra: [], differ: [] });
  assert.equal(a.size, e.size);
}

/** The item rows of a ledger (what a run recorded), without the run id and time, in key order. */
export async function ledgerRows(url: string): Promise<Record<string, unknown>[]> {
  // deno-lint-ignore no-explicit-any -- the ledger's rows, read as they are
  const conn = await connectDatabase<any>(url);
  try {
    const rows = await conn.db.selectFrom("rtx_ledger_items")
      .select(["kind", "key", "status", "patient_id", "plan_key", "source", "dest", "bytes", "sha256", "error"])
      .orderBy("kind").orderBy("key").execute();
    return rows.map((r: Record<string, unknown>) => ({ ...r, bytes: r.bytes === null ? null : Number(r.bytes) }));
  } finally {
    await conn.close();
  }
}
