/**
 * `update [--resources FILE|- | flags] ID`: change a container's cgroup
 * limits while it runs, and remember them in its state, as runc does.
 *
 *   -r, --resources FILE    linux.resources JSON (FILE or - for stdin);
 *                           the flags are then ignored, as in runc
 *   --memory, --memory-reservation, --memory-swap   bytes or 10m/1g; -1: no limit
 *   --cpu-shares (--cpu-share), --cpu-quota, --cpu-period,
 *   --cpu-rt-period, --cpu-rt-runtime, --cpuset-cpus, --cpuset-mems,
 *   --blkio-weight, --pids-limit
 *
 * A zero or empty value leaves the setting as it is (runc's rule).
 */
import { readFileSync } from "node:fs";
import { DokrustError, UsageError } from "../../errors.ts";
import { updateResources } from "../../runtime/update.ts";
import type { Resources } from "../../spec/types.ts";
import { oneId, parseCommand, type Globals } from "./common.ts";

const UPDATE_OPTIONS = {
  resources: { type: "string", short: "r" },
  memory: { type: "string" },
  "memory-reservation": { type: "string" },
  "memory-swap": { type: "string" },
  "kernel-memory": { type: "string" },
  "kernel-memory-tcp": { type: "string" },
  "cpu-share": { type: "string" },
  "cpu-shares": { type: "string" },
  "cpu-quota": { type: "string" },
  "cpu-period": { type: "string" },
  "cpu-rt-period": { type: "string" },
  "cpu-rt-runtime": { type: "string" },
  "cpuset-cpus": { type: "string" },
  "cpuset-mems": { type: "string" },
  "cpu-idle": { type: "string" },
  "blkio-weight": { type: "string" },
  "pids-limit": { type: "string" },
  "l3-cache-schema": { type: "string" },
  "mem-bw-schema": { type: "string" },
} as const;

type Values = ReturnType<typeof parseCommand<typeof UPDATE_OPTIONS>>["values"];

const SIZE_UNITS: Record<string, number> = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 };

/** A byte count as docker's RAMInBytes reads it: "1024", "10m", "1.5GiB"; -1 means no limit. */
export function parseBytes(name: string, text: string): number {
  if (text === "-1") return -1;
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`update --${name}: ${JSON.stringify(text)} is not a size (bytes, or a number with k, m, g, t, p)`);
  return Math.floor(Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]!);
}

function integer(name: string, text: string): number {
  if (!/^-?\d+$/.test(text)) throw new UsageError(`update --${name}: ${JSON.stringify(text)} is not an integer`);
  return Number(text);
}

/** Drop undefined, zero and empty values: runc leaves those settings alone. */
function given<T extends object>(value: { [K in keyof T]?: T[K] | undefined }): T | undefined {
  const kept = Object.entries(value).filter(([, v]) => v !== undefined && v !== 0 && v !== "");
  return kept.length ? (Object.fromEntries(kept) as T) : undefined;
}

/** The resources the flags ask for. */
export function resourcesFromFlags(values: Values): Resources {
  const bytes = (name: "memory" | "memory-reservation" | "memory-swap" | "kernel-memory" | "kernel-memory-tcp") =>
    values[name] === undefined ? undefined : parseBytes(name, values[name]);
  const int = (name: keyof Values) => {
    const v = values[name];
    return typeof v === "string" ? integer(name, v) : undefined;
  };
  for (const unsupported of ["l3-cache-schema", "mem-bw-schema", "cpu-idle"] as const) {
    if (values[unsupported] !== undefined) throw new UsageError(`update --${unsupported}: not supported by dokrust`);
  }
  const out: Resources = {};
  const memory = given<NonNullable<Resources["memory"]>>({ limit: bytes("memory"), reservation: bytes("memory-reservation"), swap: bytes("memory-swap"), kernel: bytes("kernel-memory"), kernelTCP: bytes("kernel-memory-tcp") });
  const cpu = given<NonNullable<Resources["cpu"]>>({
    shares: int("cpu-shares") ?? int("cpu-share"),
    quota: int("cpu-quota"),
    period: int("cpu-period"),
    realtimePeriod: int("cpu-rt-period"),
    realtimeRuntime: int("cpu-rt-runtime"),
    cpus: values["cpuset-cpus"],
    mems: values["cpuset-mems"],
  });
  const weight = int("blkio-weight");
  const pids = int("pids-limit");
  if (memory) out.memory = memory;
  if (cpu) out.cpu = cpu;
  if (weight) out.blockIO = { weight };
  if (pids) out.pids = { limit: pids };
  return out;
}

/** The resources of a --resources file (or stdin), zero values dropped. */
function resourcesFromFile(file: string): Resources {
  let data: Resources;
  try {
    data = JSON.parse(file === "-" ? readFileSync(0, "utf8") : readFileSync(file, "utf8")) as Resources;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new UsageError(`update --resources ${file}: ${e.code ?? e.message}`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) throw new UsageError(`update --resources ${file}: not a JSON object`);
  const out: Resources = { ...data };
  for (const key of ["memory", "cpu", "blockIO"] as const) {
    const section = data[key] && given<Record<string, unknown>>(data[key] as Record<string, unknown>);
    if (section) (out as Record<string, unknown>)[key] = section;
    else delete out[key];
  }
  if (!data.pids?.limit) delete out.pids;
  return out;
}

export async function run(args: string[], globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("update", args, UPDATE_OPTIONS);
  const id = oneId("update", positionals);
  const changes = values.resources ? resourcesFromFile(values.resources) : resourcesFromFlags(values);
  if (Object.keys(changes).length === 0) throw new DokrustError("update: nothing to change (give --resources or a limit)");
  await updateResources(globals.root, id, changes);
  return 0;
}
