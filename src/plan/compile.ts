/**
 * The plan compiler: a runtime-spec document plus what the runtime
 * decided about this start (rootfs path, cgroups, terminal, ...) → the
 * ordered steps the executor carries out.  Pure: it reads nothing from
 * the system but through `PlanContext`, so it is unit-tested without root.
 *
 * The order mirrors runc's init: namespaces; the mount tree (propagation,
 * rootfs bind, spec mounts, devices) built while the host is still
 * visible; pivot_root; masked and read-only paths; hostname, sysctls,
 * rlimits, terminal; then the credential dance (bounding set, ids,
 * capabilities), and seccomp as the very last step before execve.
 */
import { UsageError } from "../errors.ts";
import { DEFAULT_DEVICES, DEFAULT_PATH } from "../spec/defaults.ts";
import type { Device, Hook, IdMapping, Spec } from "../spec/types.ts";
import {
  CLONE,
  MS,
  NAMESPACE_FLAGS,
  RLIMITS,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  S_IFREG,
  capabilityMask,
  makedev,
} from "./linux.ts";
import { mountSteps, parseMountOptions, type MountHost } from "./mounts.ts";
import { CloneMode, Op, Opt, type Step } from "./ops.ts";

export interface PlanContext extends MountHost {
  /** cgroup.procs files the process joins before the clone. */
  cgroupProcs: string[];
  /** Wait for the container (dokrust run) or leave it (OCI create). */
  cloneMode: (typeof CloneMode)[keyof typeof CloneMode];
  /** Terminal: the executor's fd the pty master is sent on. */
  terminal?: { sendFd: number; rows: number; cols: number };
  /** OCI create: the fifo `start` opens; the process waits on it. */
  execFifo?: string;
  /** Number of fds after 0-2 that the container inherits. */
  preserveFds: number;
  /** Steps run right after the root is opened (the built-in root). */
  rootSetup?: Step[];
  /** The root is a fresh tmpfs mounted on `rootfs` (the built-in root). */
  tmpfsRoot?: boolean;
  /** The root is an overlay of these directories mounted on `rootfs` (an image). */
  overlayRoot?: { lower: string[]; upper: string; work: string };
  /** Compiled seccomp program (struct sock_filter array), if any. */
  seccomp?: { program: Uint8Array; flags: number };
  /** Kill the container when the executor's parent dies. */
  pdeathsig?: number;
  /**
   * The state JSON the createContainer and startContainer hooks get, cut
   * around the pid (the executor puts it in: nobody knows it before the
   * clone).  Without it those hooks are not run: only the OCI face runs hooks.
   */
  hookState?: (status: "creating" | "created") => { prefix: string; suffix: string };
}

/** HOOK steps: each hook run from the container process, in its namespaces. */
function hookSteps(kind: string, hooks: readonly Hook[] | undefined, state: { prefix: string; suffix: string }): Step[] {
  return (hooks ?? []).map((hook) => {
    const argv = hook.args?.length ? hook.args : [hook.path];
    const env = hook.env ?? [];
    return {
      op: Op.HOOK,
      args: [hook.path, hook.timeout ?? 0, state.prefix, state.suffix, argv.length, ...argv, ...env],
      what: `${kind} hook ${hook.path}`,
    };
  });
}

function mapText(mappings: readonly IdMapping[] | undefined): string {
  return (mappings ?? []).map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join("");
}

function namespaceSteps(spec: Spec, ctx: PlanContext): { steps: Step[]; flags: number } {
  const steps: Step[] = [];
  let flags = 0;
  const namespaces = spec.linux?.namespaces ?? [];
  // Joining a user namespace first gives the capabilities needed to join
  // the others that it owns.
  const ordered = [...namespaces].sort((a, b) => Number(b.type === "user") - Number(a.type === "user"));
  for (const ns of ordered) {
    const flag = NAMESPACE_FLAGS[ns.type];
    if (flag === undefined) throw new UsageError(`linux.namespaces: unknown namespace type ${JSON.stringify(ns.type)}`);
    if (ns.path) steps.push({ op: Op.SETNS, args: [ns.path, flag], what: `join ${ns.type} namespace ${ns.path}` });
    else flags |= flag;
  }
  for (const procs of ctx.cgroupProcs) {
    steps.unshift({ op: Op.CGROUP_JOIN, args: [procs], what: `join cgroup ${procs.replace(/\/(cgroup\.procs|tasks)$/, "")}` });
  }
  return { steps, flags };
}

