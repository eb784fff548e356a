/** `delete [--force] ID`: remove a stopped (or, forced, any) container. */
import { deleteContainer } from "../../runtime/container.ts";
import { oneId, parseCommand, type Globals } from "./common.ts";

export async function run(args: string[], globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("delete", args, { force: { type: "boolean", short: "f" } });
  await deleteContainer(globals.root, oneId("delete", positionals), values.force ?? false);
  return 0;
}
