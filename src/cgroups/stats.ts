/**
 * A container's resource usage read from its cgroup files, in the shape
 * of runc's `events` stats (runc's types/events.go: the field names, and
 * Go's omitempty, which leaves zero values out of some fields), so that
 * engines parsing runc's output can parse dokrust's.
 *
 * v1 (and hybrid): cpuacct, cpu, memory, pids, blkio, hugetlb files.
 * v2: cpu.stat, memory.{current,max,stat,swap.*}, pids.*, io.stat.
 * Files a host lacks are skipped, not errors.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { hostCgroupLayout, type CgroupLayout } from "./mounts.ts";

export interface MemoryEntry {
  limit: number;
  usage?: number;
  max?: number;
  failcnt: number;
}

export interface BlkioEntry {
  major?: number;
  minor?: number;
  op?: string;
  value?: number;
}

/** runc's types.Stats, less intel_rdt and network data dokrust does not gather. */
export interface Stats {
  cpu: {
    usage: { total?: number; percpu?: number[]; percpu_kernel?: number[]; percpu_user?: number[]; kernel: number; user: number };
    throttling: { periods?: number; throttled_periods?: number; throttled_time?: number };
  };
  memory: { cache?: number; usage?: MemoryEntry; swap?: MemoryEntry; kernel?: MemoryEntry; kernelTCP?: MemoryEntry; raw?: Record<string, number> };
  pids: { current?: number; limit?: number };
  blkio: { ioServiceBytesRecursive?: BlkioEntry[]; ioServicedRecursive?: BlkioEntry[] };
  hugetlb: Record<string, { usage?: number; max?: number; failcnt: number }>;
  intel_rdt: Record<string, never>;
  network_interfaces: null;
}

/**
 * What a v1 limit file shows for "no limit" (PAGE_COUNTER_MAX pages),
 * printed as runc prints it.  It is above 2^53, so it cannot be a JS
 * number: statsJson() writes this stand-in out as the exact digits.
 */
const UNLIMITED = 2 ** 63 - 4096;
const UNLIMITED_TEXT = "9223372036854771712";
/** v2's "max", which runc reports as the largest uint64; written out the same way. */
const MAX_U64 = 2 ** 64;
const MAX_U64_TEXT = "18446744073709551615";

function read(dir: string | undefined, file: string): string | undefined {
  if (!dir) return undefined;
  try {
    return readFileSync(`${dir}/${file}`, "utf8").trim();
  } catch {
    return undefined;
  }
}

function num(dir: string | undefined, file: string, max = UNLIMITED): number | undefined {
  const text = read(dir, file);
  if (text === undefined) return undefined;
  if (text === "max") return max;
  const n = Number(text);
  return Number.isFinite(n) ? n : undefined;
}

/** "key value" lines (memory.stat, cpu.stat, cpuacct.stat) → a map. */
export function keyValues(text: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of (text ?? "").split("\n")) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^-?\d+$/.test(value)) out[key] = Number(value);
  }
  return out;
}

const numbers = (text: string | undefined) => (text ? text.split(/\s+/).filter(Boolean).map(Number) : undefined);

/** T with every field optional and possibly undefined: what omitEmpty() takes. */
type Loose<T> = { [K in keyof T]?: T[K] | undefined };

/** Drop the keys whose value is undefined, 0, or an empty list (Go's omitempty). */
function omitEmpty<T extends object>(value: Loose<T>): T {
  return Object.fromEntries(
    Object.entries(value).filter(([, v]) => v !== undefined && v !== 0 && !(Array.isArray(v) && v.length === 0)),
  ) as T;
}

function memoryEntry(dir: string | undefined, prefix: string): MemoryEntry | undefined {
  const usage = num(dir, `${prefix}usage_in_bytes`);
  if (usage === undefined) return undefined;
  const entry: MemoryEntry = { limit: num(dir, `${prefix}limit_in_bytes`) ?? 0, failcnt: num(dir, `${prefix}failcnt`) ?? 0 };
  if (usage) entry.usage = usage;
  const max = num(dir, `${prefix}max_usage_in_bytes`);
  if (max) entry.max = max;
  return entry;
}

