/**
 * Audit events as DICOM PS3.15 A.5 audit messages (the XML that IHE ATNA's Record Audit Event,
 * ITI-20, carries), with coded values as `csd-code`/`codeSystemName`/`originalText`.
 *
 * | action | EventID | EventActionCode | our role |
 * |---|---|---|---|
 * | export, copy | 110106 Export | R | source (110153); the folder is the destination media (110154) |
 * | push | 110104 DICOM Instances Transferred | R | source (110153); the peer is the destination (110152) |
 * | retrieve | 110104 DICOM Instances Transferred | C | destination (110152); the peer is the source (110153) |
 * | anonymize | 110103 DICOM Instances Accessed | C | source and destination of the de-identified copies |
 */
import type { AuditEvent } from "./event.ts";

const EVENT: Record<AuditEvent["action"], { code: string; text: string; action: string }> = {
  export: { code: "110106", text: "Export", action: "R" },
  copy: { code: "110106", text: "Export", action: "R" },
  push: { code: "110104", text: "DICOM Instances Transferred", action: "R" },
  retrieve: { code: "110104", text: "DICOM Instances Transferred", action: "C" },
  anonymize: { code: "110103", text: "DICOM Instances Accessed", action: "C" },
};

const OUTCOME: Record<AuditEvent["outcome"], string> = { success: "0", "minor-failure": "4", "serious-failure": "8" };

const SOURCE_ROLE = ["110153", "Source Role ID"] as const;
const DESTINATION_ROLE = ["110152", "Destination Role ID"] as const;
const MEDIA_ROLE = ["110154", "Destination Media"] as const;

/** XML-escapes text for an attribute or element (control characters other than tab and newline dropped: XML 1.0 has no way to say them). */
export function xmlEscape(s: string): string {
  // deno-lint-ignore no-control-regex
  return s.replace(/[\x00-\x08\x0b\x0c\x0e-\x1f]/g, "").replace(/[<>&"']/g, (c) =>
    ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&apos;" })[c]!);
}

function code(element: string, c: readonly [string, string], system = "DCM"): string {
  return `<${element} csd-code="${c[0]}" codeSystemName="${system}" originalText="${xmlEscape(c[1])}"/>`;
}

function participant(userId: string, requestor: boolean, role: readonly [string, string], host?: string): string {
  const access = host ? ` NetworkAccessPointID="${xmlEscape(host)}" NetworkAccessPointTypeCode="${/^[\d.:]+$/.test(host) ? "2" : "1"}"` : "";
  return `<ActiveParticipant UserID="${xmlEscape(userId)}" UserIsRequestor="${requestor}"${access}>${code("RoleIDCode", role)}</ActiveParticipant>`;
}

/** The host of `AE@host:port`, when the place is a peer. */
function peerHost(place: string): string | undefined {
  const m = /^[^@]+@(.+):\d+$/.exec(place);
  return m ? m[1] : undefined;
}

/** The DICOM audit message (XML) for one event. */
export function atnaMessage(e: AuditEvent): string {
  const ev = EVENT[e.action];
  const parts: string[] = ['<?xml version="1.0" encoding="UTF-8"?>', "<AuditMessage>"];
  parts.push(
    `<EventIdentification EventActionCode="${ev.action}" EventDateTime="${xmlEscape(e.time)}" EventOutcomeIndicator="${OUTCOME[e.outcome]}">`,
    code("EventID", [ev.code, ev.text]),
    ...(e.outcomeText ? [`<EventOutcomeDescription>${xmlEscape(e.outcomeText)}</EventOutcomeDescription>`] : []),
    "</EventIdentification>",
  );
  // Who asked (the user on this host), and the other end.
  if (e.action === "retrieve") {
    parts.push(participant(e.user, true, DESTINATION_ROLE, e.host), participant(e.source, false, SOURCE_ROLE, peerHost(e.source)));
  } else if (e.action === "push") {
    parts.push(participant(e.user, true, SOURCE_ROLE, e.host), participant(e.destination, false, DESTINATION_ROLE, peerHost(e.destination)));
  } else if (e.action === "anonymize") {
    parts.push(participant(e.user, true, SOURCE_ROLE, e.host), participant(e.destination, false, DESTINATION_ROLE));
  } else {
    parts.push(participant(e.user, true, SOURCE_ROLE, e.host), participant(e.destination, false, MEDIA_ROLE));
  }
  parts.push(
    `<AuditSourceIdentification AuditSourceID="${xmlEscape(e.host)}"><AuditSourceTypeCode csd-code="4" codeSystemName="DCM" originalText="Application Server Process"/></AuditSourceIdentification>`,
  );
  for (const s of e.studies) {
    parts.push(
      `<ParticipantObjectIdentification ParticipantObjectID="${xmlEscape(s.uid)}" ParticipantObjectTypeCode="2" ParticipantObjectTypeCodeRole="3">`,
      code("ParticipantObjectIDTypeCode", ["110180", "Study Instance UID"]),
      ...Object.entries(s.sopClasses).filter(([uid]) => uid !== "").map(([uid, n]) => `<SOPClass UID="${xmlEscape(uid)}" NumberOfInstances="${n}"/>`),
      ...(e.anonymized ? ["<Anonymized>true</Anonymized>"] : []),
      "</ParticipantObjectIdentification>",
    );
  }
  if (e.patientId !== undefined) {
    parts.push(
      `<ParticipantObjectIdentification ParticipantObjectID="${xmlEscape(e.patientId)}" ParticipantObjectTypeCode="1" ParticipantObjectTypeCodeRole="1">`,
      code("ParticipantObjectIDTypeCode", ["2", "Patient Number"], "RFC-3881"),
      "</ParticipantObjectIdentification>",
    );
  }
  parts.push("</AuditMessage>");
  return parts.join("");
}
