/// <reference lib="dom" />
/**
 * The patient list builder: list-patients against a source with the CLI's filters, patients with
 * their plans (status, approval, machines), a selection of patients and plans, the hand-off file
 * in and out, the approval gate (an unapproved plan is exported only on a named person's ticked
 * authorization), and the export of the selection: started as a job, or written as scripts.
 */
import { resolveArgs, shPipeline } from "../shared/argv.ts";
import { buildHandoff, HandoffError, parseHandoff, planMatches } from "../shared/handoff.ts";
import { exportCommand, exportScript, type ExportSpec, EXPORT_OWN, isUnapproved, listCommand } from "../shared/pipeline.ts";
import { generateScript, scriptFileName, type ScriptKind } from "../shared/scripts.ts";
import type { CommandValues, ListFilters, ListResult, PatientRow, PlanRow, SelectedPatient, SourceRef } from "../shared/types.ts";
import { api, app, commandInfo } from "./api.ts";
import { announce, download, field, h, newId, personName, replace } from "./dom.ts";
import { commandForm, valuesFor } from "./form.ts";

const STATUSES = ["Deliverable", "Authorized", "Disallowed", "Under Treatment", "Discontinued", "Completed"];
const INCLUDES: [keyof ListFilters, string][] = [
  ["includePhysician", "physician (contour-only) plans"], ["includeQa", "QA plans"], ["includeLot", "LOT simulation plans"],
  ["includeSetup", "setup/alignment plans"], ["includePhantom", "phantom records"],
];

const state = {
  source: undefined as SourceRef | undefined,
  filters: { statuses: [...STATUSES] } as ListFilters,
  list: undefined as ListResult | undefined,
  /** The source and filters the list was made with: the export of its selection uses them, whatever the form says now. */
  listed: undefined as { source: SourceRef; filters: ListFilters } | undefined,
  selected: new Set<string>(),
  authorization: { by: "", confirmed: false },
  output: "",
  exportValues: undefined as CommandValues | undefined,
  script: undefined as { kind: ScriptKind; text: string } | undefined,
  busy: false,
};

let root: HTMLElement;
let onStarted: (id: string) => void = () => {};

/** The selection: patients with the plans ticked, in list order. */
export function selection(): SelectedPatient[] {
  const out: SelectedPatient[] = [];
  for (const p of state.list?.patients ?? []) {
    const plans = p.plans.filter((q) => state.selected.has(q.planKey));
    if (plans.length) out.push({ patientId: p.patientId, name: p.name, source: p.source, plans });
  }
  return out;
}

function filtersForCommand(): ListFilters {
  const f = { ...state.filters };
  // All six default statuses ticked is what list-patients does without --status.
  if (f.statuses && f.statuses.length === STATUSES.length && STATUSES.every((s) => f.statuses!.includes(s))) delete f.statuses;
  return f;
}

function sources(): { ref: SourceRef; label: string }[] {
  const c = app.config;
  return [
    ...Object.keys(c.catalogs).map((name) => ({ ref: { kind: "catalog" as const, name }, label: `catalog: ${name}` })),
    ...Object.keys(c.folders).map((name) => ({ ref: { kind: "folder" as const, name }, label: `folder: ${name}` })),
    ...Object.keys(c.peers).map((name) => ({ ref: { kind: "peer" as const, name }, label: `DICOM peer: ${name}` })),
  ];
}

function exportSpec(): ExportSpec | undefined {
  const output = app.config.outputs[state.output];
  if (!state.listed || !output) return undefined;
  return {
    listInfo: commandInfo("list-patients"), exportInfo: commandInfo("export-plan"), config: app.config, source: state.listed.source,
    filters: state.listed.filters, output, exportValues: state.exportValues!, authorizedBy: state.authorization.by.trim() || undefined,
  };
}

/** The screen, rendered into `el`; `started` is told the id of a job the screen starts. */
export function renderPatients(el: HTMLElement, started: (id: string) => void): void {
  root = el;
  onStarted = started;
  state.exportValues = valuesFor(commandInfo("export-plan"));
  const all = sources();
  if (!state.source || !all.some((s) => s.ref.kind === state.source!.kind && s.ref.name === state.source!.name)) state.source = all[0]?.ref;
  if (!app.config.outputs[state.output]) state.output = Object.keys(app.config.outputs)[0] ?? "";
  draw();
}

function draw(): void {
  replace(root,
    h("h2", {}, "Patients"),
    sourceForm(),
    h("div", { id: "list-result" }),
    h("div", { id: "selection-panel" }),
  );
  drawList();
  drawSelection();
}

