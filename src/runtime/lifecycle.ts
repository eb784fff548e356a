/**
 * The dokrust face's lifecycle of a started container: stop, remove,
 * wait, and the cleanup the monitor runs as its exit command.  Works on
 * any container under the root; OCI containers (no `dokrust` part in
 * state.json) are removed the OCI way (delete, with its hooks).
 *
 *   running ──(exit; the monitor writes `exit`, runs cleanup)──▶ exited ──rm──▶ gone
 *      │                                      cleanup with --rm ──────────────▶ gone
 *      └── stop: SIGTERM, SIGKILL after the grace period
 */
import { existsSync, rmSync } from "node:fs";
import { cgroupManager } from "../cgroups/manager.ts";
import { DokrustError } from "../errors.ts";
import { deleteContainer } from "./container.ts";
import { connectAttach, processRuns, readExit } from "./monitor.ts";
import { containerDir, isAlive, loadState, withLock, type StoredState } from "./state.ts";

function signal(pid: number, sig: NodeJS.Signals | number): void {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

/** Poll until `done()` holds or `ms` pass; returns whether it holds. */
async function until(done: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await Bun.sleep(10);
  }
  return true;
}

/** The monitor of a detached container still runs. */
export function monitorRuns(state: StoredState): boolean {
  const d = state.dokrust;
  return !!d?.monitorPid && processRuns(d.monitorPid, d.monitorStartTime);
}

/** Wait until the container and its monitor (exit file, cleanup) are done. */
async function settled(state: StoredState, ms: number): Promise<boolean> {
  return until(() => !isAlive(state) && !monitorRuns(state), ms);
}

/**
 * stop: SIGTERM to the container's init, SIGKILL when it is still there
 * after `seconds`; resolves once it has exited.  Stopping a stopped
 * container does nothing.
 */
export async function stopContainer(root: string, id: string, seconds: number): Promise<void> {
  const state = loadState(root, id);
  if (!isAlive(state)) return;
  signal(state.pid, "SIGTERM");
  if (await until(() => !isAlive(state), seconds * 1000)) return;
  signal(state.pid, "SIGKILL");
  if (!(await until(() => !isAlive(state), 10_000))) throw new DokrustError(`container ${id}: process ${state.pid} did not die after SIGKILL`);
}

/** rm: remove a stopped container (a running one only with force, killing it). */
export async function removeContainer(root: string, id: string, force: boolean): Promise<void> {
  const state = loadState(root, id);
  if (!state.dokrust) {
    await deleteContainer(root, id, force);
    return;
  }
  if (isAlive(state)) {
    if (!force) throw new DokrustError(`cannot remove container ${state.dokrust.name ?? id.slice(0, 12)}: it is running; stop it first, or use rm -f`);
    if (!state.dokrust.detached) {
      // a foreground dokrust removes its own container once it ended
      signal(state.pid, "SIGKILL");
      await until(() => !existsSync(containerDir(root, id)), 10_000);
      return;
    }
    signal(state.pid, "SIGKILL");
  }
  // Let the monitor finish (exit file, its cleanup), so nothing races the removal.
  await settled(state, 10_000);
  if (!existsSync(containerDir(root, id))) return; // --rm got there first
  await withLock(root, id, () => destroy(root, loadState(root, id)));
}

/** Remove what a stopped dokrust-face container holds: processes left in its cgroup, the cgroup, the directory. */
function destroy(root: string, state: StoredState): void {
  const cgroup = cgroupManager(state.cgroupPath);
  for (const pid of cgroup.pids()) signal(pid, "SIGKILL");
  cgroup.destroy();
  rmSync(containerDir(root, state.id), { recursive: true, force: true });
}

/**
 * The monitor's exit command (`dokrust internal cleanup --root R ID`):
 * the container has ended; remove its cgroup, and with --rm the whole
 * container.  A container already removed is no error.
 */
export async function cleanupContainer(root: string, id: string): Promise<void> {
  if (!existsSync(`${containerDir(root, id)}/state.json`)) return;
  await withLock(root, id, () => {
    const state = loadState(root, id);
    if (isAlive(state)) return;
    if (state.dokrust?.autoRemove) {
      destroy(root, state);
      return;
    }
    const cgroup = cgroupManager(state.cgroupPath);
    for (const pid of cgroup.pids()) signal(pid, "SIGKILL");
    cgroup.destroy();
  }).catch((err: unknown) => {
    // removed meanwhile by rm: nothing left to do
    if (!(err instanceof DokrustError && /does not exist/.test(err.message))) throw err;
  });
  await releaseNetworks();
}

/**
 * A detached container's network address belongs to it until it ends;
 * its owner is dead now, so the prune takes the address back (and the
 * bridge and nft table when it was the last member).
 */
async function releaseNetworks(): Promise<void> {
  const { netConfig, prune } = await import("../net/bridge.ts");
  const root = netConfig().root;
  if (!existsSync(root)) return;
  const { problems } = await prune(root);
  for (const p of problems) process.stderr.write(`dokrust: warning: ${p}\n`);
}

/**
 * wait: the container's exit code once it has exited.  From the exit
 * file; while the monitor runs, from its attach socket (which also works
 * when --rm removes the container as it ends).
 */
export async function waitContainer(root: string, id: string): Promise<number> {
  const dir = containerDir(root, id);
  const state = loadState(root, id);
  for (;;) {
    const exit = readExit(dir);
    if (exit) return exit.exitCode;
    if (monitorRuns(state) && existsSync(`${dir}/attach.sock`)) {
      try {
        const conn = await connectAttach(dir, () => {});
        const code = await conn.ended;
        if (code !== undefined) return code;
      } catch {
        // the monitor was closing: read the exit file again
      }
    } else if (!isAlive(state)) {
      await until(() => readExit(dir) !== undefined, 1000);
      const late = readExit(dir);
      if (late) return late.exitCode;
      if (!existsSync(dir)) throw new DokrustError(`container ${id.slice(0, 12)} was removed before its exit code was read`);
      throw new DokrustError(`container ${id.slice(0, 12)} has exited, but its exit code was not recorded (it ran in the foreground, or its monitor died)`);
    }
    await Bun.sleep(50);
  }
}
