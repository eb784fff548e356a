/**
 * The dokrust command line → a runtime-spec document.  Both faces of
 * dokrust end up here, at a Spec, which the core then starts.
 */
import { readFileSync } from "node:fs";
import type { RunOptions } from "../cli/dokrust.ts";
import { UsageError } from "../errors.ts";
import { CAPABILITIES, DEFAULT_CAPABILITIES } from "../plan/linux.ts";
import { profileForRun } from "../seccomp/index.ts";
import { DEFAULT_DEVICE_RULES, DEFAULT_PATH, MASKED_PATHS, OCI_VERSION, READONLY_PATHS, defaultMounts } from "./defaults.ts";
import type { Mount, Resources, Spec } from "./types.ts";

/**
 * The capabilities dokrust holds itself (its bounding set), which are the
 * most it can hand on: capset(2) refuses the rest with EPERM.  A host may
 * lack some, as a machine that is itself a container often lacks
 * CAP_SYS_ADMIN or CAP_SYS_RESOURCE.
 */
function heldCapabilities(): Set<string> {
  let mask = -1n;
  try {
    const hex = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"))?.[1];
    if (hex) mask = BigInt(`0x${hex}`);
  } catch {
    // no /proc: assume every capability, and let capset say otherwise
  }
  return new Set(CAPABILITIES.filter((_, bit) => (mask >> BigInt(bit)) & 1n));
}

/**
 * Docker's default set with --cap-add/--cap-drop applied.  The default
 * set and ALL are cut to what dokrust holds, as docker cuts them to what
 * dockerd holds; a capability named explicitly that dokrust does not hold
 * is an error rather than a container started without it.
 */
function capabilitySet(add: readonly string[], drop: readonly string[]): string[] {
  const held = heldCapabilities();
  let set = new Set<string>(DEFAULT_CAPABILITIES);
  for (const c of add) {
    if (c === "ALL") set = new Set(CAPABILITIES);
    else if (!held.has(c)) throw new UsageError(`--cap-add ${c}: dokrust does not hold ${c} itself (it is not in its bounding set), so it cannot grant it`);
    else set.add(c);
  }
  for (const c of drop) {
    if (c === "ALL") set.clear();
    else set.delete(c);
  }
  return CAPABILITIES.filter((c) => set.has(c) && held.has(c));
}

function resources(options: RunOptions): Resources {
  const res: Resources = { devices: DEFAULT_DEVICE_RULES.map((r) => ({ ...r })) };
  if (options.cpus !== undefined) res.cpu = { quota: Math.round(options.cpus * 100000), period: 100000 };
  if (options.memory !== undefined) res.memory = { limit: options.memory };
  if (options.pidsLimit !== undefined) res.pids = { limit: options.pidsLimit };
  return res;
}

function environment(options: RunOptions): string[] {
  const env = new Map<string, string>([
    ["PATH", DEFAULT_PATH],
    ["HOSTNAME", options.hostname],
    ["HOME", options.user && options.user.uid !== 0 ? "/" : "/root"],
  ]);
  if (options.tty) env.set("TERM", process.env.TERM || "xterm");
  for (const e of options.env) {
    const at = e.indexOf("=");
    env.set(e.slice(0, at), e.slice(at + 1));
  }
  return [...env].map(([k, v]) => `${k}=${v}`);
}

export interface HostFiles {
  /** Host paths of the generated /etc files to bind over the rootfs's. */
  hostname: string;
  hosts: string;
  resolvConf: string;
}

/** Build the spec for a dokrust run. */
export function specFromOptions(options: RunOptions, rootfs: string, files: HostFiles | undefined): Spec {
  const caps = capabilitySet(options.capAdd, options.capDrop);
  const mounts: Mount[] = defaultMounts();
  if (files) {
    for (const [source, destination] of [
      [files.hostname, "/etc/hostname"],
      [files.hosts, "/etc/hosts"],
      [files.resolvConf, "/etc/resolv.conf"],
    ] as const) {
      mounts.push({ source, destination, type: "bind", options: ["bind", "nosuid", "nodev", "noexec"] });
    }
  }
  for (const m of options.mounts) {
    const opts = ["rbind"];
    if (m.readonly) opts.push("ro");
    mounts.push({ source: m.source, destination: m.destination, type: "bind", options: opts });
  }
  const user = options.user ?? { uid: 0, gid: 0 };
  // As docker: the default seccomp profile unless --security-opt says otherwise.
  const seccomp = profileForRun(options.security?.seccomp ?? { kind: "default" }, caps);
  return {
    ociVersion: OCI_VERSION,
    process: {
      ...(options.security?.noNewPrivileges ? { noNewPrivileges: true } : {}),
      terminal: options.tty,
      user: { uid: user.uid, gid: user.gid },
      args: options.args,
      env: environment(options),
      cwd: options.workdir ?? "/",
      capabilities: {
        bounding: caps,
        effective: user.uid === 0 ? caps : [],
        permitted: user.uid === 0 ? caps : [],
      },
    },
    root: { path: rootfs, readonly: options.readOnly },
    hostname: options.hostname,
    mounts,
    linux: {
      namespaces: ["pid", "network", "ipc", "uts", "mount", "cgroup"].map((type) => ({ type })),
      resources: resources(options),
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
      ...(seccomp ? { seccomp } : {}),
    },
  };
}
