/**
 * Network benchmark: the time to bring up and tear down one container's
 * network, dokrust's bridge network (src/net/bridge.ts: veth pair born
 * in the namespace, bridge port, address, route, allocation on disk,
 * /etc/hosts) against the CNI bridge plugin with host-local IPAM doing
 * the same (ADD then DEL, no CHECK), alternately in one run.  Each round
 * makes a fresh empty network namespace first (not timed).  Not a timed
 * test: it prints numbers and a ratio, it asserts nothing.  Needs root,
 * and /usr/lib/cni (Debian's containernetworking-plugins) for the CNI side.
 *
 *   bun bench/net.ts [--runs N] [--warmup N]
 *
 * Everything it creates is its own (bridges dokrust-bench-N and -C, a
 * temporary state directory, nft table dokrust-bench) and is removed at
 * the end.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { parseArgs } from "node:util";
import { joinBridge, netConfig, prune } from "../src/net/bridge.ts";
import { cniAdd, cniDel, type Invocation, type NetworkList } from "../src/net/cni.ts";
import { closeFd, newNetns } from "../src/native/netlink-socket.ts";
import { Rtnl } from "../src/net/rtnl.ts";

const { values } = parseArgs({ options: { runs: { type: "string" }, warmup: { type: "string" } } });
const runs = Number(values.runs ?? 30);
const warmup = Number(values.warmup ?? 3);

if (process.getuid?.() !== 0) throw new Error("bench/net.ts needs root");
const tmp = mkdtempSync("/tmp/dokrust-bench-net-");
const config = netConfig({ DOKRUST_NET_ROOT: `${tmp}/net`, DOKRUST_BRIDGE: "dokrust-bench-N", DOKRUST_NFT_TABLE: "dokrust-bench" });
const cniBridge = "dokrust-bench-C";
const haveCni = existsSync("/usr/lib/cni/bridge");

/** A /24 for the CNI side that no host route uses. */
function cniSubnet(): string {
  const rtnl = Rtnl.open();
  try {
    const used = new Set(rtnl.routes().map((r) => r.dst.split(".").slice(0, 2).join(".")));
    for (let x = 250; x > 200; x--) if (!used.has(`10.${x}`)) return `10.${x}.0.0/24`;
  } finally {
    rtnl.close();
  }
  throw new Error("no free 10.x subnet for the CNI network");
}

const cniNet: NetworkList = {
  name: "dokrust-bench",
  cniVersion: "0.4.0",
  file: "(bench)",
  plugins: [
    {
      type: "bridge",
      bridge: cniBridge,
      // not true: then the plugin turns on the host-wide net.ipv4.ip_forward
      isGateway: false,
      ipMasq: false,
      ipam: { type: "host-local", subnet: haveCni ? cniSubnet() : "", dataDir: `${tmp}/cni`, routes: [{ dst: "0.0.0.0/0" }] },
    },
  ],
};

async function dokrustOnce(i: number): Promise<number> {
  const ns = newNetns();
  try {
    const t0 = performance.now();
    const member = await joinBridge(config, {
      key: `bench${i}`,
      hostname: "bench",
      owner: { pid: process.pid, startTime: readStart() },
      ports: [],
      netns: { fd: ns },
      ifname: "eth0",
    });
    await member.leave();
    return performance.now() - t0;
  } finally {
    closeFd(ns);
  }
}

function cniOnce(i: number): number {
  const ns = newNetns();
  try {
    const inv: Invocation = { containerId: `bench${i}`, netns: `/proc/${process.pid}/fd/${ns}`, ifname: "eth0", path: ["/usr/lib/cni"] };
    const t0 = performance.now();
    const result = cniAdd(cniNet, inv, false);
    cniDel(cniNet, inv, result);
    return performance.now() - t0;
  } finally {
    closeFd(ns);
  }
}

function readStart(): string {
  const stat = readFileSync(`/proc/${process.pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
}

function summary(name: string, times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  console.log(`${name.padEnd(22)} median ${median.toFixed(2)} ms   mean ${mean.toFixed(2)} ms   min ${sorted[0]!.toFixed(2)} ms   (${times.length} runs)`);
  return median;
}

try {
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let i = 0; i < warmup + runs; i++) {
    const a = await dokrustOnce(i);
    const b = haveCni ? cniOnce(i) : 0;
    if (i >= warmup) {
      ours.push(a);
      theirs.push(b);
    }
  }
  const m1 = summary("dokrust bridge", ours);
  if (haveCni) {
    const m2 = summary("CNI bridge+host-local", theirs);
    console.log(`ratio (dokrust / CNI, medians): ${(m1 / m2).toFixed(3)}`);
  } else {
    console.log("CNI plugins not found in /usr/lib/cni: no comparison");
  }
} finally {
  await prune(config.root);
  const rtnl = Rtnl.open();
  try {
    if (rtnl.link(cniBridge)) rtnl.deleteLink(cniBridge);
  } finally {
    rtnl.close();
  }
  rmSync(tmp, { recursive: true, force: true });
}
