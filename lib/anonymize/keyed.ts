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

/** Shifts a DA value (YYYYMMDD) back by `days`; other text is returned unchanged. */
export function shiftDate(value: string, days: number): string {
  const m = /^(\d{4})(\d{2})(\d{2})/.exec(value);
  if (!m) return value;
  const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) - days * 86_400_000;
  const d = new Date(t);
  if (Number.isNaN(t)) return value;
  const s = `${String(d.getUTCFullYear()).padStart(4, "0")}${String(d.getUTCMonth() + 1).padStart(2, "0")}${String(d.getUTCDate()).padStart(2, "0")}`;
  return s + value.slice(8);
}
