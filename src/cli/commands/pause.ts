/** `pause ID`: freeze every process of a running container. */
import { setPaused } from "../../runtime/container.ts";
import { oneId, parseCommand, type Globals } from "./common.ts";

export async function run(args: string[], globals: Globals): Promise<number> {
  const { positionals } = parseCommand("pause", args, {});
  await setPaused(globals.root, oneId("pause", positionals), true);
  return 0;
}
