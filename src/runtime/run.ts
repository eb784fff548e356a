/**
 * Running a container in the foreground (the dokrust face): build the
 * spec, create the cgroup, start the executor, relay signals and the
 * terminal, and clean up everything on every way out.
 */
import { lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cgroupManager, type CgroupManager } from "../cgroups/manager.ts";
import { defaultRootfs, type RunOptions } from "../cli/dokrust.ts";
import { DokrustError, EXIT_CANNOT_EXEC, EXIT_NOT_FOUND, EXIT_RUNTIME, UsageError, errnoName } from "../errors.ts";
import { compilePlan, type PlanContext } from "../plan/compile.ts";
import { CloneMode, Op, Report, type ExecutorReport, type Step } from "../plan/ops.ts";
import { seccompForSpec } from "../seccomp/index.ts";
import { specFromOptions, type HostFiles } from "../spec/from-options.ts";
import type { Mount, Spec } from "../spec/types.ts";
import { spawnExecutor, stepError, type Executor } from "../native/executor.ts";
import type { PreparedNetwork } from "../net/setup.ts";
import { markStarted, registerContainer } from "./dokrust-state.ts";
import { claimDir, sweepStale } from "./sweep.ts";

import { forwardSignals, waitWithTerminal } from "./foreground.ts";

/** The state root: one directory per container. */
export function stateRoot(): string {
  return process.env.DOKRUST_ROOT || "/run/dokrust";
}

function hostResolvConf(): string {
  let text = "";
  try {
    text = readFileSync("/etc/resolv.conf", "utf8");
  } catch {
    // no resolver configured on the host
  }
  // A loopback resolver on the host is not reachable from the container's
  // own network namespace.
  return text
    .split("\n")
    .filter((line) => !/^\s*nameserver\s+(127\.|::1\b)/.test(line))
    .join("\n");
}