function sourceForm(): HTMLElement {
  const all = sources();
  const select = h("select", { id: "list-source" }, ...all.map((s) =>
    h("option", { value: `${s.ref.kind}:${s.ref.name}`, selected: state.source?.kind === s.ref.kind && state.source?.name === s.ref.name }, s.label)));
  select.addEventListener("change", () => {
    const [kind, ...name] = select.value.split(":");
    state.source = { kind: kind as SourceRef["kind"], name: name.join(":") };
    updatePreview();
  });
  const ids = h("textarea", { id: "list-patients-ids", rows: 2, spellcheck: "false" });
  ids.value = (state.filters.patients ?? []).join("\n");
  ids.addEventListener("input", () => {
    state.filters.patients = ids.value.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
    updatePreview();
  });
  const since = h("input", { type: "date", id: "list-since", value: state.filters.since ?? "" });
  since.addEventListener("input", () => {
    state.filters.since = since.value || undefined;
    updatePreview();
  });
  const statusBoxes = STATUSES.map((s) => {
    const box = h("input", { type: "checkbox", id: newId("status"), checked: state.filters.statuses?.includes(s) ?? false });
    box.addEventListener("change", () => {
      const set = new Set(state.filters.statuses ?? []);
      if (box.checked) set.add(s);
      else set.delete(s);
      state.filters.statuses = STATUSES.filter((x) => set.has(x));
      updatePreview();
    });
    return field(s, box);
  });
  const includeBoxes = INCLUDES.map(([key, label]) => {
    const box = h("input", { type: "checkbox", id: newId("include"), checked: state.filters[key] === true });
    box.addEventListener("change", () => {
      (state.filters as Record<string, unknown>)[key] = box.checked || undefined;
      updatePreview();
    });
    return field(`Also list ${label}`, box);
  });
  const phantoms = h("input", { type: "text", id: "list-phantom-patterns", spellcheck: "false", autocomplete: "off", placeholder: "*PHANTOM*" });
  phantoms.value = (state.filters.phantomPatterns ?? []).join(" ");
  phantoms.addEventListener("input", () => {
    state.filters.phantomPatterns = phantoms.value.split(/\s+/).filter(Boolean);
    updatePreview();
  });
  const listButton = h("button", { type: "button", id: "list-button", class: "primary", disabled: !all.length }, "List patients");
  listButton.addEventListener("click", () => void listNow());
  const fileInput = h("input", { type: "file", id: "handoff-import", accept: ".json,application/json" });
  fileInput.addEventListener("change", () => {
    const f = fileInput.files?.[0];
    if (f) void f.text().then((t) => importHandoff(t, f.name));
    fileInput.value = "";
  });
  return h("section", { class: "panel", "aria-labelledby": "list-heading" },
    h("h3", { id: "list-heading" }, "Source and filters"),
    all.length ? null : h("p", { class: "warn" }, "No sources yet: add a catalog, a folder or a DICOM peer under Sources."),
    h("div", { class: "row" },
      field("Source", select, "Where list-patients lists from (named in rtexport.json)"),
      field("Patient IDs", ids, "One per line (--patient); empty: every patient"),
      field("Updated since", since, "--since: only patients or plans updated after this date"),
    ),
    h("fieldset", { class: "inline" }, h("legend", {}, "Plan statuses (--status)"), statusBoxes),
    h("fieldset", { class: "inline" }, h("legend", {}, "Left out unless ticked"), includeBoxes,
      field("Phantom patterns", phantoms, "--phantom-pattern: patient ID or name patterns of phantom records, separated by spaces (* and ?); empty: *PHANTOM*")),
    h("p", {}, h("span", { class: "label" }, "Command: "), h("code", { id: "list-preview", class: "preview" })),
    h("div", { class: "actions" }, listButton, field("Import hand-off JSON", fileInput, "A selection of patients and plans (DicomTools' hand-off shape)")),
  );
}

function updatePreview(): void {
  const pre = document.getElementById("list-preview");
  if (pre && state.source) {
    try {
      pre.textContent = shPipeline(listCommand(commandInfo("list-patients"), app.config, state.source, filtersForCommand()).pipeline);
    } catch (e) {
      pre.textContent = (e as Error).message;
    }
  }
  drawExportPreview();
}

