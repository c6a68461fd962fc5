/**
 * Pre-flight checks against a target's import rules (`rtexport check`, `push --check`): built-in
 * profiles for iDMS, ARIA and Orthanc, custom JSON profiles, and the lossless fixes a user may
 * choose (ISO_IR 100 transliteration, machine-name mapping).
 * @module
 */
export { type CheckOptions, type CheckOutcome, checkRecords, type CheckSummary } from "./check.ts";
export { type Change, fixCharacterSet, fixMachines, whyNotFixable } from "./fix.ts";
export { BUILTIN_PROFILES, loadProfile, type Profile, type ProfileRules, type RuleId, RULES, validateProfile } from "./profile.ts";
export { Checker, FIX_KINDS, type FixKind, machineNames, missingReference, type Reference, type Violation } from "./rules.ts";
export { instancesAtTarget, machinesAtTarget } from "./target.ts";
export { isLatin1, toLatin1 } from "./transliterate.ts";
