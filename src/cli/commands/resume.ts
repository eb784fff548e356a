/** `resume ID`: thaw a paused container. */
import { setPaused } from "../../runtime/container.ts";
import { oneId, parseCommand, type Globals } from "./common.ts";

export async function run(args: string[], globals: Globals): Promise<number> {
  const { positionals } = parseCommand("resume", args, {});
  await setPaused(globals.root, oneId("resume", positionals), false);
  return 0;
}
