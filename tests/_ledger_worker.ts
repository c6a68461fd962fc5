// A ledger worker for tests/ledger_test.ts, run as its own process: joins a job, seeds items
// 0..N-1, claims until the pass is done and prints one JSON line per claimed item.
//   <runtime> tests/_ledger_worker.ts URL JOB N [LEASE_MS] [HOLD]
// With HOLD, the worker stops (without finishing or giving back) after claiming HOLD items, and
// waits to be killed: a worker that dies holding work.
import process from "node:process";
import { Ledger } from "../lib/ledger/ledger.ts";
import { runClaimed } from "../lib/ledger/work.ts";
import type { RtRecord } from "../lib/records/types.ts";

const [url, job, n, leaseMs, hold] = process.argv.slice(2);
const ledger = await Ledger.open(url, "test-worker", { leaseMs: Number(leaseMs ?? 60_000) });
async function* input(): AsyncGenerator<RtRecord> {
  for (let i = 0; i < Number(n); i++) yield { type: "patient", patientId: `P${i}` };
}
let claimed = 0;
const out = runClaimed(input(), {
  itemOf: (r) => ({ key: `patient|${r.patientId}`, patientId: String(r.patientId) }),
  async *work(records, { item }) {
    claimed++;
    process.stdout.write(JSON.stringify({ key: item.key, pid: process.pid, attempts: item.attempts, reclaimedFrom: item.reclaimedFrom ?? null }) + "\n");
    if (hold && claimed >= Number(hold)) await new Promise(() => setInterval(() => {}, 1000)); // hangs here, holding the item, until killed
    await new Promise((r) => setTimeout(r, 5));
    yield* records;
  },
  outcome: () => ({ status: "done", files: 1, bytes: 100 }),
}, { ledger, job, workers: hold ? 1 : 2 });
for await (const _ of out) { /* records are not needed */ }
await ledger.finish("ok");
await ledger.close();
