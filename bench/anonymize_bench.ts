// Benchmark: `rtexport anonymize` vs gdcmanon (GDCM) vs a pydicom loop, same corpus, same run.
//
//   node_modules/.bin/node bench/anonymize_bench.ts [--corpus DIR] [--patients 18] [--slices 240] [--size 512] [--work DIR] [--runs 1]
//   node_modules/.bin/node bench/anonymize_bench.ts --paired 5 [--outputs /dev/shm/anonbench]  # farm-bench: rtexport vs gdcmanon -e in turn
//   node_modules/.bin/node bench/anonymize_bench.ts --big 1024      # four objects of 1024 MiB: peak RSS of each tool
//
// The corpus is generated with the fixture generator when DIR has no manifest.json. gdcmanon
// cannot anonymize RT Beams Treatment Records ("Media Storage Type ... not supported") and stops
// there, so every tool runs on a hard-linked copy of the corpus without them (and without the
// manifest). rtexport runs as users run it from a checkout: `node cli.mjs anonymize` (Node's
// compile cache on) and `deno run -A cli.ts anonymize`.
//
// Default mode: each tool runs as its own process under /usr/bin/time, which reports wall time
// and peak RSS; outputs go to fresh directories on the same file system. The page cache is warmed
// with a read of every file before the first tool, so no tool pays for the first read alone.
// Before each tool, the previous outputs are deleted and `sync` waits for writeback to finish.
//
// --paired N: farm-bench (the workplace's paired timer) runs rtexport and gdcmanon -e in turn N
// times and reports the median of the per-pair wall-time ratio, once for Node and once for Deno;
// pairing keeps the ratio meaningful on a machine whose load drifts (this one is shared).
//
// --big MiB: four CT-like objects of MiB each (three native, one encapsulated), anonymized at the
// default concurrency; reports wall time and peak RSS (memory must not grow with object size).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { writeBigObject } from "../tests/_big_object.ts";

const { values } = parseArgs({
  options: {
    corpus: { type: "string", default: "/tmp/anonbench/corpus" },
    work: { type: "string", default: "/tmp/anonbench/work" },
    patients: { type: "string", default: "18" },
    slices: { type: "string", default: "240" },
    size: { type: "string", default: "512" },
    runs: { type: "string", default: "1" },
    paired: { type: "string" },
    outputs: { type: "string" },
    big: { type: "string" },
  },
});
const root = resolve(import.meta.dirname ?? ".", "..");
const node = join(root, "node_modules/.bin/node");
const deno = join(root, "node_modules/.bin/deno");
const corpus = resolve(values.corpus!);
const work = resolve(values.work!);
const runs = Number(values.runs);

function sh(cmd: string, args: string[], env: Record<string, string> = {}): { out: string; err: string; code: number } {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 30, env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return { out: r.stdout, err: r.stderr, code: r.status ?? -1 };
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]);
}

rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const keyFile = join(work, "key.txt");
writeFileSync(keyFile, "bench-key-0123456789abcdef\n");
// gdcmanon needs a certificate for its default (PS3.15 E.1.1 with encrypted originals) mode.
const certDir = join(work, "cert");
mkdirSync(certDir);
sh("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-keyout", join(certDir, "key.pem"), "-out", join(certDir, "cert.pem"), "-days", "2", "-nodes", "-subj", "/CN=rtexport-bench"]);

const rtexport = {
  node: (out: string, input: string) => [node, join(root, "cli.mjs"), "anonymize", "--key-file", keyFile, "--out", out, "--quiet", input],
  deno: (out: string, input: string) => [deno, "run", "-A", join(root, "cli.ts"), "anonymize", "--key-file", keyFile, "--out", out, "--quiet", input],
};
const gdcmanon = (out: string, input: string) => ["gdcmanon", "-e", "-c", join(certDir, "cert.pem"), "-r", "--continue", "-i", input, "-o", out];

interface Result { tool: string; seconds: number; maxRssMb: number; outputs: number; code: number }

function timed(tool: string, argv: string[], out: string): Result {
  // Same start for every tool: no earlier output left, and nothing dirty still being written back.
  for (const e of readdirSync(work)) if (e.startsWith("out-")) rmSync(join(work, e), { recursive: true, force: true });
  sh("sync", []);
  mkdirSync(out, { recursive: true });
  const r = sh("/usr/bin/time", ["-f", "TIME %e %M", ...argv]);
  const m = /TIME ([\d.]+) (\d+)/.exec(r.err);
  if (!m) throw new Error(`${tool}: no timing (${r.err.slice(-400)})`);
  return { tool, seconds: Number(m[1]), maxRssMb: Number(m[2]) / 1024, outputs: walk(out).length, code: r.code };
}