function writeEtcFiles(dir: string, hostname: string, full: boolean): HostFiles {
  mkdirSync(dir, { recursive: true });
  const files: HostFiles = { hostname: `${dir}/hostname`, hosts: `${dir}/hosts`, resolvConf: `${dir}/resolv.conf` };
  writeFileSync(files.hostname, `${hostname}\n`);
  writeFileSync(files.hosts, `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${hostname}\n`);
  writeFileSync(files.resolvConf, hostResolvConf());
  if (full) {
    writeFileSync(`${dir}/passwd`, "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    writeFileSync(`${dir}/group`, "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n");
    writeFileSync(`${dir}/nsswitch.conf`, "passwd: files\ngroup: files\nhosts: files dns\n");
  }
  return files;
}

/**
 * The built-in root: a tmpfs holding the host's /usr (and the /bin,
 * /lib*, /sbin that go with it) read-only, a fresh /etc and a /tmp.
 */
function builtinRoot(etc: string): { mounts: Mount[]; setup: Step[] } {
  const mounts: Mount[] = [{ source: "/usr", destination: "/usr", type: "bind", options: ["rbind", "ro", "nosuid", "nodev"] }];
  const setup: Step[] = [];
  for (const name of ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]) {
    let st;
    try {
      st = lstatSync(`/${name}`);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) {
      setup.push({ op: Op.SYMLINK, args: [readlinkSync(`/${name}`), `/${name}`], what: `create symlink /${name}` });
    } else if (st.isDirectory()) {
      mounts.push({ source: `/${name}`, destination: `/${name}`, type: "bind", options: ["rbind", "ro", "nosuid", "nodev"] });
    }
  }
  mounts.push(
    { source: etc, destination: "/etc", type: "bind", options: ["bind", "ro", "nosuid", "nodev", "noexec"] },
    { source: "tmpfs", destination: "/tmp", type: "tmpfs", options: ["nosuid", "nodev", "mode=1777"] },
  );
  setup.push({ op: Op.MKDIR, args: ["/root", 0o700], what: "create /root" });
  return { mounts, setup };
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Exit code and message for a step that failed in the container. */
export function execFailure(steps: readonly Step[], report: ExecutorReport, arg0: string): DokrustError {
  const op = steps[report.step]?.op;
  const name = errnoName(report.value);
  if (op === Op.FIND_EXEC && name === "ENOENT") {
    return new DokrustError(`${arg0}: command not found in the container`, { exitCode: EXIT_NOT_FOUND });
  }
  if (op === Op.FIND_EXEC || op === Op.EXEC) {
    const code = name === "ENOENT" ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
    const why = name === "EACCES" ? "permission denied" : name === "ENOENT" ? "no such file (or its interpreter is missing)" : name;
    return new DokrustError(`${arg0}: cannot execute: ${why}`, { exitCode: code });
  }
  return stepError(steps, report);
}

/**
 * The spec and plan context of a dokrust-face container (foreground or
 * detached): an image, the given root, or the built-in one made from the
 * host's /usr; the seccomp filter.  Writes the /etc files under
 * `stateDir`.  Returns the options as the image completed them.
 */
export async function containerInputs(
  options: RunOptions,
  stateDir: string,
  base: Omit<PlanContext, "rootfs">,
): Promise<{ spec: Spec; ctx: PlanContext; options: RunOptions }> {
  const rootfs = options.rootfs ?? defaultRootfs();
  let spec: Spec;
  let ctx: PlanContext;
  if (options.image) {
    const { imageRun } = await import("../image/rootfs.ts");
    const image = imageRun(options, stateDir);
    options = image.options;
    spec = specFromOptions(options, image.rootfs, writeEtcFiles(`${stateDir}/etc`, options.hostname, false));
    ctx = { ...base, rootfs: image.rootfs, overlayRoot: image.overlay };
  } else if (rootfs) {
    spec = specFromOptions(options, rootfs, writeEtcFiles(`${stateDir}/etc`, options.hostname, false));
    ctx = { ...base, rootfs };
  } else {
    process.stderr.write("dokrust: no rootfs given and no ../rootfs: using a minimal read-only root made from the host's /usr\n");
    const root = `${stateDir}/rootfs`;
    mkdirSync(root);
    writeEtcFiles(`${stateDir}/etc`, options.hostname, true);
    const builtin = builtinRoot(`${stateDir}/etc`);
    spec = specFromOptions(options, root, undefined);
    spec.mounts = [...(spec.mounts ?? []).filter((m) => !m.destination.startsWith("/etc/")), ...builtin.mounts];
    ctx = { ...base, rootfs: root, tmpfsRoot: true, rootSetup: builtin.setup };
  }
  const seccomp = seccompForSpec(spec);
  if (seccomp) {
    for (const warning of seccomp.warnings) process.stderr.write(`dokrust: warning: ${warning}\n`);
    ctx.seccomp = { program: seccomp.program, flags: seccomp.flags };
  }
  return { spec, ctx, options };
}

interface Started {
  executor: Executor;
  pid: number;
  master?: number;
}

/** Run a container in the foreground; resolves to dokrust's exit code. */
export async function runForeground(options: RunOptions): Promise<number> {
  const net = await import("../net/setup.ts");
  if (options.attach !== undefined) return net.attachByName(options, stateRoot());
  if (options.detach) return (await import("./detach.ts")).runDetached(options);
  if (options.tty && options.interactive && !process.stdin.isTTY) {
    // As docker says: with -it the terminal's input is relayed raw, which
    // a pipe or file cannot give; and its end could never reach the pty.
    throw new UsageError("-it: the input is not a terminal; use -i alone to stream it, or -t alone");
  }
  // Web Crypto rather than node:crypto, whose loading costs ~4 ms at every start.
  const id = Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString("hex");
  const stateDir = `${stateRoot()}/${id}`;
  let cgroup: CgroupManager | undefined;
  let containerPid: number | undefined;
  let stopForwarding: (() => void) | undefined;
  let network: PreparedNetwork | undefined;
  // what runs killed before their cleanup left (their owner is gone)
  await sweepStale(stateRoot());
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    claimDir(stateDir, { cgroupPath: `/dokrust-${id}` });
    cgroup = cgroupManager(`/dokrust-${id}`);
    const inputs = await containerInputs(options, stateDir, {
      base: process.cwd(),
      isDirectory,
      cgroupProcs: cgroup.joinFiles,
      cloneMode: CloneMode.WAIT,
      preserveFds: 0,
      pdeathsig: 9,
    });
    const { spec, ctx } = inputs;
    options = inputs.options;
    // state.json: `list` shows the container while it runs, and its --name is taken.
    await registerContainer(stateRoot(), { id, spec, cgroupPath: `/dokrust-${id}`, options, detached: false });
    let ttySockets: [number, number] | undefined;
    if (options.tty) {
      const libc = await import("../native/libc.ts");
      ttySockets = libc.socketPair();
      const size = libc.getWindowSize(1) ?? libc.getWindowSize(0);
      ctx.terminal = { sendFd: 3, rows: size?.rows || 24, cols: size?.cols || 80 };
    }
    const extraFds = ttySockets ? [ttySockets[1]] : [];
    network = await net.prepareNetwork(options, { id, stateDir, etcDir: `${stateDir}/etc`, stateRoot: stateRoot() });
    net.applyNetwork(spec, network, 3 + extraFds.length);
    if (network.nsFd !== undefined) extraFds.push(network.nsFd);
    const steps = compilePlan(spec, ctx);
    cgroup.create();
    cgroup.apply(spec.linux?.resources);
    cgroup.applyQuota(options.quota);
    // Installed before the start, so that a signal then does not kill
    // dokrust half-way; it reaches the container once it has a pid.
    stopForwarding = forwardSignals(() => containerPid);
    const started = await start(steps, options, ttySockets, extraFds);
    containerPid = started.pid;
    network.started(started.pid);
    markStarted(stateRoot(), id, started.pid);
    return await waitForExit(started, options);
  } finally {
    stopForwarding?.();
    try {
      await network?.teardown();
      cgroup?.destroy();
    } finally {
      rmSync(stateDir, { recursive: true, force: true });
    }
  }
}

