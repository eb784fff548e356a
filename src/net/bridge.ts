/**
 * The bridge network: a Linux bridge (dokrust0), a veth pair per
 * container, an address from the network's subnet, a default route via
 * the bridge, outbound NAT and published ports (src/net/nft.ts).
 *
 * Everything that changes the network happens under the network's lock
 * (src/net/ipam.ts), and every command that takes it first reclaims what
 * dead containers left: their host veths (normally gone with their
 * namespace already), their published ports and their addresses.
 *
 * Configuration comes from the environment, so that tests get a network
 * of their own (their own bridge, subnet, table and directory):
 *   DOKRUST_NET_ROOT     directory of the networks' state (/run/dokrust-net)
 *   DOKRUST_BRIDGE       bridge name (dokrust0)
 *   DOKRUST_SUBNET       subnet (default: the first free of 10.88.0.0/16 ...)
 *   DOKRUST_NFT_TABLE    nftables table (ip family) of the network (dokrust)
 *   DOKRUST_NET_UPLINKS  interfaces on which dokrust may turn IPv4
 *                        forwarding on for the subnet's return traffic
 *                        (none by default; docs/NETWORKING.md)
 */
import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { DokrustError, UsageError } from "../errors.ts";
import { hostsText, rewriteInPlace, type HostEntry } from "./hosts.ts";
import { gatewayOf, NetworkStore, overlaps, ownerAlive, parseCidr, type Allocation, type NetworkState, type Owner } from "./ipam.ts";
import { baseScript, deleteTableScript, publishScript, runNft, withdrawScript, type PortRule } from "./nft.ts";
import { portsClash, portText, type PortSpec } from "./ports.ts";
import { NetlinkError, Rtnl, type NetnsRef } from "./rtnl.ts";

/** Where and what the bridge network is. */
export interface NetConfig {
  root: string;
  bridge: string;
  table: string;
  /** Asked for explicitly; otherwise chosen. */
  subnet?: string;
  uplinks: string[];
}

const IFNAMSIZ = 16;
const ENODEV = 19;

/** The network configuration from the environment. */
export function netConfig(env: Record<string, string | undefined> = process.env): NetConfig {
  const bridge = env.DOKRUST_BRIDGE || "dokrust0";
  if (bridge.length >= IFNAMSIZ || !/^[A-Za-z0-9_.-]+$/.test(bridge)) {
    throw new UsageError(`DOKRUST_BRIDGE=${bridge}: a link name has at most ${IFNAMSIZ - 1} letters, digits, '_', '.' or '-'`);
  }
  const table = env.DOKRUST_NFT_TABLE || "dokrust";
  if (!/^[A-Za-z][A-Za-z0-9_-]{0,63}$/.test(table)) {
    throw new UsageError(`DOKRUST_NFT_TABLE=${table}: an nft table name is a letter then letters, digits, '_' or '-'`);
  }
  const config: NetConfig = {
    root: env.DOKRUST_NET_ROOT || "/run/dokrust-net",
    bridge,
    table,
    uplinks: (env.DOKRUST_NET_UPLINKS ?? "").split(",").filter(Boolean),
  };
  if (env.DOKRUST_SUBNET) {
    const { base, len } = parseCidr(env.DOKRUST_SUBNET);
    if (len > 30 || len < 8) throw new UsageError(`DOKRUST_SUBNET=${env.DOKRUST_SUBNET}: the prefix length must be between 8 and 30`);
    config.subnet = `${[base >>> 24, (base >>> 16) & 0xff, (base >>> 8) & 0xff, base & 0xff].join(".")}/${len}`;
  }
  return config;
}

/** Subnets tried in turn when none is configured. */
export const CANDIDATE_SUBNETS = [
  ...Array.from({ length: 12 }, (_, i) => `10.${88 + i}.0.0/16`),
  ...Array.from({ length: 14 }, (_, i) => `172.${18 + i}.0.0/16`),
];

