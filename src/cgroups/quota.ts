/**
 * The original tool's quota syntax, `controller:file:value`, several
 * joined by `::` (cpu:cpu.cfs_quota_us:50000::pids:pids.max:20), and its
 * translation to cgroup v2 files for hosts that have no v1 hierarchies.
 */
import { UsageError } from "../errors.ts";

export interface QuotaEntry {
  controller: string;
  file: string;
  value: string;
}

const FILE_NAME = /^[a-z0-9_]+\.[a-z0-9_.]+$/;

/** Parse a -q SPEC (one or several entries joined by "::"). */
export function parseQuota(spec: string): QuotaEntry[] {
  return spec.split("::").map((part) => {
    const fields = part.split(":");
    if (fields.length !== 3 || fields.some((f) => f === "")) {
      throw new UsageError(`-q ${JSON.stringify(part)}: expected controller:file:value`);
    }
    const [controller, file, value] = fields as [string, string, string];
    if (!/^[a-z_]+$/.test(controller)) throw new UsageError(`-q ${part}: bad controller name ${JSON.stringify(controller)}`);
    if (!FILE_NAME.test(file)) throw new UsageError(`-q ${part}: bad file name ${JSON.stringify(file)}`);
    if (/[\n\0]/.test(value)) throw new UsageError(`-q ${part}: the value holds a newline or NUL`);
    return { controller, file, value };
  });
}

/** v1 files whose value must be an integer (possibly -1). */
const NUMERIC_V1 = new Set([
  "cpu.shares",
  "cpu.cfs_quota_us",
  "cpu.cfs_period_us",
  "cpu.rt_runtime_us",
  "cpu.rt_period_us",
  "memory.limit_in_bytes",
  "memory.soft_limit_in_bytes",
  "memory.memsw.limit_in_bytes",
  "memory.swappiness",
  "memory.oom_control",
  "blkio.weight",
  "net_cls.classid",
]);

/** Check that a value fits its file, before anything starts. */
export function checkQuotaValue(entry: QuotaEntry): void {
  const numeric = NUMERIC_V1.has(entry.file) || entry.file === "pids.max";
  if (!numeric) return;
  if (entry.file === "pids.max" && entry.value === "max") return;
  // The kernel's memory files take k, m and g suffixes as well.
  const pattern = entry.file.startsWith("memory.") && entry.file.endsWith("_in_bytes") ? /^(-1|\d+[kmg]?)$/i : /^-?\d+$/;
  if (!pattern.test(entry.value)) {
    throw new UsageError(`-q ${entry.controller}:${entry.file}:${entry.value}: ${entry.file} takes a number, not ${JSON.stringify(entry.value)}`);
  }
}

/** The controllers the kernel's cgroup v2 files belong to. */
export const V2_CONTROLLERS = new Set(["cpu", "cpuset", "memory", "pids", "io", "hugetlb", "rdma", "misc"]);

/** Convert cpu.shares (2..262144) to cpu.weight (1..10000), as runc does. */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 100;
  return Math.round(1 + ((shares - 2) * 9999) / 262142);
}

function limit(value: string): string {
  return Number(value) < 0 ? "max" : value;
}

/**
 * Translate v1 quota entries for a v2 host: [file, value] pairs to write
 * in the container's cgroup.  v2 file names are taken as they are.
 */
export function translateToV2(entries: readonly QuotaEntry[]): Array<[string, string]> {
  const out = new Map<string, string>();
  const quota = entries.find((e) => e.file === "cpu.cfs_quota_us")?.value;
  const period = entries.find((e) => e.file === "cpu.cfs_period_us")?.value;
  const memLimit = entries.find((e) => e.file === "memory.limit_in_bytes")?.value;
  for (const e of entries) {
    checkQuotaValue(e);
    switch (e.file) {
      case "cpu.cfs_quota_us":
      case "cpu.cfs_period_us":
        out.set("cpu.max", `${quota === undefined ? "max" : limit(quota)} ${period ?? "100000"}`);
        break;
      case "cpu.shares":
        out.set("cpu.weight", String(sharesToWeight(Number(e.value))));
        break;
      case "memory.limit_in_bytes":
        out.set("memory.max", limit(e.value));
        break;
      case "memory.soft_limit_in_bytes":
        out.set("memory.low", limit(e.value));
        break;
      case "memory.memsw.limit_in_bytes": {
        if (Number(e.value) < 0) out.set("memory.swap.max", "max");
        else if (memLimit === undefined || Number(memLimit) < 0) {
          throw new UsageError(`-q memory:memory.memsw.limit_in_bytes needs memory.limit_in_bytes too on a cgroup v2 host`);
        } else out.set("memory.swap.max", String(Number(e.value) - Number(memLimit)));
        break;
      }
      case "cpuset.cpus":
      case "cpuset.mems":
      case "pids.max":
        out.set(e.file, e.value);
        break;
      default: {
        const prefix = e.file.split(".")[0]!;
        if (!V2_CONTROLLERS.has(prefix) || e.file.includes("_in_bytes") || e.file.endsWith("_us")) {
          throw new UsageError(`-q ${e.controller}:${e.file}: no cgroup v2 equivalent for ${e.file}`);
        }
        out.set(e.file, e.value);
      }
    }
  }
  return [...out];
}
