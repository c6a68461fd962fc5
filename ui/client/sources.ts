/// <reference lib="dom" />
/**
 * Sources and settings: the named DICOM peers, catalogs, folders and output folders of
 * rtexport.json (the file every command reads), each with "Test connection", and the default
 * calling AE title.
 */
import type { ConfigSection, ProbeResult, UiConfig } from "../shared/types.ts";
import { api, app, reloadConfig } from "./api.ts";
import { announce, field, h, newId, replace } from "./dom.ts";

interface FieldSpec {
  key: string;
  label: string;
  help?: string;
  type?: "text" | "number" | "checkbox";
  placeholder?: string;
  required?: boolean;
}

const SECTIONS: { section: ConfigSection; title: string; what: string; fields: FieldSpec[]; summary: (e: Record<string, unknown>) => string }[] = [
  {
    section: "catalogs", title: "Catalogs", what: "catalog",
    fields: [
      { key: "db", label: "Database URL", help: "sqlite:PATH, postgres://user:pass@host/db or mssql://user:pass@host/db", required: true, placeholder: "sqlite:/data/catalog.db" },
      { key: "vault", label: "Storage vault folder", help: "The folder the catalog's file paths are relative to" },
    ],
    summary: (e) => `${String(e.db ?? "").replace(/:[^/@:]*@/, ":***@")}${e.vault ? `, vault ${e.vault}` : ""}`,
  },
  {
    section: "peers", title: "DICOM peers", what: "peer",
    fields: [
      { key: "host", label: "Host", required: true, placeholder: "10.1.2.3" },
      { key: "port", label: "Port", type: "number", placeholder: "104" },
      { key: "calledAet", label: "Called AE title (the peer's)" },
      { key: "callingAet", label: "Calling AE title (ours)" },
      { key: "tls", label: "Use TLS", type: "checkbox" },
      { key: "ca", label: "CA certificate(s) to trust (PEM file)" },
      { key: "cert", label: "Client certificate (PEM file)" },
      { key: "key", label: "Client private key (PEM file)" },
    ],
    summary: (e) => `${e.calledAet ?? "ANY-SCP"}@${e.host}:${e.port ?? 104}${e.tls ? " (TLS)" : ""}`,
  },
  {
    section: "folders", title: "Folders of DICOM files", what: "folder",
    fields: [{ key: "path", label: "Folder", required: true, placeholder: "/data/old-export" }],
    summary: (e) => String(e.path ?? ""),
  },
  {
    section: "outputs", title: "Output folders", what: "output folder",
    fields: [
      { key: "path", label: "Folder", required: true, placeholder: "/mnt/export" },
      { key: "ledger", label: "Ledger URL", help: "Empty: sqlite:<folder>/.rtexport/ledger.sqlite; a shared postgres://… when several machines work one migration" },
    ],
    summary: (e) => `${e.path}${e.ledger ? `, ledger ${String(e.ledger).replace(/:[^/@:]*@/, ":***@")}` : ""}`,
  },
];

let root: HTMLElement;

/** The screen, rendered into `el`. */
export function renderSources(el: HTMLElement): void {
  root = el;
  draw();
}

function draw(): void {
  const c = app.config;
  replace(root,
    h("h2", {}, "Sources and settings"),
    h("p", { class: "muted" }, "Stored in ", h("code", {}, c.path), c.exists ? "" : " (created on the first save)", ", the file every rtexport command reads; keys the UI does not know are kept."),
    c.warnings.length ? h("ul", { class: "problems" }, c.warnings.map((w) => h("li", {}, w))) : null,
    ...SECTIONS.map((s) => sectionPanel(s, c)),
    defaultsPanel(c),
  );
}