/** What a subnet must not overlap on this host, each with its description. */
function hostClaims(rtnl: Rtnl, bridge: string, root: string): Array<{ cidr: string; what: string }> {
  const links = new Map(rtnl.links().map((l) => [l.index, l.name]));
  const claims: Array<{ cidr: string; what: string }> = [];
  for (const r of rtnl.routes()) {
    const dev = r.oif === undefined ? "" : (links.get(r.oif) ?? "");
    if (r.dstLen === 0 || dev === bridge) continue;
    claims.push({ cidr: `${r.dst}/${r.dstLen}`, what: `the host route ${r.dst}/${r.dstLen}${dev ? ` dev ${dev}` : ""}` });
  }
  for (const a of rtnl.addresses()) {
    if (a.family !== 2 || links.get(a.index) === bridge) continue;
    claims.push({ cidr: `${a.address}/32`, what: `the address ${a.address} of ${links.get(a.index) ?? "a link"}` });
  }
  try {
    for (const m of readFileSync("/etc/resolv.conf", "utf8").matchAll(/^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/gm)) {
      claims.push({ cidr: `${m[1]}/32`, what: `the host's nameserver ${m[1]}` });
    }
  } catch {
    // no resolv.conf
  }
  claims.push(...otherNetworks(root, bridge));
  return claims;
}

/** Subnets of dokrust's other networks under the same root. */
function otherNetworks(root: string, bridge: string): Array<{ cidr: string; what: string }> {
  let names: string[] = [];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  return names
    .filter((n) => n !== bridge)
    .flatMap((n) => {
      const state = new NetworkStore(root, n).network();
      return state ? [{ cidr: state.subnet, what: `dokrust's network ${n}` }] : [];
    });
}

function chooseSubnet(rtnl: Rtnl, config: NetConfig): string {
  const claims = hostClaims(rtnl, config.bridge, config.root);
  if (config.subnet) {
    const clash = claims.find((c) => overlaps(c.cidr, config.subnet!));
    if (clash) throw new UsageError(`subnet ${config.subnet} overlaps ${clash.what}: choose another with DOKRUST_SUBNET`);
    return config.subnet;
  }
  const free = CANDIDATE_SUBNETS.find((s) => !claims.some((c) => overlaps(c.cidr, s)));
  if (!free) throw new DokrustError("no free subnet for the bridge network: every candidate overlaps a host route; set DOKRUST_SUBNET");
  return free;
}

