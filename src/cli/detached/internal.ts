/**
 * `dokrust internal cleanup --root ROOT ID`: the exit command the
 * monitor runs once a detached container has ended (removes its cgroup,
 * and with --rm the container).  Not for users; not in the help.
 */
import { UsageError } from "../../errors.ts";
import { cleanupContainer } from "../../runtime/lifecycle.ts";
import { checkId } from "../../runtime/state.ts";
import { parseCommand, type Globals } from "../commands/common.ts";

export async function run(args: string[], globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("internal", args, { root: { type: "string" } });
  const [what, id, ...rest] = positionals;
  if (what !== "cleanup" || !id || rest.length) throw new UsageError("usage: dokrust internal cleanup --root ROOT ID");
  await cleanupContainer(values.root ?? globals.root, checkId(id));
  return 0;
}
