/** `state ID`: the runtime-spec state of a container, as runc prints it. */
import { loadState, ociState } from "../../runtime/state.ts";
import { oneId, parseCommand, type Globals } from "./common.ts";

export async function run(args: string[], globals: Globals): Promise<number> {
  const { positionals } = parseCommand("state", args, {});
  const state = loadState(globals.root, oneId("state", positionals));
  process.stdout.write(`${JSON.stringify(ociState(globals.root, state), null, "  ")}\n`);
  return 0;
}
