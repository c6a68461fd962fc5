/** `rtexport export-plan`: placeholder until issue 4 implements it. */
import { defineCommand, FatalError, runMain } from "../lib/cli/mod.ts";

export const main = defineCommand({
  name: "export-plan",
  summary: "export each plan with everything it references into the patient/plan tree (not implemented yet)",
  run() {
    throw new FatalError("not implemented yet");
  },
});

runMain(import.meta, main);
