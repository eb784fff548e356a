/**
 * CNI networks (`--net cni:NAME`): the network configuration NAME from
 * the CNI configuration directory ($DOKRUST_CNI_CONF_DIR, default
 * /etc/cni/net.d), carried out by the standard plugins found on
 * $CNI_PATH (default /usr/lib/cni, where Debian's
 * containernetworking-plugins puts them, then /opt/cni/bin), following
 * the CNI specification's execution protocol:
 *
 *   ADD    each plugin of the list in order, its configuration on stdin
 *          with the network's name and cniVersion and the previous
 *          plugin's result as prevResult; the last result is the
 *          container's (addresses, routes, DNS)
 *   CHECK  right after ADD, in the same order, with that result
 *   DEL    when the container ends, in reverse order, with that result
 *
 * The container's network namespace is made empty by dokrust (as for
 * the bridge network) and named to the plugins as /proc/<dokrust>/fd/<N>;
 * the executor joins it before the clone.  A plugin's failure is one
 * line: its error message (`msg`, `details`).
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import type { RunOptions } from "../cli/dokrust.ts";
import { DokrustError, UsageError } from "../errors.ts";
import { closeFd, newNetns } from "../native/netlink-socket.ts";
import { containerResolvConf, hostsText } from "./hosts.ts";
import type { PreparedNetwork } from "./setup.ts";

type Json = Record<string, unknown>;

/** A network configuration list (a .conf file is read as a list of one). */
export interface NetworkList {
  name: string;
  cniVersion: string;
  plugins: Json[];
  file: string;
}

/** The configuration directory and plugin path from the environment. */
export function cniDirs(env: Record<string, string | undefined> = process.env): { confDir: string; path: string[] } {
  return {
    confDir: env.DOKRUST_CNI_CONF_DIR || "/etc/cni/net.d",
    path: (env.CNI_PATH || "/usr/lib/cni:/opt/cni/bin").split(":").filter(Boolean),
  };
}

/**
 * The network called `name` in `dir`: files in lexical order, .conflist
 * files holding a list, .conf and .json files a single plugin.
 */
export function loadNetwork(dir: string, name: string): NetworkList {
  let files: string[];
  try {
    files = readdirSync(dir).filter((f) => /\.(conflist|conf|json)$/.test(f)).sort();
  } catch {
    throw new UsageError(`--net cni:${name}: no CNI configuration directory ${dir}`);
  }
  for (const f of files) {
    let conf: Json;
    try {
      conf = JSON.parse(readFileSync(`${dir}/${f}`, "utf8")) as Json;
    } catch {
      continue;
    }
    if (conf.name !== name) continue;
    const cniVersion = String(conf.cniVersion ?? "0.4.0");
    const plugins = f.endsWith(".conflist") ? (conf.plugins as Json[] | undefined) : [conf];
    if (!Array.isArray(plugins) || plugins.length === 0) throw new UsageError(`--net cni:${name}: ${dir}/${f} lists no plugin`);
    return { name, cniVersion, plugins, file: `${dir}/${f}` };
  }
  throw new UsageError(`--net cni:${name}: no network named ${name} in ${dir}`);
}

/** What a plugin is told besides its configuration. */
export interface Invocation {
  containerId: string;
  netns: string;
  ifname: string;
  path: string[];
}

function findPlugin(type: string, path: readonly string[]): string {
  for (const dir of path) {
    const file = `${dir}/${type}`;
    try {
      if (readdirSync(dir).includes(type)) return file;
    } catch {
      // not a directory
    }
  }
  throw new DokrustError(`cni plugin ${type}: not found in ${path.join(":")} (install containernetworking-plugins, or set CNI_PATH)`);
}

