/**
 * The dokrust face's containers in the state module's terms: each one
 * has a `state.json` (src/runtime/state.ts) with a `dokrust` part (name,
 * command, monitor), so that `list`, `kill` and `exec` of either face
 * see it, and a foreground container is listed while it runs.
 *
 * Names are unique among the containers under the root, whatever their
 * state, until they are removed (as docker has it).  The check and the
 * first write of state.json happen under one lock, `<root>/.names.lock`,
 * so two starts with one name cannot both win.
 *
 * A reference (what a user types for NAME) is, in order: an exact id, a
 * name, or an unambiguous prefix of an id.
 */
import { closeSync, mkdirSync, openSync } from "node:fs";
import type { RunOptions } from "../cli/dokrust.ts";
import { DokrustError, UsageError } from "../errors.ts";
import { OCI_VERSION } from "../spec/defaults.ts";
import type { Spec } from "../spec/types.ts";
import { bootId, listIds, loadState, processStartTime, saveState, type StoredState } from "./state.ts";

/** What the dokrust face keeps about a container in state.json. */
export interface DokrustFields {
  name?: string;
  /** The command as given (process.args). */
  command: string[];
  detached: boolean;
  tty: boolean;
  interactive: boolean;
  /** --rm: the exit command removes the container. */
  autoRemove: boolean;
  /** The monitor of a detached container. */
  monitorPid?: number;
  monitorStartTime?: string;
}

/** Hold the root's names lock while fn runs. */
async function withNamesLock<T>(root: string, fn: () => T): Promise<T> {
  // libc (bun:ffi) is loaded only when needed: it costs start time.
  const { tryLock } = await import("../native/libc.ts");
  mkdirSync(root, { recursive: true, mode: 0o711 });
  const fd = openSync(`${root}/.names.lock`, "a", 0o600);
  try {
    const deadline = Date.now() + 10_000;
    while (!tryLock(fd)) {
      if (Date.now() > deadline) throw new DokrustError(`${root}/.names.lock: held by another dokrust for 10 s`);
      Bun.sleepSync(2);
    }
    return fn();
  } finally {
    closeSync(fd);
  }
}

/** Every stored state under the root (unreadable ones skipped). */
export function allStates(root: string): StoredState[] {
  const out: StoredState[] = [];
  for (const id of listIds(root)) {
    try {
      out.push(loadState(root, id));
    } catch {
      // removed while we looked
    }
  }
  return out;
}

export interface Registration {
  id: string;
  spec: Spec;
  cgroupPath: string;
  options: RunOptions;
  detached: boolean;
}

/**
 * Write the first state.json of a dokrust-face container (pid 0 until it
 * runs), taking its name; a name in use is an error and nothing is written.
 */
export async function registerContainer(root: string, reg: Registration): Promise<StoredState> {
  const { options } = reg;
  const state: StoredState = {
    ociVersion: OCI_VERSION,
    id: reg.id,
    pid: 0,
    bundle: reg.spec.root?.path ?? "",
    rootfs: reg.spec.root?.path ?? "",
    created: new Date().toISOString(),
    owner: "root",
    pidStartTime: "",
    cgroupPath: reg.cgroupPath,
    cgroupCreatedParents: [],
    config: reg.spec,
    bootId: bootId(),
    dokrust: {
      command: reg.spec.process?.args ?? [],
      detached: reg.detached,
      tty: options.tty,
      interactive: options.interactive,
      autoRemove: !!options.autoRemove,
      ...(options.name === undefined ? {} : { name: options.name }),
    },
  };
  await withNamesLock(root, () => {
    const name = options.name;
    if (name !== undefined) {
      const holder = allStates(root).find((s) => s.dokrust?.name === name && s.id !== reg.id);
      if (holder) throw new UsageError(`the name ${name} is already in use by container ${holder.id.slice(0, 12)}; remove it (dokrust rm) or choose another --name`);
    }
    saveState(root, state);
  });
  return state;
}

/** Record the running container's pid (and its monitor's) in state.json. */
export function markStarted(root: string, id: string, pid: number, monitor?: { pid: number; startTime: string }): StoredState {
  const state = loadState(root, id);
  state.pid = pid;
  state.pidStartTime = processStartTime(pid) ?? "";
  if (monitor && state.dokrust) {
    state.dokrust.monitorPid = monitor.pid;
    state.dokrust.monitorStartTime = monitor.startTime;
  }
  saveState(root, state);
  return state;
}

/**
 * The id a reference stands for: an exact id, then a name, then an
 * unambiguous id prefix.  One clear error otherwise.
 */
export function resolveRef(root: string, ref: string): string {
  if (!ref) throw new UsageError("a container name or id is required");
  const states = allStates(root);
  const exact = states.find((s) => s.id === ref) ?? states.find((s) => s.dokrust?.name === ref);
  if (exact) return exact.id;
  const matches = /^[\w+\-.]+$/.test(ref) ? states.filter((s) => s.id.startsWith(ref)) : [];
  if (matches.length === 1) return matches[0]!.id;
  if (matches.length > 1) {
    throw new UsageError(`${ref} is ambiguous: it begins the ids of ${matches.length} containers (${matches.map((s) => s.id.slice(0, 12)).join(", ")}); give more of the id`);
  }
  throw new UsageError(`container ${ref} does not exist`);
}