/** blkio "MAJ:MIN Op value" lines → entries (the Total lines are left out, as runc does). */
export function blkioEntries(text: string | undefined): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  for (const line of (text ?? "").split("\n")) {
    const m = /^(\d+):(\d+)\s+(\w+)\s+(\d+)$/.exec(line.trim());
    if (m) out.push(omitEmpty<BlkioEntry>({ major: Number(m[1]), minor: Number(m[2]), op: m[3]!, value: Number(m[4]) }));
  }
  return out;
}

function hugetlbV1(dir: string | undefined): Stats["hugetlb"] {
  const out: Stats["hugetlb"] = {};
  if (!dir || !existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    const m = /^hugetlb\.([^.]+)\.usage_in_bytes$/.exec(name);
    if (!m) continue;
    const size = m[1]!;
    out[size] = omitEmpty<Stats["hugetlb"][string]>({ usage: num(dir, name), max: num(dir, `hugetlb.${size}.max_usage_in_bytes`), failcnt: num(dir, `hugetlb.${size}.failcnt`) ?? 0 });
    out[size]!.failcnt ??= 0;
  }
  return out;
}

function emptyStats(): Stats {
  return { cpu: { usage: { kernel: 0, user: 0 }, throttling: {} }, memory: {}, pids: {}, blkio: {}, hugetlb: {}, intel_rdt: {}, network_interfaces: null };
}

/** USER_HZ: the unit of cpuacct.stat (100 on every Linux architecture). */
const NS_PER_TICK = 1e9 / 100;

function statsV1(layout: CgroupLayout, path: string): Stats {
  const dir = (controller: string) => {
    const h = layout.v1.find((x) => x.controllers.includes(controller));
    return h ? `${h.mount}${path}` : undefined;
  };
  const stats = emptyStats();
  const cpuacct = dir("cpuacct");
  const ticks = keyValues(read(cpuacct, "cpuacct.stat"));
  stats.cpu.usage = {
    ...omitEmpty<Stats["cpu"]["usage"]>({
      total: num(cpuacct, "cpuacct.usage"),
      percpu: numbers(read(cpuacct, "cpuacct.usage_percpu")),
      percpu_kernel: numbers(read(cpuacct, "cpuacct.usage_percpu_sys")),
      percpu_user: numbers(read(cpuacct, "cpuacct.usage_percpu_user")),
    }),
    kernel: (ticks.system ?? 0) * NS_PER_TICK,
    user: (ticks.user ?? 0) * NS_PER_TICK,
  };
  const cpu = keyValues(read(dir("cpu"), "cpu.stat"));
  stats.cpu.throttling = omitEmpty<Stats["cpu"]["throttling"]>({ periods: cpu.nr_periods, throttled_periods: cpu.nr_throttled, throttled_time: cpu.throttled_time });
  const memory = dir("memory");
  const raw = keyValues(read(memory, "memory.stat"));
  stats.memory = omitEmpty<Stats["memory"]>({
    cache: raw.cache,
    usage: memoryEntry(memory, "memory."),
    swap: memoryEntry(memory, "memory.memsw."),
    kernel: memoryEntry(memory, "memory.kmem."),
    kernelTCP: memoryEntry(memory, "memory.kmem.tcp."),
    raw: Object.keys(raw).length ? raw : undefined,
  });
  const pids = dir("pids");
  const limit = num(pids, "pids.max");
  stats.pids = omitEmpty<Stats["pids"]>({ current: num(pids, "pids.current"), limit: limit === UNLIMITED ? undefined : limit });
  const blkio = dir("blkio");
  const pick = (a: string, b: string) => (read(blkio, a) ? read(blkio, a) : read(blkio, b));
  stats.blkio = omitEmpty<Stats["blkio"]>({
    ioServiceBytesRecursive: blkioEntries(pick("blkio.io_service_bytes_recursive", "blkio.throttle.io_service_bytes_recursive")),
    ioServicedRecursive: blkioEntries(pick("blkio.io_serviced_recursive", "blkio.throttle.io_serviced_recursive")),
  });
  stats.hugetlb = hugetlbV1(dir("hugetlb"));
  return stats;
}

