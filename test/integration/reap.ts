/**
 * Reaping orphans.  The leak check makes the test process a child
 * subreaper, so when a test kills dokrust with SIGKILL its executor and
 * container are reparented to the test process, and Bun reaps only the
 * children it spawned: they would stay zombies (a zombie still counts as
 * a process, and /proc/<pid> still exists).  waitpid() on exactly those
 * pids, never on -1, so Bun's own children keep their exit statuses.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import { readFileSync } from "node:fs";

const libc = dlopen("libc.so.6", { waitpid: { args: [FFIType.i32, FFIType.ptr, FFIType.i32], returns: FFIType.i32 } });
const WNOHANG = 1;

/** The parent pid of a process, or undefined when it is gone. */
function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  } catch {
    return undefined;
  }
}

/**
 * Reap those of `pids` that end up as this process's children; waits up
 * to `ms` for each to be gone (returns the ones still there).
 */
export async function reapOrphans(pids: readonly number[], ms = 2000): Promise<number[]> {
  const status = new Int32Array(1);
  const deadline = Date.now() + ms;
  let left = [...pids];
  while (left.length) {
    left = left.filter((pid) => {
      const parent = parentOf(pid);
      if (parent === undefined) return false;
      if (parent === process.pid) libc.symbols.waitpid(pid, ptr(status), WNOHANG);
      return parentOf(pid) !== undefined;
    });
    if (!left.length || Date.now() > deadline) break;
    await Bun.sleep(5);
  }
  return left;
}
