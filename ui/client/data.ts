/// <reference lib="dom" />
/**
 * Look at the data: the RT reference tree of a folder (a patient's, or a whole export), as `show`
 * builds it (plan → structure set → image series; doses, records, RT images, registrations;
 * what no plan references; what is referenced but missing), and `search --stats` over a folder.
 */
import { api, app } from "./api.ts";
import { announce, field, h, replace } from "./dom.ts";

// deno-lint-ignore no-explicit-any -- show's records, read as they come
type Rec = Record<string, any>;

let root: HTMLElement;
let folder = "";
let tags = "Modality=?\n(300A,00B0)/(300A,00B2)=?";

/** The screen, rendered into `el`. */
export function renderData(el: HTMLElement): void {
  root = el;
  if (!folder) folder = Object.values(app.config.outputs)[0]?.path ?? "";
  const path = h("input", { type: "text", id: "data-path", value: folder, spellcheck: "false", autocomplete: "off" });
  path.addEventListener("input", () => (folder = path.value));
  const patients = h("select", { id: "data-patient" }, h("option", { value: "" }, "(the whole folder)"));
  const loadFolders = async () => {
    try {
      const r = await api<{ folders: string[] }>(`/api/folders?path=${encodeURIComponent(folder)}`);
      replace(patients, h("option", { value: "" }, "(the whole folder)"), ...r.folders.map((f) => h("option", { value: f }, f)));
    } catch {
      replace(patients, h("option", { value: "" }, "(the whole folder)"));
    }
  };
  path.addEventListener("change", () => void loadFolders());
  void loadFolders();
  const showButton = h("button", { type: "button", id: "tree-button", class: "primary" }, "Show the RT reference tree");
  showButton.addEventListener("click", () => void showTree(patients.value ? `${folder.replace(/[\\/]$/, "")}/${patients.value}` : folder));
  const tagArea = h("textarea", { id: "stats-tags", rows: 3, spellcheck: "false" });
  tagArea.value = tags;
  tagArea.addEventListener("input", () => (tags = tagArea.value));
  const pattern = h("input", { type: "text", id: "stats-pattern", placeholder: "*.dcm", spellcheck: "false" });
  const statsButton = h("button", { type: "button", id: "stats-button" }, "Search statistics");
  statsButton.addEventListener("click", () => void showStats(pattern.value.trim()));
  replace(root,
    h("h2", {}, "Data"),
    h("section", { class: "panel", "aria-labelledby": "data-heading" },
      h("h3", { id: "data-heading" }, "Folder"),
      h("div", { class: "row" },
        field("Folder", path, "An export folder (or any folder of DICOM files)"),
        field("Patient folder", patients, "Only this patient's folder, for the tree")),
      h("div", { class: "actions" }, showButton),
      h("div", { class: "row" },
        field("Tag expressions (search --tag)", tagArea, "One per line: TAG=? reports the values; TAG=VALUE matches"),
        field("File name pattern", pattern, "--pattern, e.g. RP*.dcm")),
      h("div", { class: "actions" }, statsButton)),
    h("section", { class: "panel", id: "tree-panel", "aria-labelledby": "tree-heading" }, h("h3", { id: "tree-heading" }, "RT reference tree"), h("div", { id: "tree" })),
    h("section", { class: "panel", id: "stats-panel", "aria-labelledby": "stats-heading" }, h("h3", { id: "stats-heading" }, "Statistics"), h("div", { id: "stats" })),
  );
}

function seriesText(s: Rec): string {
  return `${s.modality ?? "?"} series ${s.seriesUid}: ${s.count} of ${s.referenced || s.count} instance(s)`;
}