async function listNow(filters: ListFilters = filtersForCommand()): Promise<boolean> {
  if (!state.source || state.busy) return false;
  state.busy = true;
  const source = state.source;
  // The list shown is of the source and filters it was made with; while another is made, none is.
  const previous = { list: state.list, listed: state.listed };
  state.list = undefined;
  state.listed = undefined;
  drawList();
  const button = document.getElementById("list-button") as HTMLButtonElement | null;
  if (button) button.disabled = true;
  announce("Listing patients…");
  try {
    state.list = await api<ListResult>("/api/list", { body: { source, filters } });
    state.listed = { source, filters: structuredClone(filters) };
    const known = new Set(state.list.patients.flatMap((p) => p.plans.map((q) => q.planKey)));
    for (const k of [...state.selected]) if (!known.has(k)) state.selected.delete(k);
    announce(`${state.list.patients.length} patient(s) listed${state.list.problems.length ? `, ${state.list.problems.length} problem(s)` : ""}`);
    return true;
  } catch (e) {
    ({ list: state.list, listed: state.listed } = previous);
    announce(`Cannot list patients: ${(e as Error).message}`, "error");
    return false;
  } finally {
    state.busy = false;
    if (button) button.disabled = false;
    drawList();
    drawSelection();
  }
}

function approvalBadge(plan: PlanRow): HTMLElement {
  const a = plan.approval ?? "unknown";
  return h("span", { class: `badge ${a === "APPROVED" ? "ok" : "warn"}` }, a);
}

function patientBox(p: PatientRow): HTMLInputElement {
  const approved = p.plans.filter((q) => !isUnapproved(q));
  const ticked = p.plans.filter((q) => state.selected.has(q.planKey));
  const box = h("input", { type: "checkbox", "data-patient": p.patientId, "aria-label": `Select the approved plans of patient ${p.patientId}` });
  box.checked = approved.length > 0 && approved.every((q) => state.selected.has(q.planKey));
  box.indeterminate = !box.checked && ticked.length > 0;
  box.addEventListener("change", () => {
    if (box.checked) {
      if (!approved.length) {
        box.checked = false;
        announce(`Patient ${p.patientId} has no approved plans: tick its plans one by one (each needs an authorization)`, "error");
        return;
      }
      for (const q of approved) state.selected.add(q.planKey);
    } else for (const q of p.plans) state.selected.delete(q.planKey);
    selectionChanged();
  });
  return box;
}

function planBox(p: PatientRow, q: PlanRow): HTMLInputElement {
  const box = h("input", {
    type: "checkbox", "data-patient": p.patientId, "data-plan": q.planId ?? q.planUid ?? q.label ?? "",
    "aria-label": `Export plan ${q.label ?? q.planId} of patient ${p.patientId}${isUnapproved(q) ? ` (${q.approval}: needs an authorization)` : ""}`,
    checked: state.selected.has(q.planKey),
  });
  box.addEventListener("change", () => {
    if (box.checked) state.selected.add(q.planKey);
    else state.selected.delete(q.planKey);
    selectionChanged();
  });
  return box;
}

function drawList(): void {
  const el = document.getElementById("list-result");
  if (!el) return;
  updatePreview();
  const list = state.list;
  if (!list) {
    replace(el);
    return;
  }
  const rows: HTMLElement[] = [];
  for (const p of list.patients) {
    rows.push(h("tr", { class: "patient" },
      h("td", {}, patientBox(p)),
      h("th", { scope: "row" }, p.patientId),
      h("td", {}, personName(p.name)),
      h("td", { colspan: 4 }, `${p.plans.length} plan(s)`),
    ));
    for (const q of p.plans) {
      rows.push(h("tr", { class: `plan${isUnapproved(q) ? " unapproved" : ""}` },
        h("td", {}, planBox(p, q)),
        h("td", {}),
        h("td", { class: "plan-name" }, q.label ?? "", q.planId ? h("span", { class: "muted" }, ` ${q.planId}`) : null),
        h("td", {}, q.status ?? ""),
        h("td", {}, approvalBadge(q)),
        h("td", {}, (q.machines ?? []).join(", ")),
        h("td", {}, q.planType && q.planType !== "CLINICAL" ? q.planType : ""),
      ));
    }
  }
  replace(el,
    h("section", { class: "panel", "aria-labelledby": "patients-heading" },
      h("h3", { id: "patients-heading" }, `Patients (${list.patients.length}${list.truncated ? ", list cut short" : ""})`),
      h("p", { class: "muted" }, "Ran: ", h("code", {}, list.commandLine)),
      list.problems.length ? h("ul", { class: "problems", "aria-label": "Problems list-patients reported" }, list.problems.map((x) => h("li", {}, x))) : null,
      list.patients.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "patients", id: "patient-table", "data-source": state.listed ? `${state.listed.source.kind}:${state.listed.source.name}` : undefined },
          h("caption", { class: "sr-only" }, "Patients and their plans; tick plans to export"),
          h("thead", {}, h("tr", {}, ...["Export", "Patient ID", "Name / plan", "Status", "Approval", "Machines", "Type"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, rows)))
        : h("p", {}, "No patients match."),
    ));
}

