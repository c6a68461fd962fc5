/**
 * Rate-limit benchmark (not a test): how close `rtexport push --max-rate R` comes to R on the
 * real clock, with one and two associations, against an unthrottled push of the same objects
 * (DCMTK's storescu has no rate limit, so the unthrottled run is the side-by-side figure). The
 * receiver is a storage SCP in this process that timestamps every object as it arrives; the rate
 * is (objects - 1) / (last arrival - first arrival). The tests assert the pacer's schedule on a
 * test clock; this measures what a peer sees.
 *
 *   node_modules/.bin/node bench/pace_bench.ts [--objects 61] [--rates 10,20,50] [--runs 3]
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { createScp } from "../lib/net/mod.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const OBJECTS = Number(arg("objects", "61"));
const RATES = arg("rates", "10,20,50").split(",").map(Number);
const RUNS = Number(arg("runs", "3"));
const node = join(root, "node_modules/.bin/node");

const dir = mkdtempSync(join(tmpdir(), "rtexport-pace-bench-"));
const clinic = join(dir, "clinic");
await generateClinic({ out: clinic, patients: 4, slices: 12, size: 64 });
const files = readdirSync(clinic, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith(".dcm"))
  .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name)).sort().slice(0, OBJECTS);

let arrivals: number[] = [];
mkdirSync(join(dir, "in"));
const scp = await createScp({
  aeTitle: "RATE", host: "127.0.0.1", storeDir: join(dir, "in"),
  handlers: {
    store: () => {
      arrivals.push(performance.now());
      return { status: 0 };
    },
  },
});

function push(extra: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(node, [join(root, "cli.mjs"), "push", "--host", "127.0.0.1", "--port", String(scp.port), "--aec", "RATE", "-q", ...extra, ...files], { maxBuffer: 64 * 1024 * 1024 }, (err, _o, stderr) => {
      if (err) reject(new Error(String(stderr)));
      else resolve();
    });
  });
}

const rows: string[] = [];
try {
  for (const rate of [undefined, ...RATES]) {
    for (const parallel of [1, 2]) {
      const measured: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        arrivals = [];
        await push([...(rate ? ["--max-rate", `${rate}/s`] : []), "--parallel", String(parallel)]);
        if (arrivals.length !== files.length) throw new Error(`${arrivals.length} of ${files.length} arrived`);
        measured.push((arrivals.length - 1) / ((arrivals[arrivals.length - 1] - arrivals[0]) / 1000));
      }
      measured.sort((a, b) => a - b);
      const dev = (r: number) => rate ? `${(((r - rate) / rate) * 100).toFixed(1)} %` : "";
      rows.push(`| ${rate ? `${rate}/s` : "none"} | ${parallel} | ${files.length} | ${measured.map((r) => r.toFixed(1)).join(", ")} | ${rate ? `${dev(measured[0])} … ${dev(measured[measured.length - 1])}` : ""} |`);
      console.error(rows[rows.length - 1]);
    }
  }
} finally {
  await scp.close();
  rmSync(dir, { recursive: true, force: true });
}
console.log(`Load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}\n`);
console.log("| --max-rate | --parallel | objects | measured objects/s (each run) | deviation from the limit |\n|---|---:|---:|---|---|");
console.log(rows.join("\n"));