async function start(steps: Step[], options: RunOptions, ttySockets: [number, number] | undefined, extraFds: number[]): Promise<Started> {
  const executor = spawnExecutor(steps, {
    stdin: options.interactive && !options.tty ? "inherit" : "ignore",
    stdout: options.tty ? "ignore" : "inherit",
    stderr: options.tty ? "ignore" : "inherit",
    extraFds,
  });
  let pid = 0;
  let master: number | undefined;
  try {
    for (;;) {
      const report = await executor.next();
      if (!report) break;
      if (report.type === Report.PID) pid = report.value;
      else if (report.type === Report.TTY && ttySockets) {
        const libc = await import("../native/libc.ts");
        master = libc.receiveFd(ttySockets[0]);
      } else if (report.type === Report.ERROR) {
        await executor.proc.exited;
        throw execFailure(steps, report, options.args[0]!);
      }
    }
  } finally {
    if (ttySockets) {
      const libc = await import("../native/libc.ts");
      libc.closeFd(ttySockets[0]);
      libc.closeFd(ttySockets[1]);
    }
  }
  if (!pid) {
    const code = await executor.proc.exited;
    throw new DokrustError(`the executor ended (status ${code}) before starting the container`);
  }
  return master === undefined ? { executor, pid } : { executor, pid, master };
}

async function waitForExit(started: Started, options: RunOptions): Promise<number> {
  const fg = { proc: started.executor.proc, interactive: options.interactive };
  const code = await waitWithTerminal(started.master === undefined ? fg : { ...fg, master: started.master });
  return started.executor.proc.signalCode ? EXIT_RUNTIME : code;
}
