/**
 * Waiting for a process in the foreground, as `dokrust run`, OCI `run`
 * and `exec` do: the signals a user sends dokrust go on to the process,
 * its terminal (when it has one) is relayed, and the executor's exit
 * status is the answer.
 */
export const FORWARDED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"] as const;

/** Send the forwarded signals to `pid` until the returned function is called. */
export function forwardSignals(pid: () => number | undefined): () => void {
  const forward = (signal: NodeJS.Signals) => {
    const target = pid();
    if (target === undefined) return;
    try {
      process.kill(target, signal);
    } catch {
      // gone already
    }
  };
  for (const signal of FORWARDED_SIGNALS) process.on(signal, forward);
  return () => {
    for (const signal of FORWARDED_SIGNALS) process.off(signal, forward);
  };
}

export interface Foreground {
  /** The executor, whose exit status is the process's. */
  proc: { exited: Promise<number> };
  /** The terminal master to relay, if the process has a terminal. */
  master?: number;
  /** Whether the user's input goes to the terminal. */
  interactive: boolean;
}

/** Relay the terminal (if any) until the executor exits; its status. */
export async function waitWithTerminal(fg: Foreground): Promise<number> {
  let relay;
  if (fg.master !== undefined) {
    const { startRelay } = await import("../tty/relay.ts");
    relay = startRelay(fg.master, fg.interactive);
  }
  const code = await fg.proc.exited;
  if (relay) {
    // what the process wrote last may still be in the pty
    await Promise.race([relay.done, Bun.sleep(200)]);
    relay.close();
  }
  return code;
}

/** Forward signals to `pid` and wait, as one step. */
export async function waitForeground(pid: number, fg: Foreground): Promise<number> {
  const stop = forwardSignals(() => pid);
  try {
    return await waitWithTerminal(fg);
  } finally {
    stop();
  }
}