/** Run one plugin with one command; resolves to its parsed output. */
function execPlugin(command: string, net: NetworkList, plugin: Json, inv: Invocation, prevResult: Json | undefined): Json | undefined {
  const type = String(plugin.type ?? "");
  if (!/^[\w.-]+$/.test(type)) throw new UsageError(`cni network ${net.name}: a plugin has no valid "type"`);
  const stdin: Json = { ...plugin, name: net.name, cniVersion: net.cniVersion };
  if (prevResult) stdin.prevResult = prevResult;
  const r = Bun.spawnSync([findPlugin(type, inv.path)], {
    stdin: Buffer.from(JSON.stringify(stdin)),
    stdout: "pipe",
    stderr: "pipe",
    env: {
      PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      CNI_COMMAND: command,
      CNI_CONTAINERID: inv.containerId,
      CNI_NETNS: inv.netns,
      CNI_IFNAME: inv.ifname,
      CNI_PATH: inv.path.join(":"),
    },
  });
  const out = r.stdout.toString().trim();
  let parsed: Json | undefined;
  try {
    parsed = out ? (JSON.parse(out) as Json) : undefined;
  } catch {
    parsed = undefined;
  }
  if (r.exitCode !== 0) {
    const why = parsed?.msg ? `${parsed.msg}${parsed.details ? `: ${parsed.details}` : ""}` : r.stderr.toString().trim() || `exit status ${r.exitCode}`;
    throw new DokrustError(`cni network ${net.name}: ${type} ${command}: ${String(why).split("\n")[0]}`);
  }
  return parsed;
}

/**
 * ADD every plugin in order, then CHECK them (unless `check` is false);
 * the final result.  On failure, DEL what was added.
 */
export function cniAdd(net: NetworkList, inv: Invocation, check = true): Json {
  let result: Json | undefined;
  const done: Json[] = [];
  try {
    for (const plugin of net.plugins) {
      result = execPlugin("ADD", net, plugin, inv, result) ?? result;
      done.push(plugin);
    }
    if (check) for (const plugin of net.plugins) execPlugin("CHECK", net, plugin, inv, result);
  } catch (err) {
    cniDel({ ...net, plugins: done.length ? done : net.plugins }, inv, result);
    throw err;
  }
  return result ?? {};
}

/** DEL every plugin in reverse order; returns the problems (DEL goes on past them). */
export function cniDel(net: NetworkList, inv: Invocation, result: Json | undefined): string[] {
  const problems: string[] = [];
  for (const plugin of [...net.plugins].reverse()) {
    try {
      execPlugin("DEL", net, plugin, inv, result);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  return problems;
}

/** The first address of a CNI result, without its prefix length. */
export function resultAddress(result: Json): string | undefined {
  const ips = result.ips as Array<{ address?: string }> | undefined;
  return ips?.[0]?.address?.split("/")[0];
}

interface Context {
  id: string;
  etcDir: string;
}

/** Prepare a container's CNI network (called by src/net/setup.ts). */
export async function prepareCni(options: RunOptions, ctx: Context, base: Omit<PreparedNetwork, "nsFd">): Promise<PreparedNetwork> {
  if (options.net.kind !== "cni") throw new DokrustError("prepareCni: not a cni network");
  if (options.ports.length) throw new UsageError("-p with --net cni: publish ports with the CNI portmap plugin in the network's configuration");
  const { confDir, path } = cniDirs();
  const net = loadNetwork(confDir, options.net.name);
  const nsFd = newNetns();
  const inv: Invocation = { containerId: ctx.id, netns: `/proc/${process.pid}/fd/${nsFd}`, ifname: "eth0", path };
  let result: Json;
  try {
    result = cniAdd(net, inv);
  } catch (err) {
    closeFd(nsFd);
    throw err;
  }
  const ip = resultAddress(result);
  const names = [options.name ?? "", options.hostname];
  writeFileSync(`${ctx.etcDir}/hosts`, hostsText(ip ? { ip, names } : undefined, [], options.hostname));
  const dns = (result.dns as { nameservers?: string[] } | undefined)?.nameservers;
  const resolv = dns?.length ? { text: dns.map((s) => `nameserver ${s}\n`).join("") } : containerResolvConf();
  writeFileSync(`${ctx.etcDir}/resolv.conf`, resolv.text);
  return {
    ...base,
    nsFd,
    ...(ip ? { ip } : {}),
    async teardown() {
      try {
        for (const p of cniDel(net, inv, result)) process.stderr.write(`dokrust: warning: ${p}\n`);
      } finally {
        closeFd(nsFd);
      }
    },
  };
}
