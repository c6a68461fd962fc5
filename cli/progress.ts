/**
 * The progress line a command shows on a terminal's stderr while a stage runs, fed by the
 * stage's events: patients, items (of the total when known), bytes, rate, failures, ETA, and the
 * stage's phase ("paused until 19:00"). Nothing at all when stderr is not a terminal.
 */
import { clearInterval, setInterval } from "node:timers";
import type { StageEvent, StageTotals } from "../lib/stage/stage.ts";
import { formatBytes, formatDuration } from "../lib/util/format.ts";


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
  /** Width of the terminal, when known: a longer line would wrap and could not be redrawn in place. */
  columns?: number;
}

const CLEAR = "\r\x1b[K";

/**
 * The one line at the bottom of a terminal where a command shows its progress. Everything else a
 * command writes to that terminal (messages on stderr, the human view on stdout) goes through
 * {@linkcode StatusLine.print}, which clears the line first and draws it again after, so progress
 * and other output never share a line. Disabled (nothing drawn) when stderr is not a terminal.
 */
export class StatusLine {
  readonly enabled: boolean;
  readonly #sink: ProgressSink;
  #text: string | undefined;
  #shown = false;
  /** Where a redraw after other output gets the line's current text (else the last one shown). */
  source: (() => string) | undefined;

  constructor(sink: ProgressSink, enabled: boolean = sink.isTTY === true) {
    this.#sink = sink;
    this.enabled = enabled;
  }

  /** Shows `text` as the line, cut to the terminal's width. */
  show(text: string): void {
    if (!this.enabled) return;
    const width = this.#sink.columns;
    const chars = [...text];
    this.#text = width && width > 1 && chars.length >= width ? chars.slice(0, width - 2).join("") + "…" : text;
    this.#sink.write(CLEAR + this.#text);
    this.#shown = true;
  }

  /** Takes the line off the screen (until {@linkcode StatusLine.restore} or the next `show`). */
  clear(): void {
    if (!this.#shown) return;
    this.#sink.write(CLEAR);
    this.#shown = false;
  }

  /** Draws the line again after other output (with its current text). */
  restore(): void {
    if (!this.#shown && this.#text !== undefined) this.show(this.source?.() ?? this.#text);
  }

  /** Runs `write` (output of whole lines) with the line off the screen, then draws it again. */
  print(write: () => void): void {
    this.clear();
    try {
      write();
    } finally {
      this.restore();
    }
  }

  /** Takes the line off the screen for good: nothing is drawn again until the next `show`. */
  end(): void {
    this.clear();
    this.#text = undefined;
    this.source = undefined;
  }
}

/** How often the line is redrawn while nothing happens (elapsed time, rate and ETA move on). */
const TICK_MS = 500;

/**
 * A one-line progress display, redrawn at most every 200 ms on events and every half second
 * while the stage waits (so the first line shows at once and a slow peer still shows time
 * passing). Other output goes through the {@linkcode StatusLine}, which keeps them apart.
 */
export class Progress {
  readonly counts: ProgressCounts = { patients: 0, items: 0, bytes: 0, failed: 0, skipped: 0 };
  total: StageTotals = {};
  note: string | undefined;
  readonly #started = Date.now();
  readonly #line: StatusLine;
  readonly #noun: string;
  readonly #patients = new Set<string>();
  #last = 0;
  #ticker: ReturnType<typeof setInterval> | undefined;

  constructor(line: StatusLine, options: { noun?: string } = {}) {
    this.#line = line;
    this.#noun = options.noun ?? "files";
  }

  /** Draws the line now and keeps it fresh until {@linkcode Progress.stop}. */
  start(): void {
    if (!this.#line.enabled || this.#ticker !== undefined) return;
    this.#line.source = () => this.line();
    this.#draw(true);
    this.#ticker = setInterval(() => this.#draw(true), TICK_MS);
    this.#ticker.unref?.();
  }

  /** Stops redrawing and takes the line off the screen. */
  stop(): void {
    if (this.#ticker !== undefined) clearInterval(this.#ticker);
    this.#ticker = undefined;
    this.#line.end();
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
        return; // drawn by start()
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
    // Elapsed time while there is no ETA: a stage waiting on a slow peer still shows time passing.
    parts.push(eta !== undefined ? `ETA ${formatDuration(eta)}` : formatDuration(t));
    if (this.note) parts.push(this.note);
    return parts.join(" · ");
  }

  /** Stops the line; returns the closing figures (`3 patients, 12 MB in 4s`). */
  summary(): string {
    this.stop();
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
    if (!this.#line.enabled) return;
    const now = Date.now();
    if (!force && now - this.#last < 200) return;
    this.#last = now;
    this.#line.show(this.line());
  }
}
