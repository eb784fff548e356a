/**
 * Kernel constants the plan compiler needs (x86_64 and every other Linux
 * architecture share these values), and the tables that map the names
 * used by the runtime-spec onto them.
 */

export const CLONE = {
  NEWTIME: 0x80,
  NEWNS: 0x20000,
  NEWCGROUP: 0x2000000,
  NEWUTS: 0x4000000,
  NEWIPC: 0x8000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
} as const;

/** runtime-spec namespace type → clone flag. */
export const NAMESPACE_FLAGS: Record<string, number> = {
  pid: CLONE.NEWPID,
  network: CLONE.NEWNET,
  mount: CLONE.NEWNS,
  ipc: CLONE.NEWIPC,
  uts: CLONE.NEWUTS,
  user: CLONE.NEWUSER,
  cgroup: CLONE.NEWCGROUP,
  time: CLONE.NEWTIME,
};

export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  SYNCHRONOUS: 0x10,
  REMOUNT: 0x20,
  MANDLOCK: 0x40,
  DIRSYNC: 0x80,
  NOSYMFOLLOW: 0x100,
  NOATIME: 0x400,
  NODIRATIME: 0x800,
  BIND: 0x1000,
  REC: 0x4000,
  SILENT: 0x8000,
  UNBINDABLE: 0x20000,
  PRIVATE: 0x40000,
  SLAVE: 0x80000,
  SHARED: 0x100000,
  RELATIME: 0x200000,
  STRICTATIME: 0x1000000,
  LAZYTIME: 0x2000000,
} as const;

/** A mount option: set or clear flags. */
interface FlagOption {
  clear: boolean;
  flag: number;
}

/** Mount options as fstab and the runtime-spec spell them. */
export const MOUNT_OPTIONS: Record<string, FlagOption> = {
  ro: { clear: false, flag: MS.RDONLY },
  rw: { clear: true, flag: MS.RDONLY },
  nosuid: { clear: false, flag: MS.NOSUID },
  suid: { clear: true, flag: MS.NOSUID },
  nodev: { clear: false, flag: MS.NODEV },
  dev: { clear: true, flag: MS.NODEV },
  noexec: { clear: false, flag: MS.NOEXEC },
  exec: { clear: true, flag: MS.NOEXEC },
  sync: { clear: false, flag: MS.SYNCHRONOUS },
  async: { clear: true, flag: MS.SYNCHRONOUS },
  dirsync: { clear: false, flag: MS.DIRSYNC },
  remount: { clear: false, flag: MS.REMOUNT },
  mand: { clear: false, flag: MS.MANDLOCK },
  nomand: { clear: true, flag: MS.MANDLOCK },
  atime: { clear: true, flag: MS.NOATIME },
  noatime: { clear: false, flag: MS.NOATIME },
  diratime: { clear: true, flag: MS.NODIRATIME },
  nodiratime: { clear: false, flag: MS.NODIRATIME },
  relatime: { clear: false, flag: MS.RELATIME },
  norelatime: { clear: true, flag: MS.RELATIME },
  strictatime: { clear: false, flag: MS.STRICTATIME },
  nostrictatime: { clear: true, flag: MS.STRICTATIME },
  lazytime: { clear: false, flag: MS.LAZYTIME },
  nolazytime: { clear: true, flag: MS.LAZYTIME },
  symfollow: { clear: true, flag: MS.NOSYMFOLLOW },
  nosymfollow: { clear: false, flag: MS.NOSYMFOLLOW },
  bind: { clear: false, flag: MS.BIND },
  rbind: { clear: false, flag: MS.BIND | MS.REC },
};

/** Propagation options; they need a mount(2) call of their own. */
export const PROPAGATION_OPTIONS: Record<string, number> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

/** Capability names in kernel order (capability.h); index = number. */
export const CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
] as const;

/** The capabilities docker grants a container by default. */
export const DEFAULT_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/** "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" → "CAP_NET_ADMIN"; undefined when unknown. */
export function capabilityName(name: string): string | undefined {
  const upper = name.toUpperCase();
  const full = upper.startsWith("CAP_") ? upper : `CAP_${upper}`;
  return (CAPABILITIES as readonly string[]).includes(full) ? full : undefined;
}

/** A set of capability names as the 64-bit mask capset(2) takes. */
export function capabilityMask(names: readonly string[] | undefined): bigint {
  let mask = 0n;
  for (const name of names ?? []) {
    const index = (CAPABILITIES as readonly string[]).indexOf(name);
    if (index >= 0) mask |= 1n << BigInt(index);
  }
  return mask;
}

export const RLIMITS: Record<string, number> = {
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
};

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

/** makedev(3) for the 64-bit dev_t glibc uses. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}
