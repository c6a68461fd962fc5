/**
 * The options for runs against a live clinical system, defined once for push, retrieve and
 * export-plan: time windows, rate and bandwidth limits (lib/stage/pace.ts), retries with back-off
 * (lib/net/retry.ts). `RTEXPORT_CLOCK` (a local time) starts a test clock whose waits jump.
 */
import { type Command, InvalidArgumentError, Option } from "commander";
import { DEFAULT_RETRY_POLICY, type RetryPolicy } from "../lib/net/retry.ts";
import { clockFrom, Pacer, parseBandwidth, parseRate, parseWindows } from "../lib/stage/pace.ts";
import { parseSyslogUrl } from "../lib/audit/syslog.ts";
import { UsageError } from "./errors.ts";

const PACE_GROUP = "Pacing options:";

function collectWindow(value: string, previous: string[] | undefined): string[] {
  try {
    parseWindows(value);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message.replace(/^Invalid time window /, "") + ".");
  }
  return [...(previous ?? []), value];
}

function argParser(parse: (v: string) => number) {
  return (v: string) => {
    try {
      parse(v);
    } catch (e) {
      throw new InvalidArgumentError(`${(e as Error).message}.`);
    }
    return v;
  };
}

function parseRetries(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError("expected a whole number of retries (0: none).");
  return n;
}

function parseWait(v: string): number {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError("expected seconds (0 or more).");
  return n;
}

/** Adds `--window`, `--max-rate` and `--max-bandwidth`. */
export function addPaceOptions(cmd: Command): void {
  const options = [
    new Option("--window <window>", "work only in this time window, local time (repeatable): 19:00-06:30, 'Mon-Fri 19:00-06:30', Sat,Sun").argParser(collectWindow),
    new Option("--max-rate <n/unit>", "at most this many objects per second (20/s, 600/min)").argParser(argParser(parseRate)),
    new Option("--max-bandwidth <size/unit>", "at most this many bytes per second (50MB/s, 800kB/s)").argParser(argParser(parseBandwidth)),
  ];
  for (const o of options) cmd.addOption(o.helpGroup(PACE_GROUP));
}

/** Adds `--retries` and `--retry-max-wait`. */
export function addRetryOptions(cmd: Command): void {
  const options = [
    new Option("--retries <n>", "retries of a transient failure (connection reset or refused, timeout, out of resources), with back-off").argParser(parseRetries)
      .default(DEFAULT_RETRY_POLICY.retries),
    new Option("--retry-max-wait <s>", "the longest wait between two tries, seconds (waits double from 1 s, jittered)").argParser(parseWait)
      .default(DEFAULT_RETRY_POLICY.maxWaitMs / 1000),
  ];
  for (const o of options) cmd.addOption(o.helpGroup(PACE_GROUP));
}

/** The pacer the options ask for (undefined when they limit nothing); `env` for the test clock. */
export function pacerFrom(o: Record<string, unknown>, env: Record<string, string | undefined>): Pacer | undefined {
  const windows = parseWindows((o.window as string[] | undefined) ?? []);
  const maxRate = typeof o.maxRate === "string" ? parseRate(o.maxRate) : undefined;
  const maxBandwidth = typeof o.maxBandwidth === "string" ? parseBandwidth(o.maxBandwidth) : undefined;
  let clock;
  try {
    clock = clockFrom(env.RTEXPORT_CLOCK);
  } catch (e) {
    throw new UsageError(`${(e as Error).message} (RTEXPORT_CLOCK)`);
  }
  const pacer = new Pacer({ windows, maxRate, maxBandwidth, clock });
  return pacer.active ? pacer : undefined;
}

/** The retry policy the options ask for. */
export function retryPolicyFrom(o: Record<string, unknown>): RetryPolicy {
  return {
    retries: typeof o.retries === "number" ? o.retries : DEFAULT_RETRY_POLICY.retries,
    maxWaitMs: (typeof o.retryMaxWait === "number" ? o.retryMaxWait : DEFAULT_RETRY_POLICY.maxWaitMs / 1000) * 1000,
    baseMs: Math.min(1000, (typeof o.retryMaxWait === "number" ? o.retryMaxWait : 60) * 1000),
  };
}

/** Adds `--audit URL`: audit messages (DICOM PS3.15 A.5, IHE ATNA) to a syslog collector, beside the ledger's audit rows. */
export function addAuditOption(cmd: Command): void {
  cmd.addOption(
    new Option("--audit <url>", "also send an audit message per patient to this syslog collector: syslog://host:514 (TCP), syslog+tls://host:6514?ca=ca.pem")
      .argParser((v: string) => {
        try {
          parseSyslogUrl(v);
        } catch (e) {
          throw new InvalidArgumentError(`${(e as Error).message}.`);
        }
        return v;
      }),
  );
}