function cloneStep(spec: Spec, ctx: PlanContext, flags: number): Step {
  const user = (flags & CLONE.NEWUSER) !== 0;
  const names = Object.entries(NAMESPACE_FLAGS)
    .filter(([, f]) => flags & f)
    .map(([n]) => n);
  return {
    op: Op.CLONE,
    args: [
      flags,
      user ? mapText(spec.linux?.uidMappings) : "",
      user ? mapText(spec.linux?.gidMappings) : "",
      "",
      ctx.cloneMode,
    ],
    what: `create the container process in new ${names.length ? names.join(", ") : "no"} namespaces`,
  };
}

/**
 * Device nodes: made with mknod, or, in a user namespace (where the
 * kernel refuses mknod), bound from the host's node of the same path,
 * as runc does.
 */
function deviceSteps(devices: readonly Device[], rootfs: string, bind: boolean): Step[] {
  const seen = new Set<string>();
  const steps: Step[] = [];
  for (const dev of [...devices].reverse()) {
    if (seen.has(dev.path)) continue;
    seen.add(dev.path);
    if (bind) {
      steps.unshift({ op: Op.MOUNT, args: [dev.path, dev.path, "", MS.BIND, "", Opt.IN_ROOT | Opt.MKFILE], what: `bind mount device ${dev.path} on ${rootfs}${dev.path}` });
      continue;
    }
    const kind = dev.type === "b" ? S_IFBLK : dev.type === "p" ? S_IFIFO : S_IFCHR;
    const mode = kind | (dev.fileMode ?? 0o666);
    const rdev = dev.type === "p" ? 0n : makedev(dev.major ?? 0, dev.minor ?? 0);
    steps.unshift({
      op: Op.MKNOD,
      args: [dev.path, mode, rdev, dev.uid ?? 0, dev.gid ?? 0],
      what: `create device ${rootfs}${dev.path}`,
    });
  }
  return steps;
}

const DEV_LINKS: Array<[string, string]> = [
  ["/proc/self/fd", "/dev/fd"],
  ["/proc/self/fd/0", "/dev/stdin"],
  ["/proc/self/fd/1", "/dev/stdout"],
  ["/proc/self/fd/2", "/dev/stderr"],
  ["pts/ptmx", "/dev/ptmx"],
];

