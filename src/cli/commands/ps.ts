/**
 * `ps [--format table|json] ID [-- PS-ARGS]`: the container's processes.
 * The table is `ps -ef` (or the given ps arguments) filtered to the pids
 * in the container's cgroup, as runc does it.
 */
import { cgroupManager } from "../../cgroups/manager.ts";
import { DokrustError, UsageError } from "../../errors.ts";
import { loadState, statusOf } from "../../runtime/state.ts";
import { parseCommand, type Globals } from "./common.ts";

/** Keep the header and the lines whose PID column is one of `pids`. */
export function filterPs(output: string, pids: ReadonlySet<number>): string {
  const lines = output.split("\n").filter(Boolean);
  const column = lines[0]?.trim().split(/\s+/).indexOf("PID") ?? -1;
  if (column < 0) throw new DokrustError("ps: its output has no PID column");
  const keep = lines.slice(1).filter((l) => pids.has(Number(l.trim().split(/\s+/)[column])));
  return [lines[0]!, ...keep].map((l) => `${l}\n`).join("");
}

export async function run(args: string[], globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("ps", args, { format: { type: "string", short: "f" } });
  const [id, ...psArgs] = positionals;
  if (!id) throw new UsageError("ps: a container id is required");
  const format = values.format ?? "table";
  if (format !== "table" && format !== "json") throw new UsageError(`ps --format: ${JSON.stringify(format)} is not table or json`);
  const state = loadState(globals.root, id);
  const pids = statusOf(globals.root, state) === "stopped" ? [] : cgroupManager(state.cgroupPath).pids();
  if (format === "json") {
    process.stdout.write(`${JSON.stringify(pids)}\n`);
    return 0;
  }
  const ps = Bun.spawnSync(["ps", ...(psArgs.length ? psArgs : ["-ef"])], { stdout: "pipe", stderr: "pipe" });
  if (ps.exitCode !== 0) throw new DokrustError(`ps ${psArgs.join(" ")}: ${ps.stderr.toString().trim() || `status ${ps.exitCode}`}`);
  process.stdout.write(filterPs(ps.stdout.toString(), new Set(pids)));
  return 0;
}