if (values.big) {
  const mib = Number(values.big);
  const input = join(work, "big");
  mkdirSync(input);
  console.error(`Writing four objects of ${mib} MiB …`);
  for (let n = 0; n < 4; n++) writeBigObject(join(input, `big${n}.dcm`), mib * (1 << 20), n, n === 3);
  const results = [
    timed("rtexport anonymize (node)", rtexport.node(join(work, "out-node"), input), join(work, "out-node")),
    timed("rtexport anonymize (deno)", rtexport.deno(join(work, "out-deno"), input), join(work, "out-deno")),
    timed("gdcmanon -e", gdcmanon(join(work, "out-gdcm"), input), join(work, "out-gdcm")),
  ];
  console.log(`Four objects of ${mib} MiB (${process.env.HOSTNAME ?? "host"}, ${new Date().toISOString()})\n`);
  console.log("| tool | files written | wall s | peak RSS MB | exit |");
  console.log("|---|---|---|---|---|");
  for (const r of results) console.log(`| ${r.tool} | ${r.outputs} | ${r.seconds.toFixed(1)} | ${r.maxRssMb.toFixed(0)} | ${r.code} |`);
  rmSync(work, { recursive: true, force: true });
  process.exit(0);
}

if (!existsSync(join(corpus, "manifest.json"))) {
  console.error(`Generating corpus in ${corpus} …`);
  const g = sh(node, [join(root, "scripts/make_fixtures.ts"), "--out", corpus, "--patients", values.patients!, "--slices", values.slices!, "--size", values.size!]);
  if (g.code !== 0) throw new Error(g.err);
  console.error(g.out.trim() || g.err.trim());
}

// Input: hard links of the corpus without RT Beams Treatment Records (gdcmanon refuses them).
const input = join(work, "input");
sh("cp", ["-al", corpus, input]);
rmSync(join(input, "manifest.json"), { force: true });
for (const p of readdirSync(input)) rmSync(join(input, p, "RTRECORD"), { recursive: true, force: true });
const files = walk(input);
let bytes = 0;
for (const f of files) bytes += readFileSync(f).length; // also warms the page cache
console.error(`Input: ${files.length} files, ${(bytes / 1e6).toFixed(0)} MB`);

if (values.paired) {
  const n = values.paired;
  // Outputs on tmpfs take the disk's writeback (and the other tool's) out of the comparison.
  const outs = values.outputs ? resolve(values.outputs) : work;
  mkdirSync(outs, { recursive: true });
  const quote = (argv: string[]) => argv.map((a) => `'${a}'`).join(" ");
  const lines: string[] = [];
  for (const runtime of ["node", "deno"] as const) {
    const a = `rm -rf ${outs}/oA; exec ${quote(rtexport[runtime](`${outs}/oA`, input))}`;
    const b = `rm -rf ${outs}/oB; exec ${quote(gdcmanon(`${outs}/oB`, input))}`;
    const r = sh("farm-bench", ["-n", n, "--timeout", "3000", "--vs", `sh -c "${b}"`, "--", "sh", "-c", a]);
    if (r.code !== 0) throw new Error(`farm-bench failed: ${r.err.slice(-800)}`);
    console.error(r.out);
    const row = (name: string) => new RegExp(`^${name.replace(/[/]/g, "\\/")}\\s+([\\d.]+)\\s+([\\d.]+)\\s+([\\d.]+)`, "m").exec(r.out);
    const wall = row("A/B wall"), aWall = row("A wall s"), bWall = row("B wall s"), aCpu = row("A cpu s"), bCpu = row("B cpu s"), aPeak = row("A peak MiB");
    if (!wall || !aWall || !bWall || !aCpu || !bCpu || !aPeak) throw new Error(`farm-bench output not understood:\n${r.out}`);
    const ratio = Number(wall[2]);
    lines.push(`| rtexport (${runtime}) vs gdcmanon -e | ${n} | ${aWall[2]} | ${bWall[2]} | ${wall[2]} (${wall[1]}–${wall[3]}) | **${(1 / ratio).toFixed(2)}×** | ${aCpu[2]} / ${bCpu[2]} | ${Number(aPeak[2]).toFixed(0)} |`);
  }
  if (values.outputs) rmSync(outs, { recursive: true, force: true });
  console.log(`Input: ${files.length} files, ${(bytes / 1e6).toFixed(0)} MB; outputs in ${outs} (${process.env.HOSTNAME ?? "host"}, ${new Date().toISOString()})\n`);
  console.log("| pair | pairs | rtexport wall s (median) | gdcmanon wall s (median) | time ratio A/B median (min–max) | speed vs gdcmanon | CPU s A / B | rtexport peak MiB |");
  console.log("|---|---|---|---|---|---|---|---|");
  console.log(lines.join("\n"));
  process.exit(0);
}

