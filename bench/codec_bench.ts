// Decode benchmark: rtexport's lossless decoders (lib/codec) against GDCM's `gdcmconv --raw` and
// DCMTK's dcmdjpeg/dcmdjpls/dcmdrle on the same files, warm cache, same run. Not a test: it
// prints a Markdown table.
//
//   node_modules/.bin/node bench/codec_bench.ts [--corpus DIR] [--slices 40] [--runs 3]
//
// The corpus: `--slices` CT slices 512×512×16 bit of the synthetic clinic with noise added (±20
// around each value, deterministic: the phantom alone is flat and compresses 50:1, real CT about
// 2–3:1), compressed by GDCM into one directory per codec (JPEG Lossless SV1, JPEG-LS, JPEG 2000 lossless, RLE), plus the
// same JPEG Lossless files for jpeg-lossless-decoder-js (the npm decoder evaluated and not used).
// Each measurement runs in its own process under GNU time; the median of --runs is shown.
// rtexport is measured twice: a decode loop (read + decode, nothing written: the codec's own
// speed) and the `transcode` command (read + decode + write Explicit VR Little Endian files, what
// a user runs). GDCM and DCMTK tools take one file per process, as people run them: they are
// run from one shell loop, and their start-up per file is measured on uncompressed input and
// shown beside them.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import module from "node:module";
import process from "node:process";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(new URL(import.meta.url).pathname), "..");
const NODE = join(ROOT, "node_modules/.bin/node");
const DENO = join(ROOT, "node_modules/.bin/deno");

interface Measure {
  seconds: number;
  cpu: number;
  rssKiB: number;
}

function timed(cmd: string, args: string[]): Measure {
  const r = spawnSync("/usr/bin/time", ["-f", "TIME %e %M %U %S", cmd, ...args], { encoding: "utf8", maxBuffer: 1 << 28, timeout: 30 * 60_000 });
  const m = /TIME ([\d.]+) (\d+) ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr ?? "");
  if (r.status !== 0 || !m) throw new Error(`${cmd} ${args.slice(0, 6).join(" ")} … failed (${r.status}): ${(r.stderr ?? "").slice(-500)}`);
  return { seconds: Number(m[1]), rssKiB: Number(m[2]), cpu: Number(m[3]) + Number(m[4]) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function files(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith(".dcm")).sort().map((f) => join(dir, f));
}

