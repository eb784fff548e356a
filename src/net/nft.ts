/**
 * NAT and published ports with nftables, in a table of dokrust's own
 * (`table ip dokrust` by default), so that adding or removing dokrust's
 * rules never touches anyone else's: dokrust only ever adds to, flushes
 * chains of, or deletes that one table.
 *
 * The rules are fed to the `nft` tool as a script on stdin (`nft -f -`),
 * which applies a whole script as one transaction.  Why the tool and not
 * the nftables netlink protocol, as rtnetlink is spoken directly: rules
 * are bytecode (expressions, registers, set lookups) whose netlink
 * encoding is large and version-dependent, and nft is the interface the
 * nftables project keeps stable (docs/NETWORKING.md says more).
 *
 * Layout of the table (see baseScript):
 *   - maps tcp_any / udp_any: host port → container address . port, for
 *     ports published on every host address; tcp_ip / udp_ip: host
 *     address . port → container address . port, for -p IP:HOST:CONTAINER.
 *     A container's published ports are its own elements, added with
 *     `create element` (fails if another container holds the key) and
 *     deleted one by one when it ends: the per-container tag.
 *   - prerouting and output (nat): DNAT of traffic for a local address
 *     through those maps; output catches the host's own connections,
 *     127.0.0.1 included.
 *   - postrouting (nat): masquerade of what leaves the subnet, and of
 *     DNAT'ed traffic that enters the bridge (from the host's loopback,
 *     or hairpin from another container), so the answer comes back
 *     through the host.
 *   - forward (filter): only the subnet is forwarded: packets from the
 *     bridge must come from the subnet; packets into the bridge must
 *     answer a connection or be DNAT'ed; on an uplink where dokrust
 *     turned forwarding on, nothing but traffic for the subnet.
 */
import { DokrustError } from "../errors.ts";

/** What the base rules depend on. */
export interface NftNetwork {
  table: string;
  bridge: string;
  /** "a.b.c.d/len". */
  subnet: string;
  /** Interfaces on which dokrust itself turned IPv4 forwarding on. */
  guardedUplinks: string[];
}

/** A published port, as nft sees it. */
export interface PortRule {
  proto: "tcp" | "udp";
  /** Host address, or undefined for every address. */
  hostIp?: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

/** Interface names are strings to nft; table names are identifiers (checked by netConfig). */
const quote = (name: string) => `"${name}"`;

/**
 * The table, its maps and its base chains, with the chains' rules
 * replaced (flush + add), as one idempotent script: running it again
 * changes nothing and keeps the maps' elements (the published ports).
 */
export function baseScript(net: NftNetwork): string {
  const t = `ip ${net.table}`;
  const br = quote(net.bridge);
  const lines = [
    `add table ${t}`,
    `add map ${t} tcp_any { type inet_service : ipv4_addr . inet_service; }`,
    `add map ${t} udp_any { type inet_service : ipv4_addr . inet_service; }`,
    `add map ${t} tcp_ip { type ipv4_addr . inet_service : ipv4_addr . inet_service; }`,
    `add map ${t} udp_ip { type ipv4_addr . inet_service : ipv4_addr . inet_service; }`,
    `add chain ${t} ports`,
    `add chain ${t} prerouting { type nat hook prerouting priority dstnat; policy accept; }`,
    `add chain ${t} output { type nat hook output priority -100; policy accept; }`,
    `add chain ${t} postrouting { type nat hook postrouting priority srcnat; policy accept; }`,
    `add chain ${t} forward { type filter hook forward priority filter; policy accept; }`,
    ...["ports", "prerouting", "output", "postrouting", "forward"].map((c) => `flush chain ${t} ${c}`),
  ];
  for (const proto of ["tcp", "udp"]) {
    lines.push(`add rule ${t} ports dnat ip to ip daddr . ${proto} dport map @${proto}_ip`);
    lines.push(`add rule ${t} ports dnat ip to ${proto} dport map @${proto}_any`);
  }
  lines.push(
    `add rule ${t} prerouting fib daddr type local jump ports`,
    `add rule ${t} output fib daddr type local jump ports`,
    // Leaving the subnet for elsewhere: the host's address stands in.
    `add rule ${t} postrouting ip saddr ${net.subnet} ip daddr != ${net.subnet} oifname != ${br} masquerade`,
    // DNAT'ed into the bridge from the host's loopback or from a container
    // (hairpin): the answer must come back through the host to be un-NATed.
    `add rule ${t} postrouting oifname ${br} ct status dnat ip saddr 127.0.0.0/8 masquerade`,
    `add rule ${t} postrouting oifname ${br} ct status dnat ip saddr ${net.subnet} masquerade`,
    `add rule ${t} forward iifname ${br} ip saddr != ${net.subnet} drop`,
    `add rule ${t} forward oifname ${br} ip daddr != ${net.subnet} drop`,
    `add rule ${t} forward oifname ${br} iifname != ${br} ct state established,related accept`,
    `add rule ${t} forward oifname ${br} iifname != ${br} ct status dnat accept`,
    `add rule ${t} forward oifname ${br} iifname != ${br} drop`,
  );
  for (const uplink of net.guardedUplinks) {
    lines.push(`add rule ${t} forward iifname ${quote(uplink)} oifname != ${br} drop`);
  }
  return `${lines.join("\n")}\n`;
}

function element(rule: PortRule): { map: string; text: string } {
  const value = `${rule.containerIp} . ${rule.containerPort}`;
  if (rule.hostIp) return { map: `${rule.proto}_ip`, text: `${rule.hostIp} . ${rule.hostPort} : ${value}` };
  return { map: `${rule.proto}_any`, text: `${rule.hostPort} : ${value}` };
}

function elementKey(rule: PortRule): { map: string; text: string } {
  if (rule.hostIp) return { map: `${rule.proto}_ip`, text: `${rule.hostIp} . ${rule.hostPort}` };
  return { map: `${rule.proto}_any`, text: `${rule.hostPort}` };
}

/** Publish ports: fails as a whole if another container holds one. */
export function publishScript(table: string, rules: readonly PortRule[]): string {
  return rules.map((r) => {
    const e = element(r);
    return `create element ip ${table} ${e.map} { ${e.text} }\n`;
  }).join("");
}

/** Withdraw ports (each element by its key). */
export function withdrawScript(table: string, rules: readonly PortRule[]): string {
  return rules.map((r) => {
    const e = elementKey(r);
    return `delete element ip ${table} ${e.map} { ${e.text} }\n`;
  }).join("");
}

/** Remove the whole table (`dokrust network prune` of an unused network). */
export function deleteTableScript(table: string): string {
  // "add" first so that deleting a table that is already gone is no error.
  return `add table ip ${table}\ndelete table ip ${table}\n`;
}

/** Where nft is, or undefined. */
export function nftPath(): string | undefined {
  return Bun.which("nft") ?? Bun.which("nft", { PATH: "/usr/sbin:/sbin" }) ?? undefined;
}

/** Run an nft script as one transaction; `what` words the error. */
export function runNft(script: string, what: string): void {
  const nft = nftPath();
  if (!nft) throw new DokrustError(`${what}: the nft tool is missing (install the nftables package), or use --net none`);
  const r = Bun.spawnSync([nft, "-f", "-"], { stdin: Buffer.from(script), stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) {
    const text = r.stderr.toString().split("\n").find((l) => l.includes("Error:")) ?? r.stderr.toString().trim();
    throw new DokrustError(`${what}: nft: ${text.replace(/^.*?Error:\s*/, "").trim() || `exit status ${r.exitCode}`}`);
  }
}
