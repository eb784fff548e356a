/**
 * The OCI lifecycle over the core: create (the container process set up
 * and waiting on its exec fifo), start (open the fifo), kill, and destroy
 * (what delete does).  Commands in src/cli/commands/ are thin wrappers.
 *
 *   create ──▶ created ──start──▶ running ──(exit)──▶ stopped ──delete──▶ gone
 *                 │                  │ ▲
 *                 └──kill/delete     pause/resume
 */
import { chmodSync, closeSync, existsSync, openSync, readSync, rmdirSync, rmSync, statSync, unlinkSync, constants as fsc } from "node:fs";
import { resolve } from "node:path";
import { cgroupManager, type CgroupManager } from "../cgroups/manager.ts";
import { hostCgroupLayout } from "../cgroups/mounts.ts";
import { DokrustError, UsageError } from "../errors.ts";
import { spawnExecutor, stepError, type Executor } from "../native/executor.ts";
import { compilePlan, type PlanContext } from "../plan/compile.ts";
import { CloneMode, decodeReport, Report, REPORT_SIZE } from "../plan/ops.ts";
import { seccompForSpec } from "../seccomp/index.ts";
import { DEFAULT_DEVICE_RULES, OCI_VERSION } from "../spec/defaults.ts";
import { loadBundleSpec } from "../spec/load.ts";
import type { DeviceRule, Resources, Spec } from "../spec/types.ts";
import { cgroupAncestors, cgroupMountSources, cgroupPathOf } from "./cgroup-path.ts";
import { hookStateParts, runHooks, startFailure } from "./hooks.ts";
import { claimDir, forceRemoveUnfinished } from "./sweep.ts";
import { logger } from "./log.ts";
import {
  containerDir,
  isAlive,
  loadState,
  makeContainerDir,
  ociState,
  processStartTime,
  saveState,
  statusOf,
  withLock,
  writeAtomic,
  type StoredState,
} from "./state.ts";

export interface CreateOptions {
  root: string;
  id: string;
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  preserveFds: number;
  /** run in the foreground: the executor waits for the container. */
  foreground?: boolean;
}

export interface Created {
  state: StoredState;
  executor: Executor;
  /** The pty master, when run relays the terminal itself. */
  master?: number;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The hierarchy roots of a manager, from its cgroup.procs files. */
function hierarchyRoots(cgroup: CgroupManager, path: string): string[] {
  return cgroup.procsFiles.map((f) => f.slice(0, -"/cgroup.procs".length - path.length));
}

/** Ancestor directories of `path` that do not exist yet (create makes them). */
function missingParents(cgroup: CgroupManager, path: string): string[] {
  const missing: string[] = [];
  for (const root of hierarchyRoots(cgroup, path)) {
    for (const a of cgroupAncestors(path)) if (!existsSync(`${root}${a}`)) missing.push(`${root}${a}`);
  }
  return missing;
}

/** Remove the cgroup and the empty parents create made (or the shared /dokrust). */
function removeCgroup(state: Pick<StoredState, "cgroupPath" | "cgroupCreatedParents">): void {
  const cgroup = cgroupManager(state.cgroupPath);
  cgroup.destroy();
  const parents = new Set(state.cgroupCreatedParents);
  if (state.cgroupPath.startsWith("/dokrust/")) for (const root of hierarchyRoots(cgroup, state.cgroupPath)) parents.add(`${root}/dokrust`);
  for (const dir of [...parents].sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(dir);
    } catch {
      // still used by another container, or gone already
    }
  }
}

/**
 * The spec's device rules, then (as runc's specconv appends them) the
 * default devices, the terminals, and the config's own devices: the
 * container must be able to create and use what it is given.
 */
