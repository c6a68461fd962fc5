// export-plan and copy-files on one generated clinic, by every route a DICOM object can take:
// the library stage and the command give the same records and ledger rows; copy-files --layout
// seed puts a record where export-plan puts it; and a DICOM object's record says `category:
// "dicom"` and the same identity whether it came from a catalog, a folder or a peer (Orthanc),
// from retrieve, copy-files or serve (stored by DCMTK's storescu).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { generateClinic } from "../lib/fixtures/mod.ts";
import type { ClinicManifest } from "../lib/fixtures/clinic.ts";
import { buildDemoCatalog } from "../lib/catalog/demo.ts";
import { copyFiles } from "../lib/copy/copy_files.ts";
import { objectKind } from "../lib/dicom/rt.ts";
import { exportPlans } from "../lib/export/export.ts";
import { pathRecords } from "../lib/fs/walk.ts";
import { defaultLedgerUrl, Ledger } from "../lib/ledger/ledger.ts";
import type { RtRecord } from "../lib/records/types.ts";
import type { Stage, StageCounts, StageEvent, StageOptions } from "../lib/stage/stage.ts";
import { summaryLine } from "../cli/run_stage.ts";
import { cliCommand, records, sh } from "./_run.ts";
import { dcmtkEnv, freePort, type OrthancPeer, runDcmtk, startOrthanc, startStorescp, waitForPort } from "./_peers.ts";
import { assertSameTree, ledgerRows } from "./_tree.ts";

let dir: string;
let clinic: string;
let manifest: ClinicManifest;
let db: string;
let vault: string;
let orthanc: OrthancPeer;
/** The clinic's DICOM files (every object of every patient). */
let clinicFiles: string[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtx-routes-"));
  clinic = join(dir, "clinic");
  manifest = await generateClinic({ out: clinic, patients: 3, slices: 3, seed: 11 });
  db = join(dir, "catalog.db");
  vault = join(dir, "vault");
  await buildDemoCatalog({ clinic, manifest, catalogPath: db, vault });
  clinicFiles = readdirSync(clinic, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".dcm"))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).sort();
  orthanc = await startOrthanc();
  for (const f of clinicFiles) {
    const r = await fetch(`http://127.0.0.1:${orthanc.httpPort}/instances`, { method: "POST", body: readFileSync(f) });
    assert.equal(r.status, 200, `Orthanc refused ${f}`);
  }
});
after(async () => {
  await orthanc?.stop();
  if (!process.env.RTX_KEEP) rmSync(dir, { recursive: true, force: true });
});

const listing = () => `"\${RT[@]}" list-patients --from catalog --db 'sqlite:${db}' --vault '${vault}'`;
const peerFlags = () => `--host 127.0.0.1 --port ${orthanc.port} --called-aet ${orthanc.aeTitle} --calling-aet RTX`;
const peerSettings = () => ({ host: "127.0.0.1", port: orthanc.port, callingAet: "RTX", calledAet: orthanc.aeTitle });

/**
 * A record as it compares between two runs into two folders: paths inside the output made
 * relative, and the staging file an object was retrieved into (a name of the receiving process)
 * replaced by a mark.
 */
function comparable(r: Record<string, unknown>, out: string): Record<string, unknown> {
  const rel = (p: unknown) => typeof p === "string" && p.startsWith(out + "/") ? relative(out, p) : p;
  const staged = (p: unknown) => typeof p === "string" && /\.rtexport\/staging-[^/]+\//.test(p) ? "<staging>" : rel(p);
  const copy = r.copy && typeof r.copy === "object" ? { ...r.copy as Record<string, unknown> } : r.copy;
  if (copy && typeof copy === "object") for (const k of ["from", "to"]) if (k in copy) (copy as Record<string, unknown>)[k] = rel((copy as Record<string, unknown>)[k]);
  return { ...r, path: rel(r.path), ...("source" in r ? { source: staged(r.source) } : {}), ...(copy !== undefined ? { copy } : {}) };
}