// The pydicom loop: Table E.1-1 basic profile (X/Z/D/U, combinations as Z or D), private tags
// removed, UIDs replaced by HMAC-SHA-256 → 2.25, nested sequences walked; written with save_as.
const pyScript = join(work, "anon_pydicom.py");
writeFileSync(pyScript, `
import hashlib, hmac, json, os, sys, uuid
import pydicom
from pydicom.tag import Tag
rows = json.load(open(sys.argv[1]))
src, dst, key = sys.argv[2], sys.argv[3], b"bench-key-0123456789abcdef"
table = {}
for r in rows:
    t = r["tag"]
    if "X" in t[1:5] or "G" in t: continue
    table[Tag(int(t[1:5], 16), int(t[6:10], 16))] = r["basicProfile"]
def uid(u):
    d = bytearray(hmac.new(key, u.encode(), hashlib.sha256).digest()[:16])
    d[6] = (d[6] & 0x0f) | 0x80; d[8] = (d[8] & 0x3f) | 0x80
    return "2.25." + str(int.from_bytes(d, "big"))
def clean(ds):
    for elem in list(ds):
        if elem.tag.is_private or 0x5000 <= elem.tag.group <= 0x501e or (0x6000 <= elem.tag.group <= 0x601e and elem.tag.element == 0x3000):
            del ds[elem.tag]; continue
        a = table.get(elem.tag)
        if elem.VR == "SQ":
            if a in ("X", "X/Z", "X/D", "X/Z/D", "X/Z/U*"): del ds[elem.tag]; continue
            for item in elem.value: clean(item)
            continue
        if elem.VR == "UI" and elem.value and a is None and not str(elem.value).startswith("1.2.840.10008."):
            if elem.tag not in (Tag(0x0008,0x0016), Tag(0x0008,0x1150)):
                elem.value = uid(str(elem.value))
            continue
        if a is None: continue
        if a == "U": elem.value = uid(str(elem.value)) if elem.value else elem.value
        elif a == "X": del ds[elem.tag]
        elif a in ("Z", "X/Z", "Z/D", "X/Z/D"): elem.value = ""
        elif a in ("D", "X/D"): elem.value = "ANONYMIZED" if elem.VR in ("LO","SH","PN","LT","ST","UT","CS") else elem.value
n = 0
for dirpath, _, names in os.walk(src):
    for name in sorted(names):
        p = os.path.join(dirpath, name)
        ds = pydicom.dcmread(p)
        clean(ds)
        ds.PatientIdentityRemoved = "YES"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        out = os.path.join(dst, os.path.relpath(p, src))
        os.makedirs(os.path.dirname(out), exist_ok=True)
        ds.save_as(out)
        n += 1
print(n)
`);

const results: Result[] = [];
for (let i = 0; i < runs; i++) {
  results.push(timed("rtexport anonymize (node)", rtexport.node(join(work, "out-rtexport"), input), join(work, "out-rtexport")));
  results.push(timed("rtexport anonymize (deno)", rtexport.deno(join(work, "out-rtexport-deno"), input), join(work, "out-rtexport-deno")));
  results.push(timed("gdcmanon -e (GDCM 3.0.21)", gdcmanon(join(work, "out-gdcm"), input), join(work, "out-gdcm")));
  results.push(timed("gdcmanon --dumb (empty 0010,0010 0010,0020)", ["gdcmanon", "--dumb", "--empty", "10,10", "--empty", "10,20", "-r", "--continue", "-i", input, "-o", join(work, "out-gdcm-dumb")], join(work, "out-gdcm-dumb")));
  results.push(timed(`pydicom ${sh("/usr/bin/python3", ["-c", "import pydicom; print(pydicom.__version__)"]).out.trim()} loop`, ["/usr/bin/python3", pyScript, join(root, "data/dicom-standard/confidentiality_profile_attributes.json"), input, join(work, "out-pydicom")], join(work, "out-pydicom")));
}

const rows = results.map((r) => `| ${r.tool} | ${r.outputs} | ${r.seconds.toFixed(1)} | ${(r.outputs / r.seconds).toFixed(0)} | ${(bytes / 1e6 / r.seconds).toFixed(0)} | ${r.maxRssMb.toFixed(0)} | ${r.code} |`);
console.log(`Input: ${files.length} files, ${(bytes / 1e6).toFixed(0)} MB (${process.env.HOSTNAME ?? "host"}, ${new Date().toISOString()})\n`);
console.log("| tool | files written | wall s | files/s | MB/s | peak RSS MB | exit |");
console.log("|---|---|---|---|---|---|---|");
console.log(rows.join("\n"));
