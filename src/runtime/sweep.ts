/**
 * The sweep: removing what runs that died without cleaning up left
 * behind under the state root.
 *
 * A dokrust killed with SIGKILL cannot run its `finally`: its container
 * dies with it (the waiting executor has a parent-death signal), but its
 * state directory and cgroup directories stay.  So every directory under
 * the root records its owner the moment it is made: `owner.json`, the
 * pid and start time of the dokrust that made it (and, once known, the
 * cgroup it creates).  A later command (any run, `list`, `delete
 * --force`) sweeps the directories whose owner is gone and whose
 * container is gone: it removes their cgroup directories (every
 * hierarchy) and the directory itself.
 *
 * What is never swept, because it belongs to a live process or is meant
 * to outlive its creator:
 *   - a directory whose owner runs (pid and start time match, same boot);
 *   - a directory whose lock (`<dir>/lock`, an flock) is held;
 *   - a directory whose container process, or any process in its cgroup,
 *     still runs (a container left waiting on its exec fifo by a killed
 *     `create` is removed by `delete --force`, never by a sweep);
 *   - a created OCI container (state.json with a pid: runc keeps it until
 *     `delete`), and a started detached container (its monitor cleans up;
 *     an exited one stays until `rm`);
 *   - a directory with neither owner.json nor state.json younger than
 *     GRACE_MS (its maker is between mkdir and writing owner.json).
 *
 * Cost: one readdir of the root and one small read per container; the
 * cgroup layout and the lock's FFI are loaded only when something is to
 * be swept (bench: see docs/TESTING.md, "sweep").
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync } from "node:fs";
import { bootId, isAlive, processStartTime, writeAtomic, type StoredState } from "./state.ts";

/** Who made a container directory, and what it creates outside it. */
export interface Owner {
  pid: number;
  /** /proc/<pid>/stat field 22: tells a reused pid from the owner. */
  startTime: string;
  bootId: string;
  /** The container's cgroup path (relative to each hierarchy's root). */
  cgroupPath?: string;
  /** cgroup parent directories the owner creates (removed if empty). */
  cgroupCreatedParents?: string[];
}

/** How old a directory without owner.json must be before a sweep takes it. */
export const GRACE_MS = 1000;

/**
 * Record this process as the owner of a container directory it has just
 * made (atomically: a sweep never reads half a file).
 */
export function claimDir(dir: string, cgroup: Pick<Owner, "cgroupPath" | "cgroupCreatedParents"> = {}): void {
  const owner: Owner = { pid: process.pid, startTime: processStartTime(process.pid) ?? "", bootId: bootId(), ...cgroup };
  writeAtomic(`${dir}/owner.json`, JSON.stringify(owner));
}

/** The owner record of a directory, or undefined (none, or unreadable). */
export function readOwner(dir: string): Owner | undefined {
  try {
    const data = JSON.parse(readFileSync(`${dir}/owner.json`, "utf8")) as Partial<Owner>;
    if (typeof data.pid !== "number" || typeof data.startTime !== "string" || typeof data.bootId !== "string") return undefined;
    return data as Owner;
  } catch {
    return undefined;
  }
}

/** Whether the owner still runs (same boot, same pid, same start time). */
export function ownerAlive(owner: Owner): boolean {
  if (owner.bootId !== bootId()) return false;
  return processStartTime(owner.pid) === owner.startTime;
}

function readState(dir: string): StoredState | undefined {
  try {
    return JSON.parse(readFileSync(`${dir}/state.json`, "utf8")) as StoredState;
  } catch {
    return undefined;
  }
}

/** The cgroup a directory's container uses: from its state, its owner record, or the dokrust face's rule. */
function cgroupOf(id: string, state: StoredState | undefined, owner: Owner | undefined): { path?: string; parents: string[] } {
  const path = state?.cgroupPath ?? owner?.cgroupPath;
  const parents = state?.cgroupCreatedParents ?? owner?.cgroupCreatedParents ?? [];
  // a dokrust-face directory (random 64-hex id) always uses /dokrust-<id>
  if (!path && /^[0-9a-f]{64}$/.test(id)) return { path: `/dokrust-${id}`, parents };
  return path ? { path, parents } : { parents };
}

