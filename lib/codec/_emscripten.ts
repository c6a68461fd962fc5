/**
 * Loading an Emscripten-built codec module: quietly (its [INFO]/[ERROR] lines are captured for
 * error messages, never printed: library code does not print), with embedded .wasm bytes when
 * the single binary has them, and once per process.
 */
import { embeddedWasm, type WasmCodec } from "./_wasm.ts";

/** What an Emscripten module factory accepts (the part used here). */
interface ModuleArgs {
  wasmBinary?: Uint8Array;
  print(text: string): void;
  printErr(text: string): void;
}

// deno-lint-ignore no-explicit-any -- the Emscripten modules ship no types
export type EmscriptenFactory = (args: ModuleArgs) => Promise<any>;

/** A loaded module and the lines it printed since the last `take()`. */
export interface QuietModule<M> {
  module: M;
  /** Returns and forgets the lines printed since the last call. */
  take(): string[];
}

/** Instantiates `factory` with the embedded .wasm of `codec` (if any) and its output captured. */
export async function instantiate<M>(codec: WasmCodec, factory: EmscriptenFactory): Promise<QuietModule<M>> {
  let lines: string[] = [];
  // Only problems are kept (OpenJPEG prints a few [INFO] lines per tile), and only a few.
  const keep = (text: string) => {
    if (lines.length < 16 && /^\[?(ERROR|WARNING)\]?/i.test(String(text))) lines.push(String(text));
  };
  const args: ModuleArgs = { print: keep, printErr: keep };
  const wasm = embeddedWasm(codec);
  if (wasm) args.wasmBinary = wasm;
  const module = (await factory(args)) as M;
  return {
    module,
    take() {
      const out = lines;
      lines = [];
      return out;
    },
  };
}

/** The module's error lines (warnings dropped), for a message: `[ERROR] x` → `x`. */
export function errorLines(lines: readonly string[]): string[] {
  return lines.filter((l) => /^\[?ERROR\]?/i.test(l)).map((l) => l.replace(/^\[?ERROR\]?\s*/i, "").trim());
}

/** The factory a dynamically imported CommonJS module exports (as `default` under ESM interop). */
export function factoryOf(imported: unknown): EmscriptenFactory {
  const m = imported as { default?: unknown };
  const f = typeof m === "function" ? m : m.default;
  if (typeof f !== "function") throw new Error("codec module has no factory function");
  return f as EmscriptenFactory;
}
