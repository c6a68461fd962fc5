/**
 * `rtexport ui` end to end in a real headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core): sources in rtexport.json with "test connection" against DCMTK storescp and a
 * closed port, the patient list builder on the demo catalog (two patients and one unapproved plan
 * with its authorization) exported by a job and compared with the CLI's tree, the generated sh and
 * zx scripts run and the .bat read, the hand-off file out and in, the command builder against the
 * definitions, a job on a PostgreSQL catalog that hangs on one patient, cancelled, killed and
 * retried, the RT tree and search statistics, a second browser after a server restart, the token
 * (401 off loopback), and no patient data in the server's log.
 *
 * Screenshots of each screen go to the test's folder, or to docs/images/ with RTX_UI_SCREENSHOTS=1
 * (how docs/ui.md's are made).
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { request as httpRequest } from "node:http";
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { Buffer } from "node:buffer";
import process from "node:process";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { buildDemoCatalog } from "../lib/catalog/demo.ts";
import { generateClinic } from "../lib/fixtures/mod.ts";
import type { ClinicManifest } from "../lib/fixtures/clinic.ts";
import { cliCommand, records, root, sh } from "./_run.ts";
import { assertSameTree, ledgerRows } from "./_tree.ts";
import { startStorescp, type StorescpPeer } from "./_peers.ts";
import { startPostgres, type PostgresServer } from "./_postgres.ts";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = process.env.RTX_UI_SCREENSHOTS ? join(root, "docs", "images") : undefined;

interface UiProcess {
  proc: ChildProcess;
  url: string;
  openUrl: string;
  token: string;
  port: number;
  stderr(): string;
  stop(): Promise<number | null>;
}

function childEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("RTEXPORT_")) env[k] = v;
  return { ...env, NO_COLOR: "1", TCP_NODELAY: "1" };
}

/** Starts `rtexport ui` in `cwd` and waits for its `ui` record. */
function startUi(cwd: string, args: string[] = []): Promise<UiProcess> {
  const [cmd, ...pre] = cliCommand();
  const proc = spawn(cmd, [...pre, "ui", "--port", "0", ...args], { cwd, env: childEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let out = "", err = "";
  proc.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`rtexport ui did not start: ${err}`)), 60_000);
    proc.on("exit", (code) => reject(new Error(`rtexport ui exited (${code}): ${err}`)));
    proc.stdout!.setEncoding("utf8").on("data", (d: string) => {
      out += d;
      const line = out.split("\n").find((l) => l.includes('"type":"ui"'));
      if (!line) return;
      clearTimeout(timer);
      const rec = JSON.parse(line);
      resolve({
        proc, url: rec.url, openUrl: rec.openUrl, port: rec.port, token: new URL(rec.openUrl).searchParams.get("token")!,
        stderr: () => err,
        stop: () =>
          new Promise((done) => {
            // Ended already (under Deno a process killed by a signal keeps exitCode null).
            if (proc.exitCode !== null || proc.signalCode !== null) return done(proc.exitCode);
            proc.once("exit", (code) => done(code));
            // process.kill, not proc.kill: Deno's ChildProcess reports a child it signalled as
            // killed (exit code null) even when the child handled the signal and exited 0.
            process.kill(proc.pid!, "SIGTERM");
          }),
      });
    });
  });
}

/** An HTTP request with exactly these headers (fetch will not send another Host); resolves to the status. */
function rawStatus(url: string, method: string, headers: Record<string, string>, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    // Node sends a DELETE's body without a length unless told it.
    const length: Record<string, string> = body === undefined ? {} : { "Content-Length": String(Buffer.byteLength(body)) };
    const req = httpRequest(url, { method, headers: { ...headers, ...length }, setHost: !("Host" in headers) }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode!));
    });
    req.on("error", reject);
    req.end(body);
  });
}

function launchBrowser(dir: string): Promise<BrowserContext> {
  return chromium.launchPersistentContext(mkdtempSync(join(dir, "chromium-")), {
    executablePath: CHROMIUM,
    headless: true,
    acceptDownloads: true,
    viewport: { width: 1280, height: 860 },
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    ],
  });
}

let dir: string;
let manifest: ClinicManifest;
let db: string;
let vault: string;
let pg: PostgresServer;
let storescp: StorescpPeer;
let refusing: StorescpPeer;
let ui: UiProcess;
let browser: BrowserContext;
let page: Page;
const serverLogs: string[] = [];
/** The CLI's export of the first selection, to compare trees with. */
let cliOut: string;
let uiOut: string;
let firstJob = "";
let firstTotals = { plans: "", files: "" };

const A = "RTX0001", B = "RTX0002", U = "RTX0001-P2"; // U: RTX0001's UNAPPROVED plan
const AUTHORIZER = "Dr. Jane Roe";

