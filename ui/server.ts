/**
 * The web UI's HTTP server (`rtexport ui`): the page and its assets from inside the program
 * (ui/_assets.ts, no network at run time), and a JSON API over the same code the commands use —
 * rtexport.json through cli/config.ts, command definitions through cli/command.ts, the commands
 * themselves as child processes of this program, progress from the ledger — with live job
 * snapshots as Server-Sent Events. hono on @hono/node-server, which serves under Node and Deno
 * alike (Deno's node:http).
 *
 * Access: a random token, printed with the URL. Every API request needs it (a header, the cookie
 * the page gets when opened with `?token=`, or `?token=`), so only its holders see patient data;
 * bound to anything but loopback, every request at all needs it. On loopback the Host header must
 * name loopback too (a page of another site that resolves its name to 127.0.0.1 gets nothing).
 * The server's own log names jobs and counts, never patients.
 */
import { serve } from "@hono/node-server";
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { streamSSE } from "hono/streaming";
import { randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, readdirSync, statSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { isAbsolute, resolve } from "node:path";
import { UsageError } from "../cli/errors.ts";
import { planKeyOf } from "../lib/export/context.ts";
import type { PlanRecord } from "../lib/records/types.ts";
import { ASSETS } from "./_assets.ts";
import { commandLine, runPipeline } from "./child.ts";
import { commandInfos } from "./commands.ts";
import { ConfigInputError, ConfigStore } from "./config_store.ts";
import { JobInputError, Jobs } from "./jobs.ts";
import { probeCatalog, probeFolder, probeOutput, probePeer } from "./probe.ts";
import { resolveArgs } from "./shared/argv.ts";
import { listCommand } from "./shared/pipeline.ts";
import type { ConfigSection, ListFilters, ListResult, PatientRow, SourceRef } from "./shared/types.ts";

/** How to start the UI server. */
export interface UiServerOptions {
  /** Address to bind (default 127.0.0.1). */
  host?: string;
  /** Port (0: any free one). */
  port?: number;
  /** The config file the UI edits and the commands it runs read. */
  config: string;
  /** Whether the config file was named explicitly (then every command gets `--config`). */
  explicitConfig?: boolean;
  /** Where jobs are kept. */
  stateDir: string;
  /** The folder commands run in. */
  cwd: string;
  /** The program's version, shown on the page. */
  version: string;
  /** The server's own log (stderr). */
  log: (text: string) => void;
  /** The access token (default: 32 random bytes). */
  token?: string;
}

/** A running UI server. */
export interface UiServer {
  url: string;
  /** The URL with the token, to open in a browser. */
  openUrl: string;
  host: string;
  port: number;
  token: string;
  loopback: boolean;
  close(): Promise<void>;
}

const MAX_PATIENTS = 5000;

/** True for an address only this machine reaches. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h) || h === "::ffff:127.0.0.1";
}

function sameToken(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const a = new TextEncoder().encode(given), b = new TextEncoder().encode(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookie(c: Context, name: string): string | undefined {
  const header = c.req.header("cookie") ?? "";
  for (const part of header.split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return undefined;
}

function errorStatus(e: unknown): 400 | 404 | 500 {
  if (e instanceof JobInputError) return /^No job/.test(e.message) ? 404 : 400;
  if (e instanceof ConfigInputError || e instanceof UsageError || e instanceof SyntaxError) return 400;
  return 500;
}

function asPatients(records: Record<string, unknown>[]): { patients: PatientRow[]; problems: string[] } {
  const patients: PatientRow[] = [];
  const byId = new Map<string, PatientRow>();
  for (const r of records) {
    if (r.type === "patient" && typeof r.patientId === "string") {
      const p: PatientRow = { patientId: r.patientId, name: r.name as PatientRow["name"], birthDate: r.birthDate as string | undefined, source: r.source as string | undefined, plans: [] };
      byId.set(p.patientId, p);
      if (patients.length < MAX_PATIENTS) patients.push(p);
    } else if (r.type === "plan" && typeof r.patientId === "string") {
      const plan = r as unknown as PlanRecord;
      byId.get(plan.patientId)?.plans.push({
        planKey: planKeyOf(plan), planId: plan.planId as string | undefined, planUid: plan.planUid, label: plan.label, name: plan.name,
        status: plan.status, approval: plan.approval, machines: plan.machines, planType: plan.planType as string | undefined,
      });
    }
  }
  return { patients, problems: [] };
}

/** Starts the UI server; resolves once it listens. */
export async function startUiServer(o: UiServerOptions): Promise<UiServer> {
  const host = o.host ?? "127.0.0.1";
  const loopback = isLoopback(host);
  const token = o.token ?? randomBytes(32).toString("base64url");
  const store = new ConfigStore(o.config);
  const configFlag = o.explicitConfig ? store.path : undefined;
  const jobs = new Jobs({
    dir: o.stateDir, cwd: o.cwd, config: configFlag, log: o.log, commands: commandInfos, readConfig: () => store.read(),
  });
  let port = 0;
  const app = new Hono();

  app.use("*", async (c, next) => {
    const url = new URL(c.req.url);
    if (loopback) {
      // DNS rebinding: a name that resolves to 127.0.0.1 still sends its own Host.
      const h = (c.req.header("host") ?? "").replace(/:\d+$/, "");
      if (!isLoopback(h)) return c.text("Forbidden: this server answers only to a loopback host name", 403);
    }
    const given = c.req.header("authorization")?.replace(/^Bearer\s+/i, "") ?? cookie(c, "rtx_token") ?? url.searchParams.get("token") ?? undefined;
    const needed = !loopback || url.pathname.startsWith("/api/");
    const ok = sameToken(given, token);
    if (needed && !ok) {
      return c.json({ error: "Access token required: open the URL rtexport ui printed (it ends with ?token=…)" }, 401);
    }
    if (c.req.method !== "GET" && c.req.method !== "HEAD") {
      // Cross-site request forgery: the cookie is SameSite=Strict already; a change must also come
      // from this server's own page (Origin, when the browser sends one) and be JSON, which a form
      // of another site cannot send without a preflight this server never answers.
      const origin = c.req.header("origin");
      const host = c.req.header("host") ?? "";
      if (origin !== undefined && origin !== `http://${host}`) return c.json({ error: "Forbidden: the request comes from another site" }, 403);
      if (!/^application\/json\b/i.test(c.req.header("content-type") ?? "")) return c.json({ error: "Expected a JSON request body (Content-Type: application/json)" }, 415);
    }
    await next();
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    c.header("X-Frame-Options", "DENY");
    c.header("Cache-Control", "no-store");
    if (ok && url.searchParams.get("token")) {
      c.header("Set-Cookie", `rtx_token=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`);
    }
  });
  app.use("/api/*", bodyLimit({ maxSize: 8 * 1024 * 1024, onError: (c) => c.json({ error: "Request too large" }, 413) }));
  app.onError((e, c) => {
    const status = errorStatus(e);
    if (status === 500) o.log(`internal error: ${(e as Error).name}`);
    return c.json({ error: (e as Error).message }, status);
  });

  const page = (c: Context) => {
    c.header("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'");
    return c.body(ASSETS["index.html"].body, 200, { "Content-Type": ASSETS["index.html"].type });
  };
  app.get("/", page);
  for (const name of Object.keys(ASSETS)) {
    if (name === "index.html") continue;
    app.get(`/${name}`, (c) => c.body(ASSETS[name].body, 200, { "Content-Type": ASSETS[name].type }));
  }
  app.get("/favicon.ico", (c) => c.body(null, 204));

  app.get("/api/info", (c) => c.json({ version: o.version, config: store.path, cwd: o.cwd, host, port, loopback }));
  app.get("/api/config", (c) => c.json(store.read()));
  app.put("/api/config/defaults", async (c) => c.json(await store.saveDefaults(await c.req.json())));
  app.put("/api/config/:section/:name", async (c) => {
    const section = configSection(c.req.param("section"));
    return c.json(await store.saveEntry(section, c.req.param("name"), await c.req.json()));
  });
  app.delete("/api/config/:section/:name", async (c) => c.json(await store.saveEntry(configSection(c.req.param("section")), c.req.param("name"), undefined)));

  app.post("/api/test", async (c) => {
    const body = await c.req.json() as { section: string; name?: string; entry?: Record<string, unknown> };
    const section = configSection(body.section);
    const config = store.read();
    const entry = body.entry ?? (body.name ? config[section][body.name] : undefined);
    if (!entry) throw new ConfigInputError(`No ${section.replace(/s$/, "")} named "${body.name}"`);
    if (section === "peers") {
      const echo = (await commandInfos()).find((x) => x.name === "echo")!;
      return c.json(await probePeer(echo, entry, { cwd: o.cwd, config: configFlag }));
    }
    if (section === "catalogs") return c.json(await probeCatalog(entry as never));
    if (section === "folders") return c.json(probeFolder(entry as never));
    return c.json(probeOutput(entry as never));
  });

  app.get("/api/commands", async (c) => c.json(await commandInfos()));

  app.post("/api/list", async (c) => {
    const body = await c.req.json() as { source: SourceRef; filters?: ListFilters };
    const listInfo = (await commandInfos()).find((x) => x.name === "list-patients")!;
    let built;
    try {
      built = listCommand(listInfo, store.read(), body.source, body.filters ?? {});
    } catch (e) {
      throw new ConfigInputError((e as Error).message);
    }
    const pipeline = built.pipeline.map((a) => resolveArgs(a, {}));
    const env = Object.fromEntries(built.env.map((e) => [e.name, e.value]));
    const r = await runPipeline(pipeline, { cwd: o.cwd, config: configFlag, env, keepRecords: 200_000, timeoutMs: 10 * 60_000 });
    const { patients } = asPatients(r.records);
    const result: ListResult = {
      commandLine: commandLine(pipeline), patients, problems: r.errors, exitCode: r.exitCode,
      truncated: r.truncated || patients.length >= MAX_PATIENTS,
    };
    return c.json(result);
  });

  app.get("/api/jobs", (c) => c.json(jobs.list()));
  app.post("/api/jobs/export", async (c) => c.json({ id: (await jobs.startExport(await c.req.json())).id }));
  app.post("/api/jobs/command", async (c) => {
    const body = await c.req.json();
    return c.json({ id: (await jobs.startCommand(String(body.name), body.values)).id });
  });
  app.get("/api/jobs/:id", async (c) => c.json(await jobs.snapshot(c.req.param("id"))));
  app.post("/api/jobs/:id/cancel", (c) => {
    jobs.cancel(c.req.param("id"));
    return c.json({ ok: true });
  });
  app.post("/api/jobs/:id/retry", async (c) => c.json({ id: (await jobs.retry(c.req.param("id"))).id }));
  app.get("/api/jobs/:id/events", (c) => {
    const id = c.req.param("id");
    jobs.get(id); // an unknown job is a 404 before the stream starts
    return streamSSE(c, async (stream) => {
      let wake: (() => void) | undefined;
      const unsubscribe = jobs.subscribe(id, () => wake?.());
      stream.onAbort(() => wake?.());
      let last = "";
      let quiet = 0;
      try {
        while (!stream.aborted && !stream.closed) {
          const snap = await jobs.snapshot(id);
          const text = JSON.stringify(snap);
          if (text !== last) {
            await stream.writeSSE({ event: "snapshot", data: text });
            last = text;
            quiet = 0;
          } else if (++quiet % 20 === 0) {
            await stream.write(": keep-alive\n\n");
          }
          await new Promise<void>((r) => {
            const timer = setTimeout(r, snap.active ? 700 : 2500);
            wake = () => {
              clearTimeout(timer);
              // At most a few snapshots a second, however much the commands write.
              setTimeout(r, 250);
            };
          });
          wake = undefined;
        }
      } finally {
        unsubscribe();
      }
    });
  });

  app.post("/api/tree", async (c) => {
    const body = await c.req.json() as { path: string };
    const path = existingPath(body.path, o.cwd);
    const pipeline = [["show", path]];
    const r = await runPipeline(pipeline, { cwd: o.cwd, config: configFlag, keepRecords: 20_000, timeoutMs: 10 * 60_000 });
    return c.json({ commandLine: commandLine(pipeline), records: r.records.filter((x) => x.type === "plan" || x.type === "unconnected"), errors: r.errors, exitCode: r.exitCode, truncated: r.truncated });
  });
  app.post("/api/stats", async (c) => {
    const body = await c.req.json() as { path: string; tags: string[]; pattern?: string };
    const path = existingPath(body.path, o.cwd);
    const tags = (body.tags ?? []).map((t) => String(t).trim()).filter(Boolean).slice(0, 20);
    if (!tags.length) throw new ConfigInputError("Give at least one tag expression, e.g. Modality=?");
    const argv = ["search", ...tags.flatMap((t) => ["--tag", t]), "--stats", ...(body.pattern ? ["--pattern", String(body.pattern)] : []), path];
    const stats: Record<string, unknown>[] = [];
    let files = 0;
    const r = await runPipeline([argv], {
      cwd: o.cwd, config: configFlag, keepRecords: 0, timeoutMs: 10 * 60_000,
      onRecord: (rec) => (rec.type === "stats" ? stats.push(rec) : rec.type === "file" ? files++ : 0),
    });
    return c.json({ commandLine: commandLine([argv]), stats, files, errors: r.errors, exitCode: r.exitCode });
  });
  app.get("/api/folders", (c) => {
    const path = existingPath(c.req.query("path") ?? "", o.cwd);
    const names = readdirSync(path, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith(".")).map((e) => e.name).sort().slice(0, 5000);
    return c.json({ path, folders: names });
  });
  app.notFound((c) => c.json({ error: "Not found" }, 404));

  const server = serve({ fetch: app.fetch, hostname: host, port: o.port ?? 0 });
  await new Promise<void>((resolveListening, reject) => {
    server.once("listening", () => resolveListening());
    server.once("error", reject);
  });
  port = (server.address() as AddressInfo).port;
  const shown = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
  const url = `http://${shown}:${port}/`;
  return {
    url,
    openUrl: `${url}?token=${token}`,
    host,
    port,
    token,
    loopback,
    async close() {
      await jobs.close();
      await new Promise<void>((r) => {
        server.close(() => r());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
    },
  };
}

function configSection(s: string): ConfigSection {
  if (s === "peers" || s === "catalogs" || s === "folders" || s === "outputs") return s;
  throw new ConfigInputError(`Unknown section "${s}"`);
}

function existingPath(p: unknown, cwd: string): string {
  if (typeof p !== "string" || p.trim() === "") throw new ConfigInputError("Give a folder");
  const path = isAbsolute(p) ? p : resolve(cwd, p);
  if (!existsSync(path)) throw new ConfigInputError(`No folder or file "${path}"`);
  statSync(path);
  return path;
}
