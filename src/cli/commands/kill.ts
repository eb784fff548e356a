/**
 * `kill [-a|--all] [-s SIGNAL] ID [SIGNAL]`: runc's syntax (the signal
 * after the id) and docker's (-s) in one command.  SIGTERM unless told
 * (runc's default; docker's would be SIGKILL); names with or without
 * SIG, or numbers.  ID may be a name or an unambiguous id prefix too.
 */
import { UsageError } from "../../errors.ts";
import { killContainer } from "../../runtime/container.ts";
import { resolveRef } from "../../runtime/dokrust-state.ts";
import { parseSignal } from "../../runtime/signals.ts";
import { oneId, parseCommand, type Globals } from "./common.ts";

export async function run(args: string[], globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("kill", args, {
    all: { type: "boolean", short: "a" },
    signal: { type: "string", short: "s" },
  });
  const ref = oneId("kill", positionals, 1);
  if (values.signal !== undefined && positionals[1] !== undefined) throw new UsageError("kill: give the signal once: -s SIGNAL or after the id");
  const signal = parseSignal(values.signal ?? positionals[1] ?? "SIGTERM");
  await killContainer(globals.root, resolveRef(globals.root, ref), signal, values.all ?? false);
  return 0;
}