async function shot(name: string): Promise<void> {
  const where = SHOTS ?? join(dir, "shots");
  mkdirSync(where, { recursive: true });
  // The status line sticks to the bottom of the window; on a full-page picture it would cover the middle.
  await page.evaluate(`document.querySelector("footer").style.position = "static"`);
  await page.screenshot({ path: join(where, `ui-${name}.png`), fullPage: true });
  await page.evaluate(`document.querySelector("footer").style.position = ""`);
}

/** `list-patients` records for some patients, trimmed to the plans wanted (what the CLI user would pipe). */
async function selectionRecords(catalogUrl: string, plansOf: Record<string, string[] | "approved">): Promise<string> {
  const ids = Object.keys(plansOf);
  const r = await sh(`"\${RT[@]}" list-patients --from catalog --db '${catalogUrl}' --vault '${vault}' --include-unapproved ${ids.map((i) => `--patient ${i}`).join(" ")}`);
  assert.equal(r.status, 0, r.stderr);
  const recs = records(r.stdout);
  const out: Record<string, unknown>[] = [];
  for (const id of ids) {
    const want = plansOf[id];
    const plans = recs.filter((x) => x.type === "plan" && x.patientId === id && (want === "approved" ? x.approval === "APPROVED" : want.includes(x.planId)));
    out.push({ ...recs.find((x) => x.type === "patient" && x.patientId === id)!, plans: plans.length }, ...plans);
  }
  return out.map((x) => JSON.stringify(x)).join("\n") + "\n";
}

async function jobSnapshot(id: string): Promise<Record<string, unknown> & { runs: { pid?: number }[] }> {
  const r = await fetch(`${ui.url}api/jobs/${id}`, { headers: { Authorization: `Bearer ${ui.token}` } });
  assert.equal(r.status, 200);
  return await r.json();
}

async function waitJob(id: string, state: string, timeout = 90_000): Promise<void> {
  await page.waitForSelector(`body[data-job="${id}"][data-job-state="${state}"]`, { timeout });
}

/**
 * Polls `check` from here (page.waitForFunction with a string would evaluate it in the page, which
 * the UI's Content-Security-Policy refuses, as it should).
 */
async function waitUntil(check: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until screen `tab` is shown and its tab has the keyboard focus. */
async function waitFocus(tab: string): Promise<void> {
  await waitUntil(async () => page.url().endsWith(`#${tab}`) && (await page.locator(`#tab-${tab}:focus`).count()) === 1, `the ${tab} tab focused`);
}

function currentJob(): string {
  const m = /#jobs\/([0-9a-f]{12})/.exec(page.url());
  assert.ok(m, `not on a job's dashboard: ${page.url()}`);
  return m[1];
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "rtx-ui-"));
  manifest = await generateClinic({ out: join(dir, "clinic"), patients: 5, slices: 6, seed: 7 });
  db = join(dir, "catalog.db");
  vault = join(dir, "vault");
  await buildDemoCatalog({ clinic: join(dir, "clinic"), manifest, catalogPath: db, vault });
  // The same catalog in PostgreSQL, where reading a patient's files waits while that patient is in
  // `hang` (a catalog server that stops answering): a job that hangs mid-way, on purpose.
  pg = await startPostgres();
  pg.psql("create database catalog");
  pg.psql("create database ledger");
  const { connectDatabase } = await import("../lib/sql/connect.ts");
  const { createCatalogTables } = await import("../lib/catalog/catalog.ts");
  // deno-lint-ignore no-explicit-any -- catalog rows copied as they are
  const from = await connectDatabase<any>(`sqlite:${db}`);
  // deno-lint-ignore no-explicit-any -- catalog rows copied as they are
  const to = await connectDatabase<any>(pg.url("catalog"));
  await createCatalogTables(to.db);
  for (const t of ["rtx_patients", "rtx_plans", "rtx_files"]) {
    const rows = await from.db.selectFrom(t).selectAll().execute();
    for (let i = 0; i < rows.length; i += 100) await to.db.insertInto(t).values(rows.slice(i, i + 100)).execute();
  }
  await from.close();
  await to.close();
  pg.psql([
    "create table hang (patient_id text)",
    "create function gate(p text) returns boolean language plpgsql volatile as $$ begin while exists (select 1 from hang where patient_id = p) loop perform pg_sleep(0.1); end loop; return true; end $$",
    "alter table rtx_files rename to rtx_files_data",
    "create view rtx_files as select * from rtx_files_data where gate(patient_id)",
  ].join("; "), "catalog");
  storescp = await startStorescp({ aeTitle: "UI-ECHO" });
  refusing = await startStorescp({ aeTitle: "UI-REFUSE", args: ["--refuse"] });
  // A config file with a key the UI does not know, which it must keep.
  writeFileSync(join(dir, "rtexport.json"), JSON.stringify({ defaults: { callingAet: "UITEST" }, site: { note: "kept by the UI" } }, null, 2));
  ui = await startUi(dir, ["--config", join(dir, "rtexport.json")]);
  browser = await launchBrowser(dir);
  page = await browser.newPage();
  uiOut = join(dir, "ui-export");
  cliOut = join(dir, "cli-export");
});

