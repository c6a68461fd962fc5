/**
 * Keyed, deterministic replacements: UIDs, patient pseudonyms and per-patient date shifts all
 * come from HMAC-SHA-256 with the user's key, so the same input gives the same output in every
 * file, every run and on every machine that has the key, and nobody without it can reverse them.
 */
import { createHmac } from "node:crypto";

/** The user's secret; at least 16 bytes of it are required so pseudonyms cannot be guessed by trying keys. */
export function keyBytes(key: string | Uint8Array): Uint8Array {
  const bytes = typeof key === "string" ? new TextEncoder().encode(key) : key;
  if (bytes.length < 16) throw new Error("The anonymization key is too short: use at least 16 bytes (e.g. 32 random hex digits)");
  return bytes;
}

function hmac(key: Uint8Array, domain: string, value: string): Uint8Array {
  const h = createHmac("sha256", key);
  h.update(domain);
  h.update("\0");
  h.update(value);
  return new Uint8Array(h.digest());
}

/**
 * `2.25.<decimal>`: the first 16 bytes of HMAC-SHA-256(key, uid), with the version and variant
 * bits of a UUID version 8 (RFC 9562 custom UUID) so the number is a valid UUID as PS3.5 B.2
 * requires for the 2.25 root. At most 44 characters.
 */
export function keyedUid(key: Uint8Array, uid: string): string {
  const d = hmac(key, "uid", uid);
  d[6] = (d[6] & 0x0f) | 0x80;
  d[8] = (d[8] & 0x3f) | 0x80;
  let n = 0n;
  for (let i = 0; i < 16; i++) n = (n << 8n) | BigInt(d[i]);
  return `2.25.${n.toString()}`;
}

/** A pseudonym for a patient ID: `ANON-` and 10 upper-case hex digits (40 bits of the HMAC). */
export function keyedPseudonym(key: Uint8Array, patientId: string): string {
  const d = hmac(key, "patient", patientId);
  let hex = "";
  for (let i = 0; i < 5; i++) hex += d[i].toString(16).padStart(2, "0");
  return `ANON-${hex.toUpperCase()}`;
}

/**
 * Days to move a patient's dates back for the modified-dates option: a whole number of weeks
 * (so weekdays, and with them treatment schedules, are preserved) between 7 and 3,640 days.
 */
export function keyedDateShiftDays(key: Uint8Array, patientId: string): number {
  const d = hmac(key, "date-shift", patientId);
  const n = ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) >>> 0;
  return 7 * (1 + (n % 520));
}

/** Shifts a DA value (YYYYMMDD) back by `days`; text that is not a date is returned unchanged. */
export function shiftDate(value: string, days: number): string {
  return shiftDateValue(value, "DA", days) ?? value;
}

const DA_FORMS = [
  /^(\d{4})(\d{2})(\d{2})$/, // PS3.5 DA
  /^(\d{4})\.(\d{2})\.(\d{2})$/, // ACR-NEMA 2.0 and pre-2003 DICOM (PS3.5 2002: "yyyy.mm.dd")
  /^(\d{4})(\d{2})()$/, // a partial date some systems write in a DA (year and month)
  /^(\d{4})()()$/, // year only
];
// PS3.5 DT: YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX]
const DT_FORM = /^(\d{4})(\d{2})?(\d{2})?(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?([+-]\d{4})?$/;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * Moves one DA or DT value back by `days`, keeping its precision: a value with only a year
 * (or a year and month) is shifted from the first day of that period and written with the same
 * precision; times and UTC offsets of a DT stay as they are (the shift is whole days). Legacy
 * `YYYY.MM.DD` dates are written in the current `YYYYMMDD` form. Returns `undefined` when the
 * value is not a date (the caller empties it: a value that cannot be shifted must not be kept).
 * An empty value stays empty.
 */
export function shiftDateValue(value: string, vr: "DA" | "DT" | string, days: number): string | undefined {
  const v = value.trim();
  if (v === "") return "";
  let y: string, m: string | undefined, d: string | undefined, rest = "";
  if (vr === "DT") {
    const r = DT_FORM.exec(v) ?? (/^\d{4}\.\d{2}\.\d{2}$/.test(v) ? DA_FORMS[1].exec(v) : null);
    if (!r) return undefined;
    [, y, m, d] = r;
    rest = (r[4] ?? "") + (r[5] ?? "");
    if (rest !== "" && (m === undefined || d === undefined)) return undefined;
    if (r[4] !== undefined && !validTime(r[4])) return undefined;
  } else {
    let r: RegExpExecArray | null = null;
    for (const f of DA_FORMS) if ((r = f.exec(v))) break;
    if (!r) return undefined;
    [, y, m, d] = r;
  }
  const year = Number(y), month = m ? Number(m) : 1, day = d ? Number(d) : 1;
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  const t = new Date(0);
  t.setUTCFullYear(year, month - 1, day);
  t.setUTCDate(t.getUTCDate() - days);
  const yy = String(t.getUTCFullYear()).padStart(4, "0");
  if (t.getUTCFullYear() < 1) return undefined;
  const mm = String(t.getUTCMonth() + 1).padStart(2, "0");
  const dd = String(t.getUTCDate()).padStart(2, "0");
  if (!m) return yy;
  if (!d) return yy + mm;
  return yy + mm + dd + rest;
}

function validTime(t: string): boolean {
  const hh = Number(t.slice(0, 2)), mi = t.length >= 4 ? Number(t.slice(2, 4)) : 0, ss = t.length >= 6 ? Number(t.slice(4, 6)) : 0;
  return hh <= 23 && mi <= 59 && ss <= 60;
}
