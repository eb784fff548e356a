/**
 * A container's network, as the dokrust face's run uses it
 * (src/runtime/run.ts): decide and build it before the container starts,
 * record the container once it runs, undo it all when it ends.
 *
 * How the container gets its network namespace.  For `bridge`, `cni`
 * and `container:NAME` the namespace exists before the container: dokrust
 * makes a new one (unshare on its JavaScript thread, kept as an fd, see
 * src/native/netlink-socket.ts) or opens the named container's, wires it
 * completely, and hands the fd to the executor, whose plan joins it with
 * DK_OP_SETNS before the clone ("/proc/self/fd/N" in the spec).  So the
 * network is ready before the first instruction of the container runs,
 * with no extra round trip with the executor, and nothing is mounted to
 * keep the namespace alive: it lives while the container or the fd does,
 * so when both dokrust and the container die the kernel removes it, and
 * the container's veth with it.
 */
import { readFileSync, readlinkSync, writeFileSync } from "node:fs";
import type { RunOptions } from "../cli/dokrust.ts";
import { DokrustError, UsageError } from "../errors.ts";
import type { Spec } from "../spec/types.ts";
import type { Member } from "./bridge.ts";
import { findRunning, registerContainer, startTimeOf } from "./registry.ts";

/** What run.ts needs to know about the network it asked for. */
export interface PreparedNetwork {
  /** The network namespace the executor joins (an fd to pass it), if any. */
  nsFd?: number;
  /** The container shares the host's network namespace. */
  hostNetwork: boolean;
  /** The container's address on a bridge network. */
  ip?: string;
  /** Record the running container (for container:NAME and -k). */
  started(pid: number): void;
  /** Undo everything; best effort, problems become warnings. */
  teardown(): Promise<void>;
  /**
   * For a container that outlives this dokrust (detached): make the
   * container (pid) the owner of what its network holds, so that it is
   * reclaimed after the container ends, and let go of the namespace fd;
   * teardown() is then not called.
   */
  handOver(pid: number): Promise<void>;
}

interface Context {
  id: string;
  stateDir: string;
  /** Directory of the generated hostname, hosts and resolv.conf. */
  etcDir: string;
  stateRoot: string;
}

function warn(problems: readonly string[]): void {
  for (const p of problems) process.stderr.write(`dokrust: warning: ${p}\n`);
}

function netText(options: RunOptions): string {
  const m = options.net;
  return m.kind === "container" || m.kind === "cni" ? `${m.kind}:${m.name}` : m.kind;
}

/** Build the network the options ask for (before the container starts). */
export async function prepareNetwork(options: RunOptions, ctx: Context): Promise<PreparedNetwork> {
  if (options.ports.length && options.net.kind !== "bridge" && options.net.kind !== "cni") {
    throw new UsageError(`-p needs a bridge network; --net ${netText(options)} has no ports of its own to publish`);
  }
  const base = {
    hostNetwork: false,
    started: (pid: number) => record(options, ctx, pid),
    teardown: async () => {},
    handOver: async () => {},
  };
  switch (options.net.kind) {
    case "none":
      return base;
    case "host":
      writeFileSync(`${ctx.etcDir}/resolv.conf`, readText("/etc/resolv.conf"));
      return { ...base, hostNetwork: true };
    case "container": {
      const nsFd = await joinContainer(ctx.stateRoot, options.net.name);
      const { closeFd } = await import("../native/netlink-socket.ts");
      const release = async () => closeFd(nsFd);
      return { ...base, nsFd, teardown: release, handOver: release };
    }
    case "cni": {
      const { prepareCni } = await import("./cni.ts");
      return prepareCni(options, ctx, base);
    }
    case "bridge": {
      const { nftPath } = await import("./nft.ts");
      if (options.netDefaulted && !options.ports.length && !nftPath()) {
        // The default network needs nftables for its NAT; a machine
        // without it still runs containers, on loopback only.
        process.stderr.write("dokrust: the nft tool is missing (package nftables): the container gets loopback only, as with --net none\n");
        return base;
      }
      return prepareBridge(options, ctx, base);
    }
  }
}