after(async () => {
  await browser?.close().catch(() => {});
  if (ui) serverLogs.push(ui.stderr());
  await ui?.stop();
  await storescp?.stop();
  await refusing?.stop();
  // Backends still waiting in gate() end once hang is empty.
  try {
    pg?.psql("delete from hang", "catalog");
  } catch {
    // the server is gone already
  }
  pg?.stop();
  if (!process.env.RTX_KEEP) rmSync(dir, { recursive: true, force: true });
});

describe("rtexport ui in Chromium", () => {
  test("ui/_assets.ts is the current build of ui/client (node scripts/gen_ui_assets.ts)", async () => {
    const { uiAssetsSource } = await import("../scripts/gen_ui_assets.ts");
    assert.ok(readFileSync(join(root, "ui", "_assets.ts"), "utf8") === await uiAssetsSource(), "ui/_assets.ts is stale: run node scripts/gen_ui_assets.ts");
  });

  test("sources: catalogs, peers and output folders saved in rtexport.json (unknown keys kept); test connection tells the failures apart", async () => {
    await page.goto(ui.openUrl);
    await page.waitForSelector("body[data-ready=true]");
    assert.doesNotMatch(page.url(), /token=/, "the token leaves the address bar");
    await page.click("#tab-sources");
    const add = async (section: string, name: string, fields: Record<string, string | boolean>) => {
      await page.click(`#form-${section}-details > summary`);
      await page.fill(`#form-${section}-name`, name);
      for (const [k, v] of Object.entries(fields)) {
        if (typeof v === "boolean") await page.setChecked(`#form-${section}-${k}`, v);
        else await page.fill(`#form-${section}-${k}`, v);
      }
      await page.click(`#form-${section}-save`);
      await page.waitForSelector(`[data-probe="${section}/${name}"]`);
    };
    const probe = async (section: string, what: string, name: string) => {
      await page.click(`[aria-label="Test ${what} ${name}"]`);
      const cell = page.locator(`[data-probe="${section}/${name}"]`);
      await cell.locator(".badge").waitFor({ timeout: 30_000 });
      return (await cell.textContent()) ?? "";
    };
    await add("catalogs", "demo", { db: `sqlite:${db}`, vault });
    await add("catalogs", "hospital", { db: pg.url("catalog"), vault });
    await add("catalogs", "missing", { db: `sqlite:${join(dir, "nope.db")}` });
    await add("peers", "pacs", { host: "127.0.0.1", port: String(storescp.port), calledAet: "UI-ECHO" });
    await add("peers", "refusing", { host: "127.0.0.1", port: String(refusing.port), calledAet: "UI-REFUSE" });
    await add("peers", "closed", { host: "127.0.0.1", port: "1", calledAet: "NOBODY" });
    await add("outputs", "export", { path: uiOut });
    // A shared ledger in PostgreSQL, as when several machines work one migration.
    // Its URL holds a password (the server trusts loopback and ignores it): never on a command line.
    await add("outputs", "second", { path: join(dir, "kill-export"), ledger: pg.url("ledger").replace("postgres@", "postgres:s3cret@") });
    assert.match(await probe("catalogs", "catalog", "demo"), /^ok\b.*6 patients, 17 plans; vault found/);
    assert.match(await probe("catalogs", "catalog", "hospital"), /^ok\b.*6 patients/);
    assert.match(await probe("catalogs", "catalog", "missing"), /^not-found\b.*nope\.db/);
    assert.match(await probe("peers", "peer", "pacs"), /^ok\b.*C-ECHO answered/);
    assert.match(await probe("peers", "peer", "refusing"), /^rejected\b/);
    assert.match(await probe("peers", "peer", "closed"), /^refused\b/);
    assert.match(await probe("outputs", "output folder", "export"), /^ok\b.*Will be created/);
    await shot("sources");
    const saved = JSON.parse(readFileSync(join(dir, "rtexport.json"), "utf8"));
    assert.deepEqual(saved.site, { note: "kept by the UI" });
    assert.equal(saved.defaults.callingAet, "UITEST");
    assert.deepEqual(saved.catalogs.demo, { db: `sqlite:${db}`, vault });
    assert.deepEqual(saved.peers.pacs, { host: "127.0.0.1", port: storescp.port, calledAet: "UI-ECHO", tls: false });
    // The CLI reads the file the UI wrote: no warning about the UI's sections, the peer usable by name.
    const echo = await sh(`"\${RT[@]}" echo --peer pacs --json`, { cwd: dir });
    assert.equal(echo.status, 0, echo.stderr);
    assert.doesNotMatch(echo.stderr, /"(catalogs|folders|outputs|peers)"/, "the UI's sections are known to every command");
  });

  test("patient list: two patients and one unapproved plan (authorized), exported by a job; the tree equals the CLI's", async () => {
    await page.click("#tab-patients");
    await page.selectOption("#list-source", "catalog:demo");
    // Phantom patterns (--phantom-pattern) leave patients out, by ID or name.
    await page.fill("#list-phantom-patterns", "RTX0003 *hong*");
    assert.match(await page.textContent("#list-preview") ?? "", /--phantom-pattern RTX0003 --phantom-pattern '\*hong\*'$/);
    await page.click("#list-button");
    await page.waitForSelector('#patient-table[data-source="catalog:demo"]');
    assert.deepEqual(await page.locator("tr.patient th").allTextContents(), ["RTX0001", "RTX0002", "RTX0004"]);
    await page.fill("#list-phantom-patterns", "");
    await page.click("#list-button");
    await waitUntil(async () => (await page.locator("tr.patient").count()) === 5, "5 patients listed");
    await page.check(`input[data-patient="${A}"]:not([data-plan])`);
    await page.check(`input[data-patient="${B}"]:not([data-plan])`);
    await page.check(`input[data-patient="${A}"][data-plan="${U}"]`);
    assert.match(await page.textContent("#selection-summary") ?? "", /2 patient\(s\), 5 plan\(s\) selected \(1 not approved\)/);
    // The approval gate: no start without the ticked authorization and a name.
    assert.equal(await page.isDisabled("#start-export"), true);
    await page.fill("#auth-name", AUTHORIZER);
    assert.equal(await page.isDisabled("#start-export"), true);
    await page.check("#auth-confirm");
    assert.equal(await page.isDisabled("#start-export"), false);
    const preview = await page.textContent("#export-preview") ?? "";
    assert.match(preview, new RegExp(`list-patients --from catalog --db sqlite:${db.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")} .*--patient ${A} --patient ${B} .*--plan ${U}`));
    assert.match(preview, /\| rtexport export-plan --out \S+ --authorized-by 'Dr\. Jane Roe'/);
    await shot("patients");
    await page.click("#start-export");
    await page.waitForURL(/#jobs\/[0-9a-f]{12}$/);
    firstJob = currentJob();
    await waitJob(firstJob, "done");
    for (const row of await page.locator("#progress-table tr.plan").all()) assert.equal(await row.getAttribute("data-state"), "done");
    assert.equal(await page.textContent("#t-plans"), "5 / 5");
    assert.equal(await page.textContent("#t-patients"), "2 / 2");
    firstTotals = { plans: (await page.textContent("#t-plans"))!, files: (await page.textContent("#t-files"))! };
    assert.ok(Number(firstTotals.files) > 20, firstTotals.files);
    assert.match(await page.textContent(`tr.plan[data-plan-key$="|${U}"]`) ?? "", /authorized by Dr\. Jane Roe/);
    await shot("dashboard");
    // The CLI, for the same selection (records trimmed here, --include-unapproved), writes the same tree.
    const input = await selectionRecords(`sqlite:${db}`, { [A]: ["RTX0001-P1", U], [B]: "approved" });
    const cli = await sh(`"\${RT[@]}" export-plan --out '${cliOut}' --include-unapproved`, { input });
    assert.equal(cli.status, 0, cli.stderr);
    assertSameTree(uiOut, cliOut);
    // The authorization is in the ledger, with the name, for the one unapproved plan.
    const auth = (await ledgerRows(`sqlite:${join(uiOut, ".rtexport", "ledger.sqlite")}`)).filter((r) => r.kind === "authorization");
    assert.deepEqual(auth.map((r) => [r.key, r.status, r.patient_id, r.source]), [[`sqlite:${db}|${U}`, "done", A, AUTHORIZER]]);
  });

  test("scripts: the sh and zx scripts export the same tree; the .bat has a step per patient", async () => {
    await page.click("#tab-patients");
    await page.waitForSelector("#script-sh:not([disabled])");
    const rtexport = cliCommand().join(" ");
    await page.click("#script-sh");
    const shText = await page.inputValue("#script-text");
    assert.equal((shText.match(/^\$RTEXPORT list-patients/gm) ?? []).length, 2, shText);
    writeFileSync(join(dir, "export.sh"), shText);
    const shOut = join(dir, "sh-export");
    const ran = await sh(`bash '${join(dir, "export.sh")}'`, { env: { RTEXPORT: rtexport, OUT: shOut } });
    assert.equal(ran.status, 0, ran.stderr);
    assertSameTree(shOut, cliOut);
    await page.click("#script-zx");
    const zxText = await page.inputValue("#script-text");
    writeFileSync(join(dir, "export.mjs"), zxText);
    const zxOut = join(dir, "zx-export");
    const zx = await sh(`'${join(root, "node_modules", ".bin", "zx")}' '${join(dir, "export.mjs")}'`, { env: { RTEXPORT: rtexport, OUT: zxOut } });
    assert.equal(zx.status, 0, zx.stderr);
    assertSameTree(zxOut, cliOut);
    await page.click("#script-bat");
    // A textarea shows CRLF as LF: the downloaded file is what cmd.exe gets.
    const [batDownload] = await Promise.all([page.waitForEvent("download"), page.click("#script-download")]);
    assert.equal(batDownload.suggestedFilename(), "rtexport-export.bat");
    const bat = readFileSync((await batDownload.path())!, "utf8");
    const lines = bat.split("\r\n");
    assert.ok(!/[^\r]\n/.test(bat), "CRLF line ends");
    const steps = lines.filter((l) => l.startsWith("%RTEXPORT% list-patients"));
    assert.deepEqual(steps.map((l) => /--patient (\S+)/.exec(l)?.[1]), [A, B]);
    assert.ok(steps[0].includes(`--plan RTX0001-P1 --plan ${U} --include-unapproved | %RTEXPORT% export-plan --out "%OUT%" --authorized-by "Dr. Jane Roe"`), steps[0]);
    assert.ok(!steps[1].includes("--authorized-by"), "only a step with an unapproved plan carries the authorization");
    assert.ok(lines.includes(`if not defined OUT set "OUT=${uiOut}"`));
    assert.equal(lines.filter((l) => l === "if errorlevel 130 exit /b 130").length, 2);
  });

  test("hand-off file: the selection goes out as JSON; a hand-off in DicomTools' looser form comes in and is ticked", async () => {
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#handoff-export")]);
    const out = JSON.parse(readFileSync((await download.path())!, "utf8"));
    assert.equal(out.format, "rtexport-handoff");
    assert.deepEqual(out.patients.map((p: { patientId: string; plans: { planId: string }[] }) => [p.patientId, p.plans.map((q) => q.planId)]), [
      [A, ["RTX0001-P1", U]],
      [B, ["RTX0002-P1", "RTX0002-P2", "RTX0002-P3"]],
    ]);
    assert.ok(!JSON.stringify(out).includes(manifest.patients[0].nameParts.family!), "no names in a hand-off");
    const file = join(dir, "handoff.json");
    writeFileSync(file, JSON.stringify({ Patients: [{ PatientId: "RTX0004", PlanIds: ["Boost/..:1"] }, { PatientId: "RTX0005" }] }));
    await page.setInputFiles("#handoff-import", file);
    await page.locator("#status-line", { hasText: "Imported" }).waitFor();
    assert.equal(await page.locator("tr.patient").count(), 5, "the hand-off's patients were listed already");
    assert.equal(await page.isChecked(`input[data-patient="${A}"][data-plan="RTX0001-P1"]`), false, "the hand-off replaces the selection");
    assert.equal(await page.isChecked('input[data-patient="RTX0004"][data-plan="RTX0004-P1"]'), true);
    assert.equal(await page.isChecked('input[data-patient="RTX0004"][data-plan="RTX0004-P2"]'), false);
    assert.equal(await page.isChecked('input[data-patient="RTX0005"]:not([data-plan])'), true);
    assert.match(await page.textContent("#selection-summary") ?? "", /2 patient\(s\), 3 plan\(s\) selected$/);
  });

  test("command builder: every option of the definition, a live command line, and a run as a job", async () => {
    await page.click("#tab-commands");
    await page.selectOption("#builder-command", "search");
    const { describeCommand } = await import("../ui/commands.ts");
    const { main } = await import("../commands/search.ts");
    const defined = describeCommand(main).options.map((o) => o.attribute).sort();
    const shown = (await page.locator("[data-option]").evaluateAll((els) => els.map((e) => e.getAttribute("data-option")!))).sort();
    assert.deepEqual(shown, defined);
    await page.fill('textarea[data-option="tag"]', "Modality=RTPLAN");
    await page.check('input[data-option="stats"]');
    await page.fill('textarea[data-argument="paths"]', uiOut);
    assert.equal(await page.textContent("#builder-preview"), `rtexport search --tag Modality=RTPLAN --stats ${uiOut}`);
    await page.fill('input[data-option="pattern"]', "RTPLAN_*.dcm");
    assert.equal(await page.textContent("#builder-preview"), `rtexport search --tag Modality=RTPLAN --pattern 'RTPLAN_*.dcm' --stats ${uiOut}`);
    await shot("commands");
    // retrieve's script: one step per patient and plan ticked on the Patients screen (the hand-off's), as DicomTools writes its batch files.
    await page.selectOption("#builder-command", "retrieve");
    await page.fill('input[data-option="out"]', "/data/retrieved");
    await page.click("#builder-script-sh");
    const steps = (await page.inputValue("#builder-script-text")).split("\n").filter((l) => l.startsWith("$RTEXPORT retrieve"));
    assert.deepEqual(steps.map((l) => l.replace(/ --out \/data\/retrieved$/, "")), [
      "$RTEXPORT retrieve --patient-id RTX0004 --plan Boost/..:1",
      "$RTEXPORT retrieve --patient-id RTX0005 --plan Plan1",
      "$RTEXPORT retrieve --patient-id RTX0005 --plan CK_Lung",
    ]);
    await page.selectOption("#builder-command", "search");
    await page.click("#builder-run");
    await page.waitForURL(/#jobs\/[0-9a-f]{12}$/);
    await waitJob(currentJob(), "done");
    assert.match(await page.textContent("#dash-log") ?? "", /search: 5 files done/);
  });

  test("a job that hangs on a patient: cancel (Ctrl-C), retry, kill -9, retry joined by a second worker; it ends done with the CLI's tree", async () => {
    pg.psql("insert into hang values ('RTX0003')", "catalog");
    await page.click("#tab-patients");
    await page.fill("#list-patients-ids", "");
    await page.selectOption("#list-source", "catalog:hospital");
    await page.click("#list-button");
    await page.waitForSelector('#patient-table[data-source="catalog:hospital"]');
    assert.equal(await page.locator("tr.patient").count(), 5);
    for (const id of ["RTX0001", "RTX0002", "RTX0003", "RTX0004", "RTX0005"]) await page.check(`input[data-patient="${id}"]:not([data-plan])`);
    await page.selectOption("#export-output", "second");
    await page.click("#start-export");
    await page.waitForURL(/#jobs\/[0-9a-f]{12}$/);
    const id = currentJob();
    const hung = `tr.patient[data-patient="RTX0003"][data-state="running"]`;
    await page.waitForSelector(hung, { timeout: 60_000 });
    await page.waitForSelector(`tr.patient[data-patient="RTX0002"][data-state="done"]`);
    assert.equal(await page.getAttribute(`tr.patient[data-patient="RTX0004"]`, "data-state"), "pending");
    // While it runs: the current run's rate, and an ETA from its pace (two patients' plans done, the rest left).
    await waitUntil(async () => /^[\d.]+ [kMG]?B\/s$/.test(await page.textContent("#t-rate") ?? ""), "a rate");
    assert.match(await page.textContent("#t-eta") ?? "", /^\d+(h\d\dm|m\d\ds|s)$/);
    await page.click("#job-cancel");
    await waitJob(id, "cancelled", 30_000);
    assert.notEqual(await page.getAttribute(`tr.patient[data-patient="RTX0003"]`, "data-state"), "done");
    await page.click("#job-retry");
    await page.waitForSelector(hung, { timeout: 60_000 });
    const pid = (await jobSnapshot(id)).runs.at(-1)!.pid!;
    process.kill(pid, "SIGKILL");
    await waitJob(id, "killed", 30_000);
    assert.equal(await page.getAttribute(`tr.patient[data-patient="RTX0003"]`, "data-state"), "interrupted");
    assert.equal(await page.getAttribute(`tr.patient[data-patient="RTX0001"]`, "data-state"), "done");
    await page.click("#job-retry");
    await page.waitForSelector(hung, { timeout: 60_000 });
    // A second worker from the command line joins the running job through the shared ledger (as
    // another machine would: while a worker of the job is alive, it works the same pass).
    const input = await selectionRecords(pg.url("catalog"), Object.fromEntries(["RTX0001", "RTX0002", "RTX0003", "RTX0004", "RTX0005"].map((x) => [x, "approved"])));
    const ledger = pg.url("ledger").replace("postgres@", "postgres:s3cret@");
    const other = sh(`"\${RT[@]}" export-plan --out '${join(dir, "kill-export")}' --ledger '${ledger}' --job ui-${id}`, { input });
    await waitUntil(async () => (await page.locator("#dash-workers tr[data-pid]").count()) === 4, "the second worker in the workers table");
    pg.psql("delete from hang", "catalog");
    await waitJob(id, "done");
    const joined = await other;
    assert.equal(joined.status, 0, joined.stderr);
    for (const row of await page.locator("#progress-table tr.patient").all()) assert.equal(await row.getAttribute("data-state"), "done");
    const snap = await jobSnapshot(id);
    assert.equal(snap.runs.length, 3, "the start, the retry after the cancel, the retry after the kill");
    for (const r of snap.runs as unknown as { commandLine: string }[]) assert.ok(!r.commandLine.includes("s3cret"), r.commandLine);
    assert.ok(!(await page.textContent("#dash-log") ?? "").includes("s3cret"));
    // The workers table comes from the shared ledger: each run's process with its pid, and the other worker.
    const pids = await page.locator("#dash-workers tr[data-pid]").evaluateAll((rows) => rows.map((r) => Number(r.getAttribute("data-pid"))));
    assert.equal(pids.length, 4, String(pids));
    for (const r of snap.runs) assert.ok(pids.includes(r.pid!), `run ${r.pid} in ${pids}`);
    const reference = join(dir, "kill-reference");
    const cli = await sh(`"\${RT[@]}" export-plan --out '${reference}'`, { input });
    assert.equal(cli.status, 0, cli.stderr);
    assertSameTree(join(dir, "kill-export"), reference);
  });

  test("a file missing in the vault: the patient fails with the reason, the plan with its count; retry after it is back", async () => {
    const missing = join(vault, "Patients", "00003", "Plans", "RTX0003-P1", "plan.xml");
    renameSync(missing, `${missing}.away`);
    await page.click("#tab-patients");
    await page.selectOption("#list-source", "catalog:demo");
    await page.click("#list-button");
    await page.waitForSelector('#patient-table[data-source="catalog:demo"]');
    await page.check('input[data-patient="RTX0003"]:not([data-plan])');
    await page.selectOption("#export-output", "export");
    await page.click("#start-export");
    await page.waitForURL(/#jobs\/[0-9a-f]{12}$/);
    const id = currentJob();
    await waitJob(id, "partial");
    const patient = page.locator('tr.patient[data-patient="RTX0003"]');
    assert.equal(await patient.getAttribute("data-state"), "failed");
    assert.match(await patient.locator("td.reason").textContent() ?? "", /plan\.xml": missing in the vault/);
    const plan = page.locator('tr.plan[data-plan-key$="|RTX0003-P1"]');
    assert.equal(await plan.getAttribute("data-state"), "failed");
    assert.equal(await plan.locator("td.reason").textContent(), "1 file(s) failed");
    assert.equal(await page.textContent("#t-failed"), "1");
    renameSync(`${missing}.away`, missing);
    await page.click("#job-retry");
    await waitJob(id, "done");
    assert.equal(await patient.getAttribute("data-state"), "done");
    assert.equal(await plan.getAttribute("data-state"), "done");
  });

  test("data: the RT reference tree of a patient folder and search statistics over the export", async () => {
    await page.click("#tab-data");
    await page.fill("#data-path", uiOut);
    await page.dispatchEvent("#data-path", "change");
    await waitUntil(async () => (await page.locator("#data-patient option").count()) === 4, "the export's three patient folders offered");
    const folder = await page.locator("#data-patient option").nth(1).getAttribute("value");
    await page.selectOption("#data-patient", folder!);
    await page.click("#tree-button");
    await page.waitForSelector("#rt-tree");
    const tree = await page.textContent("#rt-tree") ?? "";
    assert.match(tree, /Patient RTX0001/);
    assert.match(tree, /RTPLAN Plan1 APPROVED/);
    assert.match(tree, /RTPLAN Plan2_Alt UNAPPROVED/);
    assert.doesNotMatch(tree, /Plan3_Rev/, "the REJECTED plan was not selected");
    await page.fill("#stats-tags", "Modality=?");
    await page.click("#stats-button");
    await page.waitForSelector('table.stats[data-tag="Modality"]');
    const shown = await page.locator('table.stats[data-tag="Modality"] tbody tr').evaluateAll((rows) =>
      rows.map((r) => [r.children[0].textContent, Number(r.children[1].textContent)])
    );
    const cli = await sh(`"\${RT[@]}" search --tag 'Modality=?' --stats --json '${uiOut}'`);
    const stats = records(cli.stdout).find((x) => x.type === "stats" && x.tag === "Modality")!;
    assert.deepEqual(shown, stats.values.map((v: { value: string; count: number }) => [v.value, v.count]));
    await shot("data");
  });

  test("keyboard and labels: the tabs move with the arrow keys, and every control on every screen has a name", async () => {
    await page.click("#tab-sources");
    await page.focus("#tab-sources");
    await page.keyboard.press("ArrowRight");
    await waitFocus("patients");
    await page.keyboard.press("End");
    await waitFocus("data");
    await page.keyboard.press("ArrowRight");
    await waitFocus("sources");
    for (const tab of ["sources", "patients", "commands", "jobs", "data"]) {
      await page.click(`#tab-${tab}`);
      await page.waitForSelector(`body[data-screen="${tab}"]`);
      await page.waitForTimeout(300);
      const unnamed = await page.locator("input, select, textarea, button").evaluateAll((els) =>
        els.filter((e) => {
          const c = e as unknown as { type?: string; labels?: { length: number } | null; getAttribute(n: string): string | null; textContent: string | null };
          return c.type !== "hidden" && !c.labels?.length && !c.getAttribute("aria-label") && !c.textContent?.trim();
        }).map((e) => e.outerHTML.slice(0, 120))
      );
      assert.deepEqual(unnamed, [], `controls without a name on ${tab}`);
    }
  });

  test("a restarted server and a second browser show the same job from the ledger; the old token is refused", async () => {
    serverLogs.push(ui.stderr());
    assert.equal(await ui.stop(), 0);
    const oldToken = ui.token;
    ui = await startUi(dir, ["--config", join(dir, "rtexport.json")]);
    const refused = await fetch(`${ui.url}api/jobs`, { headers: { Authorization: `Bearer ${oldToken}` } });
    assert.equal(refused.status, 401);
    const second = await launchBrowser(dir);
    try {
      const p2 = await second.newPage();
      await p2.goto(`${ui.openUrl}#jobs/${firstJob}`);
      await p2.waitForSelector(`body[data-job="${firstJob}"][data-job-state="done"]`, { timeout: 30_000 });
      assert.equal(await p2.textContent("#t-plans"), firstTotals.plans);
      assert.equal(await p2.textContent("#t-files"), firstTotals.files);
      assert.equal(await p2.locator(`#progress-table tr.plan[data-state="done"]`).count(), 5);
    } finally {
      await second.close();
    }
  });

  test("the token: without it the API answers 401 on loopback, and off loopback every request does", async () => {
    const noToken = await fetch(`${ui.url}api/config`);
    assert.equal(noToken.status, 401);
    assert.equal((await fetch(ui.url)).status, 200, "on loopback the page itself (no patient data) loads");
    const auth = { Authorization: `Bearer ${ui.token}` };
    // DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 sends its own Host.
    assert.equal(await rawStatus(`${ui.url}api/config`, "GET", { ...auth, Host: `evil.example:${ui.port}` }), 403);
    assert.equal(await rawStatus(`${ui.url}api/config`, "GET", { ...auth, Host: `localhost:${ui.port}` }), 200);
    // Cross-site requests: another site's Origin, or a form's content type, changes nothing.
    const body = JSON.stringify({ host: "10.9.9.9" });
    assert.equal(await rawStatus(`${ui.url}api/config/peers/evil`, "PUT", { ...auth, Origin: "http://evil.example", "Content-Type": "application/json" }, body), 403);
    assert.equal(await rawStatus(`${ui.url}api/config/peers/evil`, "PUT", { ...auth, "Content-Type": "application/x-www-form-urlencoded" }, "host=10.9.9.9"), 415);
    assert.equal(await rawStatus(`${ui.url}api/config/peers/evil`, "PUT", { ...auth, Origin: `http://127.0.0.1:${ui.port}`, "Content-Type": "application/json" }, body), 200);
    assert.equal(await rawStatus(`${ui.url}api/config/peers/evil`, "DELETE", { ...auth, "Content-Type": "application/json" }, "{}"), 200);
    assert.equal(JSON.parse(readFileSync(join(dir, "rtexport.json"), "utf8")).peers.evil, undefined);
    // The approval gate holds on the server too: an unapproved plan without a ticked, named authorization starts nothing.
    const unauthorized = await fetch(`${ui.url}api/jobs/export`, {
      method: "POST",
      headers: { ...auth, "Content-Type": "application/json" },
      body: JSON.stringify({
        source: { kind: "catalog", name: "demo" }, filters: {}, output: "export", exportValues: { options: {}, args: [] },
        selection: [{ patientId: A, plans: [{ planKey: `sqlite:${db}|${U}`, planId: U, approval: "UNAPPROVED" }] }],
        authorization: { by: "", confirmed: true },
      }),
    });
    assert.equal(unauthorized.status, 400);
    assert.match((await unauthorized.json()).error, /1 selected plan\(s\) are not approved: their export needs your authorization/);
    const address = Object.values(networkInterfaces()).flat().find((a) => a && a.family === "IPv4" && !a.internal)?.address ?? "0.0.0.0";
    const off = await startUi(dir, ["--host", address]);
    try {
      assert.match(off.stderr(), /not only loopback: every request needs the token/);
      const base = `http://${address === "0.0.0.0" ? "127.0.0.1" : address}:${off.port}/`;
      for (const path of ["", "app.js", "api/info", "api/config"]) {
        const r = await fetch(base + path);
        assert.equal(r.status, 401, path);
      }
      assert.equal((await fetch(`${base}api/info`, { headers: { Authorization: `Bearer ${off.token}` } })).status, 200);
      const opened = await fetch(`${base}?token=${off.token}`);
      assert.equal(opened.status, 200);
      assert.match(opened.headers.get("set-cookie") ?? "", /rtx_token=.*HttpOnly; SameSite=Strict/);
    } finally {
      serverLogs.push(off.stderr());
      await off.stop();
    }
  });

  test("no patient data in the server's log", () => {
    const log = [...serverLogs, ui.stderr()].join("\n");
    assert.match(log, /job [0-9a-f]{12} started/);
    for (const p of manifest.patients) {
      for (const text of [p.patientId, p.nameParts.family, p.nameParts.given]) {
        if (text) assert.ok(!log.includes(text), `the server's log names ${text}`);
      }
    }
  });
});


