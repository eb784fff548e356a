/**
 * `dokrust network ...`: the commands that look after dokrust's networks
 * rather than run a container.
 *
 *   dokrust network prune   reclaim what ended containers left (addresses,
 *                           veths, published ports) and remove networks
 *                           left unused (bridge, nft table, directory)
 *   dokrust network ls      the networks and their live members
 */
import { readdirSync } from "node:fs";
import { DokrustError, UsageError } from "../errors.ts";
import { netConfig, prune } from "./bridge.ts";
import { NetworkStore, ownerAlive } from "./ipam.ts";
import { portText } from "./ports.ts";

const USAGE = "usage: dokrust network prune | dokrust network ls";

/** Run a `dokrust network` command; resolves to the exit code. */
export async function runNetworkCommand(argv: string[]): Promise<number> {
  if (process.getuid?.() !== 0) throw new DokrustError("dokrust network must run as root (it changes links and nft rules); try sudo");
  const root = netConfig().root;
  switch (argv[0]) {
    case "prune": {
      if (argv.length > 1) throw new UsageError(`network prune takes no arguments; ${USAGE}`);
      const { done, problems } = await prune(root);
      for (const line of done) process.stdout.write(`${line}\n`);
      for (const line of problems) process.stderr.write(`dokrust: warning: ${line}\n`);
      return problems.length ? 1 : 0;
    }
    case "ls":
      list(root);
      return 0;
    default:
      throw new UsageError(argv[0] ? `network ${argv[0]}: unknown command; ${USAGE}` : USAGE);
  }
}

function list(root: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(root);
  } catch {
    // no network yet
  }
  for (const name of names) {
    const store = new NetworkStore(root, name);
    const state = store.network();
    if (!state) continue;
    process.stdout.write(`${name}\t${state.subnet}\tgateway ${state.gateway}\tnft table ip ${state.table}\n`);
    for (const a of store.allocations()) {
      const who = a.name ?? a.key.slice(0, 12);
      const ports = a.ports.map(portText).join(",");
      process.stdout.write(`  ${a.ip}\t${who}\t${a.hostname}\t${a.veth}${ports ? `\t${ports}` : ""}${ownerAlive(a.owner) ? "" : "\t(ended)"}\n`);
    }
  }
}
