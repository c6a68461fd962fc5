import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  clockFrom, jumpingClock, Pacer, parseBandwidth, parseRate, parseWindow, parseWindows, timeLabel, windowAt,
} from "../lib/stage/pace.ts";
import { backoffDelay, classifyError, classifyStatus, StatusFailure, withRetries } from "../lib/net/retry.ts";
import { DicomNetError } from "../lib/net/errors.ts";

/** Local time (the windows are wall-clock times): 2025-03-03 is a Monday. */
function at(day: number, h: number, m = 0, s = 0): number {
  return new Date(2025, 2, day, h, m, s).getTime();
}

describe("parseWindow", () => {
  const ok: [string, { days: number[]; start: number; end: number }][] = [
    ["19:00-06:30", { days: [0, 1, 2, 3, 4, 5, 6], start: 1140, end: 390 }],
    ["Mon-Fri 19:00-06:30", { days: [1, 2, 3, 4, 5], start: 1140, end: 390 }],
    ["Sat,Sun", { days: [0, 6], start: 0, end: 1440 }],
    ["Fri-Mon 20:00-24:00", { days: [0, 1, 5, 6], start: 1200, end: 1440 }],
    ["weekdays 7:05-8:00", { days: [1, 2, 3, 4, 5], start: 425, end: 480 }],
    ["weekends", { days: [0, 6], start: 0, end: 1440 }],
  ];
  for (const [text, want] of ok) {
    test(text, () => {
      const w = parseWindow(text);
      assert.deepEqual({ days: w.days, start: w.start, end: w.end }, want);
    });
  }
  const bad: [string, RegExp][] = [
    ["19:00", /Invalid time window "19:00": expected HH:MM-HH:MM/],
    ["25:00-06:00", /"25:00" is not a time of day/],
    ["Mon-Fry 19:00-06:00", /"Mon-Fry" is not a weekday/],
    ["10:00-10:00", /starts and ends at the same time/],
    ["Mon 1 2", /expected \[DAYS\] HH:MM-HH:MM/],
    ["", /Invalid time window ""/],
  ];
  for (const [text, re] of bad) test(`refuses "${text}"`, () => assert.throws(() => parseWindow(text), re));
  test("several windows separated by ;", () => assert.equal(parseWindows(["Mon-Fri 19:00-06:30; Sat,Sun", "12:00-13:00"]).length, 3));
});

describe("windowAt", () => {
  const nights = parseWindows("Mon-Fri 19:00-06:30");
  const cases: [string, number, boolean, number | undefined][] = [
    ["Monday 18:59 is before the window", at(3, 18, 59), false, at(3, 19)],
    ["Monday 19:00 opens it", at(3, 19), true, at(4, 6, 30)],
    ["Tuesday 06:29 is still Monday's night", at(4, 6, 29), true, at(4, 6, 30)],
    ["Tuesday 06:30 closes it until 19:00", at(4, 6, 30), false, at(4, 19)],
    ["Saturday 06:00 is Friday's night", at(8, 6), true, at(8, 6, 30)],
    ["Saturday noon waits for Monday", at(8, 12), false, at(10, 19)],
  ];
  for (const [name, t, open, next] of cases) {
    test(name, () => {
      const w = windowAt(nights, t);
      assert.equal(w.open, open);
      assert.equal(w.open ? w.closes : w.opens, next);
    });
  }
  test("no windows: always open", () => assert.deepEqual(windowAt([], at(3, 12)), { open: true }));
  test("labels: same day as time, later days with the weekday", () => {
    assert.equal(timeLabel(at(4, 19), at(4, 6, 30)), "19:00");
    assert.equal(timeLabel(at(10, 19), at(8, 12)), "Mon 19:00");
  });
});

describe("rates", () => {
  const rates: [string, number][] = [["20/s", 20], ["600/min", 10], ["7200/h", 2], ["5", 5], ["0.5/s", 0.5]];
  for (const [t, v] of rates) test(`rate ${t}`, () => assert.equal(parseRate(t), v));
  const bw: [string, number][] = [["50MB/s", 50e6], ["800kB/s", 800e3], ["1GiB/min", 1024 ** 3 / 60], ["1000", 1000]];
  for (const [t, v] of bw) test(`bandwidth ${t}`, () => assert.equal(parseBandwidth(t), v));
  for (const t of ["fast", "0/s", "20/day", "-3/s"]) test(`refuses rate "${t}"`, () => assert.throws(() => parseRate(t), /Invalid rate/));
  for (const t of ["50XB/s", "50MB/day"]) test(`refuses bandwidth "${t}"`, () => assert.throws(() => parseBandwidth(t), /Invalid bandwidth/));
});

