/**
 * What a target can tell by C-FIND: the treatment machines its plans use (where it answers
 * nested keys), and whether it holds objects an object needs (a structure set's images, a plan's
 * structure set).
 */
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN } from "../dicom/uids.ts";
import { connect, find, QR_MODELS } from "../net/mod.ts";
import { connectOptions, type PeerSettings } from "../net/peer.ts";
import { identifier } from "../qr/identifier.ts";

async function open(peer: PeerSettings) {
  const ts = [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN];
  return await connect(connectOptions(peer, [{ abstractSyntax: QR_MODELS.studyRoot.find, transferSyntaxes: ts }]));
}

/**
 * The treatment machine names of the plans a target holds, asked by one IMAGE-level C-FIND for
 * RTPLAN instances with the nested key Beam Sequence > Treatment Machine Name (at most `limit`
 * answers). Undefined when the target answers none (most do not answer nested keys).
 */
export async function machinesAtTarget(peer: PeerSettings, limit = 5000): Promise<string[] | undefined> {
  const assoc = await open(peer);
  const names = new Set<string>();
  try {
    const beam = identifier({ TreatmentMachineName: "" });
    const id = identifier({ QueryRetrieveLevel: "IMAGE", StudyInstanceUID: "", SeriesInstanceUID: "", SOPInstanceUID: "", Modality: "RTPLAN", BeamSequence: [beam] });
    let n = 0;
    for await (const m of find(assoc, QR_MODELS.studyRoot.find, id)) {
      for (const b of m.items(0x300a00b0)) {
        const name = b.string(0x300a00b2);
        if (name) names.add(name);
      }
      if (++n >= limit) break;
    }
  } finally {
    if (assoc.established) await assoc.release();
  }
  return names.size ? [...names] : undefined;
}

/**
 * Which of `uids` the target holds: an IMAGE-level C-FIND per series named (all its instances
 * listed), and for UIDs outside those series one by SOP Instance UID lists.
 */
export async function instancesAtTarget(peer: PeerSettings, uids: readonly string[], series: readonly { studyUid?: string; seriesUid: string }[]): Promise<Set<string>> {
  const found = new Set<string>();
  const foundSeries = new Set<string>();
  const assoc = await open(peer);
  try {
    for (const s of series) {
      const id = identifier({ QueryRetrieveLevel: "IMAGE", StudyInstanceUID: s.studyUid ?? "", SeriesInstanceUID: s.seriesUid, SOPInstanceUID: "" });
      for await (const m of find(assoc, QR_MODELS.studyRoot.find, id)) {
        const u = m.string(0x00080018);
        if (u) found.add(u);
        foundSeries.add(s.seriesUid);
      }
    }
    const rest = uids.filter((u) => !found.has(u));
    for (let i = 0; i < rest.length; i += 100) {
      const id = identifier({ QueryRetrieveLevel: "IMAGE", StudyInstanceUID: "", SeriesInstanceUID: "", SOPInstanceUID: rest.slice(i, i + 100).join("\\") });
      for await (const m of find(assoc, QR_MODELS.studyRoot.find, id)) {
        const u = m.string(0x00080018);
        if (u) found.add(u);
      }
    }
  } finally {
    if (assoc.established) await assoc.release();
  }
  // A series the target has counts for a reference that names only the series.
  for (const s of foundSeries) found.add(s);
  return found;
}
