/**
 * The plan's vocabulary, mirrored from native/plan.h (the contract with
 * the C executor; test/unit/plan_header.test.ts keeps the two in step),
 * and the encoder that turns a list of steps into the executor's bytes.
 */

export const Op = {
  CGROUP_JOIN: 1,
  SETNS: 2,
  CLONE: 3,
  MOUNT: 10,
  REMOUNT: 11,
  ROOT: 12,
  MKDIR: 13,
  MKNOD: 14,
  SYMLINK: 15,
  MASK: 16,
  PIVOT: 17,
  HOSTNAME: 18,
  DOMAINNAME: 19,
  WRITE: 20,
  RLIMIT: 21,
  IFUP: 22,
  TTY: 23,
  OPEN_FIFO: 24,
  READY: 25,
  WAIT: 26,
  CAP_BOUNDING: 27,
  USER: 28,
  CAPS: 29,
  NO_NEW_PRIVS: 30,
  SECCOMP: 31,
  CHDIR: 32,
  UMASK: 33,
  PERSONALITY: 34,
  FIND_EXEC: 35,
  EXEC: 36,
  CLOSE_FDS: 37,
  PDEATHSIG: 38,
  HOOK: 39,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

export const CloneMode = { WAIT: 0, DETACH: 1 } as const;

/** Option bits of steps that take a path. */
export const Opt = {
  IN_ROOT: 0x1,
  MKDIR: 0x2,
  MKFILE: 0x4,
  IGNORE_MISSING: 0x8,
  NO_SETGROUPS: 0x10,
  /** TTY: leave /dev/console alone (a process exec'd into a running container). */
  NO_CONSOLE: 0x20,
} as const;

/** How a HOOK step's error value says the hook failed (native/plan.h). */
export const HookStatus = { EXITED: 0x10000, SIGNALED: 0x20000 } as const;

const ETIMEDOUT = 110; // Linux's, on every architecture dokrust builds for

/**
 * Why a HOOK step failed, from its report's value: "exited with status
 * 3", "killed by signal 9", "timed out after 2 s" (timeout: the step's).
 */
export function hookFailure(value: number, timeout?: Arg): string {
  if (value === ETIMEDOUT) return timeout === undefined ? "timed out" : `timed out after ${String(timeout)} s`;
  if (value & HookStatus.EXITED) return `exited with status ${value & 0xffff}`;
  if (value & HookStatus.SIGNALED) return `killed by signal ${value & 0xffff}`;
  return `failed (${value})`;
}

export const Report = {
  PID: "P".charCodeAt(0),
  ERROR: "E".charCodeAt(0),
  READY: "R".charCodeAt(0),
  TTY: "T".charCodeAt(0),
} as const;
export const REPORT_SIZE = 32;

/** One argument: a string (sent NUL-terminated), a number (u64) or raw bytes. */
export type Arg = string | number | bigint | Uint8Array;

/**
 * One step of a plan.  `what` describes it for error messages, in the
 * words the user would use ("mount proc on /proc"), without the errno.
 */
export interface Step {
  op: OpCode;
  args: Arg[];
  what: string;
}

const MAGIC = [0x44, 0x4b, 0x50, 0x31]; // "DKP1"
const encoder = new TextEncoder();

function encodeArg(arg: Arg): Uint8Array {
  if (typeof arg === "string") {
    const text = encoder.encode(arg);
    const out = new Uint8Array(text.length + 1);
    out.set(text);
    return out;
  }
  if (arg instanceof Uint8Array) return arg;
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, BigInt(arg)), true);
  return out;
}

/** Encode steps into the executor's wire format (see native/plan.h). */
export function encodePlan(steps: readonly Step[]): Uint8Array {
  const parts: Uint8Array[] = [];
  let length = 12;
  for (const step of steps) {
    const head = new Uint8Array(8);
    const view = new DataView(head.buffer);
    view.setUint32(0, step.op, true);
    view.setUint32(4, step.args.length, true);
    parts.push(head);
    length += 8;
    for (const arg of step.args) {
      const bytes = encodeArg(arg);
      const size = new Uint8Array(4);
      new DataView(size.buffer).setUint32(0, bytes.length, true);
      parts.push(size, bytes);
      length += 4 + bytes.length;
    }
  }
  const out = new Uint8Array(length);
  out.set(MAGIC, 0);
  const view = new DataView(out.buffer);
  view.setUint32(4, length, true);
  view.setUint32(8, steps.length, true);
  let offset = 12;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A report from the executor (struct dk_report). */
export interface ExecutorReport {
  type: number;
  step: number;
  value: number;
  syscall: string;
}

export function decodeReport(bytes: Uint8Array): ExecutorReport {
  const view = new DataView(bytes.buffer, bytes.byteOffset, REPORT_SIZE);
  const name = bytes.subarray(16, 32);
  const end = name.indexOf(0);
  return {
    type: view.getUint32(0, true),
    step: view.getUint32(4, true),
    value: view.getInt32(8, true),
    syscall: new TextDecoder().decode(end < 0 ? name : name.subarray(0, end)),
  };
}
