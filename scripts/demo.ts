// The end-to-end demo behind `npm start`: a synthetic clinic with an iDMS-like catalog (SQLite)
// and storage vault, its DICOM served by `rtexport serve`, exported with
//   list-patients --from catalog | export-plan (DICOM from the peer) | copy-files --to ./export
// then the export tree and the ledger's summary are printed. Rerunning resumes (nothing is copied twice).
//   node scripts/demo.ts [--out export] [--patients 5]
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildDemoCatalog } from "../lib/catalog/demo.ts";
import { generateClinic } from "../lib/fixtures/mod.ts";
import { formatBytes } from "../lib/util/format.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({ options: { out: { type: "string", default: "export" }, patients: { type: "string", default: "5" } } });
const out = resolve(values.out!);
const work = resolve(root, ".tmp", "demo");
const runtime = "Deno" in globalThis ? [process.execPath, "run", "-A", join(root, "cli.ts")] : [process.execPath, join(root, "cli.mjs")];
const say = (s: string) => process.stderr.write(`demo: ${s}\n`);

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => res(p));
    });
  });
}

say(`building the synthetic clinic in ${work}`);
const manifest = await generateClinic({ out: join(work, "dicom"), patients: Number(values.patients), slices: 8, seed: 1 });
const catalog = join(work, "catalog.db");
const vault = join(work, "vault");
const built = await buildDemoCatalog({ clinic: join(work, "dicom"), manifest, catalogPath: catalog, vault });
say(`catalog ${catalog}: ${built.patients} patients, ${built.plans} plans, ${built.files} files in the vault`);

const port = await freePort();
const aet = "RTEXPORT-DEMO";
const serve = spawn(runtime[0], [...runtime.slice(1), "serve", "--dir", join(work, "dicom"), "--port", String(port), "--aet", aet, "--allow", "RTEXPORT@127.0.0.1", "-q"], {
  stdio: ["ignore", "ignore", "inherit"],
});
let exit = 1;
try {
  for (let i = 0; i < 100; i++) {
    const r = spawnSync(runtime[0], [...runtime.slice(1), "echo", "--host", "127.0.0.1", "--port", String(port), "--called-aet", aet, "-q"], { stdio: "ignore" });
    if (r.status === 0) break;
    if (serve.exitCode !== null) throw new Error("serve stopped");
    await new Promise((r) => setTimeout(r, 200));
  }
  say(`serving the clinic's DICOM as ${aet} on 127.0.0.1:${port}`);
  const rt = runtime.map((a) => `'${a}'`).join(" ");
  const pipeline = [
    `${rt} list-patients --from catalog --db 'sqlite:${catalog}' --vault '${vault}'`,
    `${rt} export-plan --host 127.0.0.1 --port ${port} --called-aet ${aet} --get --staging '${join(out, ".rtexport", "staging")}' --to '${out}'`,
    `${rt} copy-files --to '${out}'`,
  ].join(" \\\n  | ");
  say(`running:\n  ${pipeline.replaceAll(rt, "rtexport")}`);
  const r = spawnSync("bash", ["-c", `set -o pipefail; ${pipeline} > '${join(work, "records.ndjson")}'`], { stdio: ["ignore", "inherit", "inherit"] });
  exit = r.status ?? 1;

  // The tree, two levels of folders below each patient, with file counts and sizes.
  const lines: string[] = [];
  const count = (d: string): { files: number; bytes: number } => {
    let files = 0, bytes = 0;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        const c = count(p);
        files += c.files;
        bytes += c.bytes;
      } else {
        files++;
        bytes += statSync(p).size;
      }
    }
    return { files, bytes };
  };
  const walk = (d: string, prefix: string, depth: number) => {
    const entries = readdirSync(d, { withFileTypes: true }).filter((e) => e.isDirectory() && e.name !== ".rtexport").sort((a, b) => a.name.localeCompare(b.name));
    entries.forEach((e, i) => {
      const last = i === entries.length - 1;
      const c = count(join(d, e.name));
      lines.push(`${prefix}${last ? "└── " : "├── "}${e.name}/  (${c.files} files, ${formatBytes(c.bytes)})`);
      if (depth > 1) walk(join(d, e.name), prefix + (last ? "    " : "│   "), depth - 1);
    });
  };
  if (existsSync(out)) {
    lines.push(`${out}/`);
    walk(out, "", 3);
    process.stdout.write(lines.join("\n") + "\n\n");
  }
  spawnSync(runtime[0], [...runtime.slice(1), "status", out], { stdio: "inherit", env: { ...process.env } });
  const recs = readFileSync(join(work, "records.ndjson"), "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const files = recs.filter((x) => x.type === "file");
  const copied = files.filter((x) => x.copy?.status === "copied").length;
  say(`${files.length} files in the export (${copied} copied now, ${files.length - copied} already there); exit status ${exit}`);
} finally {
  serve.kill("SIGTERM");
}
process.exit(exit);
