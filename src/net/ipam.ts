/**
 * Address management for a bridge network: which addresses of the subnet
 * belong to which container, kept on disk so that it survives dokrust's
 * restarts and serialises concurrent starts.
 *
 * Layout, under the network root ($DOKRUST_NET_ROOT, default
 * /run/dokrust-net: under /run because links and namespaces do not
 * survive a reboot either, so neither should their allocations):
 *
 *   <root>/<bridge>/lock               flock held while anything changes
 *   <root>/<bridge>/network.json       the network: subnet, gateway, table
 *   <root>/<bridge>/allocations.json   one record per container
 *
 * Every record names its owner (a pid and that pid's start time, so a
 * reused pid does not pass for the owner); a record whose owner is gone
 * is stale, and the next command that takes the lock reclaims it and
 * what it stands for (src/net/bridge.ts).  Files are replaced atomically
 * (temporary file + rename).
 */
import { closeSync, fstatSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { DokrustError, fromNodeError } from "../errors.ts";
import { tryLock } from "../native/libc.ts";
import { ipv4Bytes } from "./netlink.ts";
import type { PortSpec } from "./ports.ts";
import { startTimeOf } from "./registry.ts";

/** A process that owns something, told from a later one with its pid. */
export interface Owner {
  pid: number;
  /** /proc/<pid>/stat field 22. */
  startTime: string;
}

/** One container's share of the network. */
export interface Allocation {
  ip: string;
  /** The container's id (foreground runs) or a key of `-k`'s making. */
  key: string;
  name?: string;
  hostname: string;
  owner: Owner;
  /** The host end of the container's veth pair. */
  veth: string;
  ports: PortSpec[];
  /** The host file bound over the container's /etc/hosts. */
  hostsFile?: string;
}

/** The network as created. */
export interface NetworkState {
  bridge: string;
  /** "a.b.c.d/len". */
  subnet: string;
  gateway: string;
  table: string;
  /** Uplinks on which dokrust turned forwarding on (to turn off again). */
  guardedUplinks: string[];
}

interface AllocationFile {
  cursor: number;
  allocations: Allocation[];
}

// ---------------------------------------------------------------------------
// IPv4 arithmetic.

/** a.b.c.d → u32. */
export function ipToInt(ip: string): number {
  const b = ipv4Bytes(ip);
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

/** u32 → a.b.c.d. */
export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join(".");
}

/** "a.b.c.d/len" → its network number and length; throws on bad text. */
export function parseCidr(cidr: string): { base: number; len: number } {
  const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d{1,2})$/.exec(cidr);
  if (!m || Number(m[2]) > 32) throw new DokrustError(`${JSON.stringify(cidr)} is not an IPv4 subnet (a.b.c.d/len)`);
  const len = Number(m[2]);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return { base: (ipToInt(m[1]!) & mask) >>> 0, len };
}

/** Whether two subnets share an address. */
export function overlaps(a: string, b: string): boolean {
  const x = parseCidr(a);
  const y = parseCidr(b);
  const len = Math.min(x.len, y.len);
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  return ((x.base & mask) >>> 0) === ((y.base & mask) >>> 0);
}

/** The gateway of a subnet: its first host address. */
export function gatewayOf(subnet: string): string {
  return intToIp(parseCidr(subnet).base + 1);
}

/**
 * The next free address after `cursor`, going round the subnet once and
 * skipping the network, gateway and broadcast addresses; undefined when
 * the subnet is full.  Going on from the last one handed out rather than
 * taking the lowest free one keeps a just-released address (still in
 * peers' ARP caches) unused for as long as possible.
 */
export function nextFree(subnet: string, taken: ReadonlySet<string>, cursor: number): { ip: string; cursor: number } | undefined {
  const { base, len } = parseCidr(subnet);
  const size = 2 ** (32 - len);
  const first = 2;
  const count = size - 3;
  if (count <= 0) return undefined;
  for (let i = 0; i < count; i++) {
    const offset = first + ((Math.max(cursor - first + 1, 0) + i) % count);
    const ip = intToIp(base + offset);
    if (!taken.has(ip)) return { ip, cursor: offset };
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Owners.

export function ownerAlive(owner: Owner): boolean {
  return startTimeOf(owner.pid) === owner.startTime;
}

// ---------------------------------------------------------------------------
// The store.

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, path);
}

function readJson<T>(path: string): T | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw fromNodeError(err, `read ${path}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new DokrustError(`read ${path}: not valid JSON (remove it with dokrust network prune)`);
  }
}

/** One network's directory. */
export class NetworkStore {
  readonly dir: string;

  constructor(root: string, bridge: string) {
    this.dir = `${root}/${bridge}`;
  }

  /** Run `fn` holding the network's lock (waits for other holders). */
  async locked<T>(fn: () => Promise<T> | T, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const fd = openSync(`${this.dir}/lock`, "a", 0o600);
      try {
        while (!tryLock(fd)) {
          if (Date.now() > deadline) throw new DokrustError(`lock ${this.dir}/lock: another dokrust held it for ${timeoutMs / 1000} s`);
          await Bun.sleep(2 + Math.random() * 5);
        }
        // `network prune` may have removed the directory while we waited:
        // then this lock guards nothing; start again on a fresh one.
        if (this.#current(fd)) return await fn();
      } finally {
        closeSync(fd);
      }
    }
  }

  #current(fd: number): boolean {
    try {
      return statSync(`${this.dir}/lock`).ino === fstatSync(fd).ino;
    } catch {
      return false;
    }
  }

  network(): NetworkState | undefined {
    return readJson<NetworkState>(`${this.dir}/network.json`);
  }

  saveNetwork(state: NetworkState | undefined): void {
    const path = `${this.dir}/network.json`;
    if (state) writeAtomic(path, `${JSON.stringify(state, null, 2)}\n`);
    else writeAtomic(path, "null\n");
  }

  #file(): AllocationFile {
    return readJson<AllocationFile>(`${this.dir}/allocations.json`) ?? { cursor: 0, allocations: [] };
  }

  allocations(): Allocation[] {
    return this.#file().allocations;
  }

  /** Record a new allocation at the next free address (lock held). */
  allocate(subnet: string, record: Omit<Allocation, "ip">): Allocation {
    const file = this.#file();
    const taken = new Set([gatewayOf(subnet), ...file.allocations.map((a) => a.ip)]);
    const next = nextFree(subnet, taken, file.cursor);
    if (!next) throw new DokrustError(`allocate an address in ${subnet}: every address is taken`);
    const allocation = { ip: next.ip, ...record };
    writeAtomic(`${this.dir}/allocations.json`, `${JSON.stringify({ cursor: next.cursor, allocations: [...file.allocations, allocation] }, null, 1)}\n`);
    return allocation;
  }

  /** Replace or drop records (lock held). */
  update(fn: (all: Allocation[]) => Allocation[]): void {
    const file = this.#file();
    writeAtomic(`${this.dir}/allocations.json`, `${JSON.stringify({ cursor: file.cursor, allocations: fn(file.allocations) }, null, 1)}\n`);
  }
}
