/**
 * The exec plan: a new process inside a running container (runc's
 * `exec`, and the dokrust face's `dokrust exec`).  Pure, like
 * compilePlan(): everything it needs to know about the live container
 * comes in through `ExecContext`, so it is unit-tested without root.
 *
 *   outer executor                        new process
 *   --------------                        -----------
 *   note the container's cgroups
 *   setns: pid, time
 *   clone (no new namespaces) ─────────▶  (waits)
 *   put the child in the cgroups          setns: user, ipc, uts, net,
 *     WAIT: exit with its status                 cgroup, mnt
 *     DETACH: exit 0 at once              [terminal]
 *                                         find the program, close fds
 *                                         rlimits, bounding set, ids,
 *                                         capabilities, umask, cwd,
 *                                         no_new_privs, seccomp, execve
 *
 * The pid and time namespaces are joined by the outer executor: joining
 * them changes only the namespaces of later children, so the clone that
 * follows makes a member.  Every other namespace is joined by the new
 * process itself, because the outer must keep the host's view: it writes
 * the child's pid into the host's cgroup files after the clone (the
 * executor's CGROUP_JOIN contract), which needs the host's mount and user
 * namespaces.  Joining the mount namespace sets the root and working
 * directory to the namespace's root, which is the container's root since
 * its init called pivot_root.
 *
 * Usage (src/runtime/exec.ts does this for both faces):
 *
 *   const ctx = { initPid, namespaces: ownNamespaces(initPid), cgroupProcs,
 *                 cloneMode: CloneMode.WAIT, preserveFds: 0 };
 *   const steps = compileExecPlan(state.config, process, ctx);
 *   spawnExecutor(steps, ...);
 */
import { UsageError } from "../errors.ts";
import type { Process, Spec } from "../spec/types.ts";
import { execCandidates } from "./compile.ts";
import { NAMESPACE_FLAGS, RLIMITS, capabilityMask } from "./linux.ts";
import { CloneMode, Op, Opt, type Step } from "./ops.ts";

/** Namespaces the outer executor joins before the clone (they apply to children). */
export const OUTER_NAMESPACES = ["pid", "time"] as const;

/**
 * Namespaces the new process joins, in order.  The user namespace comes
 * first: it grants the capabilities needed to join the others it owns.
 * The mount namespace comes last, because the paths before it are
 * /proc/<host pid>/ns/..., which the container's own /proc (mounted for
 * its pid namespace) cannot resolve.
 */
export const CHILD_NAMESPACES = ["user", "ipc", "uts", "network", "cgroup", "mount"] as const;

/** Every namespace type exec joins (when the container has its own). */
export const EXEC_NAMESPACE_ORDER = [...OUTER_NAMESPACES, ...CHILD_NAMESPACES] as const;

/** The /proc/<pid>/ns/ file name of each runtime-spec namespace type. */
export const NS_FILES: Record<string, string> = {
  user: "user",
  ipc: "ipc",
  uts: "uts",
  network: "net",
  pid: "pid",
  cgroup: "cgroup",
  time: "time",
  mount: "mnt",
};

/** What the runtime found out about the running container. */
export interface ExecContext {
  /** The container's init, as the host sees it: its namespaces are joined. */
  initPid: number;
  /**
   * The namespace types (runtime-spec names: "network", "mount", ...) in
   * which the init is not in the runtime's own namespace: only those are
   * joined (src/runtime/exec.ts ownNamespaces() finds them).
   */
  namespaces: readonly string[];
  /** cgroup.procs files of the container's cgroup. */
  cgroupProcs: readonly string[];
  /** WAIT: the executor exits with the process's status; DETACH: at once. */
  cloneMode: (typeof CloneMode)[keyof typeof CloneMode];
  /** A terminal: the master is sent over the executor's fd `sendFd`. */
  terminal?: { sendFd: number; rows: number; cols: number };
  /** Number of fds after 0-2 that the process inherits. */
  preserveFds: number;
  /** Compiled seccomp program (struct sock_filter array), if any. */
  seccomp?: { program: Uint8Array; flags: number };
}

function setnsSteps(ctx: ExecContext, types: readonly string[]): Step[] {
  return types
    .filter((type) => ctx.namespaces.includes(type))
    .map((type) => {
      const path = `/proc/${ctx.initPid}/ns/${NS_FILES[type]}`;
      return { op: Op.SETNS, args: [path, NAMESPACE_FLAGS[type]!], what: `join the container's ${type} namespace ${path}` };
    });
}

/** The outer executor's steps: cgroups to put the child in, pid and time namespaces, the clone. */
function outerSteps(ctx: ExecContext): Step[] {
  for (const type of ctx.namespaces) {
    if (!(EXEC_NAMESPACE_ORDER as readonly string[]).includes(type)) {
      throw new UsageError(`exec: unknown namespace type ${JSON.stringify(type)}`);
    }
  }
  const steps: Step[] = ctx.cgroupProcs.map((procs) => ({
    op: Op.CGROUP_JOIN,
    args: [procs],
    what: `join cgroup ${procs.replace(/\/(cgroup\.procs|tasks)$/, "")}`,
  }));
  steps.push(...setnsSteps(ctx, OUTER_NAMESPACES), {
    op: Op.CLONE,
    args: [0, "", "", "", ctx.cloneMode],
    what: `create the process in container ${ctx.initPid}'s namespaces`,
  });
  return steps;
}