function rootfsSteps(spec: Spec, ctx: PlanContext): Step[] {
  const root = ctx.rootfs;
  const propagation = spec.linux?.rootfsPropagation;
  const steps: Step[] = [
    // Everything below happens in the container's own mount namespace;
    // making it private (recursively) first keeps every later mount from
    // propagating back to the host.
    { op: Op.MOUNT, args: ["", "/", "", MS.REC | MS.PRIVATE, "", 0], what: "make the container's mounts private" },
  ];
  if (ctx.overlayRoot) {
    const { lower, upper, work } = ctx.overlayRoot;
    const data = `lowerdir=${lower.join(":")},upperdir=${upper},workdir=${work}`;
    steps.push({ op: Op.MOUNT, args: ["overlay", root, "overlay", 0, data, 0], what: `mount the image's overlay on ${root}` });
  }
  if (ctx.tmpfsRoot) {
    steps.push({ op: Op.MOUNT, args: ["tmpfs", root, "tmpfs", MS.NOSUID | MS.NODEV, "mode=755,size=16m", 0], what: `mount tmpfs on ${root}` });
  }
  steps.push(
    // pivot_root needs the new root to be a mount point.
    { op: Op.MOUNT, args: [root, root, "", MS.BIND | MS.REC, "", 0], what: `bind mount ${root} on itself` },
    { op: Op.ROOT, args: [root], what: `open the root ${root}` },
  );
  steps.push(...(ctx.rootSetup ?? []));
  let dev: "none" | "fresh" | "bound" = "none";
  for (const mount of spec.mounts ?? []) {
    if (mount.destination.replace(/\/+$/, "") === "/dev") dev = parseMountOptions(mount.options).bind || mount.type === "bind" ? "bound" : "fresh";
    steps.push(...mountSteps(mount, ctx));
  }
  // A /dev bound from the host brings its own nodes; creating devices
  // and links in it would write them into the host directory (runc skips
  // them too).
  if (dev !== "bound") {
    const userns = spec.linux?.namespaces?.some((n) => n.type === "user") ?? false;
    steps.push(...deviceSteps([...DEFAULT_DEVICES, ...(spec.linux?.devices ?? [])], root, userns));
  }
  if (dev === "fresh") {
    for (const [target, link] of DEV_LINKS) {
      steps.push({ op: Op.SYMLINK, args: [target, link], what: `create symlink ${root}${link}` });
    }
  }
  if (spec.process?.terminal && dev !== "bound") {
    steps.push({ op: Op.MKNOD, args: ["/dev/console", S_IFREG | 0o600, 0, 0, 0], what: `create ${root}/dev/console` });
  }
  if (spec.process?.cwd && spec.process.cwd !== "/") {
    steps.push({ op: Op.MKDIR, args: [spec.process.cwd, 0o755], what: `create the working directory ${root}${spec.process.cwd}` });
  }
  // runc's order: after the mounts, before pivot_root, so the hook's path
  // is still the host's (runtime-spec: createContainer).
  if (ctx.hookState) steps.push(...hookSteps("createContainer", spec.hooks?.createContainer, ctx.hookState("creating")));
  steps.push({ op: Op.PIVOT, args: [], what: `pivot_root into ${root}` });
  if (propagation) {
    const flag = { shared: MS.SHARED, slave: MS.SLAVE, private: MS.PRIVATE, unbindable: MS.UNBINDABLE }[propagation.replace(/^r/, "")];
    if (flag === undefined) throw new UsageError(`linux.rootfsPropagation: unknown propagation ${JSON.stringify(propagation)}`);
    steps.push({ op: Op.MOUNT, args: ["", "/", "", flag | MS.REC, "", 0], what: `set the root's propagation to ${propagation}` });
  }
  return steps;
}

function protectionSteps(spec: Spec): Step[] {
  const steps: Step[] = [];
  for (const path of spec.linux?.readonlyPaths ?? []) {
    const at = path.replace(/^\/+/, "/");
    steps.push(
      { op: Op.MOUNT, args: [at, at, "", MS.BIND | MS.REC, "", Opt.IN_ROOT | Opt.IGNORE_MISSING], what: `bind ${at} read-only` },
      { op: Op.REMOUNT, args: [at, MS.RDONLY, Opt.IN_ROOT | Opt.IGNORE_MISSING], what: `remount ${at} read-only` },
    );
  }
  for (const path of spec.linux?.maskedPaths ?? []) {
    steps.push({ op: Op.MASK, args: [path], what: `mask ${path}` });
  }
  if (spec.root?.readonly) {
    steps.push({ op: Op.REMOUNT, args: ["/", MS.RDONLY, 0], what: "remount the root read-only" });
  }
  return steps;
}

/** sysctls only a namespace the container owns may take. */
function sysctlNamespace(key: string): string | undefined {
  if (key.startsWith("net.")) return "network";
  if (key.startsWith("fs.mqueue.") || /^kernel\.(msg|sem|shm)/.test(key)) return "ipc";
  if (key === "kernel.hostname" || key === "kernel.domainname") return "uts";
  return undefined;
}

