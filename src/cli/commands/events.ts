/**
 * `events [--stats] [--interval DURATION] ID`: the container's resource
 * usage as JSON lines, as runc prints them:
 *
 *   {"type":"stats","id":"ID","data":{"cpu":{...},"memory":{...},"pids":{...},...}}
 *   {"type":"oom","id":"ID"}
 *
 * With --stats one stats record and done; otherwise a stats record every
 * interval (default 5s) and an oom record whenever the kernel OOM-killed
 * a process of the container (polled from the cgroup's OOM kill count),
 * until the container stops.
 */
import { cgroupStats, oomKills, statsJson } from "../../cgroups/stats.ts";
import { DokrustError, UsageError } from "../../errors.ts";
import { loadState, statusOf } from "../../runtime/state.ts";
import { oneId, parseCommand, type Globals } from "./common.ts";

const UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A Go duration ("5s", "100ms", "1m30s") in milliseconds. */
export function parseDuration(text: string): number {
  let ms = 0;
  let rest = text;
  if (rest === "0") return 0;
  while (rest.length) {
    const m = /^(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/.exec(rest);
    if (!m) throw new UsageError(`events --interval: ${JSON.stringify(text)} is not a duration such as 5s or 500ms`);
    ms += Number(m[1]) * UNITS[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  if (!text.length) throw new UsageError("events --interval: empty duration");
  return ms;
}

/** How often the OOM kill count is looked at between stats records. */
const OOM_POLL_MS = 100;

function line(record: Record<string, unknown>): void {
  process.stdout.write(`${statsJson(record)}\n`);
}

export async function run(args: string[], globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("events", args, {
    stats: { type: "boolean" },
    interval: { type: "string" },
  });
  const id = oneId("events", positionals);
  const interval = parseDuration(values.interval ?? "5s");
  if (interval <= 0) throw new UsageError("events --interval: must be greater than 0");
  const state = loadState(globals.root, id);
  if (statusOf(globals.root, state) === "stopped") throw new DokrustError(`container with id ${id} is not running`);
  const stats = () => line({ type: "stats", id, data: cgroupStats(state.cgroupPath) });
  if (values.stats) {
    stats();
    return 0;
  }
  let kills = oomKills(state.cgroupPath) ?? 0;
  let next = Date.now();
  while (statusOf(globals.root, state) !== "stopped") {
    const now = oomKills(state.cgroupPath) ?? 0;
    if (now > kills) line({ type: "oom", id });
    kills = now;
    if (Date.now() >= next) {
      stats();
      next += interval;
    }
    await Bun.sleep(Math.max(1, Math.min(OOM_POLL_MS, next - Date.now())));
  }
  return 0;
}
