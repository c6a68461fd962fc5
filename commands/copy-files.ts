/** `rtexport copy-files`: placeholder until issue 4 implements it. */
import { defineCommand, FatalError, runMain } from "../lib/cli/mod.ts";

export const main = defineCommand({
  name: "copy-files",
  summary: "copy files into a tree: atomic, verified by hash, resumable, parallel (not implemented yet)",
  run() {
    throw new FatalError("not implemented yet");
  },
});

runMain(import.meta, main);
