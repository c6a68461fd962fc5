/**
 * Pacing for runs against a live clinical system: time windows (`19:00-06:30`, `Mon-Fri
 * 19:00-06:30`, `Sat-Sun`), a rate limit (`20/s`) and a bandwidth limit (`50MB/s`). A stage
 * asks its {@link Pacer} before each item: outside every window it pauses (after releasing its
 * associations) until the next window opens; inside, it waits as long as the limits say. One
 * module for push, retrieve and export-plan, so the three behave alike.
 *
 * Times are local wall-clock times (a window follows daylight saving time). A window that ends
 * before it starts runs past midnight and belongs to the day it starts on.
 */

/** Where a pacer reads the time and how it waits: the system clock, or a test's. */
export interface Clock {
  now(): number;
  /** Resolves after `ms` (early when `signal` aborts). */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** The longest a single timer may wait (setTimeout's limit is 2^31-1 ms). */
const MAX_TIMER = 2 ** 31 - 1;

/** The system clock. */
export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted || ms <= 0) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, Math.min(ms, MAX_TIMER));
      signal?.addEventListener("abort", done, { once: true });
    }),
};

/**
 * A clock for tests that starts at `start` and runs at real speed, except that waiting jumps:
 * `sleep(ms)` moves the clock `ms` ahead at once. A run that must pause for twelve hours does so
 * in no time, and the events it sends still say what it waited for.
 *
 * @example
 * ```ts
 * const clock = jumpingClock(new Date(2025, 2, 4, 6, 29, 58).getTime());
 * const pace = new Pacer({ windows: parseWindows("19:00-06:30"), clock });
 * ```
 */
export function jumpingClock(start: number): Clock & { readonly jumped: number } {
  const realStart = Date.now();
  let jumped = 0;
  return {
    /** How far waiting has moved the clock ahead of real time, ms. */
    get jumped() {
      return jumped;
    },
    now: () => start + (Date.now() - realStart) + jumped,
    sleep: async (ms) => {
      if (ms > 0) jumped += ms;
      await new Promise<void>((r) => setTimeout(r, 0));
    },
  };
}

/**
 * The clock a run uses: the system's, or a test clock when `value` (the `RTEXPORT_CLOCK`
 * environment variable) gives a start time (`2025-03-03T06:29:58`, local time).
 */
export function clockFrom(value: string | undefined): Clock {
  if (value === undefined || value.trim() === "") return systemClock;
  const t = parseLocalTime(value.trim());
  if (t === undefined) throw new Error(`Invalid clock "${value}": expected a time like 2025-03-03T06:29:58`);
  return jumpingClock(t);
}

function parseLocalTime(text: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?$/.exec(text);
  if (m) return new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] ?? 0)).getTime();
  const t = Date.parse(text);
  return Number.isFinite(t) ? t : undefined;
}

/** One time window: on the given weekdays (0 Sunday … 6 Saturday), from `start` to `end` (minutes after midnight). */
export interface TimeWindow {
  days: number[];
  /** Minutes after midnight the window opens. */
  start: number;
  /** Minutes after midnight it closes; at or before `start` it closes the next day (1440 with start 0: all day). */
  end: number;
  /** The text it was parsed from. */
  text: string;
}

const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const DAY_LABELS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

function dayIndex(name: string): number | undefined {
  const i = DAY_NAMES.indexOf(name.slice(0, 3).toLowerCase());
  return i >= 0 && DAY_NAMES[i].startsWith(name.toLowerCase().slice(0, 3)) && name.length >= 3 ? i : undefined;
}

function parseDays(text: string, whole: string): number[] {
  const lower = text.toLowerCase();
  if (lower === "weekdays") return [1, 2, 3, 4, 5];
  if (lower === "weekends") return [0, 6];
  if (lower === "daily" || lower === "*") return [0, 1, 2, 3, 4, 5, 6];
  const days = new Set<number>();
  for (const part of text.split(",")) {
    const range = part.split("-");
    const bad = () => new Error(`Invalid time window "${whole}": "${part}" is not a weekday or a range of weekdays (Mon-Fri, Sat,Sun)`);
    if (range.length === 1) {
      const d = dayIndex(range[0].trim());
      if (d === undefined) throw bad();
      days.add(d);
    } else if (range.length === 2) {
      const a = dayIndex(range[0].trim());
      const b = dayIndex(range[1].trim());
      if (a === undefined || b === undefined) throw bad();
      for (let d = a;; d = (d + 1) % 7) {
        days.add(d);
        if (d === b) break;
      }
    } else throw bad();
  }
  return [...days].sort();
}

