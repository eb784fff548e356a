/**
 * Starting the C executor and listening to it.
 *
 *   dokrust (Bun)                         dokrust-exec (C)
 *   ------------                          ----------------
 *   spawn, channel = fd 3+N   ───────▶    read the plan
 *   write the plan            ───────▶    outer steps (cgroups, setns)
 *                                         clone ──▶ container process
 *                             ◀── 'P' ──  outer: pid of the container
 *                                         container: steps ...
 *                             ◀── 'E' ──  a step failed (step, errno)
 *                             ◀── 'R' ──  ready (OCI create)
 *                             ◀── 'T' ──  terminal master sent
 *   EOF on the channel        ◀── exec    execve closed the channel
 *
 * The channel is a unix socket pair that Bun creates for an extra stdio
 * slot; reports are fixed 32-byte records (native/plan.h).
 */
import { existsSync } from "node:fs";
import { writeSync } from "node:fs";
import { DokrustError, errnoName } from "../errors.ts";
import { decodeReport, encodePlan, hookFailure, REPORT_SIZE, type ExecutorReport, type Step } from "../plan/ops.ts";

/** Whether this is dist/dokrust, Bun's single executable (its modules live in /$bunfs). */
export function isBundled(): boolean {
  return Bun.main.startsWith("/$bunfs/");
}

/**
 * dokrust's own tree (the checkout, or where npm installed it): found
 * from the executable dist/dokrust when bundled (execPath is its real
 * path; import.meta.url would name the source file at build time), else
 * from this module's file.
 */
export function installDir(): string {
  if (isBundled()) return process.execPath.split("/").slice(0, -2).join("/");
  return Bun.fileURLToPath(new URL("../..", import.meta.url)).replace(/\/$/, "");
}

/** Where the built executor lives: $DOKRUST_EXEC, else native/build/ (native/build.sh). */
export function executorPath(): string {
  const path = process.env.DOKRUST_EXEC || `${installDir()}/native/build/dokrust-exec`;
  if (!existsSync(path)) {
    throw new DokrustError(`the executor ${path} is missing: run \`npm run build\` (it needs a C compiler)`);
  }
  return path;
}

type Stdio = "inherit" | "ignore" | "pipe" | number;

export interface SpawnOptions {
  stdin: Stdio;
  stdout: Stdio;
  stderr: Stdio;
  /** fds passed on as 3, 4, ... (preserved fds, the terminal socket). */
  extraFds?: number[];
}

export interface Executor {
  readonly proc: ReturnType<typeof Bun.spawn>;
  /** The next report, or undefined at end of channel. */
  next(): Promise<ExecutorReport | undefined>;
}

/** Spawn the executor and send it the plan. */
export function spawnExecutor(steps: readonly Step[], options: SpawnOptions): Executor {
  const extra = options.extraFds ?? [];
  const channel = 3 + extra.length;
  const proc = Bun.spawn([executorPath(), String(channel)], {
    stdio: [options.stdin, options.stdout, options.stderr, ...extra, "pipe"],
    env: process.env.DOKRUST_EXEC_DEBUG ? { DOKRUST_EXEC_DEBUG: "1" } : {},
  });
  const fd = proc.stdio[channel] as unknown as number;
  writeAll(fd, encodePlan(steps));
  return { proc, next: reportReader(fd) };
}

/** Write all of bytes to fd, waiting while a non-blocking fd is full. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) {
    try {
      offset += writeSync(fd, bytes, offset);
    } catch (err) {
      // A non-blocking socket or pipe that is full (a plan larger than
      // the channel's buffer, a slow reader): wait for room.
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      Bun.sleepSync(1);
    }
  }
}

/** Read the executor's 32-byte reports from the channel, one per call. */
export function reportReader(fd: number): () => Promise<ExecutorReport | undefined> {
  const reader = Bun.file(fd).stream().getReader();
  let buffer = new Uint8Array(0);
  return async () => {
    while (buffer.length < REPORT_SIZE) {
      const { done, value } = await reader.read();
      if (done) return undefined;
      const joined = new Uint8Array(buffer.length + value.length);
      joined.set(buffer);
      joined.set(value, buffer.length);
      buffer = joined;
    }
    const report = decodeReport(buffer.subarray(0, REPORT_SIZE));
    buffer = buffer.slice(REPORT_SIZE);
    return report;
  };
}

/** The error a failed step stands for, worded from the step's `what`. */
export function stepError(steps: readonly Step[], report: ExecutorReport): DokrustError {
  if (report.step === 0xffffffff) return new DokrustError(`the executor rejected the plan: ${errnoName(report.value)}`);
  const step = steps[report.step];
  const what = step ? step.what : `step ${report.step}`;
  const name = errnoName(report.value);
  // the executor opens proc and sysfs targets without following symlinks (as runc)
  if (report.syscall === "openat2" && name === "ELOOP" && / on \S+\/(proc|sys)$/.test(what)) {
    return new DokrustError(`${what}: the target is a symlink (proc and sysfs go on real directories only): ELOOP`);
  }
  if (report.syscall === "hook") return new DokrustError(`${what}: ${hookFailure(report.value, step?.args[1])}`);
  return new DokrustError(`${what}: ${report.syscall}: ${name}`);
}
