/**
 * The default container: what `dokrust spec` writes and what the dokrust
 * command line starts from.  Mounts, masked and read-only paths follow
 * the defaults runc and docker give a container; the capabilities are
 * docker's default set.
 */
import { DEFAULT_CAPABILITIES } from "../plan/linux.ts";
import type { Device, DeviceRule, Mount, Spec } from "./types.ts";

export const OCI_VERSION = "1.2.0";
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export const MASKED_PATHS = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/interrupts",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
];

export const READONLY_PATHS = [
  "/proc/bus",
  "/proc/fs",
  "/proc/irq",
  "/proc/sys",
  "/proc/sysrq-trigger",
];

export function defaultMounts(): Mount[] {
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
  ];
}

/** Devices every container gets (runtime-spec "Default Devices"). */
export const DEFAULT_DEVICES: Device[] = [
  { path: "/dev/null", type: "c", major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
  { path: "/dev/zero", type: "c", major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0 },
  { path: "/dev/full", type: "c", major: 1, minor: 7, fileMode: 0o666, uid: 0, gid: 0 },
  { path: "/dev/random", type: "c", major: 1, minor: 8, fileMode: 0o666, uid: 0, gid: 0 },
  { path: "/dev/urandom", type: "c", major: 1, minor: 9, fileMode: 0o666, uid: 0, gid: 0 },
  { path: "/dev/tty", type: "c", major: 5, minor: 0, fileMode: 0o666, uid: 0, gid: 0 },
];

/**
 * The device cgroup rules every container gets: nothing but the default
 * devices, the terminals, and mknod of anything (as docker allows).
 */
export const DEFAULT_DEVICE_RULES: DeviceRule[] = [
  { allow: false, access: "rwm" },
  { allow: true, type: "c", access: "m" },
  { allow: true, type: "b", access: "m" },
  { allow: true, type: "c", major: 1, minor: 3, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 5, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 7, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 8, access: "rwm" },
  { allow: true, type: "c", major: 1, minor: 9, access: "rwm" },
  { allow: true, type: "c", major: 5, minor: 0, access: "rwm" },
  { allow: true, type: "c", major: 5, minor: 1, access: "rwm" },
  { allow: true, type: "c", major: 5, minor: 2, access: "rwm" },
  { allow: true, type: "c", major: 136, access: "rwm" },
  { allow: true, type: "c", major: 10, minor: 200, access: "rwm" },
];

/** The default config.json (`dokrust spec`), rootful. */
export function defaultSpec(): Spec {
  const caps = [...DEFAULT_CAPABILITIES];
  return {
    ociVersion: OCI_VERSION,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ["sh"],
      env: [`PATH=${DEFAULT_PATH}`, "TERM=xterm"],
      cwd: "/",
      capabilities: { bounding: caps, effective: caps, permitted: [...caps] },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: "rootfs", readonly: true },
    hostname: "dokrust",
    mounts: defaultMounts(),
    linux: {
      resources: { devices: [{ allow: false, access: "rwm" }] },
      namespaces: [{ type: "pid" }, { type: "network" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }, { type: "cgroup" }],
      maskedPaths: [...MASKED_PATHS],
      readonlyPaths: [...READONLY_PATHS],
    },
  };
}
