/** The shared command-line layer: `defineCommand`, config, peers, logging, exit codes. */
export * from "./command.ts";
export * from "./config.ts";
export * from "./errors.ts";
export * from "./log.ts";
export * from "./peer.ts";