// The decode loop, run as a child: `codec_bench.ts --loop DIR [--jld]`.
async function loop(dir: string, jld: boolean): Promise<void> {
  (module as { enableCompileCache?: () => unknown }).enableCompileCache?.();
  const { readDicomFile } = await import("../lib/dicom/reader.ts");
  let bytes = 0;
  if (jld) {
    const { Decoder } = await import("jpeg-lossless-decoder-js") as unknown as { Decoder: new () => { decode(b: ArrayBuffer, o: number, l: number): Uint16Array } };
    for (const path of files(dir)) {
      const frags = readDicomFile(path, { full: true }).dataset.get(0x7fe00010)!.fragments!;
      const frame = frags.length === 2 ? frags[1].slice() : Uint8Array.from(frags.slice(1).flatMap((f) => [...f]));
      bytes += new Decoder().decode(frame.buffer, 0, frame.length).byteLength;
    }
  } else {
    const { decodeDataSet } = await import("../lib/codec/decode.ts");
    for (const path of files(dir)) {
      const f = readDicomFile(path, { full: true });
      bytes += (await decodeDataSet(f.dataset, f.transferSyntaxUid)).get(0x7fe00010)!.value!.length;
    }
  }
  if (bytes === 0) throw new Error("nothing decoded");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      corpus: { type: "string", default: "/tmp/rtexport-codec-bench" },
      slices: { type: "string", default: "100" },
      runs: { type: "string", default: "3" },
      loop: { type: "string" },
      jld: { type: "boolean", default: false },
    },
  });
  if (values.loop) return await loop(values.loop, values.jld!);
  const corpus = resolve(values.corpus!);
  const slices = Number(values.slices);
  const runs = Number(values.runs);
  const clinic = join(corpus, "clinic");
  if (!existsSync(join(clinic, "manifest.json"))) {
    console.error(`Generating ${slices} CT slices into ${clinic} …`);
    const r = spawnSync(NODE, [join(ROOT, "scripts/make_fixtures.ts"), "--out", clinic, "--patients", "1", "--slices", String(slices), "--size", "512"], { stdio: "inherit" });
    if (r.status !== 0) throw new Error("corpus generation failed");
  }
  const ctDir = join(corpus, "ct");
  if (!existsSync(`${ctDir}.complete`)) {
    const { readDicomFile } = await import("../lib/dicom/reader.ts");
    const { encodeFile } = await import("../lib/dicom/writer.ts");
    mkdirSync(ctDir, { recursive: true });
    let x = 12345;
    for (const f of files(join(clinic, "RTX0001", "CT"))) {
      const file = readDicomFile(f, { full: true });
      const px = file.dataset.get(0x7fe00010)!;
      const v = new Uint16Array(px.value!.slice().buffer);
      for (let i = 0; i < v.length; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        v[i] = Math.max(0, Math.min(4095, v[i] + ((x >>> 16) % 41) - 20));
      }
      px.value = new Uint8Array(v.buffer);
      writeFileSync(join(ctDir, f.split("/").pop()!), encodeFile(file.dataset, { transferSyntaxUid: "1.2.840.10008.1.2.1" }));
    }
    writeFileSync(`${ctDir}.complete`, "");
  }
  const ct = files(ctDir);
  const codecs: { name: string; flag: string; dcmtk: string }[] = [
    { name: "JPEG Lossless SV1 (.70)", flag: "--jpeg", dcmtk: "dcmdjpeg" },
    { name: "JPEG-LS lossless (.80)", flag: "--jpegls", dcmtk: "dcmdjpls" },
    { name: "JPEG 2000 lossless (.90)", flag: "--j2k", dcmtk: "" },
    { name: "RLE Lossless (.5)", flag: "--rle", dcmtk: "dcmdrle" },
  ];
  for (const c of codecs) {
    const dir = join(corpus, c.flag.slice(2));
    if (existsSync(`${dir}.complete`)) continue;
    mkdirSync(dir, { recursive: true });
    for (const f of ct) {
      const r = spawnSync("gdcmconv", [c.flag, f, join(dir, f.split("/").pop()!)]);
      if (r.status !== 0) throw new Error(`gdcmconv ${c.flag} failed on ${f}`);
    }
    writeFileSync(`${dir}.complete`, "");
  }
  const out = join(corpus, "out");
  const decoded = ct.reduce((n, f) => n + statSync(f).size, 0); // native files: pixel data ≈ the file
  const rows: string[] = [];
  const perFile = (tool: string, flags: string) => (dir: string) => {
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    return timed("sh", ["-c", `for f in "$0"/*.dcm; do ${tool} ${flags} "$f" "$1/$(basename "$f")" || exit 1; done`, dir, out]);
  };
  // Start-up per file of the one-file-per-process tools: the same loop over the uncompressed slices.
  // CPU is the figure compared: other work on a shared machine stretches wall times, not CPU.
  const startup = new Map<string, number>();
  for (const [tool, flags] of [["gdcmconv", "--raw"], ["dcmdjpeg", "-q"]] as const) {
    const ms: Measure[] = [];
    for (let i = 0; i < runs; i++) ms.push(perFile(tool, flags)(ctDir));
    startup.set(tool, median(ms.map((m) => m.cpu)) / ct.length);
  }
  for (const c of codecs) {
    const dir = join(corpus, c.flag.slice(2));
    spawnSync("sh", ["-c", `cat "$0"/*.dcm > /dev/null`, dir]);
    const compressed = files(dir).reduce((n, f) => n + statSync(f).size, 0);
    const tools: { name: string; run: () => Measure; perProcess?: string }[] = [
      { name: "rtexport decode loop (Node 24)", run: () => timed(NODE, [join(ROOT, "bench/codec_bench.ts"), "--loop", dir]) },
      { name: "rtexport decode loop (Deno 2)", run: () => timed(DENO, ["run", "-A", join(ROOT, "bench/codec_bench.ts"), "--loop", dir]) },
      {
        name: "rtexport transcode --to explicit-le (Node 24)",
        run: () => {
          rmSync(out, { recursive: true, force: true });
          return timed(NODE, [join(ROOT, "cli.mjs"), "transcode", "--quiet", "--json", "--to", "explicit-le", "--out", out, dir]);
        },
      },
      { name: "gdcmconv --raw (a process per file)", run: () => perFile("gdcmconv", "--raw")(dir), perProcess: "gdcmconv" },
    ];
    if (c.dcmtk) tools.push({ name: `${c.dcmtk} (a process per file)`, run: () => perFile(c.dcmtk, "-q")(dir), perProcess: "dcmdjpeg" });
    if (c.flag === "--jpeg") tools.push({ name: "jpeg-lossless-decoder-js 2.1.2 decode loop (Node 24; not used)", run: () => timed(NODE, [join(ROOT, "bench/codec_bench.ts"), "--loop", dir, "--jld"]) });
    let gdcm = 0;
    const measured: { name: string; secs: number; cpu: number; rss: number; perProcess?: string }[] = [];
    for (const t of tools) {
      const ms: Measure[] = [];
      for (let i = 0; i < runs; i++) ms.push(t.run());
      const secs = median(ms.map((m) => m.seconds));
      if (t.perProcess === "gdcmconv") gdcm = median(ms.map((m) => m.cpu));
      measured.push({ name: t.name, secs, cpu: median(ms.map((m) => m.cpu)), rss: median(ms.map((m) => m.rssKiB)) / 1024, perProcess: t.perProcess });
    }
    for (const m of measured) {
      const row = `| ${c.name} | ${(compressed / 2 ** 20).toFixed(1)} MiB | ${m.name} | ${m.secs.toFixed(2)} s | ${m.cpu.toFixed(2)} s | ${(decoded / 2 ** 20 / m.cpu).toFixed(0)} | ${(gdcm / m.cpu).toFixed(2)}× | ${m.rss.toFixed(0)} MiB |`;
      rows.push(row);
      console.error(row);
    }
  }
  console.log(`Corpus: ${ct.length} CT slices 512×512×16 bit (${(decoded / 2 ** 20).toFixed(1)} MiB native), compressed by gdcmconv; runs: ${runs} (median)\n`);
  console.log("| codec | compressed | tool | wall | CPU (user+sys) | decoded MiB per CPU-second | vs gdcmconv (CPU) | peak RSS |");
  console.log("|---|---:|---|---:|---:|---:|---:|---:|");
  for (const r of rows) console.log(r);
  console.log(`\nCPU per file of the one-file-per-process tools on the uncompressed slices (start-up, read, write; no decoding): ${[...startup].map(([t, s]) => `${t} ${(1000 * s).toFixed(0)} ms`).join(", ")}`);
}

await main();
