/**
 * `-p [IP:]HOST:CONTAINER[/tcp|udp]` and `--net` values: parsing and
 * checking, before anything is created.
 */
import { UsageError } from "../errors.ts";
import { ipv4Bytes } from "./netlink.ts";

/** A port to publish. */
export interface PortSpec {
  proto: "tcp" | "udp";
  /** Host address the port is published on; undefined: every address. */
  hostIp?: string;
  hostPort: number;
  containerPort: number;
}

function port(text: string, spec: string, which: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new UsageError(`-p ${spec}: the ${which} port ${JSON.stringify(text)} is not a number`);
  const n = Number(text);
  if (n < 1 || n > 65535) throw new UsageError(`-p ${spec}: the ${which} port ${n} is out of range (1-65535)`);
  return n;
}

/** Parse one -p value. */
export function parsePort(spec: string): PortSpec {
  const [body = "", proto = "tcp", extra] = spec.split("/");
  if (extra !== undefined || (proto !== "tcp" && proto !== "udp")) {
    throw new UsageError(`-p ${spec}: expected [IP:]HOST:CONTAINER[/tcp|udp]`);
  }
  const parts = body.split(":");
  if (parts.length < 2 || parts.length > 3) throw new UsageError(`-p ${spec}: expected [IP:]HOST:CONTAINER[/tcp|udp]`);
  const [containerText = ""] = parts.slice(-1);
  const [hostText = ""] = parts.slice(-2, -1);
  const out: PortSpec = { proto, hostPort: port(hostText, spec, "host"), containerPort: port(containerText, spec, "container") };
  if (parts.length === 3) {
    const ip = parts[0]!;
    try {
      ipv4Bytes(ip);
    } catch {
      throw new UsageError(`-p ${spec}: ${JSON.stringify(ip)} is not an IPv4 address`);
    }
    if (ip !== "0.0.0.0") out.hostIp = ip;
  }
  return out;
}

/** Whether two published ports would catch the same packets. */
export function portsClash(a: PortSpec, b: PortSpec): boolean {
  return a.proto === b.proto && a.hostPort === b.hostPort && (!a.hostIp || !b.hostIp || a.hostIp === b.hostIp);
}

/** Check that a list of -p values does not clash with itself. */
export function checkPorts(ports: readonly PortSpec[]): PortSpec[] {
  ports.forEach((p, i) => {
    const other = ports.slice(0, i).find((q) => portsClash(p, q));
    if (other) throw new UsageError(`-p: host port ${p.hostPort}/${p.proto} is given twice`);
  });
  return [...ports];
}

/** What --net asks for. */
export type NetMode =
  | { kind: "bridge" }
  | { kind: "none" }
  | { kind: "host" }
  | { kind: "container"; name: string }
  | { kind: "cni"; name: string };

/** Parse a --net value. */
export function parseNetMode(text: string): NetMode {
  if (text === "bridge" || text === "none" || text === "host") return { kind: text };
  const m = /^(container|cni):(.+)$/.exec(text);
  if (m) return { kind: m[1] as "container" | "cni", name: m[2]! };
  throw new UsageError(`--net ${text}: unknown network (expected bridge, none, host, container:NAME or cni:NAME)`);
}

/** Text of a published port for messages: "127.0.0.1:8080->80/tcp". */
export function portText(p: PortSpec): string {
  return `${p.hostIp ? `${p.hostIp}:` : ""}${p.hostPort}->${p.containerPort}/${p.proto}`;
}
