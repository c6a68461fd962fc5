// The data dictionary against DCMTK's own (Debian dcmtk's dicom.dic and private.dic): every
// element DCMTK knows, retired and repeating groups included, resolves here to the same VR, so an
// implicit VR file reads (and, converted, writes) no element as UN that DCMTK would name.
// Also: the repeating groups (curves 50xx, overlays 60xx, 7Fxx) and the private
// dictionary of the radiotherapy vendors (seed 002: TOMO_HA_01, TOMO_DD_01, Varian VISION),
// checked on an Implicit VR file DCMTK wrote: what a reader without them sees as UN.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dictionaryVr, lookupPrivateTag, lookupTag } from "../lib/dicom/dictionary.ts";
import { lookupPrivate, PRIVATE_DICTIONARY } from "../lib/dicom/private_dictionary.ts";
import { readDicomFile } from "../lib/dicom/reader.ts";

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

let dir: string;
let implicit: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "rtexport-dict-"));
  const dump = join(dir, "in.dump");
  writeFileSync(dump, [
    "(0008,0016) UI 1.2.840.10008.5.1.4.1.1.481.5",
    "(0008,0018) UI 1.2.826.0.1.3680043.10.1467.99.15",
    "(300d,0010) LO [TOMO_HA_01]",
    "(300d,0020) LO [TOMO_DD_01]",
    "(300d,1040) DS [12.5]",
    "(300d,10a4) CS [HELICAL]",
    "(300d,10c0) SQ (Sequence with explicit length)",
    "  (fffe,e000) na (Item with explicit length)",
    "    (300d,0010) LO [TOMO_HA_01]",
    "    (300d,10c1) DS [-1000]",
    "    (300d,10c2) DS [0.001]",
    "  (fffe,e00d) na (ItemDelimitationItem for re-encoding)",
    "(fffe,e0dd) na (SequenceDelimitationItem for re-encod.)",
    "(300d,2021) IS [512]",
    "(3249,0010) LO [Varian Medical Systems VISION 3249]",
    "(3249,1010) UI 1.2.3.4.5",
    "(5000,0022) LO [curve text]",
    "(5000,2500) LO [curve label]",
    "(5000,3000) OW 0001\\0002",
    "(6000,4000) LT [overlay comment]",
    "(6002,0010) US 8",
    "",
  ].join("\n"));
  implicit = join(dir, "implicit.dcm");
  const r = spawnSync("dump2dcm", ["+ti", dump, implicit], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("dictionary: repeating groups", () => {
  it("knows curves, overlay comments and other repeating groups (current and retired)", () => {
    // OB|OW elements other than pixel, overlay and waveform data are bytes in implicit VR, as
    // DCMTK reads them (dump2dcm +ti then dcmdump shows curve data as OB, dcmconv +te writes OB).
    const table: [number, string, string][] = [
      [0x50000022, "LO", "CurveDescription"], [0x501e2500, "LO", "CurveLabel"], [0x50023000, "OB", "CurveData"],
      [0x60004000, "LT", "OverlayComments"], [0x601e0010, "US", "OverlayRows"], [0x60023000, "OW", "OverlayData"],
      [0x7f000010, "OB", "VariablePixelData"], [0x00203104, "CS", "SourceImageIDs"], // even elements only, as DCMTK reads the range
    ];
    for (const [tag, vr, keyword] of table) {
      assert.equal(dictionaryVr(tag), vr, tag.toString(16));
      assert.equal(lookupTag(tag)?.keyword, keyword);
    }
    assert.equal(lookupTag(0x60004000)?.retired, true);
    assert.equal(lookupTag(0x60003000)?.retired, undefined);
    assert.equal(dictionaryVr(0x60014000), "UN"); // an odd group is private, not an overlay
    assert.equal(dictionaryVr(0x7fe00010), "OW"); // Pixel Data is not Variable Pixel Data
  });

  it("reads them with their VR from an Implicit VR file", () => {
    const ds = readDicomFile(implicit, { full: true }).dataset;
    assert.equal(ds.get(0x50000022)!.vr, "LO");
    assert.equal(ds.string(0x50000022), "curve text");
    assert.equal(ds.string(0x50002500), "curve label");
    assert.equal(ds.get(0x50003000)!.vr, "OB");
    assert.equal(ds.get(0x60004000)!.vr, "LT");
    assert.equal(ds.string(0x60004000), "overlay comment");
  });
});

describe("private dictionary (seed 002 vendors)", () => {
  it("lists the TomoTherapy and Varian blocks with names and VRs", () => {
    const creators = new Set(PRIVATE_DICTIONARY.map((e) => e.creator));
    for (const c of ["TOMO_HA_01", "TOMO_DD_01", "Varian Medical Systems VISION 3243", "Varian Medical Systems VISION 3249", "Varian Medical Systems VISION 3275"]) {
      assert.ok(creators.has(c), c);
    }
    assert.equal(lookupPrivate("TOMO_HA_01", 0x300d1040)?.name, "Tomo Gantry Period");
    assert.equal(lookupPrivate("TOMO_HA_01 ", 0x300d5540)?.vr, "DS"); // any block, padded creator
    assert.equal(lookupPrivate("tomo_ha_01", 0x300d10c0)?.vr, "SQ");
    assert.equal(lookupPrivate("TOMO_DD_01", 0x300d2021)?.name, "Dataset Length");
    assert.equal(lookupPrivate("Varian Medical Systems VISION 3249", 0x32491010)?.vr, "UI");
    assert.equal(lookupPrivate("Varian Medical Systems VISION 3243", 0x32431009)?.vr, "SH");
    assert.equal(lookupPrivate("OTHER", 0x300d1040), undefined);
  });

  it("reads private elements of an Implicit VR file with their VR, by their creator", () => {
    const ds = readDicomFile(implicit, { full: true }).dataset;
    assert.equal(ds.get(0x300d1040)!.vr, "DS");
    assert.equal(ds.string(0x300d1040), "12.5");
    assert.equal(ds.get(0x300d10a4)!.vr, "CS");
    assert.equal(ds.get(0x300d2021)!.vr, "IS"); // the TOMO_DD_01 block (creator at (300D,0020))
    assert.equal(ds.get(0x32491010)!.vr, "UI");
    const ivdt = ds.items(0x300d10c0);
    assert.equal(ivdt.length, 1); // a defined-length private sequence, read as one
    assert.equal(ivdt[0].string(0x300d10c1), "-1000");
  });
});
