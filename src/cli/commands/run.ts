/**
 * `run [-d] [create's options] ID`: create and start.  Detached, it
 * returns once the container runs; in the foreground it forwards signals,
 * relays the terminal when there is no console socket, waits, deletes the
 * container and exits with its status (128+N when killed by signal N).
 */
import { createContainer, deleteContainer, startContainer, type Created } from "../../runtime/container.ts";
import { logger } from "../../runtime/log.ts";
import { CREATE_OPTIONS, createOptions } from "./create.ts";
import { oneId, parseCommand, type Globals } from "./common.ts";

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH"] as const;

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

async function waitForeground(created: Created): Promise<number> {
  const forward = (signal: NodeJS.Signals) => {
    try {
      process.kill(created.state.pid, signal);
    } catch {
      // gone already
    }
  };
  for (const signal of FORWARDED) process.on(signal, forward);
  let relay;
  try {
    if (created.master !== undefined) {
      const { startRelay } = await import("../../tty/relay.ts");
      relay = startRelay(created.master, true);
    }
    const code = await created.executor.proc.exited;
    if (relay) {
      await Promise.race([relay.done, Bun.sleep(200)]);
      relay.close();
    }
    return code;
  } finally {
    for (const signal of FORWARDED) process.off(signal, forward);
  }
}
