import { isNativeSyntax, syntaxName } from "../codec/syntaxes.ts";
import type { MissingReference, ReferenceTree, ShowPlanRecord } from "./tree.ts";

/** ` [JPEG-LS Lossless]` for compressed syntaxes; nothing for native ones, the common case. */
function compressed(uids: readonly string[] | undefined): string {
  const names = (uids ?? []).filter((u) => !isNativeSyntax(u)).map(syntaxName);
  return names.length ? ` [${names.join(", ")}]` : "";
}

/** A node of the human view: one line of text and its children. */
interface Node {
  text: string;
  children: Node[];
}

function seriesLabel(modality: string | undefined): string {
  return modality ? `${modality} series` : "series";
}

function missingText(m: MissingReference): string {
  if (m.kind === "image" && m.sopInstanceUids) {
    const n = m.sopInstanceUids.length;
    const shown = m.sopInstanceUids.slice(0, 3).join(", ") + (n > 3 ? `, … (${n - 3} more)` : "");
    const of = m.seriesUid ? ` of series ${m.seriesUid}` : "";
    return `MISSING ${n} image${n === 1 ? "" : "s"}${of}: ${shown} (referenced by ${m.referencedBy})`;
  }
  const uid = m.sopInstanceUid ?? m.seriesUid ?? "";
  return `MISSING ${m.kind} ${uid} (referenced by ${m.referencedBy})`;
}

function quoted(s: string | undefined): string {
  return s === undefined ? "(no label)" : `"${s}"`;
}

function planNode(p: ShowPlanRecord): Node {
  const head = [`RTPLAN ${quoted(p.label)}`];
  if (p.name && p.name !== p.label) head.push(`(${p.name})`);
  if (p.approval) head.push(p.approval);
  const facts: string[] = [];
  if (p.machines.length) facts.push(`machine${p.machines.length > 1 ? "s" : ""} ${p.machines.join(", ")}`);
  facts.push(`${p.beams} beam${p.beams === 1 ? "" : "s"}`);
  facts.push(p.sopInstanceUid);
  const children: Node[] = [];
  if (p.structureSet) {
    const ss = p.structureSet;
    const ssNode: Node = {
      text: ss.missing ? `MISSING RTSTRUCT ${ss.sopInstanceUid} (referenced by the plan, not in the input)` : `RTSTRUCT ${quoted(ss.label)} ${ss.sopInstanceUid}`,
      children: ss.imageSeries.map((s) => ({
        text: `${seriesLabel(s.modality)} ${s.seriesUid}: ${s.count} found` +
          (s.referenced ? `, ${s.referenced} referenced` : "") + compressed(s.transferSyntaxUids),
        children: [],
      })),
    };
    children.push(ssNode);
  } else {
    children.push({ text: "no structure set referenced", children: [] });
  }
  for (const d of p.doses) {
    const beams = d.beams?.length ? ` beam${d.beams.length > 1 ? "s" : ""} ${d.beams.join(", ")}` : "";
    children.push({ text: `RTDOSE ${d.summation ?? "(no summation type)"}${beams} ${d.sopInstanceUid}${compressed(d.transferSyntaxUid ? [d.transferSyntaxUid] : [])}`, children: [] });
  }
  for (const r of p.records) {
    const bits = [r.kind ?? "RT record"];
    if (r.date) bits.push(r.date);
    if (r.fraction !== undefined) bits.push(`fraction ${r.fraction}`);
    if (r.machine) bits.push(`on ${r.machine}`);
    bits.push(r.sopInstanceUid);
    children.push({ text: bits.join(" "), children: [] });
  }
  for (const i of p.images) {
    const beam = i.beams?.length ? ` beam ${i.beams.join(", ")}` : "";
    children.push({ text: `RTIMAGE ${quoted(i.label)}${beam} ${i.sopInstanceUid}${compressed(i.transferSyntaxUid ? [i.transferSyntaxUid] : [])}`, children: [] });
  }
  for (const r of p.registrations) {
    children.push({ text: `REG ${r.kind ?? "registration"} ${r.sopInstanceUid}`, children: [] });
  }
  for (const m of p.missing) {
    if (m.kind === "RTSTRUCT" && m.sopInstanceUid === p.structureSet?.sopInstanceUid) continue; // drawn above
    children.push({ text: missingText(m), children: [] });
  }
  return { text: `${head.join(" ")} · ${facts.join(" · ")}`, children };
}

