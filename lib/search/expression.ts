import { lookupKeyword, lookupTag } from "../dicom/dictionary.ts";
import { formatTag, isPrivateTag, parseTag, type Tag } from "../dicom/tag.ts";

/** A parsed `--tag` expression: a tag path and what to do with the value found there. */
export interface TagExpression {
  /** The expression as given, without the `=…` part: the key of the `tags` object of a result. */
  key: string;
  /** The tag path: sequences first, the element last (`BeamSequence/TreatmentMachineName` → two tags). */
  path: Tag[];
  /** `report` for `=?` (or no `=`): match when present and report the values; `match`: match a value. */
  op: "report" | "match";
  /** The value to match (DICOM matching: `*` and `?` wildcards, `\`-separated UID lists, DA/TM ranges). */
  value?: string;
}

/** A tag expression that cannot be parsed: the message names the expression and what is wrong. */
export class TagExpressionError extends Error {
  readonly expression: string;
  constructor(expression: string, detail: string) {
    super(`Invalid tag expression "${expression}": ${detail}`);
    this.name = "TagExpressionError";
    this.expression = expression;
  }
}

/**
 * Parses a search expression: `(gggg,eeee)=value`, `Keyword=value`, `=?` to report the value, and
 * sequence paths with `/` (`(300A,00B0)/(300A,00B2)=?`, `BeamSequence/TreatmentMachineName=?`).
 * Tags may be written `(0010,0020)`, `0010,0020` or `00100020`; private tags by number.
 * Throws {@link TagExpressionError} naming the expression when it is malformed.
 *
 * @example
 * ```ts
 * parseTagExpression("BeamSequence/TreatmentMachineName=?");
 * // → { key: "BeamSequence/TreatmentMachineName", path: [0x300a00b0, 0x300a00b2], op: "report" }
 * parseTagExpression("(0010,0020)=PAT*");
 * // → { key: "(0010,0020)", path: [0x00100020], op: "match", value: "PAT*" }
 * ```
 */
export function parseTagExpression(expression: string): TagExpression {
  const eq = expression.indexOf("=");
  const key = (eq < 0 ? expression : expression.slice(0, eq)).trim();
  const rhs = eq < 0 ? undefined : expression.slice(eq + 1);
  if (key === "") throw new TagExpressionError(expression, "no tag before \"=\"");
  const segments = key.split("/");
  const path: Tag[] = [];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i].trim();
    if (seg === "") throw new TagExpressionError(expression, "empty step in the tag path");
    const tag = resolveSegment(seg, expression);
    const isLast = i === segments.length - 1;
    if (!isLast) {
      const vr = lookupTag(tag)?.vr;
      if (vr !== undefined && vr !== "SQ" && !isPrivateTag(tag)) {
        throw new TagExpressionError(expression, `${seg} ${formatTag(tag)} is not a sequence`);
      }
    }
    path.push(tag);
  }
  if (rhs === undefined || rhs === "?") return { key, path, op: "report" };
  return { key, path, op: "match", value: rhs };
}

function resolveSegment(seg: string, expression: string): Tag {
  if (seg.startsWith("(") || /^[0-9A-Fa-f]{4},?[0-9A-Fa-f]{4}$/.test(seg)) {
    const strict = /^\([0-9A-Fa-f]{4},[0-9A-Fa-f]{4}\)$|^[0-9A-Fa-f]{4},?[0-9A-Fa-f]{4}$/.test(seg);
    const tag = strict ? parseTag(seg) : undefined;
    if (tag === undefined) throw new TagExpressionError(expression, `"${seg}" is not a tag; write (gggg,eeee) in hexadecimal`);
    return tag;
  }
  if (!/^[A-Za-z][A-Za-z0-9]*$/.test(seg)) {
    throw new TagExpressionError(expression, `"${seg}" is neither a tag (gggg,eeee) nor a DICOM keyword`);
  }
  const entry = lookupKeyword(seg);
  if (!entry) throw new TagExpressionError(expression, `unknown keyword "${seg}"`);
  return entry.tag;
}