function parseClockTime(text: string, whole: string): number {
  const m = /^(\d{1,2}):(\d{2})$/.exec(text.trim());
  if (!m || +m[1] > 24 || +m[2] > 59 || (+m[1] === 24 && +m[2] !== 0)) {
    throw new Error(`Invalid time window "${whole}": "${text}" is not a time of day (HH:MM)`);
  }
  return +m[1] * 60 + +m[2];
}

/**
 * The line a run logs when it pauses ("Paused until 19:00: outside every time window, peer
 * associations released"), from the pacer's label; the progress line shows the label itself.
 */
export function pauseText(label: string): string {
  return `${label.charAt(0).toUpperCase()}${label.slice(1)}: outside every time window, peer associations released`;
}

/**
 * Parses one window: `19:00-06:30` (every day), `Mon-Fri 19:00-06:30`, `Sat,Sun` (all day),
 * `weekdays 20:00-24:00`. Throws an error naming the text when it is not one.
 */
export function parseWindow(text: string): TimeWindow {
  const whole = text.trim();
  if (whole === "") throw new Error("Invalid time window \"\": expected e.g. 19:00-06:30 or Mon-Fri 19:00-06:30");
  const parts = whole.split(/\s+/);
  let days = [0, 1, 2, 3, 4, 5, 6];
  let times: string | undefined;
  if (parts.length === 1) {
    if (/\d/.test(parts[0])) times = parts[0];
    else days = parseDays(parts[0], whole);
  } else if (parts.length === 2) {
    days = parseDays(parts[0], whole);
    times = parts[1];
  } else {
    throw new Error(`Invalid time window "${whole}": expected [DAYS] HH:MM-HH:MM, e.g. Mon-Fri 19:00-06:30`);
  }
  if (times === undefined) return { days, start: 0, end: 1440, text: whole };
  const span = times.split("-");
  if (span.length !== 2) throw new Error(`Invalid time window "${whole}": expected HH:MM-HH:MM`);
  const start = parseClockTime(span[0], whole);
  const end = parseClockTime(span[1], whole);
  if (start === end) throw new Error(`Invalid time window "${whole}": it starts and ends at the same time`);
  return { days, start, end, text: whole };
}

/**
 * Parses several windows separated by `;` (what one environment variable can hold).
 *
 * @example
 * ```ts
 * const windows = parseWindows(["Mon-Fri 19:00-06:30", "Sat,Sun"]);
 * windowAt(windows, Date.now()); // { open: true, closes } or { open: false, opens }
 * ```
 */
export function parseWindows(texts: string | string[]): TimeWindow[] {
  const list = (Array.isArray(texts) ? texts : [texts]).flatMap((t) => t.split(";")).map((t) => t.trim()).filter((t) => t !== "");
  return list.map(parseWindow);
}

/** The intervals of `w` that start on the day of `dayStart` (local midnight). */
function intervalOn(w: TimeWindow, dayStart: Date): [number, number] | undefined {
  if (!w.days.includes(dayStart.getDay())) return undefined;
  const y = dayStart.getFullYear(), mo = dayStart.getMonth(), d = dayStart.getDate();
  const start = new Date(y, mo, d, Math.floor(w.start / 60), w.start % 60).getTime();
  const endDay = w.end <= w.start ? d + 1 : d;
  const end = new Date(y, mo, endDay, Math.floor(w.end / 60), w.end % 60).getTime();
  return [start, end];
}

function midnight(t: number, addDays = 0): Date {
  const x = new Date(t);
  return new Date(x.getFullYear(), x.getMonth(), x.getDate() + addDays);
}

