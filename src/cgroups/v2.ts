/**
 * cgroup v2: a single directory; controllers are enabled for it through
 * every ancestor's cgroup.subtree_control, and v1-style resources are
 * translated to v2 files the way runc translates them.
 */
import { existsSync, readdirSync } from "node:fs";
import { DokrustError, UsageError } from "../errors.ts";
import { installDeviceProgram } from "../native/bpf.ts";
import type { Resources, ThrottleDevice } from "../spec/types.ts";
import { compileDeviceRules, encodeProgram } from "./devices-bpf.ts";
import type { CgroupManager } from "./manager.ts";
import { makeDirs, readCgroupFile, readPids, removeCgroupDir, writeCgroupFile } from "./manager.ts";
import { sharesToWeight, translateToV2, V2_CONTROLLERS, type QuotaEntry } from "./quota.ts";

export class V2Manager implements CgroupManager {
  readonly #mount: string;
  readonly #dir: string;

  constructor(mount: string, path: string) {
    this.#mount = mount;
    this.#dir = `${mount}${path}`;
  }

  get procsFiles(): string[] {
    return [`${this.#dir}/cgroup.procs`];
  }

  get joinFiles(): string[] {
    return this.procsFiles;
  }

  get dir(): string {
    return this.#dir;
  }

  create(): void {
    const available = readCgroupFile(this.#mount, "cgroup.controllers").split(/\s+/).filter(Boolean);
    makeDirs(this.#dir);
    // Enable every available controller down to the container's parent.
    const want = available.map((c) => `+${c}`).join(" ");
    if (!want) return;
    const parts = this.#dir.slice(this.#mount.length).split("/").filter(Boolean);
    let dir = this.#mount;
    for (const part of parts) {
      const enabled = readCgroupFile(dir, "cgroup.subtree_control").trim();
      if (enabled.split(" ").length < available.length) writeCgroupFile(dir, "cgroup.subtree_control", want);
      dir = `${dir}/${part}`;
    }
  }

  exists(): boolean {
    return existsSync(this.#dir);
  }

  #set(file: string, value: string | number | undefined): void {
    if (value === undefined) return;
    writeCgroupFile(this.#dir, file, String(value));
  }

  apply(resources: Resources | undefined): void {
    if (!resources) return;
    const { cpu, memory, pids, blockIO, hugepageLimits } = resources;
    if (cpu) {
      if (cpu.shares) this.#set("cpu.weight", sharesToWeight(cpu.shares));
      if (cpu.quota || cpu.period) {
        const quota = cpu.quota === undefined || cpu.quota <= 0 ? "max" : String(cpu.quota);
        this.#set("cpu.max", `${quota} ${cpu.period || 100000}`);
      }
      if (cpu.idle !== undefined) this.#set("cpu.idle", cpu.idle);
      if (cpu.realtimeRuntime || cpu.realtimePeriod) throw new DokrustError("cgroup v2 has no realtime cpu limits (cpu.realtimeRuntime/Period)");
      this.#set("cpuset.cpus", cpu.cpus || undefined);
      this.#set("cpuset.mems", cpu.mems || undefined);
    }
    if (memory) {
      const max = (v: number | undefined) => (v === undefined || v === 0 ? undefined : v < 0 ? "max" : v);
      this.#set("memory.low", max(memory.reservation));
      this.#set("memory.max", max(memory.limit));
      if (memory.swap !== undefined && memory.swap !== 0) {
        // v1 counts memory+swap; v2 counts swap alone.
        const swap = memory.swap < 0 ? "max" : memory.limit && memory.limit > 0 ? memory.swap - memory.limit : memory.swap;
        this.#set("memory.swap.max", swap);
      }
      if (memory.disableOOMKiller) throw new DokrustError("cgroup v2 cannot disable the OOM killer (memory.disableOOMKiller)");
    }
    if (pids) this.#set("pids.max", pids.limit > 0 ? pids.limit : "max");
    if (blockIO?.weight) this.#set("io.weight", `default ${blockIO.weight}`);
    const io: Array<[string, ThrottleDevice[] | undefined]> = [
      ["rbps", blockIO?.throttleReadBpsDevice],
      ["wbps", blockIO?.throttleWriteBpsDevice],
      ["riops", blockIO?.throttleReadIOPSDevice],
      ["wiops", blockIO?.throttleWriteIOPSDevice],
    ];
    for (const [key, list] of io) for (const d of list ?? []) this.#set("io.max", `${d.major}:${d.minor} ${key}=${d.rate}`);
    for (const h of hugepageLimits ?? []) this.#set(`hugetlb.${h.pageSize}.max`, h.limit);
    // v2 has no devices.allow/deny: a BPF program on the cgroup decides.
    if (resources.devices) installDeviceProgram(encodeProgram(compileDeviceRules(resources.devices)), this.#dir);
    for (const [file, value] of Object.entries(resources.unified ?? {})) {
      if (file.includes("/")) throw new DokrustError(`linux.resources.unified: bad file name ${file}`);
      this.#set(file, value);
    }
  }

  applyQuota(entries: readonly QuotaEntry[]): void {
    for (const e of entries) {
      if (!V2_CONTROLLERS.has(e.controller)) {
        throw new UsageError(`-q ${e.controller}:${e.file}: unknown cgroup controller ${e.controller}`);
      }
    }
    for (const [file, value] of translateToV2(entries)) {
      if (!existsSync(`${this.#dir}/${file}`)) throw new UsageError(`-q: this host's cgroup v2 has no file ${file}`);
      this.#set(file, value);
    }
  }

  pids(): number[] {
    return readPids(`${this.#dir}/cgroup.procs`);
  }

  freeze(frozen: boolean): void {
    this.#set("cgroup.freeze", frozen ? 1 : 0);
    for (let i = 0; i < 1000; i++) {
      const events = readCgroupFile(this.#dir, "cgroup.events");
      if (events.includes(`frozen ${frozen ? 1 : 0}`)) return;
      Bun.sleepSync(1);
    }
    throw new DokrustError(`cgroup ${this.#dir} did not become ${frozen ? "frozen" : "thawed"}`);
  }

  destroy(): void {
    removeTree(this.#dir);
  }
}

function removeTree(dir: string): void {
  let children: string[] = [];
  try {
    children = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return;
  }
  for (const child of children) removeTree(`${dir}/${child}`);
  // cgroup.kill (5.14+) ends every process at once; older kernels get
  // the kill loop in removeCgroupDir.
  if (existsSync(`${dir}/cgroup.kill`) && readPids(`${dir}/cgroup.procs`).length > 0) {
    try {
      writeCgroupFile(dir, "cgroup.kill", "1");
    } catch {
      // fall through to the kill loop
    }
  }
  removeCgroupDir(dir);
}
