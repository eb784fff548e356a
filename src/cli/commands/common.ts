/**
 * What every command module shares: the global options, and parsing a
 * command's own options the way runc's urfave/cli does (long options
 * with one dash or two; options before or after the id).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../../errors.ts";
import { checkId } from "../../runtime/state.ts";
import type { LogFormat } from "../../runtime/log.ts";

export interface Globals {
  root: string;
  log?: string;
  logFormat: LogFormat;
  debug: boolean;
}

type Options = NonNullable<ParseArgsConfig["options"]>;

/** `-bundle` → `--bundle` for the command's long options (urfave/cli takes both). */
function normalize(args: readonly string[], options: Options): string[] {
  return args.map((arg) => {
    const m = /^-([a-z][a-z-]+)(=.*)?$/.exec(arg);
    return m && m[1]! in options ? `-${arg}` : arg;
  });
}

/**
 * Parse a command's options.  Parsing stops at the first positional when
 * `stopAtPositional` (exec: the process's own arguments follow the id).
 */
export function parseCommand<O extends Options>(name: string, args: readonly string[], options: O) {
  try {
    return parseArgs({ args: normalize(args, options), options, strict: true, allowPositionals: true });
  } catch (err) {
    throw new UsageError(`${name}: ${(err as Error).message}`);
  }
}

/** The single container id a command takes. */
export function oneId(name: string, positionals: readonly string[], extra = 0): string {
  if (positionals.length === 0) throw new UsageError(`${name}: a container id is required`);
  if (positionals.length > 1 + extra) throw new UsageError(`${name}: unexpected arguments: ${positionals.slice(1 + extra).join(" ")}`);
  return checkId(positionals[0]);
}

/** A non-negative integer option. */
export function intOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name}: ${JSON.stringify(value)} is not a non-negative integer`);
  return Number(value);
}
