/// <reference lib="dom" />
/** The server's JSON API, as the page calls it (the access token travels in the cookie the page got). */
import type { CommandInfo, UiConfig } from "../shared/types.ts";

/** An API call that failed: the server's message. */
export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Calls the API; resolves to the JSON answer or throws an ApiError with the server's message. */
export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const method = init.method ?? (init.body === undefined ? "GET" : "POST");
  // Every change is JSON (the server refuses anything else: see its cross-site checks).
  const body = method === "GET" ? undefined : JSON.stringify(init.body ?? {});
  const res = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body,
    credentials: "same-origin",
  });
  let data: unknown;
  try {
    data = await res.json();
  } catch {
    data = undefined;
  }
  if (!res.ok) {
    const message = (data as { error?: string } | undefined)?.error ?? `${res.status} ${res.statusText}`;
    if (res.status === 401) document.getElementById("auth-banner")?.removeAttribute("hidden");
    throw new ApiError(res.status, message);
  }
  return data as T;
}

/** What the page knows: the config file, the command definitions. */
export const app = {
  info: { version: "", config: "", cwd: "", host: "", port: 0, loopback: true },
  config: undefined as unknown as UiConfig,
  commands: [] as CommandInfo[],
};

/** A command's definition by name. */
export function commandInfo(name: string): CommandInfo {
  const c = app.commands.find((x) => x.name === name);
  if (!c) throw new Error(`No definition of ${name}`);
  return c;
}

/** Reads rtexport.json again (after a change). */
export async function reloadConfig(): Promise<UiConfig> {
  app.config = await api<UiConfig>("/api/config");
  return app.config;
}
