// Specific Character Set (0008,0005) handling, PS3.3 C.12.1.1.2 and PS3.5 section 6.1.
// Single-byte and multi-byte sets without code extensions decode with TextDecoder; the
// ISO 2022 sets (multi-valued 0008,0005) switch code elements on escape sequences.

const ESC = 0x1b;

type CodeElement =
  | { kind: "ascii" }
  | { kind: "single"; label: string } // G1 96-charsets (ISO 8859-x) and JIS X 0201 katakana
  | { kind: "double"; label: string; prefix?: number }; // JIS X 0208/0212, KS X 1001, GB 2312

interface Term {
  /** decoder label when the term is used without code extensions */
  label: string;
  g0?: CodeElement;
  g1?: CodeElement;
  /** escape sequence bytes (after ESC) that designate this term's element */
  escape?: number[];
}

const ASCII: CodeElement = { kind: "ascii" };
const single = (label: string): CodeElement => ({ kind: "single", label });

// Defined terms of PS3.3 Table C.12-2/C.12-3/C.12-4/C.12-5.
const TERMS: Record<string, Term> = {
  "ISO_IR 6": { label: "latin1", g0: ASCII },
  "ISO_IR 100": { label: "latin1", g1: single("latin1") },
  "ISO_IR 101": { label: "iso-8859-2", g1: single("iso-8859-2") },
  "ISO_IR 109": { label: "iso-8859-3", g1: single("iso-8859-3") },
  "ISO_IR 110": { label: "iso-8859-4", g1: single("iso-8859-4") },
  "ISO_IR 144": { label: "iso-8859-5", g1: single("iso-8859-5") },
  "ISO_IR 127": { label: "iso-8859-6", g1: single("iso-8859-6") },
  "ISO_IR 126": { label: "iso-8859-7", g1: single("iso-8859-7") },
  "ISO_IR 138": { label: "iso-8859-8", g1: single("iso-8859-8") },
  "ISO_IR 148": { label: "windows-1254", g1: single("windows-1254") },
  "ISO_IR 203": { label: "iso-8859-15", g1: single("iso-8859-15") },
  "ISO_IR 166": { label: "windows-874", g1: single("windows-874") },
  "ISO_IR 13": { label: "shift_jis", g1: single("jisx0201") },
  "ISO_IR 192": { label: "utf-8" },
  "GB18030": { label: "gb18030" },
  "GBK": { label: "gbk" },
  "ISO 2022 IR 6": { label: "latin1", g0: ASCII, escape: [0x28, 0x42] },
  "ISO 2022 IR 100": { label: "latin1", g1: single("latin1"), escape: [0x2d, 0x41] },
  "ISO 2022 IR 101": { label: "iso-8859-2", g1: single("iso-8859-2"), escape: [0x2d, 0x42] },
  "ISO 2022 IR 109": { label: "iso-8859-3", g1: single("iso-8859-3"), escape: [0x2d, 0x43] },
  "ISO 2022 IR 110": { label: "iso-8859-4", g1: single("iso-8859-4"), escape: [0x2d, 0x44] },
  "ISO 2022 IR 144": { label: "iso-8859-5", g1: single("iso-8859-5"), escape: [0x2d, 0x4c] },
  "ISO 2022 IR 127": { label: "iso-8859-6", g1: single("iso-8859-6"), escape: [0x2d, 0x47] },
  "ISO 2022 IR 126": { label: "iso-8859-7", g1: single("iso-8859-7"), escape: [0x2d, 0x46] },
  "ISO 2022 IR 138": { label: "iso-8859-8", g1: single("iso-8859-8"), escape: [0x2d, 0x48] },
  "ISO 2022 IR 148": { label: "windows-1254", g1: single("windows-1254"), escape: [0x2d, 0x4d] },
  "ISO 2022 IR 203": { label: "iso-8859-15", g1: single("iso-8859-15"), escape: [0x2d, 0x62] },
  "ISO 2022 IR 166": { label: "windows-874", g1: single("windows-874"), escape: [0x2d, 0x54] },
  "ISO 2022 IR 13": { label: "shift_jis", g1: single("jisx0201"), escape: [0x29, 0x49] },
  "ISO 2022 IR 87": { label: "euc-jp", g0: { kind: "double", label: "euc-jp" }, escape: [0x24, 0x42] },
  "ISO 2022 IR 159": { label: "euc-jp", g0: { kind: "double", label: "euc-jp", prefix: 0x8f }, escape: [0x24, 0x28, 0x44] },
  "ISO 2022 IR 149": { label: "euc-kr", g1: { kind: "double", label: "euc-kr" }, escape: [0x24, 0x29, 0x43] },
  "ISO 2022 IR 58": { label: "gb18030", g1: { kind: "double", label: "gb18030" }, escape: [0x24, 0x29, 0x41] },
};

