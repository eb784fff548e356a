/** `kill [--all] ID [SIGNAL]`: SIGTERM unless told; names with or without SIG, or numbers. */
import { killContainer } from "../../runtime/container.ts";
import { parseSignal } from "../../runtime/signals.ts";
import { oneId, parseCommand, type Globals } from "./common.ts";

export async function run(args: string[], globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("kill", args, { all: { type: "boolean", short: "a" } });
  const id = oneId("kill", positionals, 1);
  const signal = parseSignal(positionals[1] ?? "SIGTERM");
  await killContainer(globals.root, id, signal, values.all ?? false);
  return 0;
}
