/**
 * cgroup v1 (and hybrid): one directory per mounted hierarchy, limits
 * written controller by controller.  In hybrid mode the cgroup2 mount
 * gets a directory too, so the container's cgroup namespace is rooted at
 * its own cgroup in every hierarchy.
 */
import { existsSync, readdirSync } from "node:fs";
import { DokrustError, UsageError } from "../errors.ts";
import type { DeviceRule, Resources } from "../spec/types.ts";
import type { CgroupManager } from "./manager.ts";
import { makeDirs, readCgroupFile, readPids, removeCgroupDir, writeCgroupFile } from "./manager.ts";
import type { CgroupLayout } from "./mounts.ts";
import { checkQuotaValue, type QuotaEntry } from "./quota.ts";

export class V1Manager implements CgroupManager {
  readonly #layout: CgroupLayout;
  readonly #path: string;
  readonly #dirs: Map<string, string>;

  constructor(layout: CgroupLayout, path: string) {
    this.#layout = layout;
    this.#path = path;
    this.#dirs = new Map();
    for (const h of layout.v1) {
      for (const c of h.controllers) this.#dirs.set(c, `${h.mount}${path}`);
    }
  }

  get procsFiles(): string[] {
    return this.#allDirs().map((d) => `${d}/cgroup.procs`);
  }

  get joinFiles(): string[] {
    // The cgroup2 mount of a hybrid host holds no controllers; joining it
    // would cost the threadgroup lock that the tasks files avoid.
    return this.#layout.v1.map((h) => `${h.mount}${this.#path}/tasks`);
  }

  #allDirs(): string[] {
    const dirs = this.#layout.v1.map((h) => `${h.mount}${this.#path}`);
    if (this.#layout.unified) dirs.push(`${this.#layout.unified}${this.#path}`);
    return dirs;
  }

  /** The directory of a controller, or undefined when it is not mounted. */
  dir(controller: string): string | undefined {
    return this.#dirs.get(controller);
  }

  create(): void {
    for (const h of this.#layout.v1) {
      const created = makeDirs(`${h.mount}${this.#path}`);
      if (h.controllers.includes("cpuset")) for (const d of created) initCpuset(d);
    }
    if (this.#layout.unified) makeDirs(`${this.#layout.unified}${this.#path}`);
  }

  exists(): boolean {
    return this.#allDirs().some((d) => existsSync(d));
  }

  apply(resources: Resources | undefined): void {
    if (!resources) return;
    const set = (controller: string, file: string, value: number | string | undefined) => {
      if (value === undefined) return;
      const dir = this.#dirs.get(controller);
      if (!dir) throw new DokrustError(`cgroup controller ${controller} is not mounted on this host; cannot set ${file}`);
      writeCgroupFile(dir, file, String(value));
    };
    const { cpu, memory, pids, blockIO, hugepageLimits, network } = resources;
    if (cpu) {
      set("cpu", "cpu.shares", cpu.shares || undefined);
      set("cpu", "cpu.cfs_period_us", cpu.period || undefined);
      set("cpu", "cpu.cfs_quota_us", cpu.quota === undefined || cpu.quota === 0 ? undefined : cpu.quota);
      set("cpu", "cpu.rt_period_us", cpu.realtimePeriod || undefined);
      set("cpu", "cpu.rt_runtime_us", cpu.realtimeRuntime || undefined);
      set("cpuset", "cpuset.cpus", cpu.cpus || undefined);
      set("cpuset", "cpuset.mems", cpu.mems || undefined);
    }
    if (memory) this.#applyMemory(memory, set);
    if (pids) set("pids", "pids.max", pids.limit > 0 ? pids.limit : "max");
    if (blockIO) {
      set("blkio", "blkio.weight", blockIO.weight || undefined);
      set("blkio", "blkio.leaf_weight", blockIO.leafWeight || undefined);
      for (const d of blockIO.weightDevice ?? []) set("blkio", "blkio.weight_device", d.weight === undefined ? undefined : `${d.major}:${d.minor} ${d.weight}`);
      const throttles: Array<[string, typeof blockIO.throttleReadBpsDevice]> = [
        ["blkio.throttle.read_bps_device", blockIO.throttleReadBpsDevice],
        ["blkio.throttle.write_bps_device", blockIO.throttleWriteBpsDevice],
        ["blkio.throttle.read_iops_device", blockIO.throttleReadIOPSDevice],
        ["blkio.throttle.write_iops_device", blockIO.throttleWriteIOPSDevice],
      ];
      for (const [file, list] of throttles) for (const d of list ?? []) set("blkio", file, `${d.major}:${d.minor} ${d.rate}`);
    }
    for (const h of hugepageLimits ?? []) set("hugetlb", `hugetlb.${h.pageSize}.limit_in_bytes`, h.limit);
    if (network?.classID !== undefined) set("net_cls", "net_cls.classid", network.classID);
    for (const p of network?.priorities ?? []) set("net_prio", "net_prio.ifpriomap", `${p.name} ${p.priority}`);
    if (resources.devices) this.#applyDevices(resources.devices);
    if (resources.unified && Object.keys(resources.unified).length > 0) {
      const dir = this.#layout.unified ? `${this.#layout.unified}${this.#path}` : undefined;
      if (!dir) throw new DokrustError("linux.resources.unified needs cgroup v2, and this host has none");
      for (const [file, value] of Object.entries(resources.unified)) writeCgroupFile(dir, file, value);
    }
  }

  #applyMemory(memory: NonNullable<Resources["memory"]>, set: (c: string, f: string, v: number | string | undefined) => void): void {
    set("memory", "memory.soft_limit_in_bytes", memory.reservation || undefined);
    const limit = memory.limit || undefined;
    const swap = memory.swap || undefined;
    // The kernel wants memory.limit <= memory.memsw.limit at all times,
    // so which of the two goes first depends on the direction of change.
    const dir = this.#dirs.get("memory");
    const hasSwap = dir !== undefined && existsSync(`${dir}/memory.memsw.limit_in_bytes`);
    if (swap !== undefined && !hasSwap) throw new DokrustError("memory swap limit: this kernel has no swap accounting (memory.memsw.limit_in_bytes)");
    if (swap !== undefined && limit !== undefined && dir) {
      const current = Number(readCgroupFile(dir, "memory.memsw.limit_in_bytes"));
      if (swap === -1 || swap > current) {
        set("memory", "memory.memsw.limit_in_bytes", swap);
        set("memory", "memory.limit_in_bytes", limit);
      } else {
        set("memory", "memory.limit_in_bytes", limit);
        set("memory", "memory.memsw.limit_in_bytes", swap);
      }
    } else {
      set("memory", "memory.limit_in_bytes", limit);
      set("memory", "memory.memsw.limit_in_bytes", swap);
    }
    set("memory", "memory.kmem.limit_in_bytes", memory.kernel || undefined);
    if (memory.swappiness !== undefined && memory.swappiness >= 0) set("memory", "memory.swappiness", memory.swappiness);
    if (memory.disableOOMKiller) set("memory", "memory.oom_control", 1);
  }

