/** Joins byte chunks into one array (the first chunk itself when there is only one). */
export function concatBytes(parts: readonly Uint8Array[], length?: number): Uint8Array {
  if (parts.length === 1 && (length === undefined || length === parts[0].length)) return parts[0];
  let n = length ?? 0;
  if (length === undefined) for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
