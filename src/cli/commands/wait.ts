/** `wait NAME...`: block until each container has exited; print its exit code. */
import { UsageError } from "../../errors.ts";
import { resolveRef } from "../../runtime/dokrust-state.ts";
import { waitContainer } from "../../runtime/lifecycle.ts";
import { parseCommand, type Globals } from "./common.ts";

export async function run(args: string[], globals: Globals): Promise<number> {
  const { positionals } = parseCommand("wait", args, {});
  if (positionals.length === 0) throw new UsageError("wait: a container name or id is required");
  const ids = positionals.map((ref) => resolveRef(globals.root, ref));
  for (const id of ids) process.stdout.write(`${await waitContainer(globals.root, id)}\n`);
  return 0;
}
