/**
 * dokrust's default seccomp profile: what a container started by the
 * dokrust command line may ask of the kernel unless the user says
 * `--security-opt seccomp=unconfined` or gives a profile of their own.
 *
 * It follows docker's default in spirit: an allow-list (anything not
 * named fails with EPERM), argument rules for the calls whose harmless and
 * harmful uses differ only by a flag, and groups that a capability
 * unlocks, because a container given CAP_SYS_ADMIN is meant to mount.
 * What stays out even so: calls whose kernel objects are not namespaced
 * (the keyring, the kernel's modules and clock, unless granted),
 * io_uring (a large attack surface that docker also refuses), and old
 * calls nothing uses any more.
 *
 * The profile names calls of every ABI of the machine (x86_64, i386 and
 * x32 on an x86_64 host), so that 32-bit programs work as well.
 */
import { DEFAULT_CAPABILITIES } from "../plan/linux.ts";
import type { Seccomp, SeccompRule } from "../spec/types.ts";
import { ARCHES, companionArches, nativeArch, syscallTable } from "./arch.ts";
import { ENOSYS, compileSeccomp } from "./compile.ts";

/** Calls any ordinary program may make, by purpose. */
const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  // Opening, reading, writing and closing files, and seeking in them.
  fileIo: [
    "open", "openat", "openat2", "creat", "close", "close_range", "read", "readv", "pread64",
    "preadv",
    "preadv2", "write", "writev", "pwrite64", "pwritev", "pwritev2", "lseek", "_llseek", "dup",
    "dup2",
    "dup3", "fcntl", "fcntl64", "ioctl", "flock", "sendfile", "sendfile64", "splice", "tee",
    "vmsplice",
    "copy_file_range", "fallocate", "fadvise64", "fadvise64_64", "readahead", "truncate",
    "truncate64",
    "ftruncate", "ftruncate64", "sync", "syncfs", "fsync", "fdatasync", "sync_file_range",
    "cachestat",
  ],
  // Looking files up and changing the tree (the mount namespace and the
  // device cgroup keep this inside the container).
  fileTree: [
    "stat", "lstat", "fstat", "stat64", "lstat64", "fstat64", "newfstatat", "fstatat64", "statx",
    "statfs", "statfs64", "fstatfs", "fstatfs64", "access", "faccessat", "faccessat2", "getdents",
    "getdents64", "readdir", "getcwd", "chdir", "fchdir", "readlink", "readlinkat", "link",
    "linkat",
    "symlink", "symlinkat", "unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir",
    "mkdirat",
    "rmdir", "mknod", "mknodat", "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown",
    "lchown", "fchownat", "chown32", "fchown32", "lchown32", "umask", "utime", "utimes",
    "futimesat",
    "utimensat", "utimensat_time64", "name_to_handle_at", "statmount", "listmount",
  ],
  // Extended attributes and inode flags.
  attributes: [
    "getxattr", "lgetxattr", "fgetxattr", "getxattrat", "setxattr", "lsetxattr", "fsetxattr",
    "setxattrat", "listxattr", "llistxattr", "flistxattr", "listxattrat", "removexattr",
    "lremovexattr",
    "fremovexattr", "removexattrat", "file_getattr", "file_setattr",
  ],
  // Waiting for file descriptors and events.
  events: [
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old",
    "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4", "timerfd_create",
    "timerfd_settime", "timerfd_settime64", "timerfd_gettime", "timerfd_gettime64", "inotify_init",
    "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "fanotify_mark",
  ],
  // Asynchronous I/O (the older kind; io_uring is left out).
  aio: [
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
    "io_pgetevents_time64",
  ],
  // Memory.
  memory: [
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "pkey_mprotect", "pkey_alloc",
    "pkey_free",
    "madvise", "mincore", "msync", "mlock", "mlock2", "munlock", "mlockall", "munlockall",
    "membarrier",
    "memfd_create", "memfd_secret", "remap_file_pages", "map_shadow_stack", "mseal",
  ],
  // Processes and threads (clone and clone3 have rules of their own below).
  processes: [
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid",
    "getpid",
    "getppid", "gettid", "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "set_tid_address",
    "set_robust_list", "get_robust_list", "futex", "futex_time64", "futex_waitv", "futex_wake",
    "futex_wait", "futex_requeue", "rseq", "prctl", "arch_prctl", "set_thread_area",
    "get_thread_area",
    "pidfd_open", "pidfd_send_signal", "process_mrelease", "seccomp", "landlock_create_ruleset",
    "landlock_add_rule", "landlock_restrict_self", "capget", "capset", "lsm_get_self_attr",
    "lsm_list_modules",
  ],
  // Scheduling, priorities and resource limits (the kernel itself checks
  // what needs CAP_SYS_NICE or CAP_SYS_RESOURCE).
  scheduling: [
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
    "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_getattr", "sched_setattr",
    "getpriority", "setpriority", "nice", "ioprio_get", "ioprio_set", "getrlimit", "setrlimit",
    "ugetrlimit", "prlimit64", "getrusage", "times", "getcpu",
  ],
  // User and group ids.
  identity: [
    "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups", "setuid",
    "setgid",
    "setreuid", "setregid", "setresuid", "setresgid", "setgroups", "setfsuid", "setfsgid",
    "getuid32",
    "geteuid32", "getgid32", "getegid32", "getresuid32", "getresgid32", "getgroups32", "setuid32",
    "setgid32", "setreuid32", "setregid32", "setresuid32", "setresgid32", "setgroups32",
    "setfsuid32",
    "setfsgid32",
  ],
  // Signals.
  signals: [
    "kill", "tkill", "tgkill", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending",
    "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "sigaction", "sigprocmask", "sigreturn", "sigpending", "sigsuspend", "sigaltstack", "signal",
    "pause",
    "alarm", "restart_syscall",
  ],
  // Reading clocks, sleeping and timers (setting the clock needs CAP_SYS_TIME, below).
  time: [
    "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64", "clock_nanosleep",
    "clock_nanosleep_time64", "nanosleep", "gettimeofday", "time", "adjtimex", "clock_adjtime",
    "clock_adjtime64", "getitimer", "setitimer", "timer_create", "timer_settime", "timer_settime64",
    "timer_gettime", "timer_gettime64", "timer_getoverrun", "timer_delete",
  ],
  // Networking (socket has a rule of its own below); i386 multiplexes it through socketcall.
  network: [
    "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
    "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg", "recvmmsg_time64",
    "shutdown",
    "setsockopt", "getsockopt", "socketcall", "send", "recv",
  ],
  // Pipes and System V / POSIX IPC (the ipc namespace is the container's).
  ipc: [
    "pipe", "pipe2", "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop",
    "semtimedop_time64", "semctl", "msgget", "msgsnd", "msgrcv", "msgctl", "ipc", "mq_open",
    "mq_unlink",
    "mq_timedsend", "mq_timedsend_time64", "mq_timedreceive", "mq_timedreceive_time64", "mq_notify",
    "mq_getsetattr",
  ],
  // The system's name and state, read-only.
  system: ["uname", "sysinfo", "getrandom"],
};