/** io.stat "MAJ:MIN rbytes=N wbytes=N rios=N wios=N ..." → runc's blkio entries. */
export function ioStatEntries(text: string | undefined): Pick<Stats["blkio"], "ioServiceBytesRecursive" | "ioServicedRecursive"> {
  const bytes: BlkioEntry[] = [];
  const ios: BlkioEntry[] = [];
  for (const line of (text ?? "").split("\n")) {
    const [dev, ...fields] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? "");
    if (!m) continue;
    const kv = Object.fromEntries(fields.map((f) => f.split("=")).map(([k, v]) => [k, Number(v)]));
    const entry = (op: string, value: number | undefined) => omitEmpty<BlkioEntry>({ major: Number(m[1]), minor: Number(m[2]), op, value });
    bytes.push(entry("Read", kv.rbytes), entry("Write", kv.wbytes));
    ios.push(entry("Read", kv.rios), entry("Write", kv.wios));
  }
  return omitEmpty<Stats["blkio"]>({ ioServiceBytesRecursive: bytes, ioServicedRecursive: ios });
}

function statsV2(dir: string): Stats {
  const stats = emptyStats();
  const cpu = keyValues(read(dir, "cpu.stat"));
  stats.cpu.usage = { ...omitEmpty<Stats["cpu"]["usage"]>({ total: (cpu.usage_usec ?? 0) * 1000 }), kernel: (cpu.system_usec ?? 0) * 1000, user: (cpu.user_usec ?? 0) * 1000 };
  stats.cpu.throttling = omitEmpty<Stats["cpu"]["throttling"]>({ periods: cpu.nr_periods, throttled_periods: cpu.nr_throttled, throttled_time: (cpu.throttled_usec ?? 0) * 1000 });
  const raw = keyValues(read(dir, "memory.stat"));
  const usage = num(dir, "memory.current");
  const swapUsage = num(dir, "memory.swap.current");
  const entry = (value: number | undefined, limit: number | undefined): MemoryEntry | undefined =>
    value === undefined ? undefined : { ...omitEmpty<MemoryEntry>({ usage: value }), limit: limit ?? MAX_U64, failcnt: 0 };
  stats.memory = omitEmpty<Stats["memory"]>({
    cache: raw.file,
    usage: entry(usage, num(dir, "memory.max", MAX_U64)),
    // runc reports v2 swap as memory plus swap, as v1's memsw counts it.
    swap: entry(swapUsage === undefined ? undefined : swapUsage + (usage ?? 0), num(dir, "memory.swap.max", MAX_U64)),
    raw: Object.keys(raw).length ? raw : undefined,
  });
  const limit = num(dir, "pids.max");
  stats.pids = omitEmpty<Stats["pids"]>({ current: num(dir, "pids.current"), limit: limit === UNLIMITED ? undefined : limit });
  stats.blkio = ioStatEntries(read(dir, "io.stat"));
  return stats;
}

/** A record holding stats as one JSON line, with the "no limit" value written exactly. */
export function statsJson(record: unknown): string {
  return JSON.stringify(record)
    .replace(/(?<=[:,[])9223372036854772000(?=[,}\]])/g, UNLIMITED_TEXT)
    .replace(/(?<=[:,[])18446744073709552000(?=[,}\]])/g, MAX_U64_TEXT);
}

/** The stats of the cgroup at `path` (relative to each hierarchy's root). */
export function cgroupStats(path: string, layout: CgroupLayout = hostCgroupLayout()): Stats {
  return layout.mode === "v2" ? statsV2(`${layout.unified}${path}`) : statsV1(layout, path);
}

/**
 * The number of OOM kills the cgroup has seen (v1 memory.oom_control's
 * oom_kill, kernel 4.13 and later; v2 memory.events), or undefined.
 */
export function oomKills(path: string, layout: CgroupLayout = hostCgroupLayout()): number | undefined {
  if (layout.mode === "v2") return keyValues(read(`${layout.unified}${path}`, "memory.events")).oom_kill;
  const h = layout.v1.find((x) => x.controllers.includes("memory"));
  return h ? keyValues(read(`${h.mount}${path}`, "memory.oom_control")).oom_kill : undefined;
}
