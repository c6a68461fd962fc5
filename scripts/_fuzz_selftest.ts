/**
 * A planted bug for scripts/fuzz.ts to find, proving its coverage guidance works: six nested
 * conditions, each true for 48 of 256 byte values (0x90–0xBF, none of the fuzzer's "interesting"
 * values or single-bit flips of 0). Blind random mutation of the all-zero seed needs all six bytes
 * right at once; the guided fuzzer keeps each step it reaches and gets there step by step.
 */
const ok = (b: number | undefined) => b !== undefined && b >= 0x90 && b < 0xc0;

export function plantedBug(input: Uint8Array): void {
  if (ok(input[0])) {
    if (ok(input[1])) {
      if (ok(input[2])) {
        if (ok(input[3])) {
          if (ok(input[4])) {
            if (ok(input[5])) throw new TypeError("planted bug reached");
          }
        }
      }
    }
  }
}
