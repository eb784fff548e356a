/**
 * The dokrust face's commands for containers that outlive the command
 * that started them (`dokrust -d`):
 *
 *   list [--format table|json] [-q]     logs [-f] [--tail N] [-t] NAME
 *   exec [-i] [-t] [-d] [-e K=V] [-w DIR] [-u UID[:GID]] NAME CMD...
 *   attach NAME                         stop [-t SECONDS] NAME...
 *   kill [-s SIGNAL] NAME [SIGNAL]      rm [-f] NAME...
 *   wait NAME...
 *
 * list, kill and exec are the OCI face's commands (src/cli/commands/),
 * which take both syntaxes; this face runs them when the command word
 * comes first (runc's global options, such as --root, select runc's
 * face), on the state root $DOKRUST_ROOT (default /run/dokrust), and
 * reports errors as the dokrust face does: one line, exit status 125.
 * NAME is a name, an id, or an unambiguous prefix of an id.
 */
import { UsageError } from "../../errors.ts";
import type { Globals } from "../commands/common.ts";

type Command = { run(args: string[], globals: Globals, face?: "dokrust"): Promise<number> };

const COMMANDS: Record<string, () => Promise<Command>> = {
  list: () => import("../commands/list.ts"),
  kill: () => import("../commands/kill.ts"),
  exec: () => import("../commands/exec.ts"),
  logs: () => import("../commands/logs.ts"),
  attach: () => import("../commands/attach.ts"),
  stop: () => import("../commands/stop.ts"),
  rm: () => import("../commands/rm.ts"),
  wait: () => import("../commands/wait.ts"),
  internal: () => import("./internal.ts"),
};

/** Whether `word` names one of this face's container commands. */
export function isDetachedCommand(word: string | undefined): boolean {
  return word !== undefined && word in COMMANDS;
}

/** Run one of them; resolves to the exit status (errors are thrown). */
export async function runDetachedCommand(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  const load = name === undefined ? undefined : COMMANDS[name];
  if (!load) throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  if (process.getuid?.() !== 0) throw new UsageError(`dokrust ${name} must run as root (the containers' state is root's); try sudo`);
  // as src/runtime/run.ts stateRoot(), without loading what a start needs
  const root = process.env.DOKRUST_ROOT || "/run/dokrust";
  const globals: Globals = { root: root.replace(/\/+$/, "") || "/", logFormat: "text", debug: false };
  const mod = await load();
  return mod.run(args, globals, "dokrust");
}