/** What each capability unlocks, on top of what the kernel checks itself. */
const BY_CAPABILITY: Readonly<Record<string, readonly string[]>> = {
  // Mounting, namespaces and the uts names: what CAP_SYS_ADMIN is given for.
  CAP_SYS_ADMIN: [
    "mount", "umount", "umount2", "pivot_root", "unshare", "setns", "fsopen", "fsconfig", "fsmount",
    "fspick", "move_mount", "open_tree", "open_tree_attr", "mount_setattr", "sethostname",
    "setdomainname", "swapon", "swapoff", "quotactl", "quotactl_fd", "fanotify_init",
    "lookup_dcookie",
    "listns", "bpf", "perf_event_open", "syslog",
  ],
  CAP_BPF: ["bpf"],
  CAP_PERFMON: ["perf_event_open"],
  CAP_SYSLOG: ["syslog"],
  CAP_SYS_BOOT: ["reboot", "kexec_load", "kexec_file_load"],
  CAP_SYS_CHROOT: ["chroot"],
  CAP_SYS_MODULE: ["init_module", "finit_module", "delete_module"],
  CAP_SYS_PACCT: ["acct"],
  // Reaching into other processes' memory and files.
  CAP_SYS_PTRACE: [
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise",
  ],
  CAP_SYS_RAWIO: ["iopl", "ioperm"],
  CAP_SYS_TIME: ["settimeofday", "stime", "clock_settime", "clock_settime64"],
  CAP_SYS_TTY_CONFIG: ["vhangup"],
  // NUMA placement: it can slow the whole host down.
  CAP_SYS_NICE: [
    "get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind", "migrate_pages",
    "move_pages",
  ],
  // Opening a file by handle bypasses the mount tree (the "shocker" escape).
  CAP_DAC_READ_SEARCH: ["open_by_handle_at"],
};

