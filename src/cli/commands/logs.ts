/**
 * `logs [-f|--follow] [--tail N] [-t|--timestamps] NAME`: what a detached
 * container wrote (stdout to stdout, stderr to stderr), from its log
 * (src/runtime/logs.ts).  -f follows until the container has exited.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { DokrustError, UsageError } from "../../errors.ts";
import { resolveRef } from "../../runtime/dokrust-state.ts";
import { LogFollower, LogPrinter, selectRecords } from "../../runtime/logs.ts";
import { monitorRuns } from "../../runtime/lifecycle.ts";
import { containerDir, loadState } from "../../runtime/state.ts";
import { intOption, oneId, parseCommand, type Globals } from "./common.ts";
import { writeAll } from "../../native/executor.ts";

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/**
 * Written synchronously: process.stdout queues what a full pipe cannot
 * take, and dokrust's exit would drop that queue (a long log's tail).
 */
function write(stream: "stdout" | "stderr", text: string): void {
  try {
    writeAll(stream === "stdout" ? 1 : 2, Buffer.from(text));
  } catch (err) {
    // the reader went away (`dokrust logs web | head`): nothing more to say
    if ((err as NodeJS.ErrnoException).code === "EPIPE") process.exit(0);
    throw err;
  }
}

export async function run(args: string[], globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("logs", args, {
    follow: { type: "boolean", short: "f" },
    tail: { type: "string", short: "n" },
    timestamps: { type: "boolean", short: "t" },
  });
  const ref = oneId("logs", positionals);
  const id = resolveRef(globals.root, ref);
  const dir = containerDir(globals.root, id);
  const log = `${dir}/container.log`;
  if (!existsSync(log)) throw new DokrustError(`container ${ref} has no log: only containers started with -d keep one`);
  const tail = values.tail === undefined || values.tail === "all" ? undefined : intOption("tail", values.tail, 0);
  if (values.tail !== undefined && values.tail !== "all" && tail === undefined) throw new UsageError("logs --tail: expected a number");
  const printer = new LogPrinter(values.timestamps ?? false, write);
  // the size first: what is read beyond it is read again by the follower
  const size = statSync(log).size;
  const current = readFileSync(log).subarray(0, size).toString("utf8");
  for (const r of selectRecords(`${readText(`${log}.1`)}${current}`, tail)) printer.print(r);
  if (values.follow) await follow(globals.root, id, log, size, printer);
  return 0;
}

/** Print what comes until the container and its monitor are done. */
async function follow(root: string, id: string, log: string, offset: number, printer: LogPrinter): Promise<void> {
  const state = loadState(root, id);
  const follower = new LogFollower(log);
  follower.openAt(offset);
  try {
    for (;;) {
      const running = monitorRuns(state);
      for (const r of follower.poll()) printer.print(r);
      if (!running) return;
      await Bun.sleep(25);
    }
  } finally {
    follower.close();
  }
}
