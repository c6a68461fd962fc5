/** `rtexport ui`: the browser UI (sources, patient list builder, command builder, live jobs), served from this program. */
import { dirname, join, resolve } from "node:path";
import { defineCommand, FatalError, parsePort, runMain, untilStopped } from "../cli/mod.ts";
import { startUiServer } from "../ui/server.ts";
import packageJson from "../package.json" with { type: "json" };

export const main = defineCommand({
  name: "ui",
  summary: "serve the browser UI: sources, patient list builder, command builder, live job dashboard",
  description: [
    "Serves a single-page app from this program (nothing is fetched from the network) and prints its URL",
    "with a random access token; it opens nothing by itself. Open the URL in a browser on this machine",
    "(or through an SSH tunnel). Every request for data needs the token; bound to an address other than",
    "loopback (--host), every request at all needs it, and the connection is not encrypted.",
    "Sources and output folders are kept in rtexport.json (or --config FILE), the file every command reads;",
    "jobs run the same commands as child processes and their progress is read from the ledger, so a",
    "reopened page, a second browser or a restarted server shows the same. Stopping the UI interrupts",
    "its running jobs as Ctrl-C does (Retry on the Jobs screen resumes them).",
  ].join("\n"),
  examples: [
    "rtexport ui",
    "rtexport ui --port 8104 --config /etc/rtexport/rtexport.json",
    "ssh -L 8104:127.0.0.1:8104 export-server   # then open the printed URL on your own machine",
  ],
  configure(cmd) {
    cmd.option("--port <port>", "TCP port to listen on (0: any free port)", (v: string) => (v.trim() === "0" ? 0 : parsePort(v)), 8104);
    cmd.option("--host <address>", "address to listen on; anything but loopback needs the token on every request", "127.0.0.1");
    cmd.option("--jobs-dir <dir>", "where the UI keeps its jobs (default: .rtexport/ui beside the config file)");
  },
  human: { record: () => undefined },
  async run(ctx) {
    const o = ctx.options;
    const explicit = typeof o.config === "string" && o.config !== "" ? o.config : ctx.io.env.RTEXPORT_CONFIG || undefined;
    const config = resolve(ctx.io.cwd, explicit ?? "rtexport.json");
    const stateDir = o.jobsDir ? resolve(ctx.io.cwd, o.jobsDir) : join(dirname(config), ".rtexport", "ui");
    let server;
    try {
      server = await startUiServer({
        host: o.host, port: o.port, config, explicitConfig: explicit !== undefined, stateDir, cwd: ctx.io.cwd, version: packageJson.version,
        log: (text) => ctx.log.info(text),
      });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === "EADDRINUSE" ? "the address is in use (another program listens there; --port 0 takes any free port)"
        : err.code === "EACCES" ? "not allowed (ports below 1024 need privileges)"
        : err.code === "EADDRNOTAVAIL" ? "this machine has no such address" : err.message;
      throw new FatalError(`Cannot listen on ${o.host}:${o.port}: ${why}`);
    }
    if (!server.loopback) {
      ctx.log.warn(`listening on ${o.host}, not only loopback: every request needs the token, and the connection is not encrypted (anyone who sees the traffic can read patient data). Prefer 127.0.0.1 with an SSH tunnel.`);
    }
    ctx.io.stderr.write(`ui: open ${server.openUrl} in a browser (the token in it is the key to patient data: do not share it)\n`);
    await ctx.out.write({ type: "ui", url: server.url, openUrl: server.openUrl, host: server.host, port: server.port, config, jobsDir: stateDir });
    await untilStopped(ctx.signal);
    ctx.log.info("stopping (running jobs are interrupted)");
    await server.close();
    return 0;
  },
});

runMain(import.meta, main);
