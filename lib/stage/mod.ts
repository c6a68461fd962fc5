/**
 * The stage contract: the shape every acting command's library function has, its options
 * (ledger, AbortSignal, event sink) and its typed events.
 * @module
 */
export {
  FatalStageError, type ItemFields, type SkipReason, type Stage, type StageCounts, type StageEvent, type StageEventSink, type StageOptions,
  StageReport, type StageTotals, untilAborted, withTotal,
} from "./stage.ts";
