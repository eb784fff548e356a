/**
 * The /etc/hosts and /etc/resolv.conf a container on a network sees.
 *
 * /etc/hosts lists the container itself and every other container on
 * its network.  The file on the host is bound over the container's, so
 * it is rewritten in place (same inode: a bind mount pins the inode, a
 * rename would not show) whenever a container joins or leaves.
 */
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from "node:fs";

/** One line's worth of /etc/hosts. */
export interface HostEntry {
  ip: string;
  names: string[];
}

/** The text of /etc/hosts for `self` among `others`. */
export function hostsText(self: HostEntry | undefined, others: readonly HostEntry[], hostname: string): string {
  const lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"];
  if (self) lines.push(`${self.ip}\t${unique(self.names).join(" ")}`);
  else lines.push(`127.0.1.1\t${hostname}`);
  for (const o of others) lines.push(`${o.ip}\t${unique(o.names).join(" ")}`);
  return `${lines.join("\n")}\n`;
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names.filter(Boolean))];
}

/** Rewrite a bound file in place; a file that is gone is skipped. */
export function rewriteInPlace(path: string, text: string): void {
  try {
    // r+: never create the file (its container may be gone with its directory).
    const fd = openSync(path, "r+");
    try {
      ftruncateSync(fd, 0);
      writeSync(fd, text, 0);
    } finally {
      closeSync(fd);
    }
  } catch {
    // the container ended meanwhile
  }
}

const LOOPBACK = /^\s*nameserver\s+(127\.|::1\b|0\.0\.0\.0\b)/;
const NAMESERVER = /^\s*nameserver\s+\S+/;
/** Public resolvers used when the host only has a loopback one (docker does the same). */
export const FALLBACK_NAMESERVERS = ["8.8.8.8", "8.8.4.4"];

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/**
 * resolv.conf for a container in its own network namespace, from the
 * host's: a resolver on the host's loopback cannot be reached from the
 * container, so loopback nameservers are dropped; when none is left, the
 * upstream servers systemd-resolved uses, else public fallbacks, with a
 * notice for the user (undefined when nothing had to be replaced).
 */
export function containerResolvConf(hostText = readText("/etc/resolv.conf") ?? "", resolvedText = readText("/run/systemd/resolve/resolv.conf")): {
  text: string;
  notice?: string;
} {
  const lines = hostText.split("\n");
  const kept = lines.filter((l) => !LOOPBACK.test(l));
  const hadLoopback = kept.length !== lines.length;
  if (kept.some((l) => NAMESERVER.test(l)) || !hadLoopback) return { text: kept.join("\n") };
  const upstream = (resolvedText ?? "").split("\n").filter((l) => NAMESERVER.test(l) && !LOOPBACK.test(l));
  if (upstream.length) {
    return { text: [...kept.filter((l) => l.trim()), ...upstream, ""].join("\n") };
  }
  return {
    text: [...kept.filter((l) => l.trim()), ...FALLBACK_NAMESERVERS.map((s) => `nameserver ${s}`), ""].join("\n"),
    notice: `the host's resolver is on its loopback, which the container cannot reach: using ${FALLBACK_NAMESERVERS.join(" and ")} in its /etc/resolv.conf`,
  };
}
