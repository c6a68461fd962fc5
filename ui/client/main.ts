/// <reference lib="dom" />
/**
 * The page of `rtexport ui`: five screens behind tabs (keyboard: arrow keys, Home, End), the one
 * shown named in the URL's hash so a reload or a second browser opens it again.
 */
import { api, app, reloadConfig } from "./api.ts";
import { renderBuilder } from "./builder.ts";
import { renderData } from "./data.ts";
import { announce, h, replace } from "./dom.ts";
import { leaveJobs, renderJobs } from "./jobs.ts";
import { renderPatients } from "./patients.ts";
import { renderSources } from "./sources.ts";
import type { CommandInfo } from "../shared/types.ts";

const TABS = [
  { id: "sources", label: "Sources" },
  { id: "patients", label: "Patients" },
  { id: "commands", label: "Commands" },
  { id: "jobs", label: "Jobs" },
  { id: "data", label: "Data" },
] as const;

type TabId = typeof TABS[number]["id"];

function route(): { tab: TabId; arg?: string } {
  const [tab, arg] = location.hash.replace(/^#/, "").split("/");
  return { tab: (TABS.some((t) => t.id === tab) ? tab : "patients") as TabId, arg };
}

function jobStarted(id: string): void {
  location.hash = `#jobs/${id}`;
}

async function show(): Promise<void> {
  const { tab, arg } = route();
  for (const t of TABS) {
    const button = document.getElementById(`tab-${t.id}`)!;
    const selected = t.id === tab;
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
  }
  const panel = document.getElementById("panel")!;
  panel.setAttribute("aria-labelledby", `tab-${tab}`);
  if (tab !== "jobs") leaveJobs();
  try {
    if (tab !== "jobs") await reloadConfig();
  } catch (e) {
    replace(panel, h("p", { class: "error" }, (e as Error).message));
    return;
  }
  if (tab === "sources") renderSources(panel);
  else if (tab === "patients") renderPatients(panel, jobStarted);
  else if (tab === "commands") renderBuilder(panel, jobStarted);
  else if (tab === "jobs") renderJobs(panel, arg);
  else renderData(panel);
  document.body.dataset.screen = tab;
}

function tabs(): HTMLElement {
  const list = h("div", { role: "tablist", "aria-label": "Screens" }, TABS.map((t) =>
    h("button", { type: "button", role: "tab", id: `tab-${t.id}`, "aria-controls": "panel", tabindex: -1 }, t.label)));
  list.addEventListener("click", (e) => {
    const b = (e.target as HTMLElement).closest("[role=tab]");
    if (b) location.hash = `#${b.id.slice(4)}`;
  });
  list.addEventListener("keydown", (e) => {
    const i = TABS.findIndex((t) => t.id === route().tab);
    const next = e.key === "ArrowRight" ? (i + 1) % TABS.length : e.key === "ArrowLeft" ? (i + TABS.length - 1) % TABS.length
      : e.key === "Home" ? 0 : e.key === "End" ? TABS.length - 1 : -1;
    if (next < 0) return;
    e.preventDefault();
    location.hash = `#${TABS[next].id}`;
    document.getElementById(`tab-${TABS[next].id}`)!.focus();
  });
  return list;
}

async function start(): Promise<void> {
  // The token came in the URL: it now sits in a cookie, so it leaves the address bar (and history, screenshots).
  if (location.search.includes("token=")) history.replaceState(null, "", location.pathname + location.hash);
  const header = document.getElementById("tabs")!;
  replace(header, tabs());
  try {
    app.info = await api("/api/info");
    app.commands = await api<CommandInfo[]>("/api/commands");
  } catch (e) {
    announce((e as Error).message, "error");
    return;
  }
  document.getElementById("version")!.textContent = app.info.version;
  globalThis.addEventListener("hashchange", () => void show());
  await show();
  document.body.dataset.ready = "true";
}

void start();
