/**
 * The WebAssembly codecs' .wasm bytes, when they are embedded. From a checkout and in the npm
 * package there are none: each Emscripten module reads its .wasm from beside its own script in
 * node_modules. The single binary has no node_modules, so its bundle replaces this module with
 * one that embeds the bytes (scripts/_bundle.ts, `embedWasm`); keep the signature in step.
 */

/** The WebAssembly codecs. */
export type WasmCodec = "charls" | "openjpeg";

/** The embedded .wasm bytes of `codec`, or undefined to let its module load its own file. */
export function embeddedWasm(_codec: WasmCodec): Uint8Array | undefined {
  return undefined;
}
