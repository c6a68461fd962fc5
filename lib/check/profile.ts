/**
 * Target profiles: what a target refuses on import, as data. Built in: `idms` (seed 002),
 * `aria` (seed 003) and `orthanc`; a site writes its own JSON file with the same shape and names
 * it instead (`--target site.json`). A rule is on when its key is present.
 */
import { readFileSync } from "node:fs";
import { lookupKeyword } from "../dicom/dictionary.ts";
import aria from "./profiles/aria.json" with { type: "json" };
import idms from "./profiles/idms.json" with { type: "json" };
import orthanc from "./profiles/orthanc.json" with { type: "json" };

/** Every rule a profile may turn on. */
export const RULES = [
  "sop-class", "patient-id", "matrix", "gantry-tilt", "samples-per-pixel", "photometric", "character-set", "required",
  "machine-name", "structure-set-images", "plan-structure-set", "empty-beams",
] as const;
export type RuleId = (typeof RULES)[number];

/** The rules' settings. */
export interface ProfileRules {
  /** SOP Class UIDs the target stores. */
  "sop-class"?: { accepted: string[] };
  /** Patient ID (0010,0020) must match `pattern`; `allowed` says in words what it allows. */
  "patient-id"?: { pattern: string; allowed?: string };
  /** Image matrix of these modalities: Rows = Columns (`square`), a power of two (`powerOfTwo`). */
  matrix?: { modalities: string[]; square?: boolean; powerOfTwo?: boolean };
  /** Gantry/Detector Tilt (0018,1120), when present, must be `value`. */
  "gantry-tilt"?: { modalities: string[]; value: number };
  /** Samples per Pixel (0028,0002) must be `value` (for these modalities; all when absent). */
  "samples-per-pixel"?: { modalities?: string[]; value: number };
  /** Photometric Interpretation (0028,0004) per modality. */
  photometric?: { allowed: Record<string, string[]> };
  /** Specific Character Set (0008,0005): absent (the default repertoire) or one of these. */
  "character-set"?: { allowed: string[] };
  /** Attributes (keywords) that must be present and not empty. */
  required?: { attributes: string[] };
  /** Treatment Machine Name (300A,00B2) must be a machine the target knows (`names`, `--machines`, or from the target). */
  "machine-name"?: { names?: string[] };
  /** A structure set's images must be at the target (sent with it, before it, or there already). */
  "structure-set-images"?: Record<string, never>;
  /** A plan's structure set must be at the target. */
  "plan-structure-set"?: Record<string, never>;
  /** A plan must have beams (RT Plan, RT Ion Plan; brachytherapy plans have application setups instead). */
  "empty-beams"?: Record<string, never>;
}

/** A target's import rules (built in, or a site's JSON file: see docs/clinical-safety.md). */
export interface Profile {
  name: string;
  title?: string;
  /** Where the rules come from (a conformance statement's sections). */
  source?: string;
  rules: ProfileRules;
}

/** The built-in profiles by name. */
export const BUILTIN_PROFILES: Readonly<Record<string, Profile>> = {
  idms: idms as Profile,
  aria: aria as Profile,
  orthanc: orthanc as Profile,
};

function fail(where: string, why: string): never {
  throw new Error(`Invalid target profile ${where}: ${why}`);
}

function strings(v: unknown, where: string, key: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) fail(where, `"${key}" must be a list of strings`);
  return v as string[];
}

/** Checks a profile's shape; throws one line naming what is wrong. */
export function validateProfile(p: unknown, where: string): Profile {
  if (typeof p !== "object" || p === null || Array.isArray(p)) fail(where, "expected a JSON object");
  const o = p as Record<string, unknown>;
  if (typeof o.name !== "string" || o.name === "") fail(where, `"name" must be a non-empty string`);
  if (typeof o.rules !== "object" || o.rules === null || Array.isArray(o.rules)) fail(where, `"rules" must be an object`);
  const rules = o.rules as Record<string, unknown>;
  for (const [k, v] of Object.entries(rules)) {
    if (!(RULES as readonly string[]).includes(k)) fail(where, `unknown rule "${k}" (rules: ${RULES.join(", ")})`);
    if (typeof v !== "object" || v === null || Array.isArray(v)) fail(where, `rule "${k}" must be an object`);
    const r = v as Record<string, unknown>;
    switch (k) {
      case "sop-class":
        strings(r.accepted, where, "sop-class.accepted");
        break;
      case "patient-id":
        if (typeof r.pattern !== "string") fail(where, `"patient-id.pattern" must be a regular expression`);
        try {
          new RegExp(r.pattern as string, "u");
        } catch (e) {
          fail(where, `"patient-id.pattern" is not a regular expression: ${(e as Error).message}`);
        }
        break;
      case "matrix":
      case "gantry-tilt":
        strings(r.modalities, where, `${k}.modalities`);
        if (k === "gantry-tilt" && typeof r.value !== "number") fail(where, `"gantry-tilt.value" must be a number`);
        break;
      case "samples-per-pixel":
        if (r.modalities !== undefined) strings(r.modalities, where, "samples-per-pixel.modalities");
        if (typeof r.value !== "number") fail(where, `"samples-per-pixel.value" must be a number`);
        break;
      case "photometric":
        if (typeof r.allowed !== "object" || r.allowed === null) fail(where, `"photometric.allowed" must map modalities to lists`);
        for (const [m, list] of Object.entries(r.allowed as Record<string, unknown>)) strings(list, where, `photometric.allowed.${m}`);
        break;
      case "character-set":
        strings(r.allowed, where, "character-set.allowed");
        break;
      case "required":
        for (const kw of strings(r.attributes, where, "required.attributes")) {
          if (!lookupKeyword(kw)) fail(where, `"required.attributes" names "${kw}", which is not a DICOM keyword`);
        }
        break;
      case "machine-name":
        if (r.names !== undefined) strings(r.names, where, "machine-name.names");
        break;
    }
  }
  return o as unknown as Profile;
}

/**
 * A built-in profile by name, or a JSON profile file; throws one line naming the problem.
 *
 * @example
 * ```ts
 * const idms = loadProfile("idms");
 * console.log(Object.keys(idms.rules)); // sop-class, patient-id, matrix, …
 * const site = loadProfile("site-profile.json");
 * ```
 */
export function loadProfile(target: string): Profile {
  const builtin = BUILTIN_PROFILES[target.toLowerCase()];
  if (builtin) return builtin;
  let text: string;
  try {
    text = readFileSync(target, "utf8");
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "ENOENT" && !/[./\\]/.test(target)) {
      throw new Error(`Unknown target "${target}": the built-in targets are ${Object.keys(BUILTIN_PROFILES).join(", ")}, or give a profile file`);
    }
    throw new Error(`Cannot read target profile "${target}": ${code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new Error(`Invalid target profile "${target}": not JSON (${(e as Error).message})`);
  }
  return validateProfile(parsed, `"${target}"`);
}
