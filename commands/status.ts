/** `rtexport status`: placeholder until issue 4 implements it. */
import { defineCommand, FatalError, runMain } from "../lib/cli/mod.ts";

export const main = defineCommand({
  name: "status",
  summary: "show a migration's progress from its ledger (not implemented yet)",
  run() {
    throw new FatalError("not implemented yet");
  },
});

runMain(import.meta, main);
