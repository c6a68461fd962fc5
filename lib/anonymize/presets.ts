/**
 * Named sets of profile options (`--preset NAME`): the standard Basic Profile, and what a
 * radiotherapy research set needs so a planning system can reload it. Options given beside a
 * preset add to it.
 */
import type { ProfileOptions, ProfileOverride } from "./profile.ts";

/** A named choice of Annex E options and extra profile rows. */
export interface AnonymizePreset {
  name: string;
  /** One line for `--help` and the docs. */
  summary: string;
  options: ProfileOptions;
  /** Rows added to Table E.1-1 (before the user's `--profile` rows, which win). */
  profile: readonly ProfileOverride[];
}

// Accuray's coded private values (structure blocking, prescription type, plan geometry, detector
// procedure type/purpose, compression type, units) and Varian's registration sub type: a TPS needs
// them to reload a TomoTherapy plan; they are coded strings, kept (C) under this preset only.
const privateCoded = (creator: string, group: number, elements: number[]): ProfileOverride[] =>
  elements.map((e) => ({ tag: ((group << 16) | e) >>> 0, action: "C", creator }));

/** The presets, by name. */
export const PRESETS: ReadonlyMap<string, AnonymizePreset> = new Map<string, AnonymizePreset>([
  ["basic", {
    name: "basic",
    summary: "the Basic Application Level Confidentiality Profile alone (PS3.15 Table E.1-1, no options)",
    options: {},
    profile: [],
  }],
  ["rt-research", {
    name: "rt-research",
    summary: "what a TPS needs to reload the set: ROI names, labels and descriptions kept but scrubbed of identifiers, machine names, beam and fraction data, dates shifted per patient, numeric vendor data (safe private)",
    options: {
      cleanDescriptors: true,
      retainDeviceIdentity: true,
      retainLongitudinal: "modified",
      retainSafePrivate: true,
    },
    profile: [
      ...privateCoded("TOMO_HA_01", 0x300d, [0x10, 0x1b, 0xa4]),
      ...privateCoded("TOMO_DD_01", 0x300d, [0x11, 0x12, 0x24, 0x30]),
      ...privateCoded("Varian Medical Systems VISION 3275", 0x3275, [0x00]),
    ],
  }],
]);

/** A preset name that does not exist; the message lists the ones that do. */
export class PresetError extends Error {
  constructor(name: string) {
    super(`Unknown preset "${name}" (use ${[...PRESETS.keys()].join(", ")})`);
    this.name = "PresetError";
  }
}

/**
 * The options of a preset combined with the ones given beside it: a boolean option is on when
 * either turns it on, a date option given beside the preset replaces the preset's, and the
 * preset's profile rows come before the user's (so the user's rows win).
 */
export function withPreset<O extends ProfileOptions & { profile?: readonly ProfileOverride[] }>(name: string, options: O): O {
  const preset = PRESETS.get(name);
  if (!preset) throw new PresetError(name);
  const out: O = { ...options };
  for (const [k, v] of Object.entries(preset.options) as [keyof ProfileOptions, unknown][]) {
    if (k === "retainLongitudinal") out.retainLongitudinal = options.retainLongitudinal ?? preset.options.retainLongitudinal;
    else if (v === true) (out as ProfileOptions)[k] = true as never;
  }
  out.profile = [...preset.profile, ...(options.profile ?? [])];
  return out;
}