/** The checks runc's validateProcessSpec makes, worded for the field. */
function checkProcess(proc: Process): void {
  if (!proc.args || proc.args.length === 0 || proc.args[0] === "") throw new UsageError("process.args: empty; there is nothing to run");
  if (!proc.cwd?.startsWith("/")) throw new UsageError(`process.cwd: ${JSON.stringify(proc.cwd ?? "")} is not an absolute path`);
}

function rlimitSteps(proc: Process): Step[] {
  const seen = new Set<string>();
  return (proc.rlimits ?? []).map((limit) => {
    const resource = RLIMITS[limit.type];
    if (resource === undefined) throw new UsageError(`process.rlimits: unknown rlimit ${JSON.stringify(limit.type)}`);
    if (seen.has(limit.type)) throw new UsageError(`process.rlimits: ${limit.type} is given twice`);
    seen.add(limit.type);
    if (limit.soft > limit.hard) throw new UsageError(`process.rlimits: ${limit.type} soft limit is above the hard limit`);
    return { op: Op.RLIMIT, args: [resource, BigInt(limit.soft), BigInt(limit.hard)], what: `set ${limit.type} ${limit.soft}:${limit.hard}` };
  });
}

/**
 * The credential dance, in compilePlan()'s order: bounding set, ids,
 * capabilities, umask, cwd, personality, no_new_privs, and seccomp last
 * (or, without no_new_privs, while CAP_SYS_ADMIN is still held).
 */
function credentialSteps(spec: Spec, proc: Process, ctx: ExecContext): Step[] {
  const caps = proc.capabilities ?? {};
  const steps: Step[] = [];
  const seccomp = ctx.seccomp && { op: Op.SECCOMP, args: [ctx.seccomp.program, ctx.seccomp.flags], what: "load the seccomp filter" };
  if (seccomp && !proc.noNewPrivileges) steps.push(seccomp);
  steps.push({ op: Op.CAP_BOUNDING, args: [capabilityMask(caps.bounding)], what: "drop capabilities from the bounding set" });
  const groups = new Uint8Array(new Uint32Array(proc.user.additionalGids ?? []).buffer);
  const userOpts = ctx.namespaces.includes("user") && spec.linux?.gidMappings === undefined ? Opt.NO_SETGROUPS : 0;
  steps.push(
    { op: Op.USER, args: [proc.user.uid, proc.user.gid, groups, userOpts], what: `switch to uid ${proc.user.uid} gid ${proc.user.gid}` },
    {
      op: Op.CAPS,
      args: [capabilityMask(caps.effective), capabilityMask(caps.permitted), capabilityMask(caps.inheritable), capabilityMask(caps.ambient)],
      what: "set capabilities",
    },
    { op: Op.UMASK, args: [proc.user.umask ?? 0o022], what: "set umask" },
    { op: Op.CHDIR, args: [proc.cwd], what: `change directory to ${proc.cwd}` },
  );
  const personality = spec.linux?.personality;
  if (personality) {
    const domain = { LINUX: 0, LINUX32: 8 }[personality.domain];
    if (domain === undefined) throw new UsageError(`linux.personality.domain: unknown domain ${personality.domain}`);
    steps.push({ op: Op.PERSONALITY, args: [domain], what: `set personality ${personality.domain}` });
  }
  if (proc.noNewPrivileges) steps.push({ op: Op.NO_NEW_PRIVS, args: [], what: "set no_new_privs" });
  if (seccomp && proc.noNewPrivileges) steps.push(seccomp);
  return steps;
}

/**
 * Compile the steps that start `process` inside the running container
 * whose config is `spec`.  `process` is the whole process to run (runc's
 * exec builds it from the container's process and the command line, or
 * reads it from --process); the spec supplies what belongs to the
 * container (id mappings, personality).
 */
export function compileExecPlan(spec: Spec, process: Process, ctx: ExecContext): Step[] {
  checkProcess(process);
  const args = process.args!;
  const env = process.env ?? [];
  const steps = outerSteps(ctx);
  steps.push(...setnsSteps(ctx, CHILD_NAMESPACES));
  if (ctx.terminal) {
    const { sendFd, rows, cols } = ctx.terminal;
    // The terminal op resolves /dev/pts/ptmx inside the root it is given.
    steps.push(
      { op: Op.ROOT, args: ["/"], what: "open the container's root" },
      { op: Op.TTY, args: [sendFd, rows, cols, Opt.NO_CONSOLE], what: "set up the terminal" },
    );
  }
  steps.push(
    { op: Op.FIND_EXEC, args: execCandidates(args[0]!, env), what: `find ${args[0]}` },
    { op: Op.CLOSE_FDS, args: [3 + ctx.preserveFds], what: "close inherited file descriptors" },
    ...rlimitSteps(process),
    ...credentialSteps(spec, process, ctx),
    { op: Op.EXEC, args: [args.length, ...args, ...env], what: `execute ${args[0]}` },
  );
  return steps;
}
