/** Exit codes shared by every command, and the errors that map onto them. */

/** Exit status of every rtexport command. */
export const ExitCode = {
  /** Everything worked. */
  OK: 0,
  /** Nothing could be done: unreachable peer, unreadable database, bad input stream, bug. */
  FATAL: 1,
  /** Usage error: unknown command or flag, malformed argument. Nothing was done. */
  USAGE: 2,
  /** Partial: some items failed (each was reported on stderr); the others were done. */
  PARTIAL: 3,
  /** Interrupted (Ctrl-C, SIGTERM): what finished is recorded; a rerun resumes. */
  INTERRUPTED: 130,
} as const;

/** An exit status, see {@linkcode ExitCode}. */
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** The command line is wrong: an unknown flag, a malformed argument, a missing operand. Exit 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Nothing could be done (peer unreachable, database unreadable…). Exit 1, message only. */
export class FatalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "FatalError";
  }
}

/** One line describing `error` for a user: its message, never a stack trace. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    const message = error.message.split("\n")[0]?.trim() ?? "";
    return message || error.name;
  }
  return String(error);
}