/** clone(2)'s namespace flags: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET. */
const CLONE_NAMESPACES = 0x7e020000;
/** personality(2) values programs use: PER_LINUX, PER_LINUX32, UNAME26 with each, and the query. */
const PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];
/** AF_VSOCK: sockets to the hypervisor, outside every namespace. */
const AF_VSOCK = 40;

/** Rules that look at arguments, or that differ by capability. */
function conditionalRules(caps: ReadonlySet<string>): SeccompRule[] {
  const rules: SeccompRule[] = PERSONALITIES.map((value) => ({
    names: ["personality"],
    action: "SCMP_ACT_ALLOW",
    args: [{ index: 0, value, op: "SCMP_CMP_EQ" }],
  }));
  rules.push({
    names: ["socket"],
    action: "SCMP_ACT_ALLOW",
    args: [{ index: 0, value: AF_VSOCK, op: "SCMP_CMP_NE" }],
  });
  if (caps.has("CAP_SYS_ADMIN")) {
    rules.push({ names: ["clone", "clone3"], action: "SCMP_ACT_ALLOW" });
  } else {
    // A new thread or process, but no new namespaces.
    rules.push({
      names: ["clone"],
      action: "SCMP_ACT_ALLOW",
      args: [{ index: 0, value: CLONE_NAMESPACES, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ" }],
    });
    // clone3 passes its flags in memory, out of a filter's reach: ENOSYS
    // makes glibc and others fall back to clone, which the rule above sees.
    rules.push({ names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS });
  }
  return rules;
}

/**
 * The part of a capability set the default profile depends on: the
 * capabilities that unlock calls, sorted.  Two sets with the same key get
 * the same profile.
 */
export function capabilityKey(capabilities: readonly string[]): string {
  const caps = new Set(capabilities);
  return Object.keys(BY_CAPABILITY).filter((c) => caps.has(c)).sort().join(",");
}

/**
 * The default profile for a container holding `capabilities` (its
 * bounding set), on the machine's architecture (`native`, an SCMP_ARCH_*
 * name).  Names no ABI of the filter knows are left out, so that the
 * compiler has nothing to warn about.
 */
export function defaultProfile(capabilities: readonly string[], native = nativeArch()): Seccomp {
  const caps = new Set(capabilities);
  const architectures = companionArches(native);
  const tables = architectures.map((a) => syscallTable(ARCHES[a]!));
  const known = (name: string) => tables.some((t) => t.has(name));
  const allowed = new Set(Object.values(ALLOWED).flat());
  for (const [cap, names] of Object.entries(BY_CAPABILITY)) {
    if (caps.has(cap)) names.forEach((n) => allowed.add(n));
  }
  return {
    defaultAction: "SCMP_ACT_ERRNO",
    defaultErrnoRet: 1,
    architectures,
    syscalls: [
      { names: [...allowed].filter(known).sort(), action: "SCMP_ACT_ALLOW" },
      ...conditionalRules(caps)
        .map((r) => ({ ...r, names: r.names.filter(known) }))
        .filter((r) => r.names.length > 0),
    ],
  };
}

/** A compiled default profile, in a form a Bun macro can return (JSON). */
export interface PrecompiledDefault {
  /** SCMP_ARCH_* it was built for. */
  native: string;
  /** capabilityKey() of the capability set it was built for. */
  key: string;
  profile: Seccomp;
  /** The program, base64. */
  program: string;
  flags: number;
}

/**
 * The default profile for docker's default capability set, compiled: run
 * as a Bun macro (see index.ts), at build time.
 */
export function precompileDefault(): PrecompiledDefault {
  const native = nativeArch();
  const profile = defaultProfile(DEFAULT_CAPABILITIES, native);
  const { program, flags } = compileSeccomp(profile, { native });
  const key = capabilityKey(DEFAULT_CAPABILITIES);
  return { native, key, profile, program: Buffer.from(program).toString("base64"), flags };
}
