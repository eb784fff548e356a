/**
 * `exec [options] ID [COMMAND [ARG...]]`: run a new process in a running
 * container, as runc does.
 *
 *   -p, --process FILE      the whole process (process.json); else COMMAND
 *   -t, --tty               allocate a pseudo-terminal
 *   -d, --detach            return once the process runs
 *   --cwd DIR               working directory
 *   -e, --env K=V           add an environment variable (repeatable)
 *   -u, --user UID[:GID]    run as these ids
 *   -g, --additional-gids G add a supplementary group (repeatable)
 *   -c, --cap CAP           add a capability (repeatable)
 *   --no-new-privs          set no_new_privs
 *   --pid-file FILE         write the process's pid here
 *   --console-socket PATH   send the terminal's master here (with -t -d)
 *   --preserve-fds N        pass fds 3 .. 3+N-1 on
 *
 * Without --process the process is the container's own (env, user,
 * capabilities, rlimits ...) with COMMAND and the options applied, as
 * runc's getProcess() builds it.  Options come before the id; everything
 * after the id is the command.  A foreground exec exits with the
 * process's status; a failure to start it exits 255, as runc does.
 */
import { readFileSync } from "node:fs";
import { DokrustError, UsageError } from "../../errors.ts";
import { capabilityName } from "../../plan/linux.ts";
import { logger } from "../../runtime/log.ts";
import type { Process, Spec } from "../../spec/types.ts";
import { intOption, parseCommand, type Globals } from "./common.ts";

const EXEC_OPTIONS = {
  process: { type: "string", short: "p" },
  tty: { type: "boolean", short: "t" },
  detach: { type: "boolean", short: "d" },
  cwd: { type: "string" },
  env: { type: "string", short: "e", multiple: true },
  user: { type: "string", short: "u" },
  "additional-gids": { type: "string", short: "g", multiple: true },
  cap: { type: "string", short: "c", multiple: true },
  "no-new-privs": { type: "boolean" },
  "pid-file": { type: "string" },
  "console-socket": { type: "string" },
  "preserve-fds": { type: "string" },
  "ignore-paused": { type: "boolean" },
  "process-label": { type: "string" },
  apparmor: { type: "string" },
  cgroup: { type: "string", multiple: true },
  // docker's syntax (the dokrust face): -i (stdin is always passed on), -w DIR
  interactive: { type: "boolean", short: "i" },
  workdir: { type: "string", short: "w" },
} as const;

type Values = ReturnType<typeof parseCommand<typeof EXEC_OPTIONS>>["values"];

/** runc's exit status when exec itself fails. */
export const EXIT_EXEC_FAILED = 255;

/**
 * Split exec's arguments the way Go's flag package does: options up to
 * the first word that is not one (the id) or up to "--"; the rest is the
 * id and the command, untouched (so `sh -c ...` keeps its -c).
 */
export function splitExecArgs(args: readonly string[]): { options: string[]; positionals: string[] } {
  const withValue = new Set<string>();
  for (const [name, o] of Object.entries(EXEC_OPTIONS)) {
    if (o.type !== "string") continue;
    withValue.add(`--${name}`).add(`-${name}`);
    if ("short" in o) withValue.add(`-${o.short}`);
  }
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") return { options: args.slice(0, i), positionals: args.slice(i + 1) };
    if (!arg.startsWith("-") || arg === "-") return { options: args.slice(0, i), positionals: args.slice(i) };
    if (withValue.has(arg)) i++;
  }
  return { options: [...args], positionals: [] };
}

function parseIds(text: string): { uid: number; gid?: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(text);
  if (!m) throw new UsageError(`exec --user: ${JSON.stringify(text)} is not UID[:GID] (numbers)`);
  return m[2] === undefined ? { uid: Number(m[1]) } : { uid: Number(m[1]), gid: Number(m[2]) };
}

