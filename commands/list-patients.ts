/** `rtexport list-patients`: placeholder until issue 4 implements it. */
import { defineCommand, FatalError, runMain } from "../lib/cli/mod.ts";

export const main = defineCommand({
  name: "list-patients",
  summary: "list patients and their plans from a Q/R peer, a catalog database or a folder (not implemented yet)",
  run() {
    throw new FatalError("not implemented yet");
  },
});

runMain(import.meta, main);
