/**
 * The dokrust command line: the original tool's options, option for
 * option, and what users of `docker run` expect next to them.  Parsing
 * only; it produces RunOptions and checks everything that can be checked
 * before anything is created.
 */
import { existsSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { UsageError } from "../errors.ts";
import { capabilityName } from "../plan/linux.ts";
import { parseQuota, type QuotaEntry } from "../cgroups/quota.ts";
import { checkPorts, parseNetMode, parsePort, type NetMode, type PortSpec } from "../net/ports.ts";
import { parseSecurityOpts, type SecurityOptions } from "../seccomp/index.ts";

export const USAGE = `dokrust: run a command in a container

Usage: dokrust [options] [-- <command> <argument>...]

The original options:
  -r, --rootfs PATH      root file system (default ../rootfs; without it, a
                         minimal read-only root made from the host's /usr),
                         or an image name (dokrust image --help)
  -c, --command CMD      run CMD through /bin/sh -c (arguments after -- follow)
  -n, --hostname NAME    container hostname (default dokka)
  -q, --quota SPEC       cgroup quota controller:file:value, several joined
                         by :: (cpu:cpu.cfs_quota_us:50000::pids:pids.max:20)
  -m, --mount SRC:DST    bind-mount a host path into the container; repeatable;
                         SRC:DST:ro for read-only
  -k, --network NAME     put the running container NAME on the bridge network
                         (with -p: and publish its ports), print its address
  -h, --help             show this help

As with docker run:
  -i, --interactive      keep stdin open and pass it to the container
  -t, --tty              give the container a terminal
  -e, --env KEY=VAL      set an environment variable; repeatable
  -w, --workdir DIR      working directory inside the container
  -u, --user UID[:GID]   run as this numeric user (and group)
      --cpus N           CPU limit (for example 1.5)
      --memory SIZE      memory limit (bytes, or with k, m, g)
      --pids-limit N     most processes the container may have
      --read-only        mount the root file system read-only
      --cap-add CAP      add a capability (NET_ADMIN, ALL, ...); repeatable
      --cap-drop CAP     drop a capability; repeatable
      --security-opt OPT seccomp=unconfined (no seccomp filter), seccomp=FILE (an
                         OCI or docker seccomp profile instead of the default
                         one), no-new-privileges; repeatable
      --name NAME        container name (shown by ps on the host, and the name
                         other containers on its network reach it by)
      --net MODE         bridge (default: own address on dokrust0, NAT),
                         none (loopback only), host (the host's network),
                         container:NAME (share NAME's network)
  -p, --publish [IP:]HOST:CONTAINER[/tcp|udp]
                         publish a container port on the host; repeatable
  -d, --detach           run in the background, print the container id
                         (then: dokrust list|logs|attach|exec|stop|kill|wait|rm)
      --rm               remove the container when it exits (always so for
                         containers in the foreground)

Exit status: the command's; 125 when dokrust itself fails, 126 when the
command cannot be executed, 127 when it is not found, 128+N when signal N
killed it.

dokrust network prune  remove what ended containers left on dokrust's networks
                       (addresses, links, rules), and networks left unused

OCI runtime commands (runc's command line): dokrust create|start|state|
kill|delete|run|exec|ps|list|pause|resume|update|events|spec|features
`;

export interface BindSpec {
  source: string;
  destination: string;
  readonly: boolean;
}

export interface RunOptions {
  rootfs?: string;
  /** -r NAME naming an image (not a path): its name and the command as given (empty: none). */
  image?: { name: string; args: string[]; shell: boolean };
  hostname: string;
  args: string[];
  quota: QuotaEntry[];
  mounts: BindSpec[];
  interactive: boolean;
  tty: boolean;
  env: string[];
  workdir?: string;
  user?: { uid: number; gid: number };
  cpus?: number;
  memory?: number;
  pidsLimit?: number;
  readOnly: boolean;
  capAdd: string[];
  capDrop: string[];
  name?: string;
  /** -d: run in the background under a monitor; print the id. */
  detach?: boolean;
  /** --rm with -d: remove the container when it exits. */
  autoRemove?: boolean;
  /** --net (default bridge). */
  net: NetMode;
  /** --net was not given: the bridge is only the default. */
  netDefaulted: boolean;
  /** -p. */
  ports: PortSpec[];
  /** -k NAME: attach networking to that running container, run nothing. */
  attach?: string;
  /** --security-opt; absent: the default seccomp profile, no no_new_privs. */
  security?: SecurityOptions;
}

const OPTIONS = {
  rootfs: { type: "string", short: "r" },
  command: { type: "string", short: "c" },
  hostname: { type: "string", short: "n" },
  quota: { type: "string", short: "q", multiple: true },
  mount: { type: "string", short: "m", multiple: true },
  help: { type: "boolean", short: "h" },
  interactive: { type: "boolean", short: "i" },
  tty: { type: "boolean", short: "t" },
  env: { type: "string", short: "e", multiple: true },
  workdir: { type: "string", short: "w" },
  user: { type: "string", short: "u" },
  cpus: { type: "string" },
  memory: { type: "string" },
  "pids-limit": { type: "string" },
  "read-only": { type: "boolean" },
  "cap-add": { type: "string", multiple: true },
  "cap-drop": { type: "string", multiple: true },
  name: { type: "string" },
  rm: { type: "boolean" },
  detach: { type: "boolean", short: "d" },
  network: { type: "string", short: "k" },
  net: { type: "string" },
  publish: { type: "string", short: "p", multiple: true },
  "security-opt": { type: "string", multiple: true },
} as const;

/** RFC 1123 host name: labels of letters, digits and hyphens. */
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export function checkHostname(name: string): string {
  if (Buffer.byteLength(name) > 64) throw new UsageError(`hostname ${JSON.stringify(name)} is longer than 64 bytes`);
  if (!HOSTNAME.test(name)) {
    throw new UsageError(`hostname ${JSON.stringify(name)} may hold only letters, digits, '-' and '.', and no label may start or end with '-'`);
  }
  return name;
}

function parseMount(text: string): BindSpec {
  const parts = text.split(":");
  let readonly = false;
  if (parts.length === 3 && (parts[2] === "ro" || parts[2] === "rw")) {
    readonly = parts[2] === "ro";
    parts.pop();
  }
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw new UsageError(`-m ${text}: expected SRC:DST or SRC:DST:ro`);
  const source = resolve(parts[0]);
  const destination = parts[1];
  if (!destination.startsWith("/")) throw new UsageError(`-m ${text}: the target ${destination} must be an absolute path inside the container`);
  if (destination.split("/").includes("..")) throw new UsageError(`-m ${text}: the target must not contain ..`);
  if (!existsSync(source)) throw new UsageError(`-m ${text}: the source ${source} does not exist`);
  const clean = destination.replace(/\/+/g, "/").replace(/(.)\/$/, "$1");
  if (clean === "/") throw new UsageError(`-m ${text}: the root of the container cannot be a bind target; use -r`);
  if ((clean === "/proc" || clean.startsWith("/proc/")) && !PROC_BIND_TARGETS.has(clean)) {
    throw new UsageError(`-m ${text}: ${clean} is inside the container's procfs; only files such as /proc/meminfo (as lxcfs provides) may be bound there`);
  }
  return { source, destination: clean, readonly };
}

/** The /proc files a bind may cover (what lxcfs serves; runc allows these). */
const PROC_BIND_TARGETS = new Set([
  "/proc/cpuinfo",
  "/proc/diskstats",
  "/proc/meminfo",
  "/proc/stat",
  "/proc/swaps",
  "/proc/uptime",
  "/proc/loadavg",
  "/proc/slabinfo",
]);

function parseUser(text: string): { uid: number; gid: number } {
  const match = /^(\d+)(?::(\d+))?$/.exec(text);
  if (!match) throw new UsageError(`-u ${text}: expected a numeric UID or UID:GID`);
  const uid = Number(match[1]);
  const gid = match[2] === undefined ? uid : Number(match[2]);
  if (uid > 0xfffffffe || gid > 0xfffffffe) throw new UsageError(`-u ${text}: id out of range`);
  return { uid, gid };
}

/** "512m" → bytes. */
export function parseSize(text: string, option: string): number {
  const match = /^(\d+(?:\.\d+)?)([bkmg]?)b?$/i.exec(text.trim());
  if (!match) throw new UsageError(`${option} ${text}: expected a size such as 512m or 2g`);
  const scale = { "": 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2]!.toLowerCase()]!;
  const bytes = Math.floor(Number(match[1]) * scale);
  if (bytes < 6 * 1024 * 1024) throw new UsageError(`${option} ${text}: the minimum is 6m`);
  return bytes;
}