describe("Pacer", () => {
  test("a run pauses at the window's end and resumes at its start (jumping clock)", async () => {
    const clock = jumpingClock(at(4, 6, 29, 58));
    const pacer = new Pacer({ windows: parseWindows("19:00-06:30"), clock });
    const events: string[] = [];
    for (let i = 0; i < 6; i++) {
      await pacer.waitForWindow({
        beforePause: () => void events.push("release"),
        onPause: (label) => events.push(label),
        onResume: () => events.push("resume"),
      });
      events.push(`item ${new Date(clock.now()).getHours()}:${String(new Date(clock.now()).getMinutes()).padStart(2, "0")}`);
      await clock.sleep(1000); // one item takes a second
    }
    assert.deepEqual(events, [
      "item 6:29", "item 6:29", "release", "paused until 19:00", "resume", "item 19:00", "item 19:00", "item 19:00", "item 19:00",
    ]);
  });

  test("workers that reach a pause wait for the same one, each releasing its association", async () => {
    const clock = jumpingClock(at(4, 7));
    const pacer = new Pacer({ windows: parseWindows("19:00-06:30"), clock });
    let pauses = 0, releases = 0;
    await Promise.all([1, 2, 3].map(() => pacer.waitForWindow({ beforePause: () => void releases++, onPause: () => void pauses++ })));
    assert.equal(pauses, 1);
    assert.equal(releases, 3);
    assert.equal(windowAt(pacer.windows, clock.now()).open, true);
  });

  test("a stop request ends a pause", async () => {
    const pacer = new Pacer({ windows: parseWindows("Mon 01:00-02:00") });
    const ctl = new AbortController();
    setTimeout(() => ctl.abort(), 50);
    const t0 = Date.now();
    // Unless this runs Monday between 01:00 and 02:00, it pauses: the abort ends it.
    await pacer.waitForWindow({ signal: ctl.signal });
    assert.ok(Date.now() - t0 < 5000);
  });

  test("rate: 21 items at 20/s span a second, and the pacer waits no more than that (jumping clock)", async () => {
    const clock = jumpingClock(0);
    const pacer = new Pacer({ maxRate: 20, clock });
    for (let i = 0; i < 21; i++) await pacer.take(1);
    // Never faster than the limit; and what it waited plus the real time taken is the second.
    assert.ok(clock.now() >= 1000, `${clock.now()} ms`);
    assert.ok(clock.jumped <= 1000, `waited ${clock.jumped} ms`);
  });

  test("bandwidth: bytes are spread evenly (jumping clock)", async () => {
    const clock = jumpingClock(0);
    const pacer = new Pacer({ maxBandwidth: 1e6, clock });
    for (let i = 0; i < 10; i++) await pacer.take(1, 500_000);
    // 10 × 0.5 MB at 1 MB/s: the tenth starts 4.5 s after the first.
    assert.ok(Math.abs(clock.now() - 4500) < 100, `${clock.now()} ms`);
  });

  test("book and settle: work that happened is paid for before the next", async () => {
    const clock = jumpingClock(0);
    const pacer = new Pacer({ maxRate: 10, clock });
    pacer.book(50, 0);
    await pacer.settle();
    assert.ok(Math.abs(clock.now() - 5000) < 100, `${clock.now()} ms`);
  });

  test("clockFrom: RTEXPORT_CLOCK starts a jumping clock at a local time", () => {
    const c = clockFrom("2025-03-04T06:29:58");
    assert.ok(Math.abs(c.now() - at(4, 6, 29, 58)) < 1000);
    assert.throws(() => clockFrom("yesterday"), /Invalid clock "yesterday"/);
  });
});

describe("retry policy", () => {
  const statuses: [number, boolean][] = [
    [0xa700, true], [0xa702, true], [0xa7ff, true], [0xa900, false], [0xc000, false], [0xc123, false], [0xa801, false], [0x0110, false],
  ];
  for (const [s, transient] of statuses) test(`status 0x${s.toString(16)} is ${transient ? "transient" : "permanent"}`, () => assert.equal(classifyStatus(s).transient, transient));
  test("sub-operations that failed are transient", () => assert.equal(classifyStatus(0xb000, { failed: 3 }).transient, true));
  const errors: [DicomNetError, boolean][] = [
    [new DicomNetError("REFUSED", "x"), true],
    [new DicomNetError("CLOSED", "reset"), true],
    [new DicomNetError("TIMEOUT", "x"), true],
    [new DicomNetError("REJECTED", "x", { result: 2, source: 1, reason: 1 }), true],
    [new DicomNetError("REJECTED", "x", { result: 1, source: 3, reason: 2 }), true],
    [new DicomNetError("REJECTED", "x", { result: 1, source: 1, reason: 3 }), false],
    [new DicomNetError("TLS", "x"), false],
    [new DicomNetError("NO_CONTEXT", "x"), false],
    [new DicomNetError("UNREACHABLE", "Cannot connect to x: host not found"), false],
  ];
  for (const [e, transient] of errors) {
    test(`${e.code}${e.reject ? ` ${JSON.stringify(e.reject)}` : ""} is ${transient ? "transient" : "permanent"}`, () => assert.equal(classifyError(e).transient, transient));
  }
  test("back-off doubles, is jittered and capped", () => {
    const p = { retries: 9, maxWaitMs: 10_000, baseMs: 1000 };
    assert.equal(backoffDelay(1, { ...p, random: () => 0 }), 500);
    assert.equal(backoffDelay(1, { ...p, random: () => 0.999999 }), 1000);
    assert.equal(backoffDelay(3, { ...p, random: () => 0 }), 2000);
    assert.equal(backoffDelay(9, { ...p, random: () => 0.999999 }), 10_000);
  });
  test("withRetries: transient failures retried with a notice each, permanent ones not", async () => {
    const notices: string[] = [];
    let calls = 0;
    const v = await withRetries(() => {
      if (++calls < 3) return Promise.reject(new StatusFailure("busy", 0xa700));
      return Promise.resolve("ok");
    }, { retries: 5, maxWaitMs: 10, baseMs: 1 }, { onRetry: (n) => notices.push(`${n.attempt}/${n.retries} ${n.why}`) });
    assert.equal(v, "ok");
    assert.deepEqual(notices, ["1/5 out of resources", "2/5 out of resources"]);
    calls = 0;
    await assert.rejects(withRetries(() => {
      calls++;
      return Promise.reject(new StatusFailure("no", 0xc000));
    }, { retries: 5, maxWaitMs: 10, baseMs: 1 }), /no/);
    assert.equal(calls, 1);
    calls = 0;
    await assert.rejects(withRetries(() => {
      calls++;
      return Promise.reject(new DicomNetError("REFUSED", "down"));
    }, { retries: 2, maxWaitMs: 10, baseMs: 1 }), /down/);
    assert.equal(calls, 3);
  });
});
