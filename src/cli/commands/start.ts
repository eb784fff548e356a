/** `start ID`: let a created container run its program. */
import { startContainer } from "../../runtime/container.ts";
import { oneId, parseCommand, type Globals } from "./common.ts";

export async function run(args: string[], globals: Globals): Promise<number> {
  const { positionals } = parseCommand("start", args, {});
  await startContainer(globals.root, oneId("start", positionals));
  return 0;
}