async function prepareBridge(options: RunOptions, ctx: Context, base: Omit<PreparedNetwork, "nsFd">): Promise<PreparedNetwork> {
  // Loaded only for the networks that need them: they cost start time.
  const { joinBridge, netConfig } = await import("./bridge.ts");
  const { containerResolvConf } = await import("./hosts.ts");
  const { closeFd, newNetns } = await import("../native/netlink-socket.ts");
  const config = netConfig();
  const resolv = containerResolvConf();
  const nsFd = newNetns();
  let member: Member;
  try {
    const request = {
      key: ctx.id,
      hostname: options.hostname,
      owner: { pid: process.pid, startTime: startTimeOf(process.pid) ?? "" },
      ports: options.ports,
      netns: { fd: nsFd },
      ifname: "eth0",
      hostsFile: `${ctx.etcDir}/hosts`,
      ...(options.name ? { name: options.name } : {}),
    };
    member = await joinBridge(config, request);
  } catch (err) {
    closeFd(nsFd);
    throw err;
  }
  writeFileSync(`${ctx.etcDir}/resolv.conf`, resolv.text);
  if (resolv.notice) process.stderr.write(`dokrust: note: ${resolv.notice}\n`);
  return {
    ...base,
    nsFd,
    ip: member.allocation.ip,
    async handOver(pid: number) {
      try {
        await member.handOver({ pid, startTime: startTimeOf(pid) ?? "" });
      } finally {
        closeFd(nsFd);
      }
    },
    async teardown() {
      try {
        warn(await member.leave());
      } catch (err) {
        warn([`leave the network: ${(err as Error).message}; dokrust network prune will finish`]);
      } finally {
        closeFd(nsFd);
      }
    },
  };
}

/** Open the network namespace of the running container `name`. */
async function joinContainer(stateRoot: string, name: string): Promise<number> {
  const { closeFd, openReadOnly } = await import("../native/netlink-socket.ts");
  const found = findRunning(stateRoot, name);
  if (!found) throw new UsageError(`--net container:${name}: no running container is named ${name}`);
  const fd = openReadOnly(`/proc/${found.pid}/ns/net`);
  // The pid may have died and been reused between the lookup and the open.
  if (startTimeOf(found.pid) !== found.startTime) {
    closeFd(fd);
    throw new UsageError(`--net container:${name}: the container ended`);
  }
  return fd;
}

function record(options: RunOptions, ctx: Context, pid: number): void {
  registerContainer(ctx.stateDir, {
    id: ctx.id,
    hostname: options.hostname,
    pid,
    startTime: startTimeOf(pid) ?? "",
    net: netText(options),
    hostsFile: `${ctx.etcDir}/hosts`,
    ...(options.name ? { name: options.name } : {}),
  });
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/**
 * Make the spec follow the network: no network namespace of its own for
 * `host`; the prepared namespace, passed as executor fd `fdNumber`, for
 * the others that have one.
 */
export function applyNetwork(spec: Spec, network: PreparedNetwork, fdNumber: number): void {
  const namespaces = spec.linux?.namespaces;
  if (!namespaces) return;
  const at = namespaces.findIndex((n) => n.type === "network");
  if (network.hostNetwork) {
    if (at >= 0) namespaces.splice(at, 1);
  } else if (network.nsFd !== undefined) {
    const entry = { type: "network", path: `/proc/self/fd/${fdNumber}` };
    if (at >= 0) namespaces[at] = entry;
    else namespaces.push(entry);
  }
}

/**
 * `dokrust -k NAME`: put the running container NAME on the bridge network
 * (the original tool's option: networking for a container by its name).
 * The container owns the address from then on: it is reclaimed after the
 * container ends.  Prints the address.
 */
export async function attachByName(options: RunOptions, stateRoot: string): Promise<number> {
  const name = options.attach!;
  const found = findRunning(stateRoot, name);
  if (!found) throw new UsageError(`-k ${name}: no running container is named ${name}`);
  const theirs = readLink(`/proc/${found.pid}/ns/net`);
  if (theirs === readLink("/proc/self/ns/net")) throw new UsageError(`-k ${name}: the container runs in the host's network namespace`);
  const { joinBridge, netConfig } = await import("./bridge.ts");
  const { Rtnl } = await import("./rtnl.ts");
  const inner = Rtnl.openForPid(found.pid);
  let ifname: string;
  try {
    const names = new Set(inner.links().map((l) => l.name));
    ifname = Array.from({ length: 16 }, (_, i) => `eth${i}`).find((n) => !names.has(n)) ?? "eth16";
  } finally {
    inner.close();
  }
  const member = await joinBridge(netConfig(), {
    key: Buffer.from(crypto.getRandomValues(new Uint8Array(6))).toString("hex"),
    hostname: found.record?.hostname ?? name,
    owner: { pid: found.pid, startTime: found.startTime },
    ports: options.ports,
    netns: { pid: found.pid },
    ifname,
    ...(found.record?.name ? { name: found.record.name } : {}),
    ...(found.record?.hostsFile ? { hostsFile: found.record.hostsFile } : {}),
  });
  process.stdout.write(`${name}: ${ifname} ${member.allocation.ip} on ${member.network.bridge}\n`);
  return 0;
}

function readLink(path: string): string {
  try {
    return readlinkSync(path);
  } catch (err) {
    throw new DokrustError(`read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}