  #applyDevices(rules: readonly DeviceRule[]): void {
    const dir = this.#dirs.get("devices");
    if (!dir) return;
    for (const rule of rules) {
      const line = deviceRuleLine(rule);
      writeCgroupFile(dir, rule.allow ? "devices.allow" : "devices.deny", line);
    }
  }

  applyQuota(entries: readonly QuotaEntry[]): void {
    for (const entry of entries) {
      checkQuotaValue(entry);
      const dir = this.#dirs.get(entry.controller);
      if (!dir) {
        const known = [...this.#dirs.keys()].filter((c) => !c.startsWith("name=")).join(", ");
        throw new UsageError(`-q ${entry.controller}:${entry.file}: unknown cgroup controller ${entry.controller} (this host has ${known})`);
      }
      if (!entry.file.startsWith(`${entry.controller}.`) || !existsSync(`${dir}/${entry.file}`)) {
        throw new UsageError(`-q ${entry.controller}:${entry.file}: the ${entry.controller} controller has no file ${entry.file}`);
      }
      try {
        writeCgroupFile(dir, entry.file, entry.value);
      } catch (err) {
        throw new UsageError(`-q ${entry.controller}:${entry.file}:${entry.value}: ${(err as Error).message}`);
      }
    }
  }

  pids(): number[] {
    const dir = this.#dirs.get("pids") ?? this.#dirs.get("freezer") ?? this.#allDirs()[0];
    return dir ? readPids(`${dir}/cgroup.procs`) : [];
  }

  freeze(frozen: boolean): void {
    const dir = this.#dirs.get("freezer");
    if (!dir) throw new DokrustError("the freezer cgroup controller is not mounted on this host");
    const want = frozen ? "FROZEN" : "THAWED";
    writeCgroupFile(dir, "freezer.state", want);
    for (let i = 0; i < 1000; i++) {
      if (readCgroupFile(dir, "freezer.state").trim() === want) return;
      Bun.sleepSync(1);
    }
    throw new DokrustError(`freezer.state of ${dir} did not reach ${want}`);
  }

  destroy(): void {
    for (const dir of this.#allDirs().reverse()) removeTree(dir);
  }
}

/** "c 1:3 rwm" from a runtime-spec device rule. */
export function deviceRuleLine(rule: DeviceRule): string {
  const type = rule.type ?? "a";
  const major = rule.major === undefined || rule.major < 0 ? "*" : String(rule.major);
  const minor = rule.minor === undefined || rule.minor < 0 ? "*" : String(rule.minor);
  return type === "a" ? `a *:* ${rule.access ?? "rwm"}` : `${type} ${major}:${minor} ${rule.access ?? "rwm"}`;
}

/** A new cpuset cgroup starts with no cpus and mems; copy its parent's. */
function initCpuset(dir: string): void {
  const parent = dir.slice(0, dir.lastIndexOf("/"));
  for (const file of ["cpuset.cpus", "cpuset.mems"]) {
    if (readCgroupFile(dir, file).trim() === "") writeCgroupFile(dir, file, readCgroupFile(parent, file).trim());
  }
}

/** Remove a cgroup and any child cgroups the container made inside it. */
function removeTree(dir: string): void {
  let entries: string[];
  try {
    entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return;
  }
  for (const child of entries) removeTree(`${dir}/${child}`);
  removeCgroupDir(dir);
}

