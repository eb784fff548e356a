/**
 * `dokrust -d`: a container started under its monitor (native/monitor.c,
 * src/runtime/monitor.ts), whose id is printed at once.
 *
 * The same spec and plan as in the foreground (run.ts containerInputs),
 * but the clone detaches (the container is reparented to the monitor,
 * a child subreaper) and no parent-death signal is set: the container
 * outlives this dokrust.  The network namespace fd stays in this process
 * and the executor, which the monitor started, joins it by
 * /proc/<this pid>/fd/N while this process waits for its reports.
 *
 * Everything is undone here when the start fails; once it ran, the
 * monitor's exit command (`dokrust internal cleanup`) undoes it when the
 * container ends.
 */
import { mkdirSync, rmSync, statSync } from "node:fs";
import type { RunOptions } from "../cli/dokrust.ts";
import { cgroupManager, type CgroupManager } from "../cgroups/manager.ts";
import { DokrustError, UsageError } from "../errors.ts";
import { compilePlan } from "../plan/compile.ts";
import { CloneMode, Report, type Step } from "../plan/ops.ts";
import type { Spec } from "../spec/types.ts";
import type { PreparedNetwork } from "../net/setup.ts";
import { markStarted, registerContainer } from "./dokrust-state.ts";
import { dokrustCommand, logMaxBytes, processRuns, startMonitor, type MonitorHandle } from "./monitor.ts";
import { containerInputs, execFailure, stateRoot } from "./run.ts";
import { claimDir, sweepStale } from "./sweep.ts";

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Point the network namespace entry at this process's fd (the executor is not our child). */
function joinByProc(spec: Spec, network: PreparedNetwork): void {
  if (network.nsFd === undefined) return;
  const entry = spec.linux?.namespaces?.find((n) => n.type === "network");
  if (entry) entry.path = `/proc/${process.pid}/fd/${network.nsFd}`;
}

/** The executor's reports until execve; returns the container's pid. */
async function awaitStart(monitor: MonitorHandle, steps: Step[], arg0: string): Promise<number> {
  let pid = 0;
  for (;;) {
    const report = await monitor.next();
    if (!report) break;
    if (report.type === Report.PID) pid = report.value;
    else if (report.type === Report.ERROR) throw execFailure(steps, report, arg0);
  }
  if (!pid) throw new DokrustError("the executor ended before starting the container");
  return pid;
}

/** Wait (up to ms) until the monitor has exited. */
async function monitorGone(monitor: { pid: number; startTime: string }, ms: number): Promise<void> {
  for (let t = 0; t < ms && processRuns(monitor.pid, monitor.startTime); t += 10) await Bun.sleep(10);
}

/** Run a container detached; prints its id and resolves to 0 once it runs. */
export async function runDetached(options: RunOptions): Promise<number> {
  if (options.net.kind === "cni") throw new UsageError("-d with --net cni is not supported yet; use the bridge network");
  const root = stateRoot();
  const id = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
  const stateDir = `${root}/${id}`;
  await sweepStale(root);
  mkdirSync(root, { recursive: true, mode: 0o711 });
  mkdirSync(stateDir, { mode: 0o700 });
  claimDir(stateDir, { cgroupPath: `/dokrust-${id}` });
  let cgroup: CgroupManager | undefined;
  let monitor: MonitorHandle | undefined;
  let network: PreparedNetwork | undefined;
  let pid = 0;
  try {
    cgroup = cgroupManager(`/dokrust-${id}`);
    const inputs = await containerInputs(options, stateDir, {
      base: process.cwd(),
      isDirectory,
      cgroupProcs: cgroup.joinFiles,
      cloneMode: CloneMode.DETACH,
      preserveFds: 0,
    });
    const { spec, ctx } = inputs;
    options = inputs.options;
    await registerContainer(root, { id, spec, cgroupPath: `/dokrust-${id}`, options, detached: true });
    if (options.tty) {
      const { getWindowSize } = await import("../native/libc.ts");
      const size = getWindowSize(1) ?? getWindowSize(0);
      // the monitor hands the executor the socket for the master as fd 4
      ctx.terminal = { sendFd: 4, rows: size?.rows || 24, cols: size?.cols || 80 };
    }
    monitor = await startMonitor({
      dir: stateDir,
      tty: options.tty,
      interactive: options.interactive,
      logMaxBytes: logMaxBytes(),
      exitCommand: [...dokrustCommand(), "internal", "cleanup", "--root", root, id],
    });
    const net = await import("../net/setup.ts");
    network = await net.prepareNetwork(options, { id, stateDir, etcDir: `${stateDir}/etc`, stateRoot: root });
    net.applyNetwork(spec, network, 0);
    joinByProc(spec, network);
    const steps = compilePlan(spec, ctx);
    cgroup.create();
    cgroup.apply(spec.linux?.resources);
    cgroup.applyQuota(options.quota);
    monitor.sendPlan(steps);
    pid = await awaitStart(monitor, steps, options.args[0] ?? "");
    network.started(pid);
    await network.handOver(pid);
    network = undefined;
    markStarted(root, id, pid, monitor);
    await monitor.confirm(pid);
    process.stdout.write(`${id}\n`);
    return 0;
  } catch (err) {
    await undo({ pid, monitor, network, cgroup, stateDir });
    throw err;
  }
}

async function undo(what: {
  pid: number;
  monitor: MonitorHandle | undefined;
  network: PreparedNetwork | undefined;
  cgroup: CgroupManager | undefined;
  stateDir: string;
}): Promise<void> {
  if (what.pid > 0) {
    try {
      process.kill(what.pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  if (what.monitor) {
    await what.monitor.abandon().catch(() => {});
    await monitorGone(what.monitor, 5000);
  }
  try {
    await what.network?.teardown();
    what.cgroup?.destroy();
  } finally {
    rmSync(what.stateDir, { recursive: true, force: true });
  }
}