function positiveNumber(text: string, option: string, integer: boolean): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new UsageError(`${option} ${text}: expected a positive ${integer ? "integer" : "number"}`);
  }
  return value;
}

function capabilities(list: readonly string[] | undefined, option: string): string[] {
  return (list ?? []).map((c) => {
    if (c.toUpperCase() === "ALL") return "ALL";
    const name = capabilityName(c);
    if (!name) throw new UsageError(`${option} ${c}: unknown capability`);
    return name;
  });
}

/**
 * node:util's parseArgs messages reworded the way dokrust's read
 * (lowercase, naming the option), without its advice about "--".
 */
function parseArgsProblem(err: Error & { code?: string }): string {
  const quoted = /'([^']*)'/.exec(err.message)?.[1];
  if (err.code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && quoted) return `unknown option ${quoted}`;
  if (err.code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && quoted) {
    const option = quoted.replace(/ <value>$/, "");
    return /missing/.test(err.message) ? `option ${option} needs a value` : `option ${option} takes no value`;
  }
  return err.message.split("\n")[0]!.replace(/\.$/, "");
}

/** Parse the dokrust face's arguments.  Returns undefined for --help. */
export function parseRunArgs(argv: string[]): RunOptions | undefined {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${parseArgsProblem(err as Error & { code?: string })}; see dokrust --help`);
  }
  const v = parsed.values;
  if (v.help) return undefined;
  const rest = parsed.positionals;
  const args = v.command !== undefined ? ["/bin/sh", "-c", v.command, ...rest] : rest.length ? rest : ["/bin/sh"];
  for (const e of v.env ?? []) {
    if (!/^[^=]+=/.test(e)) throw new UsageError(`-e ${e}: expected KEY=VALUE`);
  }
  if (v.workdir !== undefined && !v.workdir.startsWith("/")) throw new UsageError(`-w ${v.workdir}: must be an absolute path`);
  if (v.name !== undefined && !NAME.test(v.name)) throw new UsageError(`--name ${v.name}: may hold only letters, digits, '_', '.' and '-'`);
  const options: RunOptions = {
    hostname: checkHostname(v.hostname ?? "dokka"),
    args,
    quota: (v.quota ?? []).flatMap(parseQuota),
    mounts: (v.mount ?? []).map(parseMount),
    interactive: v.interactive ?? false,
    tty: v.tty ?? false,
    env: v.env ?? [],
    readOnly: v["read-only"] ?? false,
    capAdd: capabilities(v["cap-add"], "--cap-add"),
    capDrop: capabilities(v["cap-drop"], "--cap-drop"),
    net: parseNetMode(v.net ?? "bridge"),
    netDefaulted: v.net === undefined,
    ports: checkPorts((v.publish ?? []).map(parsePort)),
  };
  if (v.network !== undefined) options.attach = v.network;
  if (v.rootfs !== undefined && !existsSync(resolve(v.rootfs)) && /^[a-z0-9][a-z0-9._\-/:@]*$/i.test(v.rootfs)) {
    options.image = { name: v.rootfs, args: v.command !== undefined ? args : rest, shell: v.command !== undefined };
  } else if (v.rootfs !== undefined) options.rootfs = checkRootfs(resolve(v.rootfs));
  if (v.workdir !== undefined) options.workdir = v.workdir;
  if (v.user !== undefined) options.user = parseUser(v.user);
  if (v.cpus !== undefined) {
    options.cpus = positiveNumber(v.cpus, "--cpus", false);
    const host = availableParallelism();
    if (options.cpus > host) throw new UsageError(`--cpus ${v.cpus}: this host has ${host} CPUs`);
  }
  if (v.memory !== undefined) options.memory = parseSize(v.memory, "--memory");
  if (v["pids-limit"] !== undefined) options.pidsLimit = positiveNumber(v["pids-limit"], "--pids-limit", true);
  if (v.name !== undefined) options.name = v.name;
  if (v.detach) options.detach = true;
  if (v.rm) options.autoRemove = true;
  if (v["security-opt"] !== undefined) options.security = parseSecurityOpts(v["security-opt"]);
  return options;
}

function checkRootfs(path: string): string {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw new UsageError(`rootfs ${path} does not exist`);
  }
  if (!st.isDirectory()) throw new UsageError(`rootfs ${path} is not a directory`);
  return path;
}

/** The default rootfs, ../rootfs, when it exists. */
export function defaultRootfs(): string | undefined {
  const path = resolve("../rootfs");
  return existsSync(path) && statSync(path).isDirectory() ? path : undefined;
}
