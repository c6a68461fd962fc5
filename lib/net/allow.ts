/**
 * Who may associate: allow-list entries that bind a calling AE title to a host or network and,
 * over TLS, to the subject of the client certificate (`AE`, `AE@10.0.0.5`, `AE@10.0.0.0/24`,
 * `AE@fd00::/64`, `AE#mim.hospital.org`, `AE@10.0.0.5#mim.hospital.org`). The AE title alone is
 * a name anyone can type; the address and the certificate are what a peer cannot simply claim.
 */
import { isIP } from "node:net";

/** One allow-list entry. */
export interface AllowEntry {
  aeTitle: string;
  /** Network the caller's address must be in (a host is a /32 or /128 network). */
  network?: { address: string; bits: number };
  /** Common name (CN) the caller's TLS client certificate subject must carry. */
  subject?: string;
}

/** What an SCP knows about a caller when it decides. */
export interface Caller {
  callingAet: string;
  /** Remote IP address (IPv4-mapped IPv6 addresses count as IPv4). */
  address: string;
  /** CN of the verified TLS client certificate's subject, when there is one. */
  subjectCn?: string;
}

/** A character an AE title may not hold (PS3.5 6.2: default repertoire without control characters and backslash). */
// deno-lint-ignore no-control-regex
const AE_FORBIDDEN = /[\x00-\x1f\x7f-\uffff\\]/;

/** True for a usable AE title: 1–16 characters of the default repertoire, no backslash, not all spaces. */
export function isValidAeTitle(ae: string): boolean {
  return ae.trim().length > 0 && ae.length <= 16 && !AE_FORBIDDEN.test(ae);
}

/** A string from a peer made safe for one log line: control characters shown as \xNN, at most 64 characters. */
export function printable(s: string): string {
  // deno-lint-ignore no-control-regex
  const out = s.replace(/[\x00-\x1f\x7f-\x9f\\]/g, (c) => c === "\\" ? "\\\\" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return out.length > 64 ? `${out.slice(0, 64)}…` : out;
}

/** Parses `AE[@ADDRESS[/BITS]][#CN]`; throws an Error naming the entry and what is wrong. */
export function parseAllowEntry(text: string): AllowEntry {
  const bad = (why: string) => new Error(`Invalid allow entry "${printable(text)}": ${why}`);
  let rest = text.trim();
  let subject: string | undefined;
  const hash = rest.indexOf("#");
  if (hash >= 0) {
    subject = rest.slice(hash + 1).trim();
    rest = rest.slice(0, hash);
    if (!subject) throw bad("nothing after \"#\" (expected the client certificate's CN)");
  }
  let aeTitle = rest;
  let network: AllowEntry["network"];
  const at = rest.lastIndexOf("@");
  if (at >= 0) {
    aeTitle = rest.slice(0, at);
    const net = rest.slice(at + 1).trim();
    const slash = net.indexOf("/");
    const address = (slash >= 0 ? net.slice(0, slash) : net).replace(/^\[(.*)\]$/, "$1");
    const family = isIP(address);
    if (family === 0) throw bad(`"${printable(address)}" is not an IP address (write AE@10.0.0.5 or AE@10.0.0.0/24)`);
    const max = family === 4 ? 32 : 128;
    let bits = max;
    if (slash >= 0) {
      const b = net.slice(slash + 1);
      if (!/^\d{1,3}$/.test(b) || Number(b) > max) throw bad(`"/${printable(b)}" is not a prefix length 0-${max}`);
      bits = Number(b);
    }
    network = { address, bits };
  }
  aeTitle = aeTitle.trim();
  if (!isValidAeTitle(aeTitle)) throw bad("the AE title must be 1-16 characters without backslash or control characters");
  const entry: AllowEntry = { aeTitle };
  if (network) entry.network = network;
  if (subject !== undefined) entry.subject = subject;
  return entry;
}

/** The entry as `parseAllowEntry` reads it. */
export function formatAllowEntry(e: AllowEntry): string {
  const net = e.network ? `@${e.network.address}${e.network.bits === (isIP(e.network.address) === 4 ? 32 : 128) ? "" : `/${e.network.bits}`}` : "";
  return `${e.aeTitle}${net}${e.subject !== undefined ? `#${e.subject}` : ""}`;
}

/** Address bytes (4 or 16), IPv4-mapped IPv6 as IPv4; undefined when it is not an address. */
function addressBytes(address: string): Uint8Array | undefined {
  const a = address.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1");
  if (isIP(a) === 4) {
    const parts = a.split(".").map(Number);
    return Uint8Array.from(parts);
  }
  if (isIP(a) !== 6) return undefined;
  const [head, tail = ""] = a.split("::");
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  let h = groups(head), t = groups(a.includes("::") ? tail : "");
  // An embedded IPv4 tail (::ffff:1.2.3.4 handled above; others) becomes two groups.
  const fix = (g: string[]) => g.flatMap((x) => x.includes(".") ? (() => { const b = x.split(".").map(Number); return [((b[0] << 8) | b[1]).toString(16), ((b[2] << 8) | b[3]).toString(16)]; })() : [x]);
  h = fix(h);
  t = fix(t);
  const all = a.includes("::") ? [...h, ...Array(8 - h.length - t.length).fill("0"), ...t] : h;
  if (all.length !== 8) return undefined;
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

/** True when `address` lies in the network. */
export function inNetwork(address: string, network: { address: string; bits: number }): boolean {
  const a = addressBytes(address);
  const n = addressBytes(network.address);
  if (!a || !n || a.length !== n.length) return false;
  let bits = network.bits;
  for (let i = 0; i < a.length && bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((a[i] & mask) !== (n[i] & mask)) return false;
  }
  return true;
}

/** The first entry the caller satisfies, if any. */
export function allowedBy(entries: readonly AllowEntry[], caller: Caller): AllowEntry | undefined {
  return entries.find((e) =>
    e.aeTitle === caller.callingAet &&
    (!e.network || inNetwork(caller.address, e.network)) &&
    (e.subject === undefined || e.subject === caller.subjectCn)
  );
}
