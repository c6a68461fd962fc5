/**
 * The differences between Deno and Node, in one place. Everything else uses `node:` built-ins
 * and web APIs that both runtimes provide.
 */
import { existsSync, realpathSync } from "node:fs";
import { hostname } from "node:os";
import { basename, dirname, extname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";

/** `"deno"` or `"node"`. */
export const runtimeName: "deno" | "node" = "Deno" in globalThis ? "deno" : "node";

/** The part of `import.meta` used to decide whether a module is the program's entry point. */
export interface ModuleMeta {
  url: string;
  main?: boolean;
}

function sameFile(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

/**
 * True when the module with this `import.meta` is the entry point of the process:
 * `import.meta.main` where the runtime has it (Deno, Node ≥ 24.2), else a comparison of the
 * module's path with `process.argv[1]` (symlinks resolved).
 */
export function isMainModule(meta: ModuleMeta): boolean {
  if (typeof meta.main === "boolean") return meta.main;
  const script = process.argv[1];
  if (!script || !meta.url.startsWith("file:")) return false;
  const modulePath = fileURLToPath(meta.url);
  const scriptPath = resolve(script);
  return sameFile(modulePath, scriptPath) || sameFile(modulePath, fileURLToPath(pathToFileURL(scriptPath)));
}

/**
 * Names the process was invoked by, without directory or extension, e.g. `["list-patients"]` for a
 * link named `list-patients` to `cli.ts`, or for a binary `list-patients.exe`.
 * The script name (argv[1]) comes first, then the executable's name.
 */
export function invocationNames(): string[] {
  const names: string[] = [];
  const strip = (path: string) => basename(path, extname(path));
  if (process.argv[1]) names.push(strip(process.argv[1]));
  if (process.execPath) names.push(strip(process.execPath));
  return names;
}

/** Command-line arguments after the script (or, in a single binary, after the executable). */
export function commandLineArgs(): string[] {
  return process.argv.slice(2);
}

/** True when the stream is attached to a terminal. */
export function isTerminal(stream: { isTTY?: boolean }): boolean {
  return stream.isTTY === true;
}

/**
 * Finish the process with `code` after stdout and stderr have been flushed. Used only by
 * entry points, so pending timers or sockets a library forgot cannot keep the process alive.
 */
export async function exitAfterFlush(code: number): Promise<never> {
  ignoreBrokenPipe();
  process.exitCode = code;
  await Promise.all([flush(process.stdout), flush(process.stderr)]);
  process.exit(code);
}

function flush(stream: NodeJS.WritableStream & { destroyed?: boolean; writableEnded?: boolean }): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.resolve();
  return new Promise<void>((done) => {
    const timer = setTimeout(done, 2000);
    try {
      stream.write("", () => {
        clearTimeout(timer);
        done();
      });
    } catch {
      clearTimeout(timer);
      done();
    }
  });
}

let guarded = false;

/**
 * Keep a closed pipe on stdout or stderr (`rtexport … | head`) from crashing the process with an
 * unhandled "error" event: EPIPE is ignored here; the record writer notices it and stops output.
 * Called by entry points; harmless to call twice.
 */
export function ignoreBrokenPipe(): void {
  if (guarded) return;
  guarded = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (error: NodeJS.ErrnoException) => {
      if (error?.code === "EPIPE" || error?.code === "ERR_STREAM_DESTROYED") return;
      throw error;
    });
  }
}

/**
 * This machine's name (or `name`) as it goes into file names other machines see (temporary files, staging
 * folders on a shared tree): the host name with every character but letters, digits and `-`
 * replaced by `_`, at most 40 characters, so it never holds a dot or a path separator.
 */
export function hostTag(name: string = hostname()): string {
  return (name.replace(/[^A-Za-z0-9-]/g, "_").slice(0, 40)) || "host";
}

/**
 * Whether a process with this id runs on this machine. A process of another user counts as
 * running (EPERM); an id reused by an unrelated process also does, so callers treat "running"
 * as "maybe still working" and "not running" as certain.
 */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * True in the single binary (a Node single executable application): its bundle gives every module
 * an `import.meta.url` that is the binary's own file URL (scripts/_bundle.ts).
 */
export function isSingleBinary(): boolean {
  return runtimeName === "node" && import.meta.url === pathToFileURL(process.execPath).href;
}

/**
 * The command line that runs this program again, for a child process of the same rtexport: the
 * single binary itself; under Node the runtime with the script it was started with (cli.mjs,
 * cli.ts, the npm package's cli.js); under Deno `deno run -A` with the main module (and the
 * deno.json beside it, which maps the npm packages).
 */
export function selfCommand(): string[] {
  if (isSingleBinary()) return [process.execPath];
  if (runtimeName === "deno") {
    const deno = (globalThis as unknown as { Deno: { execPath(): string; mainModule: string } }).Deno;
    const main = deno.mainModule.startsWith("file:") ? fileURLToPath(deno.mainModule) : deno.mainModule;
    const config = join(dirname(main), "deno.json");
    return [deno.execPath(), "run", "-A", ...(existsSync(config) ? [`--config=${config}`] : []), main];
  }
  // Debugger flags would make the child wait for a debugger on the same port.
  const flags = process.execArgv.filter((f) => !f.startsWith("--inspect"));
  return [process.execPath, ...flags, resolve(process.argv[1])];
}