function kernelSteps(spec: Spec, flags: number): Step[] {
  const steps: Step[] = [];
  const linux = spec.linux ?? {};
  // A namespace joined by path is the container's too (not the host's).
  const own = (linux.namespaces ?? []).reduce((all, ns) => all | (NAMESPACE_FLAGS[ns.type] ?? 0), flags);
  if (spec.hostname !== undefined && spec.hostname !== "") {
    if (!(own & CLONE.NEWUTS)) throw new UsageError("hostname is set but the container has no uts namespace of its own");
    steps.push({ op: Op.HOSTNAME, args: [spec.hostname], what: `set hostname ${spec.hostname}` });
  }
  if (spec.domainname) {
    if (!(own & CLONE.NEWUTS)) throw new UsageError("domainname is set but the container has no uts namespace of its own");
    steps.push({ op: Op.DOMAINNAME, args: [spec.domainname], what: `set domainname ${spec.domainname}` });
  }
  if (flags & CLONE.NEWNET) steps.push({ op: Op.IFUP, args: ["lo"], what: "bring up lo" });
  for (const [key, value] of Object.entries(linux.sysctl ?? {})) {
    const ns = sysctlNamespace(key);
    if (!ns || !(own & NAMESPACE_FLAGS[ns]!)) {
      throw new UsageError(`linux.sysctl: ${key} is not namespaced by a namespace the container owns`);
    }
    const path = `/proc/sys/${key.replace(/\./g, "/")}`;
    steps.push({ op: Op.WRITE, args: [path, value, 0], what: `set sysctl ${key}=${value}` });
  }
  if (spec.process?.oomScoreAdj !== undefined) {
    const adj = String(spec.process.oomScoreAdj);
    steps.push({ op: Op.WRITE, args: ["/proc/self/oom_score_adj", adj, 0], what: `set oom_score_adj ${adj}` });
  }
  const seen = new Set<string>();
  for (const limit of spec.process?.rlimits ?? []) {
    const resource = RLIMITS[limit.type];
    if (resource === undefined) throw new UsageError(`process.rlimits: unknown rlimit ${JSON.stringify(limit.type)}`);
    if (seen.has(limit.type)) throw new UsageError(`process.rlimits: ${limit.type} is given twice`);
    seen.add(limit.type);
    if (limit.soft > limit.hard) throw new UsageError(`process.rlimits: ${limit.type} soft limit is above the hard limit`);
    steps.push({ op: Op.RLIMIT, args: [resource, BigInt(limit.soft), BigInt(limit.hard)], what: `set ${limit.type} ${limit.soft}:${limit.hard}` });
  }
  return steps;
}

function envValue(env: readonly string[], name: string): string | undefined {
  const entry = env.findLast((e) => e.startsWith(`${name}=`));
  return entry?.slice(name.length + 1);
}

/** Where execve may find args[0] inside the container, in PATH order. */
export function execCandidates(arg0: string, env: readonly string[]): string[] {
  if (arg0.includes("/")) return [arg0];
  const path = envValue(env, "PATH") ?? DEFAULT_PATH;
  return path
    .split(":")
    .filter((dir) => dir.startsWith("/"))
    .map((dir) => `${dir.replace(/\/+$/, "")}/${arg0}`);
}