// Escape sequences that are legal in DICOM but designate no term of their own.
const EXTRA_ESCAPES: { bytes: number[]; g0?: CodeElement; g1?: CodeElement }[] = [
  { bytes: [0x28, 0x4a], g0: ASCII }, // JIS X 0201 Romaji: treated as ASCII, as DCMTK does
];

const decoders = new Map<string, TextDecoder>();
function decoderFor(label: string): TextDecoder {
  let d = decoders.get(label);
  if (!d) {
    d = new TextDecoder(label === "jisx0201" ? "shift_jis" : label);
    decoders.set(label, d);
  }
  return d;
}

function decodeLatin1(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 4096) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 4096) as unknown as number[]);
  }
  return s;
}

function isAscii(bytes: Uint8Array): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] >= 0x80 || bytes[i] === ESC) return false;
  return true;
}

/** Decodes text values of SH, LO, ST, LT, PN, UC and UT according to Specific Character Set. */
export class CharacterSet {
  readonly terms: string[];
  private readonly iso2022: boolean;
  private readonly label: string;
  private readonly initialG0: CodeElement;
  private readonly initialG1?: CodeElement;

  constructor(terms: string[] = []) {
    this.terms = terms.map((t) => t.trim());
    const first = this.terms[0] ?? "";
    this.iso2022 = this.terms.some((t) => t.startsWith("ISO 2022"));
    const firstTerm = TERMS[first] ?? (first === "" ? TERMS["ISO_IR 6"] : undefined);
    this.label = firstTerm?.label ?? "latin1"; // an unknown term: bytes kept, text shown as Latin-1
    this.initialG0 = firstTerm?.g0 ?? ASCII;
    this.initialG1 = firstTerm?.g1;
  }

  /** True when every term is one this implementation understands. */
  get known(): boolean {
    return this.terms.every((t, i) => (t === "" && i === 0) || t in TERMS);
  }

  decode(bytes: Uint8Array, isPersonName = false): string {
    if (isAscii(bytes)) return decodeLatin1(bytes);
    if (!this.iso2022) {
      return this.label === "latin1" ? decodeLatin1(bytes) : decoderFor(this.label).decode(bytes);
    }
    return this.decodeIso2022(bytes, isPersonName);
  }

  private decodeIso2022(bytes: Uint8Array, isPersonName: boolean): string {
    let g0 = this.initialG0;
    let g1 = this.initialG1;
    let out = "";
    let i = 0;
    while (i < bytes.length) {
      const b = bytes[i];
      if (b === ESC) {
        const designation = this.matchEscape(bytes, i + 1);
        if (designation) {
          if (designation.g0) g0 = designation.g0;
          if (designation.g1) g1 = designation.g1;
          i += 1 + designation.length;
          continue;
        }
        out += "\x1b";
        i++;
        continue;
      }
      if (b < 0x80) {
        if (g0.kind === "double" && b > 0x20) {
          const pair = g0.prefix
            ? Uint8Array.of(g0.prefix, b | 0x80, (bytes[i + 1] ?? 0) | 0x80)
            : Uint8Array.of(b | 0x80, (bytes[i + 1] ?? 0) | 0x80);
          out += decoderFor(g0.label).decode(pair);
          i += 2;
          continue;
        }
        out += String.fromCharCode(b);
        // Delimiters return to the initial code elements (PS3.5 6.1.2.5.3).
        if (b === 0x0a || b === 0x0c || b === 0x0d || b === 0x09 || b === 0x5c ||
          (isPersonName && (b === 0x5e || b === 0x3d))) {
          g0 = this.initialG0;
          g1 = this.initialG1;
        }
        i++;
        continue;
      }
      if (g1?.kind === "double") {
        out += decoderFor(g1.label).decode(Uint8Array.of(b, bytes[i + 1] ?? 0));
        i += 2;
      } else if (g1?.kind === "single") {
        out += g1.label === "latin1" ? String.fromCharCode(b) : decoderFor(g1.label).decode(Uint8Array.of(b));
        i++;
      } else {
        out += String.fromCharCode(b);
        i++;
      }
    }
    return out;
  }

  private matchEscape(bytes: Uint8Array, at: number): { g0?: CodeElement; g1?: CodeElement; length: number } | undefined {
    const matches = (seq: number[]) => seq.every((v, k) => bytes[at + k] === v);
    for (const term of this.terms.length ? this.terms : ["ISO 2022 IR 6"]) {
      const t = TERMS[term];
      if (t?.escape && matches(t.escape)) return { g0: t.g0, g1: t.g1, length: t.escape.length };
    }
    // ASCII is always available to return to, even when not listed.
    const ascii = TERMS["ISO 2022 IR 6"];
    if (matches(ascii.escape!)) return { g0: ASCII, length: 2 };
    for (const x of EXTRA_ESCAPES) if (matches(x.bytes)) return { ...x, length: x.bytes.length };
    return undefined;
  }

