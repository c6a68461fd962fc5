/** NDJSON records: the types commands exchange, the reader/writer, and pass-through helpers. */
export * from "./types.ts";
export * from "./ndjson.ts";
export * from "./pass_through.ts";
