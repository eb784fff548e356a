/**
 * `dokrust list` on the dokrust face: name, id, state, pid, created,
 * command, one container a line (docker ps -a's view); `--format json`
 * gives the same as objects, with the exit code and time once exited.
 */
import { allStates } from "../../runtime/dokrust-state.ts";
import { readExit } from "../../runtime/monitor.ts";
import { containerDir, statusOf, type StoredState } from "../../runtime/state.ts";

/** One container as the dokrust face lists it. */
export interface ListEntry {
  name: string;
  id: string;
  /** running, paused, created, creating, exited (status: the OCI status). */
  state: string;
  status: string;
  pid: number;
  created: string;
  command: string[];
  exitCode?: number;
  finishedAt?: string;
}

function entry(root: string, s: StoredState): ListEntry {
  const status = s.pid === 0 ? "creating" : statusOf(root, s);
  const exit = status === "stopped" ? readExit(containerDir(root, s.id)) : undefined;
  const out: ListEntry = {
    name: s.dokrust?.name ?? "",
    id: s.id,
    state: status === "stopped" ? "exited" : status,
    status,
    pid: status === "stopped" ? 0 : s.pid,
    created: s.created,
    command: s.dokrust?.command ?? s.config.process?.args ?? [],
  };
  if (exit) {
    out.exitCode = exit.exitCode;
    out.finishedAt = exit.finishedAt;
  }
  return out;
}

/** Every container under the root, oldest first. */
export function listEntries(root: string): ListEntry[] {
  return allStates(root)
    .map((s) => entry(root, s))
    .sort((a, b) => a.created.localeCompare(b.created));
}

function shortCommand(args: readonly string[]): string {
  const text = args.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(" ");
  return text.length > 40 ? `${text.slice(0, 39)}…` : text;
}

/** The table's rows (header first). */
export function listRows(entries: readonly ListEntry[]): string[][] {
  return [
    ["NAME", "ID", "STATE", "PID", "CREATED", "COMMAND"],
    ...entries.map((e) => [
      e.name || "-",
      e.id.length === 64 ? e.id.slice(0, 12) : e.id,
      e.exitCode === undefined ? e.state : `${e.state} (${e.exitCode})`,
      String(e.pid),
      e.created.replace(/\.\d+Z$/, "Z"),
      shortCommand(e.command),
    ]),
  ];
}