function sysctl(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch (err) {
    throw new DokrustError(`write ${value} to ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** A locally administered unicast MAC, so the bridge's does not follow its ports'. */
function randomMac(): Uint8Array {
  const mac = crypto.getRandomValues(new Uint8Array(6));
  mac[0] = (mac[0]! & 0xfe) | 0x02;
  return mac;
}

/**
 * The network, created when missing (bridge, address, forwarding on the
 * bridge, nft table).  Lock held.
 */
function ensureNetwork(rtnl: Rtnl, store: NetworkStore, config: NetConfig): NetworkState {
  const state = store.network();
  const bridge = rtnl.link(config.bridge);
  if (state && bridge) {
    if (config.subnet && config.subnet !== state.subnet) {
      throw new UsageError(`DOKRUST_SUBNET=${config.subnet}: the network ${config.bridge} exists with subnet ${state.subnet} (dokrust network prune removes it once unused)`);
    }
    return state;
  }
  if (bridge) {
    throw new DokrustError(`a link named ${config.bridge} exists but dokrust has no record of it in ${store.dir}: remove it or set DOKRUST_BRIDGE`);
  }
  const subnet = chooseSubnet(rtnl, config);
  const gateway = gatewayOf(subnet);
  const len = parseCidr(subnet).len;
  rtnl.createBridge(config.bridge, randomMac());
  const fresh: NetworkState = { bridge: config.bridge, subnet, gateway, table: config.table, guardedUplinks: [] };
  try {
    rtnl.addAddress(config.bridge, `${gateway}/${len}`);
    rtnl.setUp(config.bridge);
    // Per-interface settings of dokrust's own bridge only: forwarding
    // for packets that come in from the containers, and route_localnet
    // so the host's connections to 127.0.0.1:PORT, DNAT'ed to a
    // container, may leave through the bridge (then be masqueraded).
    sysctl(`/proc/sys/net/ipv4/conf/${config.bridge}/forwarding`, "1");
    sysctl(`/proc/sys/net/ipv4/conf/${config.bridge}/route_localnet`, "1");
    for (const uplink of config.uplinks) {
      const path = `/proc/sys/net/ipv4/conf/${uplink}/forwarding`;
      const before = readSysctl(path);
      if (before === undefined) throw new UsageError(`DOKRUST_NET_UPLINKS: no interface named ${uplink}`);
      if (before === "0") {
        sysctl(path, "1");
        fresh.guardedUplinks.push(uplink);
      }
    }
    runNft(baseScript({ table: config.table, bridge: config.bridge, subnet, guardedUplinks: fresh.guardedUplinks }), `set up NAT for ${subnet} in nft table ip ${config.table}`);
    store.saveNetwork(fresh);
  } catch (err) {
    removeNetwork(rtnl, fresh);
    throw err;
  }
  return fresh;
}

/** Best effort: remove a network's bridge, table and uplink forwarding. */
function removeNetwork(rtnl: Rtnl, state: NetworkState): string[] {
  const problems: string[] = [];
  const attempt = (fn: () => void) => {
    try {
      fn();
    } catch (err) {
      if (!(err instanceof NetlinkError && err.errno === ENODEV)) problems.push((err as Error).message);
    }
  };
  attempt(() => rtnl.deleteLink(state.bridge));
  attempt(() => runNft(deleteTableScript(state.table), `delete nft table ip ${state.table}`));
  for (const uplink of state.guardedUplinks) attempt(() => sysctl(`/proc/sys/net/ipv4/conf/${uplink}/forwarding`, "0"));
  return problems;
}

function portRules(a: Allocation): PortRule[] {
  return a.ports.map((p) => ({ ...p, containerIp: a.ip }));
}

/** Undo one allocation's kernel state (veth, ports); errors are returned. */
function release(rtnl: Rtnl, state: NetworkState, a: Allocation): string[] {
  const problems: string[] = [];
  try {
    rtnl.deleteLink(a.veth);
  } catch (err) {
    if (!(err instanceof NetlinkError && err.errno === ENODEV)) problems.push((err as Error).message);
  }
  if (a.ports.length) {
    try {
      runNft(withdrawScript(state.table, portRules(a)), `withdraw the ports of ${a.name ?? a.key}`);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  return problems;
}

/** Reclaim the allocations of dead owners.  Lock held.  Returns warnings. */
function reclaimStale(rtnl: Rtnl, store: NetworkStore, state: NetworkState | undefined): string[] {
  const stale = store.allocations().filter((a) => !ownerAlive(a.owner));
  if (!stale.length) return [];
  const problems = state ? stale.flatMap((a) => release(rtnl, state, a)) : [];
  const gone = new Set(stale.map((a) => a.key));
  store.update((all) => all.filter((a) => !gone.has(a.key)));
  refreshHosts(store);
  return problems;
}

function entry(a: Allocation): HostEntry {
  return { ip: a.ip, names: [a.name ?? "", a.hostname] };
}

/** Rewrite every member's /etc/hosts from the records.  Lock held. */
function refreshHosts(store: NetworkStore): void {
  const all = store.allocations();
  for (const a of all) {
    if (!a.hostsFile) continue;
    rewriteInPlace(a.hostsFile, hostsText(entry(a), all.filter((o) => o !== a).map(entry), a.hostname));
  }
}

function checkPortsFree(store: NetworkStore, ports: readonly PortSpec[]): void {
  for (const a of store.allocations()) {
    if (!ownerAlive(a.owner)) continue;
    for (const mine of ports) {
      const theirs = a.ports.find((p) => portsClash(p, mine));
      if (theirs) throw new UsageError(`-p ${portText(mine)}: host port ${mine.hostPort}/${mine.proto} is already published by container ${a.name ?? a.key.slice(0, 12)}`);
    }
  }
}

/** What joining the network asks for. */
export interface JoinRequest {
  key: string;
  name?: string;
  hostname: string;
  owner: Owner;
  ports: PortSpec[];
  /** The container's network namespace. */
  netns: NetnsRef;
  /** Name of the interface inside (eth0). */
  ifname: string;
  /** Host file bound over the container's /etc/hosts, kept current. */
  hostsFile?: string;
}

/** A container on the network. */
export interface Member {
  allocation: Allocation;
  network: NetworkState;
  /** Leave the network: veth, ports, address, hosts entries. */
  leave(): Promise<string[]>;
  /** Make `owner` (a detached container's pid) the owner from now on. */
  handOver(owner: Owner): Promise<void>;
}

/** The host-side veth name of a container: dk + 12 hex digits of its key. */
export function hostVethName(key: string): string {
  const hex = /^[0-9a-f]{12,}$/.test(key) ? key : Bun.hash(key).toString(16).padStart(12, "0");
  return `dk${hex.slice(0, 12)}`;
}

/**
 * Put a container on the bridge network: address, veth pair (the
 * container's end born inside its namespace), route, ports, hosts.  On
 * failure nothing of it stays.
 */
export async function joinBridge(config: NetConfig, req: JoinRequest): Promise<Member> {
  const store = new NetworkStore(config.root, config.bridge);
  const rtnl = Rtnl.open();
  try {
    return await store.locked(() => {
      for (const w of reclaimStale(rtnl, store, store.network())) process.stderr.write(`dokrust: warning: ${w}\n`);
      checkPortsFree(store, req.ports);
      const network = ensureNetwork(rtnl, store, config);
      const veth = hostVethName(req.key);
      const record: Omit<Allocation, "ip"> = { key: req.key, hostname: req.hostname, owner: req.owner, veth, ports: req.ports };
      if (req.name) record.name = req.name;
      if (req.hostsFile) record.hostsFile = req.hostsFile;
      const allocation = store.allocate(network.subnet, record);
      try {
        wire(rtnl, network, allocation, req);
        if (req.ports.length) runNft(publishScript(network.table, portRules(allocation)), `publish ${req.ports.map(portText).join(", ")}`);
      } catch (err) {
        release(rtnl, network, { ...allocation, ports: [] });
        store.update((all) => all.filter((a) => a.key !== allocation.key));
        throw portError(err, req.ports);
      }
      refreshHosts(store);
      const handOver = (owner: Owner) =>
        store.locked(() => store.update((all) => all.map((a) => (a.key === allocation.key ? { ...a, owner } : a))));
      return { allocation, network, leave: () => leaveBridge(config, allocation), handOver };
    });
  } finally {
    rtnl.close();
  }
}

function portError(err: unknown, ports: readonly PortSpec[]): unknown {
  if (err instanceof DokrustError && /File exists/.test(err.message) && ports.length) {
    return new UsageError(`${err.message.split(": nft:")[0]}: a host port is already published by another dokrust container`);
  }
  return err;
}

/** The veth pair, the container's address and default route. */
function wire(rtnl: Rtnl, network: NetworkState, a: Allocation, req: JoinRequest): void {
  const len = parseCidr(network.subnet).len;
  rtnl.createVeth(a.veth, req.ifname, req.netns);
  rtnl.setMaster(a.veth, network.bridge);
  rtnl.setUp(a.veth);
  const inner = "fd" in req.netns ? Rtnl.open(req.netns.fd) : Rtnl.openForPid(req.netns.pid);
  try {
    inner.setUp("lo");
    inner.addAddress(req.ifname, `${a.ip}/${len}`);
    inner.setUp(req.ifname);
    inner.addRoute({ dst: "default", gateway: network.gateway, dev: req.ifname });
  } finally {
    inner.close();
  }
}

async function leaveBridge(config: NetConfig, allocation: Allocation): Promise<string[]> {
  const store = new NetworkStore(config.root, config.bridge);
  const rtnl = Rtnl.open();
  try {
    return await store.locked(() => {
      const network = store.network();
      const problems = network ? release(rtnl, network, allocation) : [];
      store.update((all) => all.filter((a) => a.key !== allocation.key));
      if (store.allocations().length === 0) {
        // The last member left: the bridge, its nft table and the
        // forwarding it asked for go too, so an idle host holds nothing
        // of dokrust's.  The next container builds them again.
        if (network) problems.push(...removeNetwork(rtnl, network));
        rmSync(store.dir, { recursive: true, force: true });
        return problems;
      }
      refreshHosts(store);
      return problems;
    });
  } finally {
    rtnl.close();
  }
}

/** Every live member of a network (for name lookups and `network ls`). */
export function members(config: NetConfig): Allocation[] {
  return new NetworkStore(config.root, config.bridge).allocations().filter((a) => ownerAlive(a.owner));
}

/**
 * `dokrust network prune`: in every network under the root, reclaim
 * what dead containers left; a network left with no member loses its
 * bridge, nft table and directory.  Returns what was done, one line each.
 */
export async function prune(root: string): Promise<{ done: string[]; problems: string[] }> {
  const done: string[] = [];
  const problems: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(root);
  } catch {
    return { done, problems };
  }
  const rtnl = Rtnl.open();
  try {
    for (const name of names) {
      const store = new NetworkStore(root, name);
      await store.locked(() => {
        const before = store.allocations().length;
        problems.push(...reclaimStale(rtnl, store, store.network()));
        const left = store.allocations().length;
        if (before > left) done.push(`${name}: reclaimed ${before - left} address${before - left === 1 ? "" : "es"} of dead containers`);
        const state = store.network();
        if (left === 0) {
          if (state) problems.push(...removeNetwork(rtnl, state));
          rmSync(store.dir, { recursive: true, force: true });
          done.push(`${name}: removed${state ? ` (bridge ${state.bridge}, nft table ip ${state.table}, subnet ${state.subnet})` : ""}`);
        }
      });
    }
  } finally {
    rtnl.close();
  }
  return { done, problems };
}
