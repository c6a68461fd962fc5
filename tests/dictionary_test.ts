// The data dictionary against DCMTK's own (Debian dcmtk's dicom.dic and private.dic): every
// element DCMTK knows, retired and repeating groups included, resolves here to the same VR, so an
// implicit VR file reads (and, converted, writes) no element as UN that DCMTK would name.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { lookupPrivateTag, lookupTag } from "../lib/dicom/dictionary.ts";

function dcmtkFile(name: string): string {
  const dir = readdirSync("/usr/share").find((d) => d.startsWith("libdcmtk"));
  assert.ok(dir, "DCMTK's dictionaries are missing: install the Debian package dcmtk (npm test does)");
  return readFileSync(`/usr/share/${dir}/${name}`, "latin1");
}

function normalizeVr(vr: string): string {
  return vr === "xs" ? "US|SS" : vr === "ox" || vr === "px" ? "OB|OW" : vr === "lt" ? "OW|LT" : vr === "up" ? "UL" : vr;
}

/** Tags a DCMTK range stands for: its first, a middle and its last member of the right parity. */
function members(low: number, high: number | undefined, parity: string | undefined): number[] {
  if (high === undefined) return [low];
  const step = parity === "u" ? 1 : 2;
  const first = parity === "o" ? low | 1 : parity === "u" ? low : low & ~1;
  const last = parity === "o" ? high | 1 : parity === "u" ? high : high & ~1;
  const mid = first + step * Math.floor((last - first) / step / 2);
  return [...new Set([first, mid, last > high ? last - step : last])];
}

describe("data dictionary vs DCMTK's", () => {
  it("every standard, retired, DICONDE and DICOS element of dicom.dic (ranges too) has DCMTK's VR", () => {
    const diffs: string[] = [];
    let checked = 0;
    for (const line of dcmtkFile("dicom.dic").split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const [tag, vr, keyword, , kind] = line.split("\t");
      if (!/^DICOM/.test(kind ?? "")) continue;
      const m = /^\(([0-9A-F]{4})(?:-([oue])?-?([0-9A-F]{4}))?,([0-9A-F]{4})(?:-([oue])?-?([0-9A-F]{4}))?\)$/i.exec(tag);
      if (!m || vr === "na") continue;
      const [, g1, gp, g2, e1, ep, e2] = m;
      for (const g of members(parseInt(g1, 16), g2 ? parseInt(g2, 16) : undefined, gp)) {
        for (const e of members(parseInt(e1, 16), e2 ? parseInt(e2, 16) : undefined, ep)) {
          const t = ((g << 16) | e) >>> 0;
          const found = lookupTag(t);
          checked++;
          if (!found) diffs.push(`${tag} ${keyword}: not in the dictionary`);
          else if (found.vr !== normalizeVr(vr)) diffs.push(`${tag} ${keyword}: VR ${found.vr}, DCMTK ${vr}`);
        }
      }
    }
    assert.deepEqual(diffs, []);
    assert.ok(checked > 5000, `checked ${checked}`);
  });

  it("names the curve, retired overlay and variable pixel data groups as retired", () => {
    assert.deepEqual([lookupTag(0x50003000)?.keyword, lookupTag(0x50003000)?.retired], ["CurveData", true]);
    assert.equal(lookupTag(0x50020010)?.keyword, "NumberOfPoints");
    assert.equal(lookupTag(0x50010005), undefined, "odd groups are private, not curves");
    assert.equal(lookupTag(0x60020012)?.keyword, "OverlayPlanes");
    assert.equal(lookupTag(0x7f000010)?.keyword, "VariablePixelData");
  });

  it("every private element of private.dic with a VR resolves by its creator, in any block", () => {
    const diffs: string[] = [];
    let checked = 0;
    for (const line of dcmtkFile("private.dic").split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const [tag, vr, keyword] = line.split("\t");
      const m = /^\(([0-9A-F]{4})(?:-o-([0-9A-F]{4}))?,"([^"]*)",([0-9A-F]{2}|[0-9A-F]{4})\)$/i.exec(tag);
      if (!m || vr === "UN") continue;
      const [, g1, g2, creator, el] = m;
      const group = g2 ? parseInt(g1, 16) + 2 : parseInt(g1, 16);
      // Two-digit elements are offsets in whatever block the creator reserved.
      const elements = el.length === 2 ? [0x1000 | parseInt(el, 16), 0x4200 | parseInt(el, 16)] : [parseInt(el, 16)];
      for (const e of elements) {
        const found = lookupPrivateTag(((group << 16) | e) >>> 0, creator);
        checked++;
        if (found?.vr !== normalizeVr(vr)) diffs.push(`${tag} ${keyword} at (${group.toString(16)},${e.toString(16)}): ${found?.vr} vs DCMTK ${vr}`);
      }
    }
    assert.deepEqual(diffs, []);
    assert.ok(checked > 4000, `checked ${checked}`);
    assert.equal(lookupPrivateTag(0x00091001, "SOMEONE ELSE"), undefined);
  });
});
