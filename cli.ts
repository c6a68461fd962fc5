#!/usr/bin/env node
/**
 * The rtexport entry point: `rtexport <command> [options]`. One table maps each command name to
 * a lazy import of `commands/<name>.ts`, so only the command that runs is loaded. When the
 * program is invoked under a command's name (a link or binary named `list-patients`), that
 * command runs directly.
 */
import module from "node:module";
import process from "node:process";
import { errorMessage, ExitCode } from "./cli/errors.ts";
import { didYouMean } from "./cli/suggest.ts";
import { exitAfterFlush, ignoreBrokenPipe, invocationNames, isMainModule } from "./lib/runtime/mod.ts";
import packageJson from "./package.json" with { type: "json" };

// Node strips types from and compiles every module at each start (~0.1–0.3 s for a command);
// its on-disk compile cache (Node ≥ 22.1; os.tmpdir()/node-compile-cache, NODE_DISABLE_COMPILE_CACHE=1
// turns it off) halves that for every later run. The commands are imported lazily below, after this.
(module as { enableCompileCache?: () => unknown }).enableCompileCache?.();

/** A command module: `main(argv)` resolves to the exit code. */
export interface CommandModule {
  main(argv: string[], io?: { programName?: string }): Promise<number>;
}

interface CommandEntry {
  summary: string;
  load: () => Promise<CommandModule>;
}

/** Every command, in the order `rtexport --help` lists them. */
export const COMMANDS: Record<string, CommandEntry> = {
  "list-patients": {
    summary: "list patients and their plans from a Q/R peer, a catalog database or a folder",
    load: () => import("./commands/list-patients.ts"),
  },
  "export-plan": {
    summary: "export each plan with everything it references into the patient/plan tree",
    load: () => import("./commands/export-plan.ts"),
  },
  "copy-files": {
    summary: "copy files into a tree: atomic, verified by hash, resumable, parallel",
    load: () => import("./commands/copy-files.ts"),
  },
  anonymize: {
    summary: "de-identify DICOM files (PS3.15 Annex E) with consistent UID and date remapping",
    load: () => import("./commands/anonymize.ts"),
  },
  check: {
    summary: "check objects against a target's import rules (iDMS, ARIA, Orthanc, a profile), with lossless fixes",
    load: () => import("./commands/check.ts"),
  },
  push: {
    summary: "C-STORE files to a PACS, TPS or OIS in dependency order, resumable",
    load: () => import("./commands/push.ts"),
  },
  retrieve: {
    summary: "C-FIND and C-MOVE/C-GET from a Q/R peer, selective by plan",
    load: () => import("./commands/retrieve.ts"),
  },
  show: {
    summary: "show the RT reference tree: plan, structure set, images, doses, records",
    load: () => import("./commands/show.ts"),
  },
  search: {
    summary: "find DICOM files by tag values, with sequence paths and value statistics",
    load: () => import("./commands/search.ts"),
  },
  transcode: {
    summary: "rewrite DICOM files in another transfer syntax, decoding lossless compressed pixel data",
    load: () => import("./commands/transcode.ts"),
  },
  echo: {
    summary: "C-ECHO a DICOM peer",
    load: () => import("./commands/echo.ts"),
  },
  serve: {
    summary: "run a DICOM node (storage and Q/R) over a folder",
    load: () => import("./commands/serve.ts"),
  },
  status: {
    summary: "show a migration's progress from its ledger",
    load: () => import("./commands/status.ts"),
  },
  ui: {
    summary: "serve the browser UI: sources, patient list, command builder, live job dashboard",
    load: () => import("./commands/ui.ts"),
  },
};

/** The version from package.json. */
export const VERSION: string = packageJson.version;

function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(([name, entry]) => `  ${name.padEnd(width)}  ${entry.summary}`);
  return [
    "Usage: rtexport <command> [options] [args]",
    "",
    "Get radiotherapy DICOM data out of planning and oncology systems. Commands read and write",
    "NDJSON records, so they compose: rtexport list-patients … | rtexport export-plan … | rtexport push …",
    "",
    "Commands:",
    ...lines,
    "",
    "Options:",
    "  -h, --help     show this help",
    "  -V, --version  show the version",
    "",
    "Run 'rtexport <command> --help' for a command's options.",
    "Exit status: 0 ok, 1 fatal error, 2 usage error, 3 some items failed.",
    "",
  ].join("\n");
}

function isModuleNotFound(error: unknown, name: string): boolean {
  const text = `${(error as { code?: string }).code ?? ""} ${errorMessage(error)}`;
  return /ERR_MODULE_NOT_FOUND|Module not found|Cannot find module/i.test(text) &&
    text.includes(`commands/${name}.ts`);
}

/** Run one command by name with its arguments; resolves to the exit code. */
export async function runCommand(name: string, argv: string[], programName = `rtexport ${name}`): Promise<number> {
  const entry = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!entry) {
    process.stderr.write(`rtexport: unknown command "${name}"${didYouMean(name, Object.keys(COMMANDS))}\nRun 'rtexport --help' for the list of commands.\n`);
    return ExitCode.USAGE;
  }
  let module: CommandModule;
  try {
    module = await entry.load();
  } catch (error) {
    if (isModuleNotFound(error, name)) {
      process.stderr.write(`rtexport: command "${name}" is not available yet (commands/${name}.ts is missing)\n`);
    } else {
      process.stderr.write(`rtexport: cannot load command "${name}": ${errorMessage(error)}\n`);
    }
    return ExitCode.FATAL;
  }
  return await module.main(argv, { programName });
}

/** `rtexport …` with the process's arguments; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  ignoreBrokenPipe(); // also in the single binary, whose entry calls main() directly
  const invokedAs = invocationNames().find((n) => Object.hasOwn(COMMANDS, n));
  if (invokedAs) return await runCommand(invokedAs, argv, invokedAs);
  const [first, ...rest] = argv;
  if (first === undefined) {
    process.stderr.write(usage());
    return ExitCode.USAGE;
  }
  if (first === "-h" || first === "--help" || first === "help") {
    if (first === "help" && rest[0] !== undefined) return await runCommand(rest[0], ["--help"]);
    process.stdout.write(usage());
    return ExitCode.OK;
  }
  if (first === "-V" || first === "--version") {
    process.stdout.write(`rtexport ${VERSION}\n`);
    return ExitCode.OK;
  }
  if (first.startsWith("-")) {
    process.stderr.write(`rtexport: unknown option "${first}"\nRun 'rtexport --help' for usage.\n`);
    return ExitCode.USAGE;
  }
  return await runCommand(first, rest);
}

/** Runs this process's command line and exits with its status: what every entry script calls. */
export function start(argv: string[] = process.argv.slice(2)): void {
  ignoreBrokenPipe();
  // The bundled npm package and the binary are JavaScript; they still need node:sqlite (Node 22).
  if (!("Deno" in globalThis) && Number(process.versions.node.split(".")[0]) < 22) {
    process.stderr.write(`rtexport needs Node >= 22 or Deno 2; found Node ${process.versions.node}\n`);
    process.exit(ExitCode.FATAL);
  }
  main(argv).then(exitAfterFlush, (error) => {
    process.stderr.write(`rtexport: ${errorMessage(error)}\n`);
    return exitAfterFlush(ExitCode.FATAL);
  });
}

if (isMainModule(import.meta)) start();
