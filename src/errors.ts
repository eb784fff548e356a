/**
 * Errors.  Every failure a user can see is a DokrustError: one line that
 * says what was attempted, on what, and why, plus the exit code the
 * command line ends with.  Messages are lowercase and chain with ": ",
 * outermost context first, the way runc's errors read.
 */
import { constants } from "node:os";

/** Exit codes of the dokrust face, as docker run has them. */
export const EXIT_RUNTIME = 125;
export const EXIT_CANNOT_EXEC = 126;
export const EXIT_NOT_FOUND = 127;

export class DokrustError extends Error {
  override name = "DokrustError";
  readonly exitCode: number;

  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.exitCode = options.exitCode ?? EXIT_RUNTIME;
  }

  /** The same error with outer context in front of its message. */
  wrap(context: string): DokrustError {
    return new DokrustError(`${context}: ${this.message}`, { exitCode: this.exitCode, cause: this });
  }
}

/** A bad command line or configuration, found before anything started. */
export class UsageError extends DokrustError {
  override name = "UsageError";
}

const ERRNO_NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  if (!ERRNO_NAMES.has(value)) ERRNO_NAMES.set(value, name);
}
// os.constants lists EWOULDBLOCK and EDEADLOCK after their twins; keep the
// names strace prints.
ERRNO_NAMES.set(11, "EAGAIN");
ERRNO_NAMES.set(35, "EDEADLK");

/** The symbolic name of an errno value ("ENOENT"), or "errno N". */
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** The errno value of a symbolic name, or undefined. */
export function errnoValue(name: string): number | undefined {
  return (constants.errno as Record<string, number>)[name];
}

/** A failed system call, rendered "syscall target: ENAME". */
export class SysError extends DokrustError {
  override name = "SysError";
  readonly syscall: string;
  readonly errno: number;

  constructor(syscall: string, target: string, errno: number, exitCode?: number) {
    super(`${syscall}${target ? ` ${target}` : ""}: ${errnoName(errno)}`, exitCode === undefined ? {} : { exitCode });
    this.syscall = syscall;
    this.errno = errno;
  }
}

/** Turn an error thrown by node:fs into a DokrustError with context. */
export function fromNodeError(err: unknown, context: string): DokrustError {
  if (err instanceof DokrustError) return err.wrap(context);
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === "string") {
    const what = [e.syscall, e.path].filter(Boolean).join(" ");
    return new DokrustError(`${context}: ${what ? `${what}: ` : ""}${e.code}`, { cause: err });
  }
  return new DokrustError(`${context}: ${e instanceof Error ? e.message : String(e)}`, { cause: err });
}
