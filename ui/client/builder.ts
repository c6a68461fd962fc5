/// <reference lib="dom" />
/**
 * The command builder: a form for export-plan, copy-files, anonymize, push, retrieve, show and
 * search made from each command's definition, the equivalent command line as you type, scripts
 * (sh, .bat, zx; retrieve gets one step per selected patient and plan, as DicomTools writes its
 * batch files), and "Run" as a job.
 */
import { commandArgs, missingValues, shPipeline } from "../shared/argv.ts";
import { generateScript, scriptFileName, type ScriptKind } from "../shared/scripts.ts";
import type { Arg, CommandInfo, CommandValues, ScriptStep } from "../shared/types.ts";
import { api, commandInfo } from "./api.ts";
import { announce, download, field, h, replace } from "./dom.ts";
import { commandForm, valuesFor } from "./form.ts";
import { selection } from "./patients.ts";

/** The builder's commands, in the order the server lists them. */
const BUILDER = ["export-plan", "copy-files", "anonymize", "push", "retrieve", "show", "search"];

let current = "search";
let root: HTMLElement;
let onStarted: (id: string) => void = () => {};

const valuesOf = valuesFor;

/** The screen, rendered into `el`; `started` is told the id of a job it starts. */
export function renderBuilder(el: HTMLElement, started: (id: string) => void): void {
  root = el;
  onStarted = started;
  draw();
}

function draw(): void {
  const info = commandInfo(current);
  const select = h("select", { id: "builder-command" }, ...BUILDER.map((n) => h("option", { value: n, selected: n === current }, n)));
  select.addEventListener("change", () => {
    current = select.value;
    draw();
    (document.getElementById("builder-command") as HTMLSelectElement).focus();
  });
  const run = h("button", { type: "button", id: "builder-run", class: "primary" }, "Run");
  run.addEventListener("click", () => void runNow());
  const scripts = (["sh", "bat", "zx"] as ScriptKind[]).map((kind) => {
    const b = h("button", { type: "button", id: `builder-script-${kind}` }, `Script: ${kind === "bat" ? ".bat" : kind}`);
    b.addEventListener("click", () => makeScript(kind));
    return b;
  });
  replace(root,
    h("h2", {}, "Command builder"),
    h("section", { class: "panel", "aria-labelledby": "builder-heading" },
      h("h3", { id: "builder-heading", class: "sr-only" }, "Command"),
      field("Command", select, info.summary),
      info.description ? h("details", { class: "group" }, h("summary", {}, "About this command"), h("pre", { class: "description" }, info.description)) : null,
      commandForm(info, valuesOf(info), update),
      h("p", {}, h("span", { class: "label" }, "Command line: "), h("code", { id: "builder-preview", class: "preview", "aria-live": "polite" })),
      h("p", { id: "builder-problem", class: "error", role: "alert" }),
      current === "export-plan" ? null : h("div", { class: "actions" }, run, ...scripts),
      current === "export-plan" ? h("p", { class: "muted" }, "export-plan reads patients and plans: run it, or write its scripts, from the Patients screen, where the selection is its input and these options are its options.") : null,
      h("div", { id: "builder-script" }),
      info.examples.length ? h("details", { class: "group" }, h("summary", {}, "Examples"), h("pre", {}, info.examples.join("\n"))) : null,
    ));
  update();
}

function steps(info: CommandInfo, v: CommandValues): ScriptStep[] {
  const own = commandArgs(info, v);
  // retrieve works per patient: one step per selected patient and plan, as DicomTools' batch files do.
  const sel = selection();
  if (info.name === "retrieve" && sel.length) {
    const base = { ...v, options: { ...v.options, patientId: "", plan: [] } };
    const rest = commandArgs(info, base);
    return sel.flatMap((p) => p.plans.map((q) => ({
      comment: `patient ${p.patientId}, plan ${q.label ?? q.planId}`,
      pipeline: [["retrieve", "--patient-id", p.patientId, ...(q.label ? ["--plan", q.label] : []), ...rest] as Arg[]],
    })));
  }
  return [{ pipeline: [[info.name, ...own]] }];
}

function update(): void {
  const info = commandInfo(current);
  const v = valuesOf(info);
  const preview = document.getElementById("builder-preview");
  if (preview) preview.textContent = shPipeline([[info.name, ...commandArgs(info, v)]]);
  const problem = document.getElementById("builder-problem");
  const missing = missingValues(info, v);
  if (problem) problem.textContent = missing.length ? `Not ready: ${missing.join(", ")}` : "";
  const run = document.getElementById("builder-run") as HTMLButtonElement | null;
  if (run) run.disabled = missing.length > 0;
  const out = document.getElementById("builder-script");
  if (out) replace(out);
}

function makeScript(kind: ScriptKind): void {
  const info = commandInfo(current);
  const v = valuesOf(info);
  const out = document.getElementById("builder-script");
  if (!out) return;
  let text: string;
  try {
    const s = steps(info, v);
    text = generateScript(kind, { title: `rtexport ${info.name}`, created: new Date().toISOString(), vars: [], steps: s });
  } catch (e) {
    announce((e as Error).message, "error");
    return;
  }
  const name = scriptFileName(kind, `rtexport-${info.name}`);
  const area = h("textarea", { id: "builder-script-text", readonly: true, rows: 12, spellcheck: "false", "aria-label": `Generated ${kind} script` });
  area.value = text;
  const save = h("button", { type: "button" }, `Download ${name}`);
  save.addEventListener("click", () => download(name, text));
  replace(out, h("h4", {}, name), area, h("div", { class: "actions" }, save));
}

async function runNow(): Promise<void> {
  const info = commandInfo(current);
  try {
    const { id } = await api<{ id: string }>("/api/jobs/command", { body: { name: info.name, values: valuesOf(info) } });
    announce(`${info.name} started (job ${id})`);
    onStarted(id);
  } catch (e) {
    announce(`Cannot run ${info.name}: ${(e as Error).message}`, "error");
  }
}
