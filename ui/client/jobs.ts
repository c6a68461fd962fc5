/// <reference lib="dom" />
/**
 * Jobs and the live dashboard: per patient and plan pending, running, done or failed with the
 * reason; files, bytes, rate and ETA; the workers the ledger knows; the commands' messages. Fed by
 * Server-Sent Events of snapshots the server reads from the ledger, so every browser shows the same.
 */
import type { ItemState, JobSnapshot, JobSummary } from "../shared/types.ts";
import { api } from "./api.ts";
import { formatBytes, formatDuration } from "../../lib/util/format.ts";
import { announce, h, personName, replace } from "./dom.ts";

let root: HTMLElement;
let source: EventSource | undefined;
let shownId: string | undefined;
let lastState = "";

/** The screen, rendered into `el`, showing job `id` when given (else the newest). */
export function renderJobs(el: HTMLElement, id?: string): void {
  root = el;
  void draw(id);
}

/** Stops listening for a job's events (the screen is left). */
export function leaveJobs(): void {
  source?.close();
  source = undefined;
  shownId = undefined;
}

async function draw(id?: string): Promise<void> {
  let jobs: JobSummary[] = [];
  try {
    jobs = await api<JobSummary[]>("/api/jobs");
  } catch (e) {
    replace(root, h("h2", {}, "Jobs"), h("p", { class: "error" }, (e as Error).message));
    return;
  }
  const show = id ?? jobs[0]?.id;
  const list = h("ul", { class: "job-list", "aria-label": "Jobs" }, jobs.map((j) =>
    h("li", {}, h("a", { href: `#jobs/${j.id}`, "aria-current": j.id === show ? "page" : undefined, "data-job": j.id },
      h("span", { class: `badge state-${j.state}` }, j.state), " ", j.title, h("span", { class: "muted" }, ` ${new Date(j.created).toLocaleString()}`)))));
  replace(root,
    h("h2", {}, "Jobs"),
    h("div", { class: "jobs" },
      h("nav", { class: "panel job-nav", "aria-label": "Job list" }, jobs.length ? list : h("p", { class: "muted" }, "No jobs yet: start an export from Patients, or run a command.")),
      h("div", { id: "dashboard", class: "dashboard" })),
  );
  if (show) watch(show);
}

function watch(id: string): void {
  if (shownId === id && source) return;
  source?.close();
  shownId = id;
  lastState = "";
  const dash = document.getElementById("dashboard")!;
  skeleton(dash, id);
  source = new EventSource(`/api/jobs/${id}/events`);
  source.addEventListener("snapshot", (e) => {
    const snap = JSON.parse((e as MessageEvent).data) as JobSnapshot;
    update(snap);
  });
  source.onerror = () => {
    const s = document.getElementById("dash-connection");
    if (s) s.textContent = "Connection to the server lost; retrying…";
  };
  source.onopen = () => {
    const s = document.getElementById("dash-connection");
    if (s) s.textContent = "";
  };
}

function skeleton(dash: HTMLElement, id: string): void {
  delete document.body.dataset.jobState;
  document.body.dataset.job = id;
  const cancel = h("button", { type: "button", id: "job-cancel", disabled: true }, "Cancel (Ctrl-C)");
  cancel.addEventListener("click", async () => {
    try {
      await api(`/api/jobs/${id}/cancel`, { method: "POST", body: {} });
      announce("Cancel sent: the job stops at its next item and records what finished");
    } catch (e) {
      announce((e as Error).message, "error");
    }
  });
  const retry = h("button", { type: "button", id: "job-retry", disabled: true }, "Retry what is not done");
  retry.addEventListener("click", async () => {
    try {
      await api(`/api/jobs/${id}/retry`, { method: "POST", body: {} });
      announce("Retry started");
    } catch (e) {
      announce((e as Error).message, "error");
    }
  });
  replace(dash,
    h("section", { class: "panel", "aria-labelledby": "dash-title" },
      h("h3", { id: "dash-title" }, "Job"),
      h("p", { id: "dash-state", role: "status", "aria-live": "polite" }),
      h("p", { id: "dash-connection", class: "muted" }),
      h("div", { class: "actions" }, cancel, retry),
      h("div", { id: "dash-totals" }),
      h("div", { id: "dash-patients" }),
      h("div", { id: "dash-workers" }),
      h("details", { class: "group", id: "dash-runs-box" }, h("summary", {}, "Runs and command lines"), h("div", { id: "dash-runs" })),
      h("h4", {}, "Messages"),
      h("pre", { id: "dash-log", class: "log", tabindex: 0, "aria-label": "Messages of the job's commands" })));
}

function badge(state: ItemState | string): HTMLElement {
  return h("span", { class: `badge state-${state}` }, state);
}

