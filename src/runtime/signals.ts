/**
 * Signal names and numbers as `kill` takes them: "TERM", "SIGTERM", "15"
 * (runc accepts all three).
 */
import { constants } from "node:os";
import { UsageError } from "../errors.ts";

const SIGNALS = constants.signals as Record<string, number>;

/** The signal number of a name or number; a UsageError when unknown. */
export function parseSignal(text: string): number {
  if (/^\d+$/.test(text)) {
    const n = Number(text);
    if (n >= 1 && n <= 64) return n;
    throw new UsageError(`unknown signal ${JSON.stringify(text)}`);
  }
  const upper = text.toUpperCase();
  const name = upper.startsWith("SIG") ? upper : `SIG${upper}`;
  const rt = /^SIGRTMIN(?:\+(\d+))?$/.exec(name) ?? /^SIGRTMAX(?:-(\d+))?$/.exec(name);
  if (rt) {
    const offset = Number(rt[1] ?? 0);
    const n = name.startsWith("SIGRTMIN") ? 34 + offset : 64 - offset;
    if (n >= 34 && n <= 64) return n;
  }
  const n = SIGNALS[name];
  if (n === undefined) throw new UsageError(`unknown signal ${JSON.stringify(text)}`);
  return n;
}