function withDefaultDevices(spec: Spec): Resources {
  const resources = spec.linux?.resources ?? {};
  const own: DeviceRule[] = (spec.linux?.devices ?? []).map((d) => ({
    allow: true,
    type: d.type === "u" ? "c" : d.type === "p" ? "c" : d.type,
    ...(d.major === undefined ? {} : { major: d.major }),
    ...(d.minor === undefined ? {} : { minor: d.minor }),
    access: "rwm",
  }));
  if (!resources.devices) return resources;
  return { ...resources, devices: [...resources.devices, ...DEFAULT_DEVICE_RULES.filter((r) => r.allow), ...own] };
}

function terminalSize(spec: Spec): { rows: number; cols: number } {
  const size = spec.process?.consoleSize;
  return { rows: size?.height || 24, cols: size?.width || 80 };
}

function rootfsOf(bundle: string, spec: Spec): string {
  if (!spec.root?.path) throw new UsageError("config.json: /root must be present on Linux");
  return resolve(bundle, spec.root.path);
}

/** Create a container: set up, its process waiting for `start`. */
export async function createContainer(options: CreateOptions): Promise<Created> {
  const { bundle, spec } = await loadBundleSpec(options.bundle);
  const rootfs = rootfsOf(bundle, spec);
  if (!isDirectory(rootfs)) throw new DokrustError(`root.path ${rootfs}: not a directory`);
  const relay = !!spec.process?.terminal && !options.consoleSocket && !!options.foreground;
  if (spec.process?.terminal && !options.consoleSocket && !relay) {
    throw new UsageError("process.terminal is true: a --console-socket is required to receive the terminal");
  }
  if (!spec.process?.terminal && options.consoleSocket) {
    throw new UsageError("--console-socket given but process.terminal is false in config.json");
  }
  const dir = makeContainerDir(options.root, options.id);
  try {
    return await withLock(options.root, options.id, () => createLocked(options, bundle, spec, rootfs, dir, relay));
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function createLocked(options: CreateOptions, bundle: string, spec: Spec, rootfs: string, dir: string, relay: boolean): Promise<Created> {
  const libc = await import("../native/libc.ts");
  const fifo = `${dir}/exec.fifo`;
  libc.makeFifo(fifo, 0o622);
  // mkfifo applies the umask; a container process in a user namespace
  // (not root on the host) opens the fifo for writing as "other".
  chmodSync(fifo, 0o622);
  const cgroupPath = cgroupPathOf(spec.linux?.cgroupsPath, options.id);
  const cgroup = cgroupManager(cgroupPath);
  const createdParents = missingParents(cgroup, cgroupPath);
  // before anything exists outside the directory: a sweep or `delete
  // --force` after this create is killed knows what to remove
  claimDir(dir, { cgroupPath, cgroupCreatedParents: createdParents });
  const extraFds = Array.from({ length: options.preserveFds }, (_, i) => 3 + i);
  const ownFds: number[] = [];
  let pid = 0;
  let executor: Executor | undefined;
  try {
    const ctx: PlanContext = {
      rootfs,
      base: bundle,
      isDirectory,
      cgroupMounts: cgroupMountSources(hostCgroupLayout(), cgroupPath),
      cgroupProcs: cgroup.joinFiles,
      cloneMode: options.foreground ? CloneMode.WAIT : CloneMode.DETACH,
      execFifo: fifo,
      preserveFds: options.preserveFds,
      hookState: hookStateParts(options.id, bundle, spec),
    };
    const seccomp = seccompForSpec(spec);
    if (seccomp) {
      for (const warning of seccomp.warnings) logger.warn(`create ${options.id}: ${warning}`);
      ctx.seccomp = { program: seccomp.program, flags: seccomp.flags };
    }
    let pair: [number, number] | undefined;
    if (options.consoleSocket) {
      const fd = libc.connectUnix(options.consoleSocket);
      ownFds.push(fd);
      extraFds.push(fd);
    } else if (relay) {
      pair = libc.socketPair();
      ownFds.push(...pair);
      extraFds.push(pair[1]);
    }
    if (spec.process?.terminal) ctx.terminal = { sendFd: 3 + options.preserveFds, ...terminalSize(spec) };
    const steps = compilePlan(spec, ctx);
    cgroup.create();
    cgroup.apply(withDefaultDevices(spec));
    logger.debug(`create ${options.id}: cgroup ${cgroupPath}, ${steps.length} steps`);
    executor = spawnExecutor(steps, { stdin: "inherit", stdout: "inherit", stderr: "inherit", extraFds });
    let master: number | undefined;
    for (;;) {
      const report = await executor.next();
      if (!report) throw new DokrustError(`the container process ended (executor status ${await executor.proc.exited}) before it was ready`);
      if (report.type === Report.PID) pid = report.value;
      else if (report.type === Report.TTY && pair) master = libc.receiveFd(pair[0]);
      else if (report.type === Report.ERROR) throw stepError(steps, report);
      else if (report.type === Report.READY) break;
    }
    const state: StoredState = {
      ociVersion: OCI_VERSION,
      id: options.id,
      pid,
      bundle,
      rootfs,
      created: new Date().toISOString(),
      owner: "",
      pidStartTime: processStartTime(pid) ?? "",
      cgroupPath,
      cgroupCreatedParents: createdParents,
      config: spec,
    };
    if (spec.annotations) state.annotations = spec.annotations;
    saveState(options.root, state);
    if (options.pidFile) writeAtomic(resolve(options.pidFile), String(pid), 0o644);
    const json = JSON.stringify(ociState(options.root, state));
    await runHooks("prestart", spec.hooks?.prestart, json);
    await runHooks("createRuntime", spec.hooks?.createRuntime, json);
    return master === undefined ? { state, executor } : { state, executor, master };
  } catch (err) {
    if (pid > 0) kill(pid, 9);
    if (executor) await executor.proc.exited;
    try {
      removeCgroup({ cgroupPath, cgroupCreatedParents: createdParents });
    } catch (cleanup) {
      logger.warn(`create ${options.id}: clean up the cgroup: ${(cleanup as Error).message}`);
    }
    throw err;
  } finally {
    for (const fd of ownFds) libc.closeFd(fd);
  }
}

function kill(pid: number, signal: number): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Start a created container: open its exec fifo, so the process goes on to execve. */
export async function startContainer(root: string, id: string): Promise<void> {
  const state = await withLock(root, id, async () => {
    const state = loadState(root, id);
    const status = statusOf(root, state);
    if (status !== "created") throw new DokrustError(`cannot start container ${id}: it is ${status}, not created`);
    await openExecFifo(root, state, (state.config.hooks?.startContainer?.length ?? 0) > 0);
    return state;
  });
  try {
    await runHooks("poststart", state.config.hooks?.poststart, JSON.stringify(ociState(root, state)));
  } catch (err) {
    logger.warn(`start ${id}: ${(err as Error).message}`);
  }
}

/**
 * Open the fifo's read end without blocking (a blocking open would stall
 * forever if the process died), then poll for the byte the process
 * writes once it has the fifo open.  With `untilExec` (startContainer
 * hooks run after that byte), read on to the end of file, which comes
 * when the process executes its program or dies: a failed step (a hook)
 * writes its error report first.
 */
async function openExecFifo(root: string, state: StoredState, untilExec: boolean): Promise<void> {
  const fifo = `${containerDir(root, state.id)}/exec.fifo`;
  const fd = openSync(fifo, fsc.O_RDONLY | fsc.O_NONBLOCK);
  try {
    const byte = new Uint8Array(1);
    for (let i = 0; ; i++) {
      let n = 0;
      try {
        n = readSync(fd, byte);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
      }
      if (n === 1) break;
      if (!isAlive(state)) throw new DokrustError(`cannot start container ${state.id}: its process has exited`);
      await Bun.sleep(i < 100 ? 1 : 10);
    }
    unlinkSync(fifo);
    if (!untilExec) return;
    const report = await readToEnd(fd);
    if (report.length >= REPORT_SIZE) {
      throw startFailure(state.config.hooks?.startContainer, decodeReport(report)).wrap(`cannot start container ${state.id}`);
    }
  } finally {
    closeSync(fd);
  }
}

/** Read a non-blocking fd to its end of file. */
async function readToEnd(fd: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for (let i = 0; ; i++) {
    const chunk = new Uint8Array(REPORT_SIZE);
    let n = -1;
    try {
      n = readSync(fd, chunk);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") throw err;
    }
    if (n === 0) return Buffer.concat(chunks);
    if (n > 0) chunks.push(chunk.subarray(0, n));
    else await Bun.sleep(i < 100 ? 1 : 10);
  }
}

/** Send a signal to the container's init, or with `all` to every process in its cgroup. */
export async function killContainer(root: string, id: string, signal: number, all: boolean): Promise<void> {
  await withLock(root, id, () => {
    const state = loadState(root, id);
    const status = statusOf(root, state);
    if (status === "stopped") throw new DokrustError(`container ${id} is not running`);
    const pids = all ? cgroupManager(state.cgroupPath).pids() : [state.pid];
    for (const pid of pids) kill(pid, signal);
  });
}

/** A container removed by another command while we waited for its lock is no error. */
function ignoreGone(err: unknown): void {
  if (!(err instanceof DokrustError && / does not exist$/.test(err.message))) throw err;
}

/** Wait (a short while) for the container's init to be gone. */
async function waitGone(state: StoredState, ms: number): Promise<boolean> {
  for (let t = 0; t < ms; t += 5) {
    if (!isAlive(state)) return true;
    await Bun.sleep(5);
  }
  return !isAlive(state);
}

/**
 * Delete a container: a created one is killed (as runc does), a running
 * or paused one only with `force`.  Removes the cgroup and the state
 * directory, then runs the poststop hooks.
 */
export async function deleteContainer(root: string, id: string, force: boolean): Promise<void> {
  if (force && !existsSync(`${containerDir(root, id)}/state.json`)) {
    // a create killed half-way: its cgroup (and a process waiting in it) may remain
    const dir = containerDir(root, id);
    if (!existsSync(dir)) return;
    const unfinished = async () => {
      if (existsSync(`${dir}/state.json`)) return false; // the create finished meanwhile
      await forceRemoveUnfinished(root, id);
      return true;
    };
    if ((await withLock(root, id, unfinished).catch(ignoreGone)) !== false) return;
  }
  await withLock(root, id, async () => {
    const state = loadState(root, id);
    const status = statusOf(root, state);
    if ((status === "running" || status === "paused") && !force) {
      throw new DokrustError(`cannot delete container ${id} that is not stopped: ${status}`);
    }
    if (status !== "stopped") {
      const cgroup = cgroupManager(state.cgroupPath);
      if (status === "paused") cgroup.freeze(false);
      for (const pid of [state.pid, ...cgroup.pids()]) kill(pid, 9);
      if (!(await waitGone(state, 5000))) throw new DokrustError(`container ${id}: process ${state.pid} did not die after SIGKILL`);
    }
    await destroy(root, state);
  });
}

async function destroy(root: string, state: StoredState): Promise<void> {
  removeCgroup(state);
  const json = JSON.stringify({ ...ociState(root, state), status: "stopped", pid: 0 });
  rmSync(containerDir(root, state.id), { recursive: true, force: true });
  try {
    await runHooks("poststop", state.config.hooks?.poststop, json);
  } catch (err) {
    logger.warn(`delete ${state.id}: ${(err as Error).message}`);
  }
}

/** Freeze or thaw a running container. */
export async function setPaused(root: string, id: string, paused: boolean): Promise<void> {
  await withLock(root, id, () => {
    const state = loadState(root, id);
    const status = statusOf(root, state);
    const want = paused ? "running" : "paused";
    if (status !== want) throw new DokrustError(`container ${id} is ${status}, not ${want}`);
    cgroupManager(state.cgroupPath).freeze(paused);
    state.paused = paused;
    saveState(root, state);
  });
}