function selectionChanged(): void {
  // An authorization covers the plans it was given for: a changed set of unapproved plans needs it again.
  const unapproved = selection().flatMap((p) => p.plans.filter(isUnapproved).map((q) => q.planKey)).sort().join("\n");
  if (unapproved !== lastUnapproved) state.authorization.confirmed = false;
  lastUnapproved = unapproved;
  state.script = undefined;
  drawList();
  drawSelection();
}
let lastUnapproved = "";

function drawSelection(): void {
  const el = document.getElementById("selection-panel");
  if (!el) return;
  const sel = selection();
  const plans = sel.reduce((n, p) => n + p.plans.length, 0);
  const unapproved = sel.flatMap((p) => p.plans.filter(isUnapproved).map((q) => ({ p, q })));
  const outputs = Object.keys(app.config.outputs);
  const out = h("select", { id: "export-output" }, ...outputs.map((n) => h("option", { value: n, selected: n === state.output }, `${n}: ${app.config.outputs[n].path}`)));
  out.addEventListener("change", () => {
    state.output = out.value;
    drawExportPreview();
  });
  const handoffButton = h("button", { type: "button", id: "handoff-export", disabled: !sel.length }, "Export hand-off JSON");
  handoffButton.addEventListener("click", () => {
    download("rtexport-handoff.json", buildHandoff(sel, new Date().toISOString()), "application/json");
    announce(`Hand-off file with ${sel.length} patient(s) offered for download`);
  });
  let gate: HTMLElement | null = null;
  if (unapproved.length) {
    const name = h("input", { type: "text", id: "auth-name", autocomplete: "name", value: state.authorization.by, required: true });
    name.addEventListener("input", () => {
      state.authorization.by = name.value;
      drawExportPreview();
    });
    const tick = h("input", { type: "checkbox", id: "auth-confirm", checked: state.authorization.confirmed });
    tick.addEventListener("change", () => {
      state.authorization.confirmed = tick.checked;
      drawExportPreview();
    });
    gate = h("fieldset", { class: "gate", id: "authorization" },
      h("legend", {}, "Authorization for plans that are not approved"),
      h("p", {}, `${unapproved.length} selected plan(s) are not approved. They are exported only on the authorization of a qualified person, recorded in the ledger with your name.`),
      h("ul", {}, unapproved.map(({ p, q }) => h("li", {}, `${q.label ?? q.planId} of patient ${p.patientId} (${q.approval})`))),
      field("Your name", name),
      field(`I am qualified to, and do, authorize the export of these ${unapproved.length} plan(s)`, tick),
    );
  }
  const spec = exportSpec();
  const exportForm = commandForm(commandInfo("export-plan"), state.exportValues!, () => {
    state.script = undefined;
    drawExportPreview();
  }, [...EXPORT_OWN, "db", "vault", "staging", "to"]);
  const start = h("button", { type: "button", id: "start-export", class: "primary" }, "Start export");
  start.addEventListener("click", () => void startExport());
  const scriptButtons = (["sh", "bat", "zx"] as ScriptKind[]).map((kind) => {
    const b = h("button", { type: "button", id: `script-${kind}`, disabled: !sel.length || !spec }, `Script: ${kind === "bat" ? ".bat" : kind}`);
    b.addEventListener("click", () => makeScript(kind));
    return b;
  });
  replace(el,
    h("section", { class: "panel", "aria-labelledby": "selection-heading" },
      h("h3", { id: "selection-heading" }, "Selection and export"),
      h("p", { id: "selection-summary", role: "status" }, `${sel.length} patient(s), ${plans} plan(s) selected${unapproved.length ? ` (${unapproved.length} not approved)` : ""}`),
      h("div", { class: "actions" }, handoffButton),
      gate,
      outputs.length ? field("Output folder", out) : h("p", { class: "warn" }, "No output folders yet: add one under Sources."),
      h("details", { class: "group" }, h("summary", {}, "export-plan options"), exportForm),
      h("p", {}, h("span", { class: "label" }, "Command: "), h("code", { id: "export-preview", class: "preview" })),
      h("p", { id: "export-problem", class: "error", role: "alert" }),
      h("div", { class: "actions" }, start, ...scriptButtons),
      h("div", { id: "script-output" }),
    ));
  drawExportPreview();
}

