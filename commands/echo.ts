/** `rtexport echo`: C-ECHO a DICOM peer and say clearly what failed when it does. */
import { defineCommand, ExitCode, runMain } from "../cli/mod.ts";
import type { RtRecord } from "../lib/records/types.ts";
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, VERIFICATION_SOP_CLASS } from "../lib/dicom/uids.ts";
import { connect, connectOptions, DicomNetError, echo, formatStatus, peerLabel } from "../lib/net/mod.ts";

export const main = defineCommand({
  name: "echo",
  summary: "C-ECHO a DICOM peer (verify host, port, AE titles, TLS)",
  description: [
    "Opens an association, sends C-ECHO, releases. Writes one `echo` record:",
    '{"type":"echo","peer":"AE@host:port","status":"ok","ms":3}. On failure the',
    'status is "failed" with the reason (connection refused, association rejected',
    "and why, timeout, TLS failure) and the exit status is 1.",
  ].join("\n"),
  examples: [
    "rtexport echo --host pacs.example.org --port 104 --aec PACS",
    "rtexport echo --peer aria --tls --ca ca.pem",
  ],
  peer: true,
  human: {
    record(r: RtRecord) {
      if (r.type !== "echo") return undefined;
      return r.status === "ok" ? `C-ECHO ${r.peer}: ok (${r.ms} ms)` : `C-ECHO ${r.peer}: failed`;
    },
  },
  async run(ctx) {
    const p = ctx.peer!;
    const peer = peerLabel(p);
    const started = performance.now();
    const contexts = [{ abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_LITTLE_ENDIAN] }];
    try {
      const assoc = await connect(connectOptions(p, contexts));
      try {
        const status = await echo(assoc);
        if (status !== 0) throw new DicomNetError("PROTOCOL", `C-ECHO to ${peer} answered status ${formatStatus(status)}`);
      } finally {
        await assoc.release();
      }
    } catch (e) {
      const err = e as Error & { code?: string };
      const message = err instanceof DicomNetError ? err.message : `C-ECHO to ${peer} failed: ${err.message}`;
      await ctx.out.write({ type: "echo", peer, status: "failed", reason: err instanceof DicomNetError ? err.code.toLowerCase() : "error", error: message });
      ctx.log.error(message);
      return ExitCode.FATAL;
    }
    const ms = Math.round(performance.now() - started);
    await ctx.out.write({ type: "echo", peer, status: "ok", ms });
    return ExitCode.OK;
  },
});

runMain(import.meta, main);