function update(s: JobSnapshot): void {
  const title = document.getElementById("dash-title");
  if (!title) return;
  title.textContent = s.title;
  const stateEl = document.getElementById("dash-state")!;
  replace(stateEl, "State: ", badge(s.state), s.out ? h("span", { class: "muted" }, ` output ${s.out}`) : null);
  if (s.state !== lastState) {
    lastState = s.state;
    announce(`Job ${s.state}`);
    // The job list beside the dashboard says the same.
    const listed = document.querySelector(`a[data-job="${s.id}"] .badge`);
    if (listed) {
      listed.textContent = s.state;
      listed.className = `badge state-${s.state}`;
    }
  }
  document.body.dataset.jobState = s.state;
  (document.getElementById("job-cancel") as HTMLButtonElement).disabled = !s.active;
  const t = s.totals;
  const left = t.plansPending + t.plansRunning + t.plansFailed;
  (document.getElementById("job-retry") as HTMLButtonElement).disabled = s.active || (s.kind === "export" ? left === 0 : false);
  const progress = t.plans ? h("progress", { max: t.plans, value: t.plansDone + t.plansSkipped, "aria-label": "Plans done" }) : null;
  replace(document.getElementById("dash-totals")!,
    s.kind === "export"
      ? h("dl", { class: "totals" },
        h("div", {}, h("dt", {}, "Patients done"), h("dd", { id: "t-patients" }, `${t.patientsDone} / ${t.patients}`)),
        h("div", {}, h("dt", {}, "Plans done"), h("dd", { id: "t-plans" }, `${t.plansDone} / ${t.plans}`)),
        h("div", {}, h("dt", {}, "Failed"), h("dd", { id: "t-failed" }, String(t.plansFailed))),
        h("div", {}, h("dt", {}, "Running"), h("dd", {}, String(t.plansRunning))),
        h("div", {}, h("dt", {}, "Pending"), h("dd", {}, String(t.plansPending))),
        h("div", {}, h("dt", {}, "Files"), h("dd", { id: "t-files" }, String(t.files))),
        h("div", {}, h("dt", {}, "Bytes"), h("dd", {}, formatBytes(t.bytes))),
        h("div", {}, h("dt", {}, "Rate"), h("dd", { id: "t-rate" }, t.rate !== undefined ? `${formatBytes(t.rate)}/s` : "–")),
        h("div", {}, h("dt", {}, "ETA"), h("dd", { id: "t-eta" }, t.eta !== undefined ? formatDuration(t.eta) : "–")))
      : h("dl", { class: "totals" },
        h("div", {}, h("dt", {}, "Records"), h("dd", {}, String(s.records ?? "–"))),
        ...Object.entries(s.kinds ?? {}).map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, `${v.done} done, ${v.failed} failed, ${v.skipped} skipped, ${v.pending} pending`)))),
    progress);
  const rows: HTMLElement[] = [];
  for (const p of s.patients) {
    rows.push(h("tr", { class: "patient", "data-patient": p.patientId, "data-state": p.state },
      h("th", { scope: "row" }, p.patientId),
      h("td", {}, personName(p.name)),
      h("td", {}, badge(p.state)),
      h("td", {}, String(p.files)),
      h("td", {}, formatBytes(p.bytes)),
      h("td", {}, p.worker ?? ""),
      h("td", { class: "reason" }, p.error ?? "")));
    for (const q of p.plans) {
      rows.push(h("tr", { class: "plan", "data-plan-key": q.planKey, "data-state": q.state },
        h("td", {}),
        h("td", { class: "plan-name" }, q.label ?? q.planKey, q.authorizedBy ? h("span", { class: "muted" }, ` (${q.approval}, authorized by ${q.authorizedBy})`) : null),
        h("td", {}, badge(q.state)),
        h("td", {}, String(q.files)),
        h("td", {}, formatBytes(q.bytes)),
        h("td", {}),
        h("td", { class: "reason" }, q.error ?? "")));
    }
  }
  replace(document.getElementById("dash-patients")!, s.patients.length
    ? h("div", { class: "table-wrap" }, h("table", { class: "progress-table", id: "progress-table" },
      h("caption", {}, "Patients and plans"),
      h("thead", {}, h("tr", {}, ...["Patient / plan", "Name", "State", "Files", "Bytes", "Worker", "Reason"].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows)))
    : null);
  replace(document.getElementById("dash-workers")!, s.workers.length
    ? h("div", { class: "table-wrap" }, h("table", { class: "workers" },
      h("caption", {}, "Workers (from the ledger)"),
      h("thead", {}, h("tr", {}, ...["Host", "PID", "State", "Heartbeat", "Items", "Files", "Bytes", "Rate"].map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, s.workers.map((w) => h("tr", { "data-pid": w.pid ?? "" },
        h("td", {}, w.host), h("td", {}, String(w.pid ?? "")), h("td", {}, badge(w.state === "finished" ? (w.outcome ?? "finished") : w.state)),
        h("td", {}, w.lastHeartbeat ? new Date(w.lastHeartbeat).toLocaleTimeString() : ""), h("td", {}, String(w.items)), h("td", {}, String(w.files)),
        h("td", {}, formatBytes(w.bytes)), h("td", {}, w.bytesPerSecond !== null ? `${formatBytes(w.bytesPerSecond)}/s` : ""))))))
    : null);
  replace(document.getElementById("dash-runs")!, h("ol", {}, s.runs.map((r) =>
    h("li", {},
      `${r.retry ? "Retry" : "Start"} ${new Date(r.started).toLocaleString()} on ${r.host}, pid ${r.pid ?? "?"}: `,
      r.ended ? (r.signal ? `killed by ${r.signal}` : `exit status ${r.exitCode}`) : "running",
      r.error ? h("span", { class: "error" }, ` — ${r.error}`) : null,
      h("br"), h("code", { class: "preview" }, r.commandLine)))));
  const log = document.getElementById("dash-log")!;
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.textContent = s.log.join("\n");
  if (atEnd) log.scrollTop = log.scrollHeight;
}