/** Ledger rows as they compare between two output folders (staging names replaced, as above). */
async function comparableLedger(out: string): Promise<Record<string, unknown>[]> {
  return (await ledgerRows(defaultLedgerUrl(out))).map((r) => ({ ...r, source: typeof r.source === "string" && /\.rtexport\/staging-[^/]+\//.test(r.source) ? "<staging>" : r.source }));
}

/** Runs a stage as a library user does: its own ledger in the output folder, events collected. */
async function runLibrary<O extends StageOptions>(stage: Stage<O>, input: AsyncIterable<RtRecord>, options: Omit<O, keyof StageOptions>, out: string, command: string) {
  const ledger = await Ledger.open(defaultLedgerUrl(out), command);
  const events: StageEvent[] = [];
  const out_: RtRecord[] = [];
  try {
    for await (const r of stage(input, { ...options, ledger, onEvent: (e: StageEvent) => events.push(e) } as unknown as O)) out_.push(r);
    await ledger.finish("ok");
  } finally {
    await ledger.close();
  }
  const finished = events.find((e) => e.type === "finished") as { counts: StageCounts } | undefined;
  assert.ok(finished, "the stage sends finished");
  return { records: out_, counts: finished.counts };
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

async function* fromArray(rs: RtRecord[]): AsyncGenerator<RtRecord> {
  yield* rs;
}

describe("the library stage and the command give the same records and ledger rows", () => {
  test("export-plan: catalog and vault, DICOM from Orthanc by C-GET", async () => {
    const listed = await sh(listing());
    assert.equal(listed.status, 0, listed.stderr);
    const viaCli = join(dir, "export-cli");
    const cli = await sh(`"\${RT[@]}" export-plan ${peerFlags()} --get --out '${viaCli}'`, { input: listed.stdout });
    assert.equal(cli.status, 0, cli.stderr);
    const viaLib = join(dir, "export-lib");
    const lib = await runLibrary(exportPlans, fromArray(records(listed.stdout) as RtRecord[]), {
      out: viaLib, peer: peerSettings(), retrieve: { mode: "get" },
    }, viaLib, "export-plan");
    const files = lib.records.filter((r) => r.type === "file");
    assert.ok(files.length > 100 && files.some((r) => r.staged === undefined && typeof r.source === "string" && /staging-/.test(r.source)));
    assert.deepEqual(lib.records.map((r) => comparable(r, viaLib)), records(cli.stdout).map((r) => comparable(r, viaCli)));
    assert.deepEqual(await comparableLedger(viaLib), await comparableLedger(viaCli));
    assertSameTree(viaLib, viaCli);
    assert.match(cli.stderr, new RegExp(`${escape(summaryLine(lib.counts, "files"))} \\(`));
    // The stage closed what it opened: the staging folder of the retrieval is gone.
    assert.deepEqual(readdirSync(join(viaLib, ".rtexport")).filter((n) => n.startsWith("staging-")), []);
  });

  test("copy-files: the clinic's files and one that is not DICOM, seed layout", async () => {
    const extra = join(dir, "notes");
    writeFileSync(join(dir, "notes"), "not a DICOM file\n");
    const viaCli = join(dir, "copy-cli");
    const cli = await sh(`"\${RT[@]}" copy-files --to '${viaCli}' '${clinic}' '${extra}'`);
    assert.equal(cli.status, 0, cli.stderr);
    const viaLib = join(dir, "copy-lib");
    const lib = await runLibrary(copyFiles, pathRecords([clinic, extra]), { to: viaLib }, viaLib, "copy-files");
    assert.deepEqual(lib.records.map((r) => comparable(r, viaLib)), records(cli.stdout).map((r) => comparable(r, viaCli)));
    assert.deepEqual(await comparableLedger(viaLib), await comparableLedger(viaCli));
    assertSameTree(viaLib, viaCli);
    assert.match(cli.stderr, new RegExp(`${escape(summaryLine(lib.counts, "files"))} \\(`));
    // What is not DICOM is filed under the documented folder, and says nothing it does not know.
    const notes = lib.records.find((r) => r.copy && (r.copy as { from: string }).from === extra)!;
    assert.equal(relative(viaLib, String(notes.path)), join("Not_DICOM", "notes"));
    assert.equal(notes.category, undefined);
  });
});

describe("copy-files --layout seed puts a record where export-plan puts it", () => {
  test("export-plan's records without dest, from a folder and from a catalog, land on their dest", async () => {
    for (const [name, list] of [["folder", `"\${RT[@]}" list-patients --from folder --include-unapproved '${clinic}'`], ["catalog", `${listing()} --include-unapproved`]]) {
      const exported = join(dir, `seed-export-${name}`);
      const full = await sh(`${list} | "\${RT[@]}" export-plan --include-unapproved --out '${exported}'`);
      assert.equal(full.status, 0, full.stderr);
      const resolved = await sh(`${list} | "\${RT[@]}" export-plan --include-unapproved`);
      assert.equal(resolved.status, 0, resolved.stderr);
      const dicom = records(resolved.stdout).filter((r) => r.type === "file" && r.category === "dicom");
      assert.ok(dicom.length > 40);
      const input = dicom.map(({ dest: _dest, ...r }) => JSON.stringify(r)).join("\n") + "\n";
      const copied = join(dir, `seed-copy-${name}`);
      const c = await sh(`"\${RT[@]}" copy-files --layout seed --to '${copied}'`, { input });
      assert.equal(c.status, 0, c.stderr);
      const got = records(c.stdout).map((r) => relative(copied, r.path));
      assert.deepEqual(got, dicom.map((r) => r.dest), `${name}: copy-files --layout seed path = export-plan dest`);
      if (name === "folder") assertSameTree(copied, exported);
    }
  });

  test("files given by path: images and plans where export-plan puts them; RT objects no record ties to a plan with the patient", async () => {
    const byPath = join(dir, "seed-paths");
    const c = await sh(`"\${RT[@]}" copy-files --layout seed --to '${byPath}' '${clinic}'`);
    assert.equal(c.status, 0, c.stderr);
    const exportRecords = (await sh(`"\${RT[@]}" list-patients --from folder --include-unapproved '${clinic}' | "\${RT[@]}" export-plan --include-unapproved`)).stdout;
    const destOf = new Map<string, string>();
    for (const r of records(exportRecords)) if (r.type === "file") destOf.set(r.sopInstanceUid, r.dest);
    const all = records(c.stdout);
    // The clinic's manifest is not DICOM: filed under the documented folder, not guessed into a patient.
    assert.deepEqual(all.filter((r) => r.category !== "dicom").map((r) => relative(byPath, r.path)), [join("Not_DICOM", "manifest.json")]);
    const copied = all.filter((r) => r.category === "dicom");
    assert.equal(copied.length, clinicFiles.length);
    let same = 0;
    for (const r of copied) {
      const got = relative(byPath, r.path);
      const dest = destOf.get(r.sopInstanceUid)!;
      const kind = objectKind(r.sopClassUid, r.modality);
      if (kind === "image" || kind === "plan") {
        assert.equal(got, dest, `${r.modality} ${r.sopInstanceUid}`);
        same++;
      } else {
        assert.equal(got, `${dest.split("/")[0]}/DICOM/${r.modality}_${r.seriesUid}/${r.sopInstanceUid}.dcm`);
      }
    }
    const plans = manifest.patients.reduce((n, p) => n + p.plans.length, 0);
    assert.ok(same > plans && same < copied.length, `${same} of ${copied.length} compared with export-plan's path`);
  });
});

describe("a DICOM object's record has category dicom and the same identity on every route", () => {
  const identity = (r: Record<string, unknown>) => ({
    category: r.category, sopClassUid: r.sopClassUid, sopInstanceUid: r.sopInstanceUid, modality: r.modality, studyUid: r.studyUid, seriesUid: r.seriesUid,
  });

  test("catalog, folder and peer sources, copy-files, retrieve and serve", async () => {
    const routes = new Map<string, Record<string, unknown>[]>();
    const files = (stdout: string) => records(stdout).filter((r) => r.type === "file");
    const catalog = await sh(`${listing()} | "\${RT[@]}" export-plan --out '${join(dir, "cat-route")}'`);
    assert.equal(catalog.status, 0, catalog.stderr);
    const catalogFiles = files(catalog.stdout);
    // Files that are not DICOM keep the catalog's category.
    assert.deepEqual([...new Set(catalogFiles.filter((r) => !r.sopInstanceUid).map((r) => r.category))].sort(), ["document", "fraction-file", "live-image", "log", "photo", "plan-file", "screenshot"]);
    routes.set("export-plan (catalog)", catalogFiles.filter((r) => r.sopInstanceUid));
    const folder = await sh(`"\${RT[@]}" list-patients --from folder '${clinic}' | "\${RT[@]}" export-plan`);
    assert.equal(folder.status, 0, folder.stderr);
    routes.set("export-plan (folder, no --out)", files(folder.stdout));
    const peer = await sh(`${listing()} | "\${RT[@]}" export-plan ${peerFlags()} --get --out '${join(dir, "peer-route")}'`);
    assert.equal(peer.status, 0, peer.stderr);
    routes.set("export-plan (peer)", files(peer.stdout).filter((r) => r.sopInstanceUid));
    const copy = await sh(`"\${RT[@]}" copy-files --layout series --to '${join(dir, "copy-route")}' '${clinic}'`);
    assert.equal(copy.status, 0, copy.stderr);
    routes.set("copy-files (paths)", files(copy.stdout).filter((r) => !String(r.path).endsWith("manifest.json")));
    const p = manifest.patients[0];
    const retrieved = await sh(`"\${RT[@]}" retrieve ${peerFlags()} --get --patient-id ${p.patientId} --plan '${p.plans[0].label}' --out '${join(dir, "retrieve-route")}'`);
    assert.equal(retrieved.status, 0, retrieved.stderr);
    routes.set("retrieve", files(retrieved.stdout));
    routes.set("serve", await storedByServe(clinicFiles.filter((_, i) => i % 3 === 0)));

    const seen = new Map<string, { route: string; id: Record<string, unknown> }>();
    for (const [route, rs] of routes) {
      assert.ok(rs.length > 0, `${route} gave file records`);
      for (const r of rs) {
        const id = identity(r);
        assert.equal(id.category, "dicom", `${route}: ${r.path}`);
        const first = seen.get(String(r.sopInstanceUid));
        if (first) assert.deepEqual(id, first.id, `${r.sopInstanceUid}: ${route} and ${first.route} disagree`);
        else seen.set(String(r.sopInstanceUid), { route, id });
      }
    }
    assert.equal(seen.size, clinicFiles.length, "every object was seen");
  });
});

test("export-plan | push: every object export-plan found reaches DCMTK's storescp", async () => {
  const storescp = await startStorescp();
  try {
    const r = await sh(`"\${RT[@]}" list-patients --from folder --include-unapproved '${clinic}' | "\${RT[@]}" export-plan --include-unapproved | "\${RT[@]}" push --host 127.0.0.1 --port ${storescp.port} --called-aet ${storescp.aeTitle}`);
    assert.equal(r.status, 0, r.stderr);
    // storescp names what it receives <Modality>.<SOPInstanceUID>
    const stored = new Set(readdirSync(storescp.outDir).map((n) => n.slice(n.indexOf(".") + 1)));
    assert.equal(stored.size, clinicFiles.length);
  } finally {
    await storescp.stop();
  }
});

/** Starts `serve`, stores `paths` into it with DCMTK's storescu, and returns the file records it wrote. */
async function storedByServe(paths: string[]): Promise<Record<string, unknown>[]> {
  const port = await freePort();
  const [cmd, ...args] = cliCommand();
  const proc = spawn(cmd, [...args, "serve", "--dir", join(dir, "served"), "--port", String(port), "--host", "127.0.0.1", "--aet", "RTSERVE", "--allow", "STORESCU@127.0.0.1"], {
    env: { ...process.env, ...dcmtkEnv() }, stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  proc.stdout!.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  try {
    await waitForPort(port, "127.0.0.1", 30_000, proc);
    const store = await runDcmtk("storescu", ["-aet", "STORESCU", "-aec", "RTSERVE", "127.0.0.1", String(port), ...paths]);
    assert.equal(store.code, 0, store.stderr + store.stdout);
    const deadline = Date.now() + 20_000;
    while (records(stdout).length < paths.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  } finally {
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGTERM");
    await exited;
  }
  const rs = records(stdout).filter((r) => r.type === "file");
  assert.equal(rs.length, paths.length);
  return rs;
}
