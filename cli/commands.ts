/**
 * Every command of rtexport: its summary and a lazy import of `commands/<name>.ts`. Read by the
 * entry point (cli.ts) and by the UI's command builder (ui/commands.ts); kept out of cli.ts so
 * the entry is imported by nothing (a bundler would otherwise make cli.js a re-export of a shared
 * chunk whose "am I the main module" check never holds: `node cli.js --version` printed nothing).
 */

/** A command module: `main(argv)` resolves to the exit code. */
export interface CommandModule {
  main(argv: string[], io?: { programName?: string }): Promise<number>;
}

export interface CommandEntry {
  summary: string;
  load: () => Promise<CommandModule>;
}

/** Every command, in the order `rtexport --help` lists them. */
export const COMMANDS: Record<string, CommandEntry> = {
  "list-patients": {
    summary: "list patients and their plans from a Q/R peer, a catalog database or a folder",
    load: () => import("../commands/list-patients.ts"),
  },
  "export-plan": {
    summary: "export each plan with everything it references into the patient/plan tree",
    load: () => import("../commands/export-plan.ts"),
  },
  "copy-files": {
    summary: "copy files into a tree: atomic, verified by hash, resumable, parallel",
    load: () => import("../commands/copy-files.ts"),
  },
  anonymize: {
    summary: "de-identify DICOM files (PS3.15 Annex E) with consistent UID and date remapping",
    load: () => import("../commands/anonymize.ts"),
  },
  check: {
    summary: "check objects against a target's import rules (iDMS, ARIA, Orthanc, a profile), with lossless fixes",
    load: () => import("../commands/check.ts"),
  },
  push: {
    summary: "C-STORE files to a PACS, TPS or OIS in dependency order, resumable",
    load: () => import("../commands/push.ts"),
  },
  retrieve: {
    summary: "C-FIND and C-MOVE/C-GET from a Q/R peer, selective by plan",
    load: () => import("../commands/retrieve.ts"),
  },
  show: {
    summary: "show the RT reference tree: plan, structure set, images, doses, records",
    load: () => import("../commands/show.ts"),
  },
  search: {
    summary: "find DICOM files by tag values, with sequence paths and value statistics",
    load: () => import("../commands/search.ts"),
  },
  transcode: {
    summary: "rewrite DICOM files in another transfer syntax, decoding lossless compressed pixel data",
    load: () => import("../commands/transcode.ts"),
  },
  echo: {
    summary: "C-ECHO a DICOM peer",
    load: () => import("../commands/echo.ts"),
  },
  serve: {
    summary: "run a DICOM node (storage and Q/R) over a folder",
    load: () => import("../commands/serve.ts"),
  },
  status: {
    summary: "show a migration's progress from its ledger",
    load: () => import("../commands/status.ts"),
  },
  ui: {
    summary: "serve the browser UI: sources, patient list, command builder, live job dashboard",
    load: () => import("../commands/ui.ts"),
  },
};
