/** `stop [-t SECONDS] NAME...`: SIGTERM, then SIGKILL after the grace period (default 10 s). */
import { UsageError } from "../../errors.ts";
import { resolveRef } from "../../runtime/dokrust-state.ts";
import { stopContainer } from "../../runtime/lifecycle.ts";
import { intOption, parseCommand, type Globals } from "./common.ts";

export async function run(args: string[], globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("stop", args, { time: { type: "string", short: "t" } });
  if (positionals.length === 0) throw new UsageError("stop: a container name or id is required");
  const seconds = intOption("time", values.time, 10);
  const ids = positionals.map((ref) => resolveRef(globals.root, ref));
  await Promise.all(ids.map((id) => stopContainer(globals.root, id, seconds)));
  process.stdout.write(positionals.map((ref) => `${ref}\n`).join(""));
  return 0;
}