function planItem(p: Rec): HTMLElement {
  const ss = p.structureSet;
  const kids: HTMLElement[] = [];
  if (ss) {
    kids.push(h("li", {}, `RTSTRUCT ${ss.label ?? ss.sopInstanceUid}${ss.missing ? " — MISSING" : ""}`,
      h("ul", {}, (ss.imageSeries ?? []).map((s: Rec) => h("li", {}, seriesText(s))))));
  }
  for (const d of p.doses ?? []) kids.push(h("li", {}, `RTDOSE ${d.summation ?? ""}${d.beams?.length ? ` beams ${d.beams.join(", ")}` : ""}`));
  for (const r of p.records ?? []) kids.push(h("li", {}, `${r.kind ?? "treatment record"}${r.fraction !== undefined ? `, fraction ${r.fraction}` : ""}${r.date ? `, ${r.date}` : ""}${r.machine ? `, ${r.machine}` : ""}`));
  for (const i of p.images ?? []) kids.push(h("li", {}, `RTIMAGE ${i.label ?? i.sopInstanceUid}`));
  for (const g of p.registrations ?? []) kids.push(h("li", {}, `REG ${g.kind ?? ""} (${(g.frameOfReferenceUids ?? []).length} frames of reference)`));
  for (const m of p.missing ?? []) kids.push(h("li", { class: "error" }, `MISSING ${m.kind} ${m.sopInstanceUid ?? m.seriesUid ?? ""}`));
  return h("li", { class: "tree-plan" }, h("strong", {}, `RTPLAN ${p.label ?? p.planUid}`), ` ${p.approval ?? ""} ${(p.machines ?? []).join(", ")} — ${p.beams} beam(s)`, h("ul", {}, kids));
}

async function showTree(path: string): Promise<void> {
  const el = document.getElementById("tree")!;
  replace(el, "Reading…");
  try {
    const r = await api<{ commandLine: string; records: Rec[]; errors: string[]; exitCode: number }>("/api/tree", { body: { path } });
    const byPatient = new Map<string, { name?: string; plans: Rec[]; unconnected?: Rec }>();
    for (const rec of r.records) {
      const key = rec.patientId ?? "?";
      const p: { name?: string; plans: Rec[]; unconnected?: Rec } = byPatient.get(key) ?? { name: rec.patientName, plans: [] };
      if (rec.type === "plan") p.plans.push(rec);
      else p.unconnected = rec;
      byPatient.set(key, p);
    }
    replace(el,
      h("p", { class: "muted" }, "Ran: ", h("code", {}, r.commandLine)),
      r.errors.length ? h("ul", { class: "problems" }, r.errors.map((e) => h("li", {}, e))) : null,
      h("ul", { class: "tree", id: "rt-tree" }, [...byPatient].map(([id, p]) =>
        h("li", {}, h("strong", {}, `Patient ${id}`), p.name ? ` ${String(p.name).replace(/\^+/g, ", ").replace(/, $/, "")}` : "",
          h("ul", {},
            p.plans.map(planItem),
            p.unconnected?.objects?.length
              ? h("li", {}, "Unconnected", h("ul", {}, p.unconnected.objects.map((o: Rec) => h("li", {}, `${o.modality ?? "?"} series ${o.seriesUid ?? ""}: ${o.count}`))))
              : null)))));
    announce(`Tree of ${byPatient.size} patient(s)`);
  } catch (e) {
    replace(el, h("p", { class: "error" }, (e as Error).message));
  }
}

async function showStats(pattern: string): Promise<void> {
  const el = document.getElementById("stats")!;
  replace(el, "Searching…");
  try {
    const r = await api<{ commandLine: string; stats: Rec[]; files: number; errors: string[] }>("/api/stats", {
      body: { path: folder, tags: tags.split("\n"), pattern: pattern || undefined },
    });
    replace(el,
      h("p", { class: "muted" }, "Ran: ", h("code", {}, r.commandLine), ` — ${r.files} matching file(s)`),
      r.errors.length ? h("ul", { class: "problems" }, r.errors.map((e) => h("li", {}, e))) : null,
      r.stats.map((s) => h("table", { class: "stats", "data-tag": s.tag },
        h("caption", {}, `${s.tag}: ${s.values.length} distinct value(s)`),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Value"), h("th", { scope: "col" }, "Files"))),
        h("tbody", {}, s.values.map((v: Rec) => h("tr", {}, h("td", {}, v.value === "" ? "(empty)" : v.value), h("td", { class: "num" }, String(v.count))))))));
    announce(`Statistics of ${r.files} file(s)`);
  } catch (e) {
    replace(el, h("p", { class: "error" }, (e as Error).message));
  }
}
