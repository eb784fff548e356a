/**
 * Running a new process in a running container: find the container's
 * init and namespaces, compile the exec plan (src/plan/exec.ts), start
 * the executor, and hand the terminal over (console socket or relay).
 * Shared by runc's `exec` and the dokrust face.
 *
 * No lock is held while the process runs: a foreground exec may last as
 * long as the container, and `kill` or `delete` must not wait for it.
 */
import { readlinkSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { cgroupManager } from "../cgroups/manager.ts";
import { DokrustError, UsageError, errnoName } from "../errors.ts";
import { spawnExecutor, stepError, type Executor } from "../native/executor.ts";
import { compileExecPlan, EXEC_NAMESPACE_ORDER, NS_FILES, type ExecContext } from "../plan/exec.ts";
import { CloneMode, Op, Report, type ExecutorReport, type Step } from "../plan/ops.ts";
import type { Process } from "../spec/types.ts";
import { waitForeground } from "./foreground.ts";
import { logger } from "./log.ts";
import { loadState, statusOf, type StoredState } from "./state.ts";

export interface ExecOptions {
  /** The state root (--root). */
  root: string;
  id: string;
  /** The whole process to run (see processFromFlags in cli/commands/exec.ts). */
  process: Process;
  /** Return once the process runs instead of waiting for it. */
  detach: boolean;
  pidFile?: string;
  /** Send the terminal's master here; without one a foreground exec relays it. */
  consoleSocket?: string;
  /** fds 3 .. 3+N-1 of the caller go on to the process. */
  preserveFds: number;
  /** Seccomp program for the process; default: the container's profile. */
  seccomp?: { program: Uint8Array; flags: number };
}

/** The result of a started exec. */
export interface ExecStarted {
  /** Host pid of the new process. */
  pid: number;
  executor: Executor;
  /** The pty master, when the caller relays the terminal itself. */
  master?: number;
}

/**
 * The namespace types in which `pid` is not in this process's own
 * namespace (compared by the ns files' identities), in join order.
 */
export function ownNamespaces(pid: number): string[] {
  const own: string[] = [];
  for (const type of EXEC_NAMESPACE_ORDER) {
    const file = NS_FILES[type]!;
    let theirs: string;
    try {
      theirs = readlinkSync(`/proc/${pid}/ns/${file}`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" && type === "time") continue; // a kernel without time namespaces
      throw new DokrustError(`read the namespaces of process ${pid}: ${code ?? String(err)}`);
    }
    if (theirs !== readlinkSync(`/proc/self/ns/${file}`)) own.push(type);
  }
  return own;
}

/** The state of a container that a process can be exec'd into. */
export function runningContainer(root: string, id: string): StoredState {
  const state = loadState(root, id);
  const status = statusOf(root, state);
  if (status !== "running") throw new DokrustError(`cannot exec in a ${status} container ${id}: only a running container takes new processes`);
  return state;
}

/** The container's own seccomp profile, compiled (as runc applies it to exec'd processes). */
async function specSeccomp(state: StoredState): Promise<{ program: Uint8Array; flags: number } | undefined> {
  if (!state.config.linux?.seccomp) return undefined;
  const { seccompForSpec } = await import("../seccomp/index.ts");
  const compiled = seccompForSpec(state.config);
  for (const warning of compiled?.warnings ?? []) logger.warn(`exec ${state.id}: ${warning}`);
  return compiled;
}

/** runc's wording for a program that cannot be started (engines match on it). */
function execFailure(steps: readonly Step[], report: ExecutorReport, arg0: string): DokrustError {
  const op = steps[report.step]?.op;
  const name = errnoName(report.value);
  const prefix = `unable to start container process: exec: ${JSON.stringify(arg0)}`;
  if (op === Op.FIND_EXEC && name === "ENOENT") {
    const why = arg0.includes("/") ? `stat ${arg0}: no such file or directory` : "executable file not found in $PATH";
    return new DokrustError(`${prefix}: ${why}`, { exitCode: 127 });
  }
  if (op === Op.FIND_EXEC || op === Op.EXEC) {
    const why = name === "EACCES" ? "permission denied" : name === "ENOENT" ? "no such file or directory" : name;
    return new DokrustError(`${prefix}: ${why}`, { exitCode: 126 });
  }
  return stepError(steps, report).wrap("unable to start container process");
}

/** Check runc's rules for terminals and console sockets. */
function checkTerminal(options: ExecOptions): void {
  const tty = !!options.process.terminal;
  if (tty && options.detach && !options.consoleSocket) {
    throw new UsageError("cannot allocate a tty when detaching without a --console-socket");
  }
  if (options.consoleSocket && (!tty || !options.detach)) {
    throw new UsageError("cannot use a --console-socket unless the process has a terminal and dokrust detaches (-d)");
  }
}

/**
 * Start the process; resolves once it has called execve (or throws what
 * failed).  The caller waits on `executor.proc.exited` for a foreground
 * process: the executor exits with the process's status (128+N when
 * signal N killed it).
 */
export async function startExec(options: ExecOptions): Promise<ExecStarted> {
  checkTerminal(options);
  const state = runningContainer(options.root, options.id);
  const libc = await import("../native/libc.ts");
  const ctx: ExecContext = {
    initPid: state.pid,
    namespaces: ownNamespaces(state.pid),
    cgroupProcs: cgroupManager(state.cgroupPath).joinFiles,
    cloneMode: options.detach ? CloneMode.DETACH : CloneMode.WAIT,
    preserveFds: options.preserveFds,
  };
  const seccomp = options.seccomp ?? (await specSeccomp(state));
  if (seccomp) ctx.seccomp = seccomp;
  const extraFds = Array.from({ length: options.preserveFds }, (_, i) => 3 + i);
  const ownFds: number[] = [];
  let pair: [number, number] | undefined;
  try {
    if (options.process.terminal) {
      if (options.consoleSocket) {
        const fd = libc.connectUnix(options.consoleSocket);
        ownFds.push(fd);
        extraFds.push(fd);
      } else {
        pair = libc.socketPair();
        ownFds.push(...pair);
        extraFds.push(pair[1]);
      }
      const size = options.process.consoleSize;
      const host = pair ? (libc.getWindowSize(1) ?? libc.getWindowSize(0)) : undefined;
      ctx.terminal = { sendFd: 3 + options.preserveFds, rows: size?.height || host?.rows || 24, cols: size?.width || host?.cols || 80 };
    }
    const steps = compileExecPlan(state.config, options.process, ctx);
    // Raw before the process starts, as runc does: what it prints first
    // must not meet the caller's line discipline (echo, \n → \r\n).
    const raw = !!pair && process.stdin.isTTY;
    if (raw) process.stdin.setRawMode(true);
    try {
      const executor = spawnExecutor(steps, { stdin: "inherit", stdout: "inherit", stderr: "inherit", extraFds });
      const started = await awaitExec(executor, steps, options.process.args![0]!, pair && ((fd) => libc.receiveFd(fd)), pair?.[0]);
      if (options.pidFile) writeFileSync(resolve(options.pidFile), String(started.pid), { mode: 0o644 });
      return started;
    } catch (err) {
      if (raw) process.stdin.setRawMode(false);
      throw err;
    }
  } finally {
    for (const fd of ownFds) libc.closeFd(fd);
  }
}

/** Read the executor's reports until execve closed the channel. */
async function awaitExec(
  executor: Executor,
  steps: readonly Step[],
  arg0: string,
  receive: ((fd: number) => number) | undefined,
  socket: number | undefined,
): Promise<ExecStarted> {
  let pid = 0;
  let master: number | undefined;
  for (;;) {
    const report = await executor.next();
    if (!report) break;
    if (report.type === Report.PID) pid = report.value;
    else if (report.type === Report.TTY && receive && socket !== undefined) master = receive(socket);
    else if (report.type === Report.ERROR) {
      await executor.proc.exited;
      throw execFailure(steps, report, arg0);
    }
  }
  if (!pid) throw new DokrustError(`the executor ended (status ${await executor.proc.exited}) before starting the process`);
  return master === undefined ? { pid, executor } : { pid, executor, master };
}


/**
 * Wait for a foreground process: forward signals to it, relay its
 * terminal when there is a master, and resolve to its exit status.
 */
export function waitExec(started: ExecStarted): Promise<number> {
  const fg = { proc: started.executor.proc, interactive: true };
  return waitForeground(started.pid, started.master === undefined ? fg : { ...fg, master: started.master });
}
