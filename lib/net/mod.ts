/**
 * The DICOM network stack: PDUs, associations, DIMSE messages, SCU operations and an SCP
 * framework. See README.md in this folder.
 */
export {
  Association, connect, type ConnectOptions, type DataSource, type DimseMessage, type NegotiatedContext,
  type ReceivedFile, type Timeouts, type TlsOptions,
} from "./association.ts";
export * from "./dimse.ts";
export { DicomNetError, DimseStatusError, type NetErrorCode, tlsFailureText } from "./errors.ts";
export { type AllowEntry, allowedBy, formatAllowEntry, inNetwork, isValidAeTitle, parseAllowEntry, printable } from "./allow.ts";
export {
  type AssociationLimits, DEFAULT_ASSOCIATION_LIMITS, DEFAULT_SCP_IDLE_MS, DEFAULT_SCP_LIMITS, type ScpLimits,
} from "./limits.ts";
export { type RoleSelection, rejectReasonText } from "./pdu.ts";
export {
  answerStore, chooseStoreContext, echo, find, get, isNativeTransferSyntax, move, QR_MODELS, QueryError, type QueryLevel,
  type ReceiveErrorHandler, type ReceiveHandler, type RetrieveProgress, storageContexts, store, type StoreAnswer, type StoreResult, type StoreSource,
  storeSourceFromFile,
} from "./scu.ts";
export {
  createScp, type MoveDestination, type MoveRequest, negotiateContexts, type QueryRequest, type RequestInfo,
  type RetrievePlan, type Scp, type ScpEvent, type ScpHandlers, type ScpOptions, type StoreRequest,
} from "./scp.ts";
export { connectOptions, peerLabel, peerTimeouts, readPem, type PeerSettings, tlsFromFiles } from "./peer.ts";
export {
  answerReport, type CommitFailure, type CommitItem, commitmentReport, commitmentRequest, type CommitmentResult, CommitmentTracker,
  failureReasonText, readCommitmentReport, readCommitmentRequest, receiveReports, requestCommitment, sendReport,
  serveCommitmentRequest, STORAGE_COMMITMENT_INSTANCE, STORAGE_COMMITMENT_PUSH,
} from "./commitment.ts";
export { type CommitListen, type CommitOutcome, Committer, type CommitterOptions, uuidUid } from "./commitment_scu.ts";
export { backoffDelay, classify, classifyError, classifyStatus, DEFAULT_RETRY_POLICY, type FailureClass, type RetryNotice, type RetryPolicy, retryText, StatusFailure, withRetries } from "./retry.ts";
