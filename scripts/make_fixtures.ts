// Generates the synthetic RT clinic: deterministic DICOM fixtures and benchmark corpora.
//   node scripts/make_fixtures.ts --out .tmp/clinic [--patients 5] [--slices 8] [--size 64] [--seed 1] [--manifest FILE]
import { writeFile } from "node:fs/promises";
import process from "node:process";
import { parseArgs } from "node:util";
import { generateClinic } from "../lib/fixtures/clinic.ts";

const USAGE = `Usage: make_fixtures --out DIR [options]

Generates a deterministic synthetic radiotherapy clinic (CT, MR, RTSTRUCT, RTPLAN, RTDOSE,
RT Beams Treatment Records, RTIMAGE, spatial registration) and DIR/manifest.json.

Options:
  --out DIR         output directory (required)
  --patients N      number of patients (default 5)
  --slices N        CT slices per patient (default 8)
  --size N          CT rows and columns (default 64; benchmarks use 512)
  --seed S          seed; the same seed gives byte-identical files (default 1)
  --manifest FILE   also write the manifest to FILE
  -h, --help        show this help
`;

function positiveInt(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`Invalid value for --${name}: "${text}" (expected a positive integer)`);
  return Number(text);
}

class UsageError extends Error {}

export async function main(argv: string[]): Promise<number> {
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        out: { type: "string" },
        patients: { type: "string" },
        slices: { type: "string" },
        size: { type: "string" },
        seed: { type: "string" },
        manifest: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    if (!values.out) throw new UsageError("Missing required option --out DIR");
    const started = performance.now();
    const manifest = await generateClinic({
      out: values.out,
      patients: positiveInt("patients", values.patients, 5),
      slices: positiveInt("slices", values.slices, 8),
      size: positiveInt("size", values.size, 64),
      seed: values.seed ?? "1",
    });
    if (values.manifest) await writeFile(values.manifest, JSON.stringify(manifest, null, 2) + "\n");
    const seconds = (performance.now() - started) / 1000;
    const counts = Object.entries(manifest.counts).map(([m, n]) => `${m} ${n}`).join(", ");
    process.stderr.write(
      `Generated ${manifest.files} files (${(manifest.bytes / 1e6).toFixed(1)} MB) for ${manifest.patients.length} patients in ${seconds.toFixed(1)} s: ${counts}\n`,
    );
    return 0;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    const usage = e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS");
    process.stderr.write(`make_fixtures: ${message}\n`);
    if (usage) process.stderr.write("Try --help.\n");
    return usage ? 2 : 1;
  }
}

if (import.meta.main ?? process.argv[1]?.endsWith("make_fixtures.ts")) {
  process.exitCode = await main(process.argv.slice(2));
}