  /** Encodes text for this character set; characters it cannot represent become `?`. */
  encode(text: string, isPersonName = false): Uint8Array {
    if (isAsciiText(text)) return asciiBytes(text);
    const first = this.terms[0] ?? "";
    if (!this.iso2022) {
      if (this.label === "utf-8") return new TextEncoder().encode(text);
      return encodeWith(text, this.label);
    }
    return encodeIso2022(text, this.terms, isPersonName, first);
  }
}

function isAsciiText(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

function asciiBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

// Reverse tables for encoding, built once per label by decoding every code.
const reverse = new Map<string, Map<string, number[]>>();
function reverseTable(label: string): Map<string, number[]> {
  let table = reverse.get(label);
  if (table) return table;
  table = new Map();
  if (label === "latin1") {
    for (let b = 0xa0; b < 0x100; b++) table.set(String.fromCharCode(b), [b]);
  } else if (label === "jisx0201") {
    const d = decoderFor(label);
    for (let b = 0xa1; b <= 0xdf; b++) table.set(d.decode(Uint8Array.of(b)), [b]);
  } else if (label === "euc-jp" || label === "euc-kr" || label === "gb18030") {
    const d = new TextDecoder(label, { fatal: true });
    for (let a = 0xa1; a <= 0xfe; a++) {
      for (let b = 0xa1; b <= 0xfe; b++) {
        try {
          const ch = d.decode(Uint8Array.of(a, b));
          if (ch.length === 1 && !table.has(ch)) table.set(ch, [a, b]);
        } catch { /* unassigned code */ }
      }
    }
  } else {
    const d = new TextDecoder(label);
    for (let b = 0x80; b < 0x100; b++) {
      const ch = d.decode(Uint8Array.of(b));
      if (ch !== "\ufffd" && !table.has(ch)) table.set(ch, [b]);
    }
  }
  reverse.set(label, table);
  return table;
}

function encodeWith(text: string, label: string): Uint8Array {
  const table = reverseTable(label);
  const out: number[] = [];
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if (c < 0x80) out.push(c);
    else out.push(...(table.get(ch) ?? [0x3f]));
  }
  return Uint8Array.from(out);
}

function encodeIso2022(text: string, terms: string[], isPersonName: boolean, first: string): Uint8Array {
  const out: number[] = [];
  const initial = TERMS[first];
  let g0Term = initial?.g0 && initial.g0.kind !== "ascii" ? first : "ISO 2022 IR 6";
  let g1Term = initial?.g1 ? first : "";
  const candidates = terms.filter((t) => TERMS[t] && t !== "ISO 2022 IR 6");
  // With ISO 2022 IR 13 first, the initial G0 is JIS X 0201 Romaji: return to it with ESC ( J,
  // as PS3.5 H.3.2 does; otherwise return to ASCII with ESC ( B.
  const toInitialG0 = first === "ISO 2022 IR 13" ? [0x28, 0x4a] : TERMS["ISO 2022 IR 6"].escape!;
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if (c < 0x80) {
      if (g0Term !== "ISO 2022 IR 6") {
        out.push(ESC, ...toInitialG0);
        g0Term = "ISO 2022 IR 6";
      }
      out.push(c);
      if (c === 0x5c || c === 0x0d || c === 0x0a || (isPersonName && (c === 0x5e || c === 0x3d))) {
        g1Term = initial?.g1 ? first : ""; // the decoder returns to the initial set after delimiters
      }
      continue;
    }
    let done = false;
    for (const term of candidates) {
      const t = TERMS[term];
      const element = t.g0 ?? t.g1!;
      if (element.kind === "ascii") continue;
      const code = reverseTable(element.label).get(ch);
      if (!code || (element.kind === "double" && element.prefix)) continue;
      if (t.g0) {
        if (g0Term !== term) { out.push(ESC, ...t.escape!); g0Term = term; }
        out.push(...code.map((b) => b & 0x7f));
      } else {
        if (g1Term !== term) { out.push(ESC, ...t.escape!); g1Term = term; }
        out.push(...code);
      }
      done = true;
      break;
    }
    if (!done) out.push(0x3f);
  }
  if (g0Term !== "ISO 2022 IR 6") out.push(ESC, ...toInitialG0);
  return Uint8Array.from(out);
}

const cache = new Map<string, CharacterSet>();
/**
 * A shared {@linkcode CharacterSet} for the values of Specific Character Set (0008,0005), with
 * `decode` and `encode` (ISO 2022 code extensions included).
 *
 * @example
 * ```ts
 * const cs = characterSet(["ISO_IR 192"]);
 * cs.decode(new TextEncoder().encode("Müller^Jörg"), true); // "Müller^Jörg"
 * ```
 */
export function characterSet(terms: string[]): CharacterSet {
  const key = terms.join("\\");
  let cs = cache.get(key);
  if (!cs) {
    cs = new CharacterSet(terms);
    cache.set(key, cs);
  }
  return cs;
}
export const DEFAULT_CHARSET: CharacterSet = characterSet([]);
