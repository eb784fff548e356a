/**
 * Live resource updates (`update`): merge the changes into the
 * container's resources, write the changed controllers' files, and keep
 * the result in state.json so later reads (and `events`) see it.
 */
import { cgroupManager } from "../cgroups/manager.ts";
import { DokrustError } from "../errors.ts";
import type { Resources } from "../spec/types.ts";
import { loadState, saveState, statusOf, withLock } from "./state.ts";

type Section = Exclude<keyof Resources, "devices">;

/**
 * `changes` merged into `current`: object sections field by field, the
 * others (lists, unified) replaced.  Device rules are never changed by an
 * update, as with runc.
 */
export function mergeResources(current: Resources | undefined, changes: Resources): Resources {
  const merged: Resources = structuredClone(current ?? {});
  for (const [key, value] of Object.entries(changes) as Array<[Section | "devices", unknown]>) {
    if (key === "devices" || value === undefined) continue;
    const old = merged[key];
    const both = typeof value === "object" && value !== null && !Array.isArray(value) && typeof old === "object" && old !== null && !Array.isArray(old);
    (merged as Record<string, unknown>)[key] = both ? { ...old, ...value } : value;
  }
  return merged;
}

/** Update a created, running or paused container's resources. */
export async function updateResources(root: string, id: string, changes: Resources): Promise<void> {
  await withLock(root, id, () => {
    const state = loadState(root, id);
    if (statusOf(root, state) === "stopped") throw new DokrustError(`cannot update container ${id}: it is stopped`);
    const linux = (state.config.linux ??= {});
    const merged = mergeResources(linux.resources, changes);
    // Only the sections that changed are written, each whole (memory's
    // limit and swap go together: the kernel checks them against each other).
    const write: Resources = {};
    for (const key of Object.keys(changes) as Section[]) {
      if (key in merged) (write as Record<string, unknown>)[key] = merged[key];
    }
    cgroupManager(state.cgroupPath).apply(write);
    linux.resources = merged;
    saveState(root, state);
  });
}
