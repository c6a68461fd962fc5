/**
 * The progress line a command shows on a terminal's stderr while a stage runs, fed by the
 * stage's events: patients, items (of the total when known), bytes, rate, failures, ETA, and the
 * stage's phase ("paused until 19:00"). Nothing at all when stderr is not a terminal.
 */
import type { StageEvent, StageTotals } from "../lib/stage/stage.ts";

/** Formats a byte count for people: 1.5 GB, 12 MB, 900 B. */
export function formatBytes(n: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : v < 100 ? 1 : 0)} ${units[u]}`;
}

/** Formats seconds as 1h02m, 3m05s or 12s. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}

/** What the line counts. */
export interface ProgressCounts {
  patients: number;
  items: number;
  bytes: number;
  failed: number;
  skipped: number;
}

/** A terminal-like sink: stderr. */
export interface ProgressSink {
  write(s: string): unknown;
  isTTY?: boolean;
}

/**
 * A one-line progress display, redrawn at most every 200 ms. `clearLine()` before any other
 * output on the terminal keeps the line and that output apart; the next update draws it again.
 */
export class Progress {
  readonly counts: ProgressCounts = { patients: 0, items: 0, bytes: 0, failed: 0, skipped: 0 };
  total: StageTotals = {};
  note: string | undefined;
  readonly #started = Date.now();
  readonly #sink: ProgressSink;
  readonly #enabled: boolean;
  readonly #noun: string;
  readonly #patients = new Set<string>();
  #last = 0;
  #drawn = false;

  constructor(sink: ProgressSink, options: { enabled?: boolean; noun?: string } = {}) {
    this.#sink = sink;
    this.#enabled = options.enabled ?? sink.isTTY === true;
    this.#noun = options.noun ?? "files";
  }

  get elapsedSeconds(): number {
    return (Date.now() - this.#started) / 1000;
  }

  /** Counts one stage event and redraws when due. */
  onEvent(e: StageEvent): void {
    switch (e.type) {
      case "progress":
        if (e.total) this.total = { ...this.total, ...e.total };
        if (e.note !== undefined) this.note = e.note || undefined;
        this.#draw(true);
        return;
      case "done":
        this.counts.items++;
        this.counts.bytes += e.bytes ?? 0;
        this.#patient(e.patientId);
        break;
      case "skipped":
        this.counts.skipped++;
        this.#patient(e.patientId);
        break;
      case "failed":
        this.counts.failed++;
        this.#patient(e.patientId);
        break;
      case "started":
        this.#draw(true);
        return;
      default:
        return;
    }
    this.#draw(false);
  }

  /** The line as it is drawn. */
  line(): string {
    const c = this.counts;
    const t = Math.max(this.elapsedSeconds, 0.001);
    const parts: string[] = [];
    if (c.patients || this.total.patients) {
      parts.push(this.total.patients ? `patients ${c.patients}/${this.total.patients}` : `patients ${c.patients}`);
    }
    const handled = c.items + c.skipped + c.failed;
    parts.push(this.total.items ? `${this.#noun} ${handled}/${this.total.items}` : `${this.#noun} ${handled}`);
    parts.push(formatBytes(c.bytes), `${formatBytes(c.bytes / t)}/s`);
    if (c.failed) parts.push(`failed ${c.failed}`);
    const eta = this.#eta(t);
    if (eta !== undefined) parts.push(`ETA ${formatDuration(eta)}`);
    if (this.note) parts.push(this.note);
    return parts.join(" · ");
  }

  /** Clears the progress line so other output can be written; the next update draws it again. */
  clearLine(): void {
    if (!this.#drawn) return;
    this.#sink.write("\r\x1b[K");
    this.#drawn = false;
    this.#last = 0;
  }

  /** Clears the line; returns the closing figures (`3 patients, 12 MB in 4s`). */
  summary(): string {
    this.clearLine();
    const c = this.counts;
    const parts: string[] = [];
    if (c.patients) parts.push(`${c.patients} patient${c.patients === 1 ? "" : "s"}`);
    parts.push(formatBytes(c.bytes));
    return `${parts.join(", ")} in ${formatDuration(this.elapsedSeconds)}`;
  }

  #eta(t: number): number | undefined {
    const c = this.counts;
    if (this.total.bytes && c.bytes > 0 && c.bytes < this.total.bytes) return (t / c.bytes) * (this.total.bytes - c.bytes);
    const handled = c.items + c.skipped + c.failed;
    if (this.total.items && handled > 0 && handled < this.total.items) return (t / handled) * (this.total.items - handled);
    if (this.total.patients && c.patients > 0 && c.patients < this.total.patients) {
      return (t / c.patients) * (this.total.patients - c.patients);
    }
    return undefined;
  }

  #patient(id: string | undefined): void {
    if (id === undefined || this.#patients.has(id)) return;
    this.#patients.add(id);
    this.counts.patients = this.#patients.size;
  }

  #draw(force: boolean): void {
    if (!this.#enabled) return;
    const now = Date.now();
    if (!force && now - this.#last < 200) return;
    this.#last = now;
    this.#sink.write(`\r\x1b[K${this.line()}`);
    this.#drawn = true;
  }
}