/**
 * Whether `t` lies in one of `windows`; when it does not, when the next one opens (undefined
 * when none ever does). No windows: always open.
 */
export function windowAt(windows: readonly TimeWindow[], t: number): { open: true; closes?: number } | { open: false; opens?: number } {
  if (windows.length === 0) return { open: true };
  let closes: number | undefined;
  let opens: number | undefined;
  for (let k = -1; k <= 8; k++) {
    const day = midnight(t, k);
    for (const w of windows) {
      const iv = intervalOn(w, day);
      if (!iv) continue;
      if (iv[0] <= t && t < iv[1]) closes = Math.max(closes ?? 0, iv[1]);
      else if (iv[0] > t) opens = Math.min(opens ?? Infinity, iv[0]);
    }
  }
  if (closes !== undefined) return { open: true, closes };
  return { open: false, opens };
}

/** "19:00" when `t` is within a day of `now`, else "Mon 19:00". */
export function timeLabel(t: number, now: number): string {
  const d = new Date(t);
  const hm = `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  return t - now < 24 * 3600_000 ? hm : `${DAY_LABELS[d.getDay()]} ${hm}`;
}

const RATE_UNITS: Record<string, number> = { s: 1, sec: 1, min: 60, m: 60, h: 3600, hr: 3600 };

/**
 * `20/s`, `600/min`, `5000/h` → items per second.
 *
 * @example
 * ```ts
 * parseRate("600/min"); // 10
 * ```
 */
export function parseRate(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*([a-z]+))?\s*$/i.exec(text);
  const unit = m ? (m[2] ?? "s").toLowerCase() : "";
  if (!m || !(unit in RATE_UNITS) || +m[1] <= 0) throw new Error(`Invalid rate "${text}": expected e.g. 20/s, 600/min or 5000/h`);
  return +m[1] / RATE_UNITS[unit];
}

const SIZE_UNITS: Record<string, number> = {
  b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, k: 1e3, m: 1e6, g: 1e9,
};

/**
 * `50MB/s`, `800kB/s`, `1GiB/min` → bytes per second.
 *
 * @example
 * ```ts
 * parseBandwidth("50MB/s"); // 50_000_000
 * ```
 */
export function parseBandwidth(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)?\s*(?:\/\s*([a-z]+))?\s*$/i.exec(text);
  const size = m ? (m[2] ?? "b").toLowerCase() : "";
  const per = m ? (m[3] ?? "s").toLowerCase() : "";
  if (!m || !(size in SIZE_UNITS) || !(per in RATE_UNITS) || +m[1] <= 0) {
    throw new Error(`Invalid bandwidth "${text}": expected e.g. 50MB/s, 800kB/s or 2GiB/min`);
  }
  return (+m[1] * SIZE_UNITS[size]) / RATE_UNITS[per];
}

/** What a pacer enforces. */
export interface PaceOptions {
  /** Work only inside these windows (none: any time). */
  windows?: TimeWindow[];
  /** Items per second at most (all workers together). */
  maxRate?: number;
  /** Bytes per second at most (all workers together). */
  maxBandwidth?: number;
  clock?: Clock;
}

/**
 * Enforces {@link PaceOptions} for one run; shared by its workers.
 *
 * @example
 * ```ts
 * const pacer = new Pacer({ windows: parseWindows("19:00-06:30"), maxRate: parseRate("20/s") });
 * for (const item of items) {
 *   await pacer.waitForWindow({ onPause: (until) => console.error(`paused until ${until}`) });
 *   await pacer.take(1, item.bytes);
 *   await send(item);
 * }
 * ```
 */
export class Pacer {
  readonly windows: readonly TimeWindow[];
  readonly maxRate?: number;
  readonly maxBandwidth?: number;
  readonly clock: Clock;
  /** When the next item may start (rate), and when the next byte may go (bandwidth). */
  #nextItem = 0;
  #nextByte = 0;
  /** A pause in progress, shared by every worker that reaches it. */
  #pause: Promise<void> | undefined;

  constructor(opts: PaceOptions = {}) {
    this.windows = opts.windows ?? [];
    if (opts.maxRate !== undefined) this.maxRate = opts.maxRate;
    if (opts.maxBandwidth !== undefined) this.maxBandwidth = opts.maxBandwidth;
    this.clock = opts.clock ?? systemClock;
  }

  /** True when the pacer limits anything. */
  get active(): boolean {
    return this.windows.length > 0 || this.maxRate !== undefined || this.maxBandwidth !== undefined;
  }

  /** Undefined inside a window; outside, when the next one opens (undefined: never) and its label. */
  closed(): { opens?: number; label: string } | undefined {
    const now = this.clock.now();
    const w = windowAt(this.windows, now);
    if (w.open) return undefined;
    return w.opens === undefined ? { label: "paused: no time window ever opens" } : { opens: w.opens, label: `paused until ${timeLabel(w.opens, now)}` };
  }

  /**
   * Waits until a window is open. Before pausing, `beforePause` runs (release associations there)
   * and `onPause` gets the label ("paused until 19:00"); `onResume` runs once the window opened.
   * Workers that arrive during a pause wait for the same one. Resolves true when it paused.
   * A stop request (`signal`) ends the wait early.
   */
  async waitForWindow(hooks: {
    signal?: AbortSignal;
    beforePause?: () => Promise<void> | void;
    onPause?: (label: string, opens?: number) => void;
    onResume?: () => void;
  } = {}): Promise<boolean> {
    if (this.windows.length === 0) return false;
    let paused = false;
    for (;;) {
      if (hooks.signal?.aborted) return paused;
      if (this.#pause) {
        await hooks.beforePause?.();
        paused = true;
        await this.#pause;
        continue;
      }
      const c = this.closed();
      if (!c) return paused;
      paused = true;
      this.#pause = (async () => {
        await hooks.beforePause?.();
        hooks.onPause?.(c.label, c.opens);
        if (c.opens === undefined) {
          // No window ever opens: wait for the stop request.
          await new Promise<void>((resolve) => hooks.signal?.addEventListener("abort", () => resolve(), { once: true }));
        } else {
          while (!hooks.signal?.aborted && this.clock.now() < c.opens) await this.clock.sleep(c.opens - this.clock.now(), hooks.signal);
        }
        // Nothing went during the pause: the limits start afresh.
        this.#nextItem = this.#nextByte = 0;
        hooks.onResume?.();
      })().finally(() => (this.#pause = undefined));
      await this.#pause;
    }
  }

  /**
   * Waits until `items` more items of `bytes` bytes may go under the rate and bandwidth limits,
   * and books them. Evenly spaced: no bursts.
   */
  async take(items = 1, bytes = 0, signal?: AbortSignal): Promise<void> {
    const now = this.clock.now();
    let at = now;
    if (this.maxRate !== undefined) {
      const slot = Math.max(this.#nextItem, now);
      this.#nextItem = slot + (items * 1000) / this.maxRate;
      at = Math.max(at, slot);
    }
    if (this.maxBandwidth !== undefined && bytes > 0) {
      const slot = Math.max(this.#nextByte, now);
      this.#nextByte = slot + (bytes * 1000) / this.maxBandwidth;
      at = Math.max(at, slot);
    }
    if (at > now) await this.clock.sleep(at - now, signal);
  }

  /**
   * Books work that already happened (a C-MOVE that brought `items` objects of `bytes` bytes):
   * the next `take` waits for what it cost.
   */
  book(items: number, bytes: number): void {
    const now = this.clock.now();
    if (this.maxRate !== undefined && items > 0) this.#nextItem = Math.max(this.#nextItem, now) + (items * 1000) / this.maxRate;
    if (this.maxBandwidth !== undefined && bytes > 0) this.#nextByte = Math.max(this.#nextByte, now) + (bytes * 1000) / this.maxBandwidth;
  }

  /** Waits until booked work has been paid for (see {@link Pacer.book}). */
  async settle(signal?: AbortSignal): Promise<void> {
    const now = this.clock.now();
    const at = Math.max(this.maxRate !== undefined ? this.#nextItem : 0, this.maxBandwidth !== undefined ? this.#nextByte : 0);
    if (at > now) await this.clock.sleep(at - now, signal);
  }
}
