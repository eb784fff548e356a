/**
 * One interface for the container's cgroup, whatever the host runs: v1,
 * v2 or hybrid.  The factory picks the implementation once, from the
 * host's mounts.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { DokrustError, fromNodeError } from "../errors.ts";
import type { Resources } from "../spec/types.ts";
import { hostCgroupLayout, type CgroupLayout } from "./mounts.ts";
import type { QuotaEntry } from "./quota.ts";
import { V1Manager } from "./v1.ts";
import { V2Manager } from "./v2.ts";

export interface CgroupManager {
  /** The cgroup.procs file of every hierarchy the container has a cgroup in. */
  readonly procsFiles: string[];
  /**
   * The files the executor writes to put the container into its cgroups
   * (native/plan.h DK_OP_CGROUP_JOIN): `tasks` files on v1, where the
   * process moves itself and skips the kernel's global threadgroup lock
   * (and the RCU grace period it waits for); cgroup.procs on v2.
   */
  readonly joinFiles: string[];
  /** Create the cgroup directories (idempotent). */
  create(): void;
  /** Write the runtime-spec resources. */
  apply(resources: Resources | undefined): void;
  /** Write raw quota entries (-q). Unknown controllers or files throw. */
  applyQuota(entries: readonly QuotaEntry[]): void;
  /** Process ids in the cgroup. */
  pids(): number[];
  /** Freeze or thaw every process in the cgroup. */
  freeze(frozen: boolean): void;
  /** Remove the cgroup directories; kills what is left with `kill`. */
  destroy(): void;
  /** Whether the cgroup exists. */
  exists(): boolean;
}

/** Create a manager for `path` (a path relative to each hierarchy's root). */
export function cgroupManager(path: string, layout: CgroupLayout = hostCgroupLayout()): CgroupManager {
  const clean = `/${path.replace(/^\/+|\/+$/g, "")}`;
  if (clean.split("/").some((c) => c === ".." || c === ".")) {
    throw new DokrustError(`cgroup path ${path}: must not contain . or .. components`);
  }
  return layout.mode === "v2" ? new V2Manager(layout.unified!, clean) : new V1Manager(layout, clean);
}

/** Write a cgroup file, with the file and value in the error. */
export function writeCgroupFile(dir: string, file: string, value: string): void {
  try {
    writeFileSync(`${dir}/${file}`, value);
  } catch (err) {
    throw fromNodeError(err, `write ${JSON.stringify(value)} to ${dir}/${file}`);
  }
}

export function readCgroupFile(dir: string, file: string): string {
  return readFileSync(`${dir}/${file}`, "utf8");
}

/** mkdir -p, returning the directories it created (outermost first). */
export function makeDirs(dir: string): string[] {
  const missing: string[] = [];
  for (let d = dir; d !== "/" && !existsSync(d); d = d.slice(0, d.lastIndexOf("/")) || "/") missing.unshift(d);
  for (const d of missing) {
    try {
      mkdirSync(d);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw fromNodeError(err, "create cgroup");
    }
  }
  return missing;
}

/** The pids listed in a cgroup.procs file. */
export function readPids(file: string): number[] {
  try {
    return readFileSync(file, "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Remove a cgroup directory.  Processes may still be exiting (the kernel
 * releases a cgroup a moment after its last task is reaped): kill what is
 * left, then retry for a short while.
 */
export function removeCgroupDir(dir: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (code !== "EBUSY" || attempt >= 200) throw fromNodeError(err, "remove cgroup");
      for (const pid of readPids(`${dir}/cgroup.procs`)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      Bun.sleepSync(attempt < 20 ? 1 : 10);
    }
  }
}