function sectionPanel(s: typeof SECTIONS[number], c: UiConfig): HTMLElement {
  const entries = c[s.section] as Record<string, Record<string, unknown>>;
  const headingId = `heading-${s.section}`;
  const rows = Object.entries(entries).map(([name, entry]) => {
    const status = h("td", { class: "probe", role: "status", "data-probe": `${s.section}/${name}` });
    const test = h("button", { type: "button", "aria-label": `Test ${s.what} ${name}` }, "Test");
    test.addEventListener("click", async () => {
      replace(status, "testing…");
      try {
        const r = await api<ProbeResult>("/api/test", { body: { section: s.section, name } });
        replace(status, h("span", { class: `badge ${r.ok ? "ok" : "bad"}` }, r.ok ? "ok" : r.kind), " ", r.message);
        announce(`${s.what} ${name}: ${r.ok ? "ok" : r.kind}: ${r.message}`, r.ok ? "info" : "error");
      } catch (e) {
        replace(status, h("span", { class: "badge bad" }, "error"), " ", (e as Error).message);
      }
    });
    const edit = h("button", { type: "button", "aria-label": `Edit ${s.what} ${name}` }, "Edit");
    edit.addEventListener("click", () => fillForm(s.section, name, entry));
    const del = h("button", { type: "button", "aria-label": `Remove ${s.what} ${name}` }, "Remove");
    del.addEventListener("click", async () => {
      if (!confirm(`Remove ${s.what} "${name}" from ${c.path}?`)) return;
      await save(s.section, name, undefined);
    });
    return h("tr", {}, h("th", { scope: "row" }, name), h("td", {}, s.summary(entry)), h("td", { class: "buttons" }, test, edit, del), status);
  });
  const formId = `form-${s.section}`;
  const nameInput = h("input", { type: "text", id: `${formId}-name`, name: "name", required: true, autocomplete: "off", spellcheck: "false" });
  const inputs = s.fields.map((f) => {
    const input = h("input", { type: f.type ?? "text", id: `${formId}-${f.key}`, name: f.key, placeholder: f.placeholder, required: f.required, autocomplete: "off", spellcheck: "false" });
    return field(f.label, input, f.help);
  });
  const add = h("button", { type: "button", class: "primary", id: `${formId}-save` }, `Save ${s.what}`);
  add.addEventListener("click", async () => {
    const name = nameInput.value.trim();
    const entry: Record<string, unknown> = {};
    for (const f of s.fields) {
      const input = document.getElementById(`${formId}-${f.key}`) as HTMLInputElement;
      if (f.type === "checkbox") entry[f.key] = input.checked;
      else if (input.value.trim() !== "") entry[f.key] = f.type === "number" ? Number(input.value) : input.value.trim();
    }
    await save(s.section, name, entry);
  });
  return h("section", { class: "panel", "aria-labelledby": headingId },
    h("h3", { id: headingId }, s.title),
    rows.length
      ? h("table", { class: "entries" },
        h("thead", {}, h("tr", {}, ...["Name", "Settings", "", "Test result"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows))
      : h("p", { class: "muted" }, `No ${s.title.replace(/^[A-Z][a-z]/, (m) => m.toLowerCase())} yet.`),
    h("details", { class: "group", id: `${formId}-details` },
      h("summary", {}, `Add or change a ${s.what}`),
      h("form", { id: formId, class: "entry-form", onsubmit: (e: Event) => e.preventDefault() },
        field("Name", nameInput, "Letters, digits, '.', '_' and '-'"),
        inputs,
        h("div", { class: "actions" }, add)),
    ));
}

function fillForm(section: ConfigSection, name: string, entry: Record<string, unknown>): void {
  const formId = `form-${section}`;
  (document.getElementById(`${formId}-details`) as HTMLDetailsElement).open = true;
  (document.getElementById(`${formId}-name`) as HTMLInputElement).value = name;
  for (const f of SECTIONS.find((s) => s.section === section)!.fields) {
    const input = document.getElementById(`${formId}-${f.key}`) as HTMLInputElement;
    if (f.type === "checkbox") input.checked = entry[f.key] === true;
    else input.value = entry[f.key] === undefined ? "" : String(entry[f.key]);
  }
  (document.getElementById(`${formId}-name`) as HTMLInputElement).focus();
}

async function save(section: ConfigSection, name: string, entry: Record<string, unknown> | undefined): Promise<void> {
  try {
    if (entry === undefined) app.config = await api<UiConfig>(`/api/config/${section}/${encodeURIComponent(name)}`, { method: "DELETE" });
    else app.config = await api<UiConfig>(`/api/config/${section}/${encodeURIComponent(name)}`, { method: "PUT", body: entry });
    announce(entry === undefined ? `Removed "${name}"` : `Saved "${name}" in ${app.config.path}`);
    draw();
  } catch (e) {
    announce((e as Error).message, "error");
  }
}

function defaultsPanel(c: UiConfig): HTMLElement {
  const aet = h("input", { type: "text", id: newId("default-aet"), value: String(c.defaults.callingAet ?? ""), placeholder: "RTEXPORT", autocomplete: "off" });
  const save = h("button", { type: "button" }, "Save defaults");
  save.addEventListener("click", async () => {
    try {
      await api<UiConfig>("/api/config/defaults", { method: "PUT", body: { callingAet: aet.value.trim() } });
      await reloadConfig();
      announce("Defaults saved");
    } catch (e) {
      announce((e as Error).message, "error");
    }
  });
  return h("section", { class: "panel", "aria-labelledby": "heading-defaults" },
    h("h3", { id: "heading-defaults" }, "Defaults"),
    field("Calling AE title", aet, "Our AE title for every command that talks DICOM (\"defaults\": {\"callingAet\": …})"),
    h("div", { class: "actions" }, save));
}
