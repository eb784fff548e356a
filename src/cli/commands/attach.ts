/**
 * `attach [--no-stdin] NAME`: connect the terminal to a detached
 * container's monitor (its attach.sock): its output as it comes, the
 * keyboard to its stdin or terminal, and the window size.  The keys
 * ctrl-p ctrl-q detach and leave the container running; otherwise attach
 * ends with the container, with its exit code.
 */
import { existsSync } from "node:fs";
import { DokrustError } from "../../errors.ts";
import { resolveRef } from "../../runtime/dokrust-state.ts";
import { connectAttach, Frame, Input, type AttachConnection } from "../../runtime/monitor.ts";
import { containerDir, isAlive, loadState } from "../../runtime/state.ts";
import { oneId, parseCommand, type Globals } from "./common.ts";

const CTRL_P = 0x10;
const CTRL_Q = 0x11;

/**
 * Finds the detach keys (ctrl-p ctrl-q) in what the user types; passes
 * the rest on.  A ctrl-p is held back until the next key shows whether
 * it starts the sequence.
 */
export class DetachKeys {
  #pending = false;

  /** The bytes to forward, and whether the sequence was typed. */
  feed(input: Uint8Array): { forward: Uint8Array; detach: boolean } {
    const out: number[] = [];
    for (const byte of input) {
      if (this.#pending) {
        this.#pending = false;
        if (byte === CTRL_Q) return { forward: Uint8Array.from(out), detach: true };
        out.push(CTRL_P);
      }
      if (byte === CTRL_P) this.#pending = true;
      else out.push(byte);
    }
    return { forward: Uint8Array.from(out), detach: false };
  }
}

function sendSize(conn: AttachConnection, getWindowSize: (fd: number) => { rows: number; cols: number } | undefined): void {
  const size = getWindowSize(1) ?? getWindowSize(0);
  if (!size) return;
  const data = new Uint8Array(4);
  new DataView(data.buffer).setUint16(0, size.rows, true);
  new DataView(data.buffer).setUint16(2, size.cols, true);
  conn.send(Input.RESIZE, data);
}

export async function run(args: string[], globals: Globals): Promise<number> {
  const { values, positionals } = parseCommand("attach", args, { "no-stdin": { type: "boolean" } });
  const ref = oneId("attach", positionals);
  const id = resolveRef(globals.root, ref);
  const state = loadState(globals.root, id);
  const dir = containerDir(globals.root, id);
  if (!state.dokrust?.detached) throw new DokrustError(`cannot attach to container ${ref}: only containers started with -d can be attached to`);
  if (!isAlive(state) || !existsSync(`${dir}/attach.sock`)) throw new DokrustError(`cannot attach to container ${ref}: it is not running`);
  const conn = await connectAttach(dir, (type, data) => (type === Frame.STDERR ? process.stderr : process.stdout).write(data));
  const tty = state.dokrust.tty;
  const libc = tty ? await import("../../native/libc.ts") : undefined;
  const { restoreTerminal } = await import("../../tty/relay.ts");
  const onResize = () => libc && sendSize(conn, libc.getWindowSize);
  if (libc) {
    if (process.stdin.isTTY) process.stdin.setRawMode(true);
    onResize();
    process.on("SIGWINCH", onResize);
  }
  let detached = false;
  const reader = values["no-stdin"] ? undefined : Bun.stdin.stream().getReader();
  if (reader) {
    void (async () => {
      const keys = new DetachKeys();
      for (;;) {
        const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
        if (done || !value) return;
        const { forward, detach } = keys.feed(value);
        if (forward.length) conn.send(Input.DATA, forward);
        if (detach) {
          detached = true;
          conn.close();
          return;
        }
      }
    })();
  }
  try {
    const code = await conn.ended;
    if (detached) return 0;
    return code ?? 0;
  } finally {
    process.off("SIGWINCH", onResize);
    void reader?.cancel().catch(() => {});
    if (process.stdin.isTTY) process.stdin.setRawMode(false);
    restoreTerminal();
  }
}
