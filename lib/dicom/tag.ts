/** A DICOM tag as one unsigned 32-bit number: (group << 16) | element. */
export type Tag = number;

/**
 * Builds a tag from its group and element numbers.
 *
 * @example
 * ```ts
 * tagOf(0x0010, 0x0020); // 0x00100020
 * ```
 */
export function tagOf(group: number, element: number): Tag {
  return ((group << 16) | element) >>> 0;
}
export function groupOf(tag: Tag): number {
  return tag >>> 16;
}
export function elementOf(tag: Tag): number {
  return tag & 0xffff;
}
/**
 * Formats a tag as DCMTK does: `(0010,0020)`, upper-case hex.
 *
 * @example
 * ```ts
 * formatTag(0x300a00b2); // "(300A,00B2)"
 * ```
 */
export function formatTag(tag: Tag): string {
  const h = (tag >>> 0).toString(16).toUpperCase().padStart(8, "0");
  return `(${h.slice(0, 4)},${h.slice(4)})`;
}
/**
 * Parses `(0010,0020)`, `0010,0020` or `00100020`; returns undefined when it is not a tag.
 *
 * @example
 * ```ts
 * parseTag("(0010,0020)"); // 0x00100020
 * ```
 */
export function parseTag(text: string): Tag | undefined {
  const m = /^\(?\s*([0-9A-Fa-f]{4})\s*,?\s*([0-9A-Fa-f]{4})\s*\)?$/.exec(text.trim());
  return m ? tagOf(parseInt(m[1], 16), parseInt(m[2], 16)) : undefined;
}
/**
 * Private tags have an odd group number (groups 0001, 0003, 0005, 0007 and FFFF excepted).
 *
 * @example
 * ```ts
 * isPrivateTag(0x32531010); // true
 * ```
 */
export function isPrivateTag(tag: Tag): boolean {
  const g = groupOf(tag);
  return (g & 1) === 1 && g > 0x0008 && g !== 0xffff;
}
/** A private creator element: (gggg,0010)–(gggg,00FF) in a private group. */
export function isPrivateCreator(tag: Tag): boolean {
  const e = elementOf(tag);
  return isPrivateTag(tag) && e >= 0x10 && e <= 0xff;
}
/**
 * The creator element that reserves a private data element's block: (gggg,xxyy) → (gggg,00xx);
 * undefined for a tag that is not private.
 *
 * @example
 * ```ts
 * privateCreatorTagOf(0x32531010); // 0x32530010
 * ```
 */
export function privateCreatorTagOf(tag: Tag): Tag | undefined {
  if (!isPrivateTag(tag)) return undefined;
  const block = elementOf(tag) >>> 8;
  return block >= 0x10 ? tagOf(groupOf(tag), block) : undefined;
}

export const ITEM = 0xfffee000;
export const ITEM_DELIMITATION = 0xfffee00d;
export const SEQUENCE_DELIMITATION = 0xfffee0dd;
export const PIXEL_DATA = 0x7fe00010;
export const FLOAT_PIXEL_DATA = 0x7fe00008;
export const DOUBLE_PIXEL_DATA = 0x7fe00009;
export const SPECIFIC_CHARACTER_SET = 0x00080005;
export const TRANSFER_SYNTAX_UID = 0x00020010;
