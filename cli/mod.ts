/** The command-line front end: `defineCommand`, `runStage`, config, peers, logging, exit codes. */
export * from "./command.ts";
export * from "./config.ts";
export * from "./errors.ts";
export * from "./log.ts";
export * from "./options.ts";
export * from "./peer.ts";
export * from "./run_stage.ts";
