// Benchmark: `rtexport anonymize` vs gdcmanon (GDCM) vs a pydicom loop, same corpus, same run.
//
//   node_modules/.bin/node bench/anonymize_bench.ts [--corpus DIR] [--patients 18] [--slices 240] [--size 512] [--work DIR] [--runs 1]
//
// The corpus is generated with the fixture generator when DIR has no manifest.json. gdcmanon
// cannot anonymize RT Beams Treatment Records ("Media Storage Type ... not supported") and stops
// there, so every tool runs on a hard-linked copy of the corpus without them (and without the
// manifest). Each tool runs as its own process under /usr/bin/time, which reports wall time and
// peak RSS; outputs go to fresh directories on the same file system. The page cache is warmed
// with a read of every file before the first tool, so no tool pays for the first read alone.
// Before each tool, the previous outputs are deleted and `sync` waits for writeback to finish.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    corpus: { type: "string", default: "/tmp/anonbench/corpus" },
    work: { type: "string", default: "/tmp/anonbench/work" },
    patients: { type: "string", default: "18" },
    slices: { type: "string", default: "240" },
    size: { type: "string", default: "512" },
    runs: { type: "string", default: "1" },
  },
});
const root = resolve(import.meta.dirname ?? ".", "..");
const node = join(root, "node_modules/.bin/node");
const corpus = resolve(values.corpus!);
const work = resolve(values.work!);
const runs = Number(values.runs);

function sh(cmd: string, args: string[], env: Record<string, string> = {}): { out: string; err: string; code: number } {
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 30, env: { ...process.env, ...env } });
  if (r.error) throw r.error;
  return { out: r.stdout, err: r.stderr, code: r.status ?? -1 };
}

if (!existsSync(join(corpus, "manifest.json"))) {
  console.error(`Generating corpus in ${corpus} …`);
  const g = sh(node, [join(root, "scripts/make_fixtures.ts"), "--out", corpus, "--patients", values.patients!, "--slices", values.slices!, "--size", values.size!]);
  if (g.code !== 0) throw new Error(g.err);
  console.error(g.out.trim() || g.err.trim());
}

// Input: hard links of the corpus without RT Beams Treatment Records (gdcmanon refuses them).
const input = join(work, "input");
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
sh("cp", ["-al", corpus, input]);
rmSync(join(input, "manifest.json"), { force: true });
for (const p of readdirSync(input)) rmSync(join(input, p, "RTRECORD"), { recursive: true, force: true });
function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]);
}
const files = walk(input);
let bytes = 0;
for (const f of files) bytes += readFileSync(f).length; // also warms the page cache
console.error(`Input: ${files.length} files, ${(bytes / 1e6).toFixed(0)} MB`);

// gdcmanon needs a certificate for its default (PS3.15 E.1.1 with encrypted originals) mode.
const certDir = join(work, "cert");
mkdirSync(certDir);
sh("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-keyout", join(certDir, "key.pem"), "-out", join(certDir, "cert.pem"), "-days", "2", "-nodes", "-subj", "/CN=rtexport-bench"]);
const keyFile = join(work, "key.txt");
writeFileSync(keyFile, "bench-key-0123456789abcdef\n");

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

interface Result { tool: string; seconds: number; maxRssMb: number; outputs: number; code: number }

function timed(tool: string, cmd: string, args: string[], out: string, env: Record<string, string> = {}): Result {
  // Same start for every tool: no earlier output left, and nothing dirty still being written back
  // (each tool writes 2.4 GB; without this the next tool pays for the previous one's writeback).
  for (const e of readdirSync(work)) if (e.startsWith("out-")) rmSync(join(work, e), { recursive: true, force: true });
  sh("sync", []);
  mkdirSync(out, { recursive: true });
  const r = sh("/usr/bin/time", ["-f", "TIME %e %M", cmd, ...args], env);
  const m = /TIME ([\d.]+) (\d+)/.exec(r.err);
  if (!m) throw new Error(`${tool}: no timing (${r.err.slice(-400)})`);
  const outputs = walk(out).length;
  return { tool, seconds: Number(m[1]), maxRssMb: Number(m[2]) / 1024, outputs, code: r.code };
}

const results: Result[] = [];
for (let i = 0; i < runs; i++) {
  results.push(timed("rtexport anonymize (node 24)", node, [join(root, "commands/anonymize.ts"), "--key-file", keyFile, "--out", join(work, "out-rtexport"), "--quiet", input], join(work, "out-rtexport")));
  results.push(timed("rtexport anonymize (deno 2)", join(root, "node_modules/.bin/deno"), ["run", "-A", join(root, "commands/anonymize.ts"), "--key-file", keyFile, "--out", join(work, "out-rtexport-deno"), "--quiet", input], join(work, "out-rtexport-deno")));
  results.push(timed("gdcmanon -e (GDCM 3.0.21)", "gdcmanon", ["-e", "-c", join(certDir, "cert.pem"), "-r", "--continue", "-i", input, "-o", join(work, "out-gdcm")], join(work, "out-gdcm")));
  results.push(timed("gdcmanon --dumb (empty 0010,0010 0010,0020)", "gdcmanon", ["--dumb", "--empty", "10,10", "--empty", "10,20", "-r", "--continue", "-i", input, "-o", join(work, "out-gdcm-dumb")], join(work, "out-gdcm-dumb")));
  results.push(timed(`pydicom ${sh("/usr/bin/python3", ["-c", "import pydicom; print(pydicom.__version__)"]).out.trim()} loop`, "/usr/bin/python3", [pyScript, join(root, "data/dicom-standard/confidentiality_profile_attributes.json"), input, join(work, "out-pydicom")], join(work, "out-pydicom")));
}

const rows = results.map((r) => `| ${r.tool} | ${r.outputs} | ${r.seconds.toFixed(1)} | ${(r.outputs / r.seconds).toFixed(0)} | ${(bytes / 1e6 / r.seconds).toFixed(0)} | ${r.maxRssMb.toFixed(0)} | ${r.code} |`);
console.log(`Input: ${files.length} files, ${(bytes / 1e6).toFixed(0)} MB (${process.env.HOSTNAME ?? "host"}, ${new Date().toISOString()})\n`);
console.log("| tool | files written | wall s | files/s | MB/s | peak RSS MB | exit |");
console.log("|---|---|---|---|---|---|---|");
console.log(rows.join("\n"));
