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

export interface ProgressCounts {
  patients: number;
  patientsTotal?: number;
  files: number;
  bytes: number;
  failed: number;
}

/**
 * A one-line progress display for stderr when it is a terminal (patients, files, bytes, rate,
 * ETA), redrawn at most every 200 ms; nothing at all when stderr is not a terminal. `summary()`
 * gives the closing line either way.
 */
export class Progress {
  readonly counts: ProgressCounts = { patients: 0, files: 0, bytes: 0, failed: 0 };
  private readonly started = Date.now();
  private last = 0;
  private readonly sink: { write(s: string): unknown; isTTY?: boolean };
  private readonly enabled: boolean;
  private drawn = false;

  constructor(sink: { write(s: string): unknown; isTTY?: boolean }, enabled = !!sink.isTTY) {
    this.sink = sink;
    this.enabled = enabled;
  }

  get elapsedSeconds(): number {
    return (Date.now() - this.started) / 1000;
  }

  update(change: Partial<ProgressCounts>): void {
    for (const [k, v] of Object.entries(change)) {
      if (k === "patientsTotal") this.counts.patientsTotal = v as number;
      else (this.counts as unknown as Record<string, number>)[k] += v as number;
    }
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.last < 200) return;
    this.last = now;
    this.sink.write(`\r\x1b[K${this.line()}`);
    this.drawn = true;
  }

  line(): string {
    const c = this.counts;
    const t = Math.max(this.elapsedSeconds, 0.001);
    const parts = [
      c.patientsTotal ? `patients ${c.patients}/${c.patientsTotal}` : `patients ${c.patients}`,
      `files ${c.files}`,
      formatBytes(c.bytes),
      `${formatBytes(c.bytes / t)}/s`,
    ];
    if (c.failed) parts.push(`failed ${c.failed}`);
    if (c.patientsTotal && c.patients > 0 && c.patients < c.patientsTotal) {
      parts.push(`ETA ${formatDuration((t / c.patients) * (c.patientsTotal - c.patients))}`);
    }
    return parts.join(" · ");
  }

  /** Clears the progress line so a log line can be written; the next update draws it again. */
  clearLine(): void {
    if (!this.drawn) return;
    this.sink.write("\r\x1b[K");
    this.drawn = false;
    this.last = 0;
  }

  /** Clears the progress line; returns the summary text for the log. */
  summary(): string {
    if (this.drawn) this.sink.write("\r\x1b[K");
    const c = this.counts;
    return `${c.patients} patient(s), ${c.files} file(s), ${formatBytes(c.bytes)}, ${c.failed} failed, in ${formatDuration(this.elapsedSeconds)}`;
  }
}