function patientHeading(patientId: string | undefined, patientName: string | undefined): string {
  const id = patientId ?? "(no patient ID)";
  return patientName ? `Patient ${id} · ${patientName}` : `Patient ${id}`;
}

function drawTree(node: Node, prefix: string, isLast: boolean, isRoot: boolean, out: string[]): void {
  if (isRoot) out.push(node.text);
  else out.push(`${prefix}${isLast ? "└── " : "├── "}${node.text}`);
  const childPrefix = isRoot ? "" : prefix + (isLast ? "    " : "│   ");
  node.children.forEach((c, i) => drawTree(c, childPrefix, i === node.children.length - 1, false, out));
}

/**
 * The human view of a reference tree, as lines: `tree` draws it with box-drawing characters as
 * `tree(1)` does; `flat` writes one tab-separated line per object (patient, plan, what, UID, details).
 *
 * @example
 * ```ts
 * console.log(renderTree(buildReferenceTree(summaries), "tree").join("\n"));
 * ```
 */
export function renderTree(tree: ReferenceTree, format: "tree" | "flat" = "tree"): string[] {
  const out: string[] = [];
  for (const p of tree.patients) {
    const unconnected: Node = {
      text: "Unconnected (no plan references these)",
      children: [
        ...p.unconnected.objects.map((o) => ({
          text: `${seriesLabel(o.modality)} ${o.seriesUid ?? "(no series UID)"}: ${o.count} object${o.count === 1 ? "" : "s"}${compressed(o.transferSyntaxUids)}`,
          children: [],
        })),
        ...p.unconnected.missing.map((m) => ({ text: missingText(m), children: [] })),
      ],
    };
    const root: Node = {
      text: patientHeading(p.patientId, p.patientName),
      children: [...p.plans.map(planNode), ...(unconnected.children.length ? [unconnected] : [])],
    };
    if (format === "tree") drawTree(root, "", true, true, out);
    else {
      const pid = p.patientId ?? "";
      for (const plan of p.plans) {
        const label = plan.label ?? "";
        const row = (what: string, uid: string, detail = "") => out.push([pid, label, what, uid, detail].join("\t"));
        row("RTPLAN", plan.sopInstanceUid, [plan.approval, plan.machines.join(",")].filter(Boolean).join(" "));
        const ss = plan.structureSet;
        if (ss) {
          row("RTSTRUCT", ss.sopInstanceUid, ss.missing ? "MISSING" : ss.label ?? "");
          for (const s of ss.imageSeries) row(seriesLabel(s.modality), s.seriesUid, `${s.count} found, ${s.referenced} referenced`);
        }
        for (const d of plan.doses) row("RTDOSE", d.sopInstanceUid, [d.summation, d.beams?.join(",")].filter(Boolean).join(" "));
        for (const r of plan.records) row(r.kind ?? "RT record", r.sopInstanceUid, [r.date, r.fraction].filter((x) => x !== undefined).join(" "));
        for (const i of plan.images) row("RTIMAGE", i.sopInstanceUid, i.label ?? "");
        for (const r of plan.registrations) row("REG", r.sopInstanceUid, r.kind ?? "");
        for (const m of plan.missing.filter((m) => !(m.kind === "RTSTRUCT" && m.sopInstanceUid === ss?.sopInstanceUid))) row(`MISSING ${m.kind}`, m.sopInstanceUid ?? m.seriesUid ?? "", m.sopInstanceUids?.join(",") ?? "");
      }
      for (const o of p.unconnected.objects) out.push([pid, "(unconnected)", seriesLabel(o.modality), o.seriesUid ?? "", String(o.count)].join("\t"));
      for (const m of p.unconnected.missing) out.push([pid, "(unconnected)", `MISSING ${m.kind}`, m.sopInstanceUid ?? "", `referenced by ${m.referencedBy}`].join("\t"));
    }
  }
  return out;
}
