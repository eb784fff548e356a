/**
 * Relaying a container's pseudo-terminal to the user's terminal: raw
 * mode on the host side (restored on every way out), stdin copied to the
 * master, the master copied to stdout, and the window size following the
 * host terminal's.
 */
import { read, writeSync } from "node:fs";
import { closeFd, getWindowSize, setWindowSize } from "../native/libc.ts";

export interface Relay {
  /** Resolves when the container side of the terminal has closed. */
  readonly done: Promise<void>;
  /** Stop relaying and restore the host terminal. */
  close(): void;
}

let rawTerminal = false;

/** Put the host terminal back the way it was (safe to call any time). */
export function restoreTerminal(): void {
  if (rawTerminal && process.stdin.isTTY) {
    process.stdin.setRawMode(false);
    rawTerminal = false;
  }
}

process.on("exit", restoreTerminal);

function writeAllSync(fd: number, data: Uint8Array): void {
  let offset = 0;
  while (offset < data.length) {
    try {
      offset += writeSync(fd, data, offset);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "EAGAIN") {
        Bun.sleepSync(1);
        continue;
      }
      return; // the other side is gone
    }
  }
}

function readChunk(fd: number, buffer: Buffer): Promise<number> {
  return new Promise((resolve) => read(fd, buffer, 0, buffer.length, null, (err, n) => resolve(err ? -1 : n)));
}

export function startRelay(master: number, interactive: boolean): Relay {
  const onResize = () => {
    const size = getWindowSize(1) ?? getWindowSize(0);
    if (size) setWindowSize(master, size);
  };
  if (process.stdin.isTTY && interactive) {
    process.stdin.setRawMode(true);
    rawTerminal = true;
  }
  process.on("SIGWINCH", onResize);
  let stdinReader: ReturnType<ReadableStream<Uint8Array>["getReader"]> | undefined;
  if (interactive) {
    stdinReader = Bun.stdin.stream().getReader();
    void (async () => {
      for (;;) {
        const { done, value } = await stdinReader!.read().catch(() => ({ done: true, value: undefined }));
        if (done || !value) return;
        writeAllSync(master, value);
      }
    })();
  }
  const done = (async () => {
    const buffer = Buffer.alloc(65536);
    for (;;) {
      // Reading a master whose last slave closed fails with EIO: that is
      // the ordinary end of the session.
      const n = await readChunk(master, buffer);
      if (n <= 0) return;
      writeAllSync(1, buffer.subarray(0, n));
    }
  })();
  return {
    done,
    close() {
      process.off("SIGWINCH", onResize);
      void stdinReader?.cancel().catch(() => {});
      restoreTerminal();
      closeFd(master);
    },
  };
}
