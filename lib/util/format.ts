/**
 * Sizes and durations in words for people: the terminal's progress line, `status` and the web
 * UI's dashboard show them alike (pure functions, no runtime imports, so the browser bundle can
 * take them too).
 */

/**
 * Bytes in decimal units: 999 B, 1.00 kB, 12.3 MB, 456 GB.
 *
 * @example
 * ```ts
 * formatBytes(1_234_567); // "1.23 MB"
 * ```
 */
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

/**
 * Seconds as 1h02m, 3m05s or 12s.
 *
 * @example
 * ```ts
 * formatDuration(185); // "3m05s"
 * ```
 */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  if (h) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m${String(r).padStart(2, "0")}s`;
  return `${r}s`;
}