function exportProblem(): string | undefined {
  const sel = selection();
  if (!sel.length) return "Tick at least one plan to export.";
  if (!app.config.outputs[state.output]) return "Choose an output folder (add one under Sources).";
  const unapproved = sel.some((p) => p.plans.some(isUnapproved));
  if (unapproved && (!state.authorization.confirmed || !state.authorization.by.trim())) {
    return "Plans that are not approved are selected: tick the authorization and give your name.";
  }
  return undefined;
}

function drawExportPreview(): void {
  const pre = document.getElementById("export-preview");
  const problemEl = document.getElementById("export-problem");
  const start = document.getElementById("start-export") as HTMLButtonElement | null;
  if (!pre) return;
  const spec = exportSpec();
  const sel = selection();
  const problem = exportProblem();
  if (problemEl) problemEl.textContent = sel.length ? problem ?? "" : "";
  if (start) start.disabled = problem !== undefined;
  if (!spec || !sel.length) {
    pre.textContent = "(tick plans and choose an output folder)";
    return;
  }
  try {
    const built = exportCommand(spec, sel);
    pre.textContent = shPipeline(built.pipeline.map((argv) => resolveArgs(argv, { OUT: spec.output.path })));
  } catch (e) {
    pre.textContent = (e as Error).message;
  }
  const scriptEl = document.getElementById("script-output");
  if (scriptEl && !state.script) replace(scriptEl);
}

function makeScript(kind: ScriptKind): void {
  const spec = exportSpec();
  const sel = selection();
  const el = document.getElementById("script-output");
  if (!spec || !el) return;
  let text: string;
  try {
    text = generateScript(kind, exportScript(spec, sel, "patient", new Date().toISOString()));
  } catch (e) {
    announce((e as Error).message, "error");
    return;
  }
  state.script = { kind, text };
  const name = scriptFileName(kind);
  const area = h("textarea", { id: "script-text", readonly: true, rows: 14, spellcheck: "false", "aria-label": `Generated ${kind} script` });
  area.value = text;
  const save = h("button", { type: "button", id: "script-download" }, `Download ${name}`);
  save.addEventListener("click", () => download(name, text));
  replace(el, h("h4", {}, `${name}: one step per patient`), area, h("div", { class: "actions" }, save));
  announce(`${name} written: ${sel.length} step(s)`);
}

async function startExport(): Promise<void> {
  const problem = exportProblem();
  if (problem || !state.listed) {
    announce(problem ?? "List patients first", "error");
    return;
  }
  try {
    const { id } = await api<{ id: string }>("/api/jobs/export", {
      body: {
        source: state.listed.source, filters: state.listed.filters, selection: selection(), output: state.output, exportValues: state.exportValues,
        authorization: state.authorization,
      },
    });
    announce(`Export started (job ${id})`);
    onStarted(id);
  } catch (e) {
    announce(`Cannot start the export: ${(e as Error).message}`, "error");
  }
}

/** Reads a hand-off file: lists its patients (when the list lacks them) and ticks its plans. */
async function importHandoff(text: string, name: string): Promise<void> {
  let handoff;
  try {
    handoff = parseHandoff(text, `"${name}"`);
  } catch (e) {
    announce(e instanceof HandoffError ? e.message : `Cannot read "${name}": ${(e as Error).message}`, "error");
    return;
  }
  const listed = new Set(state.list?.patients.map((p) => p.patientId) ?? []);
  if (!handoff.patients.every((p) => listed.has(p.patientId))) {
    state.filters.patients = handoff.patients.map((p) => p.patientId);
    const ids = document.getElementById("list-patients-ids") as HTMLTextAreaElement | null;
    if (ids) ids.value = state.filters.patients.join("\n");
    if (!(await listNow())) return;
  }
  const notes = [...handoff.warnings];
  state.selected.clear();
  let ticked = 0;
  for (const want of handoff.patients) {
    const p = state.list?.patients.find((x) => x.patientId === want.patientId);
    if (!p) {
      notes.push(`Patient ${want.patientId} is not in the list`);
      continue;
    }
    const plans = want.plans.length ? p.plans.filter((q) => want.plans.some((s) => planMatches(q, s))) : p.plans.filter((q) => !isUnapproved(q));
    for (const s of want.plans) if (!p.plans.some((q) => planMatches(q, s))) notes.push(`Plan ${s} of patient ${want.patientId} is not in the list`);
    for (const q of plans) state.selected.add(q.planKey);
    ticked += plans.length;
  }
  selectionChanged();
  announce(`Imported "${name}": ${handoff.patients.length} patient(s), ${ticked} plan(s) ticked${notes.length ? `; ${notes.join("; ")}` : ""}`, notes.length ? "error" : "info");
}
