/**
 * `run [-d] [create's options] ID`: create and start.  Detached, it
 * returns once the container runs; in the foreground it forwards signals,
 * relays the terminal when there is no console socket, waits, deletes the
 * container and exits with its status (128+N when killed by signal N).
 */
import { createContainer, deleteContainer, startContainer, type Created } from "../../runtime/container.ts";
import { waitForeground as foreground } from "../../runtime/foreground.ts";
import { logger } from "../../runtime/log.ts";
import { CREATE_OPTIONS, createOptions } from "./create.ts";
import { oneId, parseCommand, type Globals } from "./common.ts";


export async function run(args: string[], globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("run", args, { ...CREATE_OPTIONS, detach: { type: "boolean", short: "d" } });
  const id = oneId("run", positionals);
  const options = createOptions(values, globals, id);
  if (values.detach) {
    await createContainer(options);
    await startOrDelete(globals.root, id);
    return 0;
  }
  const created = await createContainer({ ...options, foreground: true });
  try {
    await startOrDelete(globals.root, id);
    return await waitForeground(created);
  } finally {
    await deleteContainer(globals.root, id, true).catch((err: Error) => logger.warn(`run ${id}: delete: ${err.message}`));
  }
}

async function startOrDelete(root: string, id: string): Promise<void> {
  try {
    await startContainer(root, id);
  } catch (err) {
    await deleteContainer(root, id, true).catch(() => {});
    throw err;
  }
}

function waitForeground(created: Created): Promise<number> {
  const fg = { proc: created.executor.proc, interactive: true };
  return foreground(created.state.pid, created.master === undefined ? fg : { ...fg, master: created.master });
}
