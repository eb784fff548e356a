/**
 * runc's command line: global options, then one command, each in its own
 * module under commands/ and loaded only when asked for.
 *
 *   dokrust [--root DIR] [--log FILE] [--log-format text|json] [--debug]
 *           [--systemd-cgroup] [--rootless true|false|auto] COMMAND ...
 *
 * Errors are reported once, here, as runc reports them (a log record;
 * plus a plain line on stderr when the log goes to a file) and exit 1.
 */
import { parseArgs } from "node:util";
import { DokrustError, UsageError } from "../errors.ts";
import { Logger, setLogger, type LogFormat } from "../runtime/log.ts";
import { OCI_VERSION } from "../spec/defaults.ts";
import type { Globals } from "./commands/common.ts";

const GLOBAL_OPTIONS = {
  root: { type: "string" },
  log: { type: "string" },
  "log-format": { type: "string" },
  debug: { type: "boolean" },
  "systemd-cgroup": { type: "boolean" },
  rootless: { type: "string" },
  criu: { type: "string" },
  version: { type: "boolean", short: "v" },
  help: { type: "boolean", short: "h" },
} as const;

type CommandModule = { run(args: string[], globals: Globals): Promise<number> };

const COMMANDS: Record<string, () => Promise<CommandModule>> = {
  create: () => import("./commands/create.ts"),
  start: () => import("./commands/start.ts"),
  run: () => import("./commands/run.ts"),
  state: () => import("./commands/state.ts"),
  kill: () => import("./commands/kill.ts"),
  delete: () => import("./commands/delete.ts"),
  list: () => import("./commands/list.ts"),
  ps: () => import("./commands/ps.ts"),
  pause: () => import("./commands/pause.ts"),
  resume: () => import("./commands/resume.ts"),
  spec: () => import("./commands/spec.ts"),
  features: () => import("./commands/features.ts"),
  exec: () => import("./commands/exec.ts"),
  update: () => import("./commands/update.ts"),
  events: () => import("./commands/events.ts"),
};

const USAGE = `usage: dokrust [global options] COMMAND [options] [ID]

commands: ${Object.keys(COMMANDS).join(", ")}

global options:
  --root DIR              state directory (default $DOKRUST_ROOT or /run/dokrust)
  --log FILE              log to FILE instead of stderr
  --log-format text|json  log record format (default text)
  --debug                 log debug records
  --rootless false|auto   (true is not supported)
  --version, -v           print the version
`;

/** Split argv at the command word: runc's global options come before it. */
export function splitGlobal(argv: readonly string[]): { global: string[]; command?: string; rest: string[] } {
  const takesValue = new Set(["--root", "--log", "--log-format", "--rootless", "--criu"]);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("-")) return { global: argv.slice(0, i), command: arg, rest: argv.slice(i + 1) };
    if (takesValue.has(arg)) i++;
  }
  return { global: [...argv], rest: [] };
}

/** The global options, checked. */
export function parseGlobals(args: string[]): Globals & { version: boolean; help: boolean } {
  const { values } = parseArgs({ args, options: GLOBAL_OPTIONS, strict: true, allowPositionals: false });
  const format = values["log-format"] ?? "text";
  if (format !== "text" && format !== "json") throw new UsageError(`--log-format: unknown format ${JSON.stringify(format)} (text or json)`);
  if (values["systemd-cgroup"]) {
    throw new UsageError("--systemd-cgroup: the systemd cgroup driver is not supported by dokrust; use the cgroupfs driver");
  }
  const rootless = values.rootless ?? "auto";
  if (rootless === "true") throw new UsageError("--rootless true: rootless containers are not supported by dokrust yet");
  if (rootless !== "false" && rootless !== "auto") throw new UsageError(`--rootless: ${JSON.stringify(rootless)} is not one of true, false, auto`);
  const globals: Globals & { version: boolean; help: boolean } = {
    root: (values.root ?? (process.env.DOKRUST_ROOT || "/run/dokrust")).replace(/\/+$/, "") || "/",
    logFormat: format as LogFormat,
    debug: values.debug ?? false,
    version: values.version ?? false,
    help: values.help ?? false,
  };
  if (values.log !== undefined) globals.log = values.log;
  return globals;
}

function versionText(): string {
  return `dokrust version ${process.env.npm_package_version ?? "0.1.0"}\nspec: ${OCI_VERSION}\n`;
}

async function dispatch(argv: string[]): Promise<number> {
  const { global, command, rest } = splitGlobal(argv);
  const globals = parseGlobals(global);
  setLogger(new Logger(globals.log === undefined ? { format: globals.logFormat, debug: globals.debug } : { file: globals.log, format: globals.logFormat, debug: globals.debug }));
  if (globals.version) {
    process.stdout.write(versionText());
    return 0;
  }
  if (command === undefined || globals.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const load = COMMANDS[command];
  if (!load) throw new UsageError(`unknown command ${JSON.stringify(command)}; commands: ${Object.keys(COMMANDS).join(", ")}`);
  const mod = await load();
  return mod.run(rest, globals);
}

/** Run runc's face; resolves to the exit code (1 on any error). */
export async function runOci(argv: string[]): Promise<number> {
  try {
    return await dispatch(argv);
  } catch (err) {
    const { logger } = await import("../runtime/log.ts");
    const message = err instanceof DokrustError || (err instanceof Error && (err as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS"))
      ? err.message
      : `internal error: ${err instanceof Error ? err.message : String(err)}`;
    logger.fatal(message);
    if (process.env.DOKRUST_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
}