/** Why a directory must be kept, or undefined when it is stale. */
function keepReason(dir: string, id: string): string | undefined {
  const owner = readOwner(dir);
  const state = readState(dir);
  if (!owner) {
    if (state) return "no owner record (made by an older dokrust)";
    let age = 0;
    try {
      age = Date.now() - statSync(dir).mtimeMs;
    } catch {
      return "gone";
    }
    return age < GRACE_MS ? "just made" : undefined;
  }
  if (ownerAlive(owner)) return "its owner runs";
  if (state && state.pid > 0) {
    if (!state.dokrust) return "a created OCI container (removed by delete)";
    if (state.dokrust.detached) return "a detached container (its monitor cleans up)";
    if (isAlive(state)) return "its container runs";
  }
  return undefined;
}

/** Live processes in a cgroup (every hierarchy). */
async function cgroupPids(path: string): Promise<number[]> {
  const { cgroupManager } = await import("../cgroups/manager.ts");
  return cgroupManager(path).pids();
}

/** Remove a container's cgroup directories and the empty parents its owner made. */
export async function removeCgroups(path: string, parents: readonly string[]): Promise<void> {
  const { cgroupManager } = await import("../cgroups/manager.ts");
  const cgroup = cgroupManager(path);
  cgroup.destroy();
  const roots = cgroup.procsFiles.map((f) => f.slice(0, -"/cgroup.procs".length - path.length));
  const dirs = new Set(parents);
  if (path.startsWith("/dokrust/")) for (const root of roots) dirs.add(`${root}/dokrust`);
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
    try {
      rmdirSync(d);
    } catch {
      // still used by another container, or gone already
    }
  }
}

/** Take the directory's lock without waiting; undefined when another process holds it. */
async function tryDirLock(dir: string): Promise<number | undefined> {
  let fd: number;
  try {
    fd = openSync(`${dir}/lock`, "a", 0o600);
  } catch {
    return undefined;
  }
  const { tryLock } = await import("../native/libc.ts");
  let taken = false;
  try {
    taken = tryLock(fd);
  } finally {
    if (!taken) closeSync(fd);
  }
  return taken ? fd : undefined;
}

/**
 * Sweep one directory if it is stale; returns whether it was removed.
 * The decision is made again under the lock, so a directory re-made
 * under the same id in the meantime is left alone.
 */
async function sweepOne(root: string, id: string): Promise<boolean> {
  const dir = `${root}/${id}`;
  if (keepReason(dir, id) !== undefined) return false;
  const fd = await tryDirLock(dir);
  if (fd === undefined) return false;
  try {
    if (keepReason(dir, id) !== undefined) return false;
    const cgroup = cgroupOf(id, readState(dir), readOwner(dir));
    if (cgroup.path) {
      // a live process in the cgroup is a container someone may still want
      if ((await cgroupPids(cgroup.path)).length > 0) return false;
      await removeCgroups(cgroup.path, cgroup.parents);
    }
    rmSync(dir, { recursive: true, force: true });
    return true;
  } finally {
    closeSync(fd);
  }
}

/**
 * Remove what dead runs left under the state root; returns the ids swept.
 * Problems are not errors: a sweep is housekeeping before the real work.
 */
export async function sweepStale(root: string): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const swept: string[] = [];
  for (const id of names) {
    if (id.startsWith(".") || !/^[\w+\-.]+$/.test(id)) continue;
    try {
      if (await sweepOne(root, id)) swept.push(id);
    } catch {
      // removed by another command meanwhile, or not ours to judge
    }
  }
  return swept;
}

/**
 * `delete --force` of a directory without state.json (its `create` was
 * killed): kill what runs in its cgroup (a container left waiting on
 * its exec fifo), remove the cgroup and the directory.  Refused while
 * the owner still runs (the create is under way).
 */
export async function forceRemoveUnfinished(root: string, id: string): Promise<void> {
  const dir = `${root}/${id}`;
  const owner = readOwner(dir);
  if (owner && ownerAlive(owner)) {
    const { DokrustError } = await import("../errors.ts");
    throw new DokrustError(`container ${id} is being created (by process ${owner.pid}); try again once create has ended`);
  }
  const cgroup = cgroupOf(id, undefined, owner);
  if (cgroup.path) await removeCgroups(cgroup.path, cgroup.parents);
  if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
}
