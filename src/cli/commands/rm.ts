/** `rm [-f] NAME...`: remove stopped containers (-f: kill running ones first). */
import { UsageError } from "../../errors.ts";
import { resolveRef } from "../../runtime/dokrust-state.ts";
import { removeContainer } from "../../runtime/lifecycle.ts";
import { parseCommand, type Globals } from "./common.ts";

export async function run(args: string[], globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("rm", args, { force: { type: "boolean", short: "f" } });
  if (positionals.length === 0) throw new UsageError("rm: a container name or id is required");
  // every name is checked before anything is removed
  const ids = positionals.map((ref) => resolveRef(globals.root, ref));
  for (const [i, id] of ids.entries()) {
    await removeContainer(globals.root, id, values.force ?? false);
    process.stdout.write(`${positionals[i]}\n`);
  }
  return 0;
}