function processSteps(spec: Spec, ctx: PlanContext, flags: number): Step[] {
  const proc = spec.process;
  if (!proc) throw new UsageError("process: missing; there is nothing to run");
  const args = proc.args ?? [];
  if (args.length === 0 || args[0] === "") throw new UsageError("process.args: empty; there is nothing to run");
  const env = proc.env ?? [];
  const steps: Step[] = [];
  if (ctx.terminal) {
    const { sendFd, rows, cols } = ctx.terminal;
    steps.push({ op: Op.TTY, args: [sendFd, rows, cols], what: "set up the terminal" });
  }
  steps.push({ op: Op.FIND_EXEC, args: execCandidates(args[0]!, env), what: `find ${args[0]}` });
  steps.push({ op: Op.CLOSE_FDS, args: [3 + ctx.preserveFds], what: "close inherited file descriptors" });
  if (ctx.execFifo) {
    steps.push({ op: Op.READY, args: [], what: "report ready" }, { op: Op.WAIT, args: [], what: "wait for start" });
  }
  // after start, before anything drops privileges: in the container's
  // namespaces and root (runtime-spec: startContainer)
  if (ctx.hookState) steps.push(...hookSteps("startContainer", spec.hooks?.startContainer, ctx.hookState("created")));
  const caps = proc.capabilities ?? {};
  const seccomp = ctx.seccomp
    ? { op: Op.SECCOMP, args: [ctx.seccomp.program, ctx.seccomp.flags], what: "load the seccomp filter" }
    : undefined;
  // Without no_new_privs an unprivileged process may not load a filter,
  // so then it goes in while the process still has CAP_SYS_ADMIN.
  if (seccomp && !proc.noNewPrivileges) steps.push(seccomp);
  steps.push({ op: Op.CAP_BOUNDING, args: [capabilityMask(caps.bounding)], what: "drop capabilities from the bounding set" });
  const groups = new Uint8Array(new Uint32Array(proc.user.additionalGids ?? []).buffer);
  const userOpts = flags & CLONE.NEWUSER && spec.linux?.gidMappings === undefined ? Opt.NO_SETGROUPS : 0;
  steps.push({
    op: Op.USER,
    args: [proc.user.uid, proc.user.gid, groups, userOpts],
    what: `switch to uid ${proc.user.uid} gid ${proc.user.gid}`,
  });
  // The kernel clears the parent-death signal when the ids change, so it
  // goes after the switch.
  if (ctx.pdeathsig) steps.push({ op: Op.PDEATHSIG, args: [ctx.pdeathsig], what: "set the parent-death signal" });
  steps.push({
    op: Op.CAPS,
    args: [capabilityMask(caps.effective), capabilityMask(caps.permitted), capabilityMask(caps.inheritable), capabilityMask(caps.ambient)],
    what: "set capabilities",
  });
  steps.push({ op: Op.UMASK, args: [proc.user.umask ?? 0o022], what: "set umask" });
  steps.push({ op: Op.CHDIR, args: [proc.cwd || "/"], what: `change directory to ${proc.cwd}` });
  if (spec.linux?.personality) {
    const domain = { LINUX: 0, LINUX32: 8 }[spec.linux.personality.domain];
    if (domain === undefined) throw new UsageError(`linux.personality.domain: unknown domain ${spec.linux.personality.domain}`);
    steps.push({ op: Op.PERSONALITY, args: [domain], what: `set personality ${spec.linux.personality.domain}` });
  }
  if (proc.noNewPrivileges) steps.push({ op: Op.NO_NEW_PRIVS, args: [], what: "set no_new_privs" });
  if (seccomp && proc.noNewPrivileges) steps.push(seccomp);
  steps.push({ op: Op.EXEC, args: [args.length, ...args, ...env], what: `execute ${args[0]}` });
  return steps;
}

/** Compile a spec into the executor's steps. */
export function compilePlan(spec: Spec, ctx: PlanContext): Step[] {
  const { steps, flags } = namespaceSteps(spec, ctx);
  // The fifo is opened first, by the outer executor, with the host's
  // credentials: a process in a user namespace may not reach the state
  // directory.  The container process inherits the fd (as runc passes it).
  if (ctx.execFifo) steps.unshift({ op: Op.OPEN_FIFO, args: [ctx.execFifo], what: `open ${ctx.execFifo}` });
  if (!(flags & CLONE.NEWNS) && !spec.linux?.namespaces?.some((n) => n.type === "mount")) {
    throw new UsageError("linux.namespaces: a mount namespace is required");
  }
  steps.push(cloneStep(spec, ctx, flags));
  if (flags & CLONE.NEWUSER) {
    // Fresh in a new user namespace the process is still host uid 0,
    // which maps to nothing there: files it creates would fail with
    // EOVERFLOW.  Become the namespace's root first.
    steps.push({ op: Op.USER, args: [0, 0, new Uint8Array(0), Opt.NO_SETGROUPS], what: "become root in the user namespace" });
  }
  steps.push(...rootfsSteps(spec, ctx));
  // sysctls go in before readonlyPaths make /proc/sys read-only (runc's order).
  steps.push(...kernelSteps(spec, flags));
  steps.push(...protectionSteps(spec));
  steps.push(...processSteps(spec, ctx, flags));
  return steps;
}
