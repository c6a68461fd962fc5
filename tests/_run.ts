// Runs rtexport commands the way a user does, under the runtime running the test suite.
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const isDeno = "Deno" in globalThis;
export const root = fileURLToPath(new URL("..", import.meta.url));
export const cli = join(root, "cli.ts");
/** Node's entry from a checkout (cli.mjs: the compile cache on before any TypeScript loads). */
export const cliNode = join(root, "cli.mjs");

/** The argv prefix that runs rtexport from the checkout under this runtime (Deno: cli.ts; Node: cli.mjs, which runs cli.ts). */
export function cliCommand(): string[] {
  return isDeno ? [process.execPath, "run", "-A", `--config=${join(root, "deno.json")}`, cli] : [process.execPath, cliNode];
}

function quote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `rtexport` as a shell word list, for pipelines run with bash. */
export function rtexportShell(): string {
  return cliCommand().map(quote).join(" ");
}

export interface Run {
  status: number | null;
  signal?: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("RTEXPORT_")) env[k] = v;
  return { ...env, NO_COLOR: "1", TCP_NODELAY: "1", ...extra };
}

/** Runs `bash -c SCRIPT` where `$RT` is the rtexport command; stdout/stderr collected; 120 s bound. */
export function sh(script: string, opts: { cwd?: string; env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", `set -o pipefail; RT=(${rtexportShell()}); ${script}`], {
      cwd: opts.cwd ?? root,
      env: cleanEnv(opts.env),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`timed out: ${script}\n${stderr}`));
    }, opts.timeoutMs ?? 120_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
    child.stdin.end(opts.input ?? "");
  });
}

/** Parses NDJSON output into records. */
// deno-lint-ignore no-explicit-any -- records are untyped JSON; tests read their fields freely
export function records(stdout: string): Record<string, any>[] {
  return stdout.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

/** Runs `cli.ts ARGS` synchronously under this runtime (60 s bound); spawn errors fail loudly. */
export function runCliSync(args: string[], input = ""): { status: number | null; stdout: string; stderr: string } {
  const [cmd, ...pre] = cliCommand();
  const r = spawnSync(cmd, [...pre, ...args], { cwd: root, input, encoding: "utf8", timeout: 60_000, env: { ...process.env, NO_COLOR: "1" } });
  if (r.error) throw new Error(`spawn failed: ${r.error}`);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
