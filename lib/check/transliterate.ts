/**
 * Text to ISO_IR 100 (ISO 8859-1, "Latin-1"), the one character set some targets (iDMS) take.
 * Characters Latin-1 has stay as they are; accented letters it lacks lose the accent
 * (Unicode decomposition: "ł" is a table entry, "Ş" → "S"); Cyrillic and Greek are
 * romanised letter by letter (a simple table, close to ICAO 9303 for passports); punctuation
 * beyond Latin-1 becomes its ASCII look-alike. What is left (CJK, Arabic, Hebrew, …) cannot be
 * written and is reported, not guessed.
 */

const TABLE: Record<string, string> = {
  // Latin letters without a decomposition
  "ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ħ": "h", "Ħ": "H", "ı": "i", "œ": "oe", "Œ": "OE", "ŋ": "ng", "Ŋ": "NG",
  "ſ": "s", "ŧ": "t", "Ŧ": "T", "ĸ": "k", "ŀ": "l", "Ŀ": "L", "ƒ": "f", "ȷ": "j", "ə": "e", "Ə": "E",
  // punctuation
  "‘": "'", "’": "'", "‚": ",", "‛": "'", "“": '"', "”": '"', "„": '"', "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-",
  "―": "-", "…": "...", "•": "*", "€": "EUR", "™": "TM", "\u2009": " ", "\u200a": " ", "\u2002": " ", "\u2003": " ",
  // Cyrillic
  "А": "A", "Б": "B", "В": "V", "Г": "G", "Д": "D", "Е": "E", "Ё": "E", "Ж": "Zh", "З": "Z", "И": "I", "Й": "I", "К": "K",
  "Л": "L", "М": "M", "Н": "N", "О": "O", "П": "P", "Р": "R", "С": "S", "Т": "T", "У": "U", "Ф": "F", "Х": "Kh", "Ц": "Ts",
  "Ч": "Ch", "Ш": "Sh", "Щ": "Shch", "Ъ": "Ie", "Ы": "Y", "Ь": "", "Э": "E", "Ю": "Iu", "Я": "Ia", "Є": "Ie", "І": "I",
  "Ї": "I", "Ґ": "G", "Ў": "U",
  "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z", "и": "i", "й": "i", "к": "k",
  "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts",
  "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "ie", "ы": "y", "ь": "", "э": "e", "ю": "iu", "я": "ia", "є": "ie", "і": "i",
  "ї": "i", "ґ": "g", "ў": "u",
  // Greek
  "Α": "A", "Β": "V", "Γ": "G", "Δ": "D", "Ε": "E", "Ζ": "Z", "Η": "I", "Θ": "Th", "Ι": "I", "Κ": "K", "Λ": "L", "Μ": "M",
  "Ν": "N", "Ξ": "X", "Ο": "O", "Π": "P", "Ρ": "R", "Σ": "S", "Τ": "T", "Υ": "Y", "Φ": "F", "Χ": "Ch", "Ψ": "Ps", "Ω": "O",
  "α": "a", "β": "v", "γ": "g", "δ": "d", "ε": "e", "ζ": "z", "η": "i", "θ": "th", "ι": "i", "κ": "k", "λ": "l", "μ": "m",
  "ν": "n", "ξ": "x", "ο": "o", "π": "p", "ρ": "r", "σ": "s", "ς": "s", "τ": "t", "υ": "y", "φ": "f", "χ": "ch", "ψ": "ps",
  "ω": "o",
};

/** True when every character of `s` is in ISO 8859-1. */
export function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}

/** The result of transliterating one value. */
export interface Transliteration {
  text: string;
  /** Characters that could not be written in ISO 8859-1 (each once, in order). */
  unmapped: string[];
}

/** Transliterates `s` to ISO 8859-1 (see the module's summary). */
export function toLatin1(s: string): Transliteration {
  let text = "";
  const unmapped: string[] = [];
  for (const ch of s.normalize("NFC")) {
    const code = ch.codePointAt(0)!;
    if (code <= 0xff) {
      text += ch;
      continue;
    }
    const mapped = TABLE[ch];
    if (mapped !== undefined) {
      text += mapped;
      continue;
    }
    // Decompose, keep the base letters Latin-1 has, drop the combining marks.
    const parts = [...ch.normalize("NFKD").replace(/\p{M}/gu, "")].map((c) => (c.charCodeAt(0) <= 0xff ? c : TABLE[c]));
    if (parts.length > 0 && parts.every((p) => p !== undefined) && parts.join("") !== ch) {
      text += parts.join("");
      continue;
    }
    // A combining mark left over (no precomposed letter has it): the accent goes, the letter stays.
    if (/^\p{M}$/u.test(ch)) continue;
    if (!unmapped.includes(ch)) unmapped.push(ch);
  }
  return { text, unmapped };
}

/** Encodes Latin-1 text as bytes (every code unit must be ≤ 0xFF). */
export function latin1Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}
