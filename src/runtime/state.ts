/**
 * The state directory: one directory per container under the state root
 * (`--root`), holding `state.json`, the exec fifo while the container is
 * created, and a lock file.
 *
 * Every write is atomic (temporary file + rename), and every command that
 * changes a container holds its lock: an flock on `<dir>/lock`.  flock
 * rather than an O_EXCL lock directory because the kernel drops an flock
 * when its holder dies, so a runtime killed half-way never leaves a stale
 * lock behind for `delete --force` to guess about.
 *
 * The status is never stored; it is derived live, as runc does: the pid
 * (checked against its start time, so a reused pid reads as stopped), the
 * exec fifo (present until `start`), and the paused flag pause/resume set.
 */
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { DokrustError, fromNodeError, UsageError } from "../errors.ts";
import type { Spec } from "../spec/types.ts";
import type { DokrustFields } from "./dokrust-state.ts";

export type Status = "creating" | "created" | "running" | "paused" | "stopped";

/** The state as the runtime-spec defines it (what `state` prints). */
export interface OciState {
  ociVersion: string;
  id: string;
  pid: number;
  status: Status;
  bundle: string;
  rootfs: string;
  created: string;
  owner: string;
  annotations?: Record<string, string>;
}

/** What dokrust keeps in state.json: the spec's state and its own fields. */
export interface StoredState extends Omit<OciState, "status"> {
  /** /proc/<pid>/stat field 22: tells a reused pid from ours. */
  pidStartTime: string;
  /** cgroup path relative to each hierarchy's root. */
  cgroupPath: string;
  /** cgroup parent directories create made (removed again on delete). */
  cgroupCreatedParents: string[];
  paused?: boolean;
  /** The config.json the container was created from. */
  config: Spec;
  /** /proc/sys/kernel/random/boot_id when it started: a state from an earlier boot is stopped. */
  bootId?: string;
  /** What the dokrust face keeps (name, command, monitor); absent for OCI containers. */
  dokrust?: DokrustFields;
}

/** runc's rule for container ids. */
export function checkId(id: string | undefined): string {
  if (!id) throw new UsageError("container id cannot be empty");
  if (!/^[\w+\-.]+$/.test(id) || id === "." || id === ".." || id.includes("..")) {
    throw new UsageError(`invalid container id ${JSON.stringify(id)}: it may hold letters, digits, _ + - and . only`);
  }
  return id;
}

/** The directory of one container. */
export function containerDir(root: string, id: string): string {
  return `${root}/${checkId(id)}`;
}

/** Create the container's directory; fails when the id is taken. */
export function makeContainerDir(root: string, id: string): string {
  const dir = containerDir(root, id);
  mkdirSync(root, { recursive: true, mode: 0o711 });
  try {
    mkdirSync(dir, { mode: 0o711 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new DokrustError(`container with id ${id} already exists`);
    throw fromNodeError(err, `create the state directory ${dir}`);
  }
  return dir;
}

/** Write a file atomically: a temporary file in the same directory, renamed. */
export function writeAtomic(path: string, text: string, mode = 0o600): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, text, { mode });
    renameSync(tmp, path);
  } catch (err) {
    throw fromNodeError(err, `write ${path}`);
  }
}

export function saveState(root: string, state: StoredState): void {
  writeAtomic(`${containerDir(root, state.id)}/state.json`, JSON.stringify(state));
}

/** The stored state of a container; a clear error when there is none. */
export function loadState(root: string, id: string): StoredState {
  const file = `${containerDir(root, id)}/state.json`;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new DokrustError(`container ${id} does not exist`);
    throw fromNodeError(err, `read ${file}`);
  }
  try {
    return JSON.parse(text) as StoredState;
  } catch {
    throw new DokrustError(`${file}: not valid JSON; \`delete --force ${id}\` removes what is left`);
  }
}

/** Ids of every container under the root (directories with a state.json). */
export function listIds(root: string): string[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  return names.filter((n) => existsSync(`${root}/${n}/state.json`)).sort();
}

/** Field 22 of /proc/<pid>/stat (start time), or undefined when gone. */
export function processStartTime(pid: number): string | undefined {
  const stat = processStat(pid);
  return stat?.[19];
}

/** /proc/<pid>/stat fields from the third on (after "(comm)"). */
function processStat(pid: number): string[] | undefined {
  if (!(pid > 0)) return undefined;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  return text.slice(text.lastIndexOf(")") + 2).split(" ");
}

let thisBoot: string | undefined;

/** This boot's id (a pid and start time from another boot mean nothing). */
export function bootId(): string {
  thisBoot ??= readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
  return thisBoot;
}

/** Whether the container's init process is still the one we started. */
export function isAlive(state: Pick<StoredState, "pid" | "pidStartTime" | "bootId">): boolean {
  if (state.bootId && state.bootId !== bootId()) return false;
  const stat = processStat(state.pid);
  if (!stat) return false;
  return stat[0] !== "Z" && stat[0] !== "X" && stat[19] === state.pidStartTime;
}

/** The live status of a container. */
export function statusOf(root: string, state: StoredState): Status {
  if (!isAlive(state)) return "stopped";
  if (state.paused) return "paused";
  if (existsSync(`${containerDir(root, state.id)}/exec.fifo`)) return "created";
  return "running";
}

/** The runtime-spec state document of a container. */
export function ociState(root: string, state: StoredState): OciState {
  const status = statusOf(root, state);
  const out: OciState = {
    ociVersion: state.ociVersion,
    id: state.id,
    pid: status === "stopped" ? 0 : state.pid,
    status,
    bundle: state.bundle,
    rootfs: state.rootfs,
    created: state.created,
    owner: state.owner,
  };
  if (state.annotations && Object.keys(state.annotations).length > 0) out.annotations = state.annotations;
  return out;
}

/**
 * Run fn holding the container's lock.  Waits for another holder (up to
 * `timeoutMs`) without blocking the event loop.
 */
export async function withLock<T>(root: string, id: string, fn: () => Promise<T> | T, timeoutMs = 30_000): Promise<T> {
  const dir = containerDir(root, id);
  let fd: number;
  try {
    fd = openSync(`${dir}/lock`, "a", 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new DokrustError(`container ${id} does not exist`);
    throw fromNodeError(err, `open ${dir}/lock`);
  }
  try {
    const { tryLock } = await import("../native/libc.ts");
    const deadline = Date.now() + timeoutMs;
    while (!tryLock(fd)) {
      if (Date.now() > deadline) throw new DokrustError(`container ${id} is locked by another command (${dir}/lock)`);
      await Bun.sleep(5);
    }
    // A delete that held the lock may have removed the container since.
    if (!existsSync(dir)) throw new DokrustError(`container ${id} does not exist`);
    return await fn();
  } finally {
    closeSync(fd);
  }
}