function capabilitiesWith(proc: Process, added: readonly string[]): void {
  if (added.length === 0) return;
  const caps = (proc.capabilities ??= {});
  for (const raw of added) {
    const cap = capabilityName(raw);
    if (!cap) throw new UsageError(`exec --cap: unknown capability ${JSON.stringify(raw)}`);
    caps.bounding = [...(caps.bounding ?? []), cap];
    caps.effective = [...(caps.effective ?? []), cap];
    caps.permitted = [...(caps.permitted ?? []), cap];
    // Ambient capabilities need inheritable ones; runc adds them only
    // when the config already has an inheritable set.
    if (caps.inheritable !== undefined) caps.ambient = [...(caps.ambient ?? []), cap];
  }
}

/** The process runc's getProcess() builds from the container's process and the flags. */
export function processFromFlags(spec: Spec, values: Values, command: readonly string[]): Process {
  if (!spec.process) throw new DokrustError("the container's config has no process to start from");
  const proc = structuredClone(spec.process);
  if (command.length === 0) throw new UsageError("exec: a command is required (or --process FILE)");
  proc.args = [...command];
  if (values.cwd) proc.cwd = values.cwd;
  capabilitiesWith(proc, values.cap ?? []);
  proc.env = [...(proc.env ?? []), ...(values.env ?? [])];
  proc.terminal = values.tty ?? false;
  delete proc.consoleSize;
  if (values["no-new-privs"]) proc.noNewPrivileges = true;
  if (values.user) {
    const ids = parseIds(values.user);
    proc.user = { ...proc.user, uid: ids.uid, ...(ids.gid === undefined ? {} : { gid: ids.gid }) };
  }
  const gids = (values["additional-gids"] ?? []).map((g) => {
    if (!/^\d+$/.test(g)) throw new UsageError(`exec --additional-gids: ${JSON.stringify(g)} is not a number`);
    return Number(g);
  });
  if (gids.length) proc.user.additionalGids = [...(proc.user.additionalGids ?? []), ...gids];
  return proc;
}

/** The process of --process FILE, validated against the schema's process part. */
async function processFromFile(file: string, command: readonly string[]): Promise<Process> {
  if (command.length) throw new UsageError(`exec: a command (${command.join(" ")}) and --process cannot both be given`);
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new UsageError(`exec --process ${file}: ${e.code ?? e.message}`);
  }
  const { validateSpec } = await import("../../spec/load.ts");
  const spec = await validateSpec({ ociVersion: "1.0.0", process: data }, file);
  if (!spec.process) throw new UsageError(`exec --process ${file}: no process`);
  return spec.process;
}

async function execute(args: string[], globals: Globals): Promise<number> {
  const split = splitExecArgs(args);
  const { values } = parseCommand("exec", split.options, EXEC_OPTIONS);
  const [ref, ...command] = split.positionals;
  if (!ref) throw new UsageError("exec: a container id is required");
  // a name or an unambiguous id prefix also names the container
  const id = (await import("../../runtime/dokrust-state.ts")).resolveRef(globals.root, ref);
  if (values.workdir !== undefined) values.cwd = values.workdir;
  const { runningContainer, startExec, waitExec } = await import("../../runtime/exec.ts");
  const state = runningContainer(globals.root, id);
  const proc = values.process ? await processFromFile(values.process, command) : processFromFlags(state.config, values, command);
  const options: Parameters<typeof startExec>[0] = {
    root: globals.root,
    id,
    process: proc,
    detach: values.detach ?? false,
    preserveFds: intOption("preserve-fds", values["preserve-fds"], 0),
  };
  if (values["pid-file"]) options.pidFile = values["pid-file"];
  if (values["console-socket"]) options.consoleSocket = values["console-socket"];
  const started = await startExec(options);
  if (options.detach) return 0;
  return waitExec(started);
}

export async function run(args: string[], globals: Globals, face?: "dokrust"): Promise<number> {
  // the dokrust face reports errors itself (one line, 125/126/127)
  if (face === "dokrust") return execute(args, globals);
  try {
    return await execute(args, globals);
  } catch (err) {
    if (!(err instanceof DokrustError)) throw err;
    logger.fatal(`exec failed: ${err.message}`);
    return EXIT_EXEC_FAILED;
  }
}
