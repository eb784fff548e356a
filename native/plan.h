/*
 * The plan: the contract between the TypeScript plan compiler
 * (src/plan/) and the executor (native/exec.c).
 *
 * TypeScript decides every step of a container's set-up; the executor
 * carries the steps out, in order, in the window between clone() and
 * execve() where no JavaScript may run.  src/plan/ops.ts mirrors the
 * numbers below; test/unit/plan_header.test.ts checks that they agree.
 *
 * Encoding (all integers little-endian):
 *
 *   plan   := "DKP1" u32:total_length u32:op_count op*
 *   op     := u32:code u32:arg_count arg*
 *   arg    := u32:length byte[length]
 *
 * A string argument carries its terminating NUL inside `length`, so the
 * executor uses it in place.  A number argument is 8 bytes (u64).  An
 * empty string (length 1, a lone NUL) means "none" (NULL to the kernel).
 *
 * The executor is started as `dokrust-exec FD`: FD is the channel, a
 * unix stream socket; the plan arrives on it first (total_length counts
 * every byte of the plan, the header included).
 *
 * The executor reports back on the channel socket with fixed 32-byte
 * records (struct dk_report).  A successful execve() closes the channel
 * (it is close-on-exec), which the parent reads as success.
 */
#ifndef DOKRUST_PLAN_H
#define DOKRUST_PLAN_H

#include <stdint.h>

#define DK_PLAN_MAGIC "DKP1"
#define DK_PLAN_MAX (4u << 20) /* largest plan the executor accepts */

/* --- run by the outer executor, before the clone ----------------------- */

/* path: write the executor's pid into this cgroup.procs file. */
#define DK_OP_CGROUP_JOIN 1
/* path, u64 nstype: setns() into the namespace file at path. */
#define DK_OP_SETNS 2
/*
 * u64 flags, uid_map, gid_map, setgroups, u64 mode: clone a child with
 * the CLONE_NEW* flags.  The outer executor writes setgroups (when not
 * empty), then uid_map and gid_map into /proc/<child>/, reports
 * DK_REPORT_PID, then lets the child go on with the next op.
 *   mode DK_CLONE_WAIT:   wait for the child; exit with its exit code, or
 *                         128+N when signal N killed it.
 *   mode DK_CLONE_DETACH: exit 0 at once; the child is reparented.
 */
#define DK_OP_CLONE 3
#define DK_CLONE_WAIT 0
#define DK_CLONE_DETACH 1

/* --- run by the container process, after the clone --------------------- */

/*
 * source, target, fstype, u64 flags, data, u64 opts: mount(2).
 * With DK_IN_ROOT the target is relative to the root (see DK_OP_ROOT)
 * and resolved with openat2(RESOLVE_IN_ROOT), so no symlink leads out;
 * the mount is made on /proc/self/fd/N of that resolved target.
 */
#define DK_OP_MOUNT 10
/*
 * target, u64 flags, u64 opts: bind-remount target adding flags
 * (MS_RDONLY ...) and keeping the lock flags it already has (nosuid,
 * nodev, noexec, atime flags) as statvfs() reports them.
 */
#define DK_OP_REMOUNT 11
/* path: open the root directory (already a mount point) as the root. */
#define DK_OP_ROOT 12
/* path, u64 mode: mkdir -p inside the root. */
#define DK_OP_MKDIR 13
/* path, u64 mode, u64 dev, u64 uid, u64 gid: mknod inside the root. */
#define DK_OP_MKNOD 14
/* target, linkpath: symlink inside the root; an existing link is kept. */
#define DK_OP_SYMLINK 15
/* path: mask inside the root: a directory gets a read-only tmpfs, any
 * other file /dev/null bound over it; a missing path is skipped. */
#define DK_OP_MASK 16
/* (no args): pivot_root into the root, detach the old root. */
#define DK_OP_PIVOT 17
/* name: sethostname. */
#define DK_OP_HOSTNAME 18
/* name: setdomainname. */
#define DK_OP_DOMAINNAME 19
/* path, data, u64 opts: write data into an existing file. */
#define DK_OP_WRITE 20
/* u64 resource, u64 soft, u64 hard: prlimit on the process itself. */
#define DK_OP_RLIMIT 21
/* name: bring the network interface up (lo). */
#define DK_OP_IFUP 22
/*
 * u64 send_fd, u64 rows, u64 cols[, u64 opts]: open the root's
 * /dev/pts/ptmx, make the peer the controlling terminal and fds 0-2 (new
 * session), bind it over /dev/console (not with DK_NO_CONSOLE: a process
 * exec'd into a running container must not touch the container's
 * mounts), send the master over send_fd with SCM_RIGHTS, then report
 * DK_REPORT_TTY.
 */
#define DK_OP_TTY 23
/* path: open a fifo (O_PATH) to wait on later with DK_OP_WAIT.  Also
 * before DK_OP_CLONE: the container process inherits the fd. */
#define DK_OP_OPEN_FIFO 24
/* (no args): report DK_REPORT_READY. */
#define DK_OP_READY 25
/* (no args): open the fifo of DK_OP_OPEN_FIFO for writing through
 * /proc/self/fd (blocks until `start` opens it), write one byte.  The
 * write end stays open until execve (close-on-exec): a step that fails
 * after it writes its DK_REPORT_ERROR record into the fifo as well, so
 * `start` can read it before the end of file. */
#define DK_OP_WAIT 26
/* u64 mask: drop every capability outside mask from the bounding set. */
#define DK_OP_CAP_BOUNDING 27
/* u64 uid, u64 gid, groups (u32 array as bytes), u64 opts: set groups
 * (skipped with DK_NO_SETGROUPS), gid and uid, keeping capabilities. */
#define DK_OP_USER 28
/* u64 effective, u64 permitted, u64 inheritable, u64 ambient: capset and
 * the ambient set. */
#define DK_OP_CAPS 29
/* (no args): prctl(PR_SET_NO_NEW_PRIVS). */
#define DK_OP_NO_NEW_PRIVS 30
/* program (struct sock_filter array as bytes), u64 flags: seccomp(2). */
#define DK_OP_SECCOMP 31
/* path: chdir. */
#define DK_OP_CHDIR 32
/* u64 mask: umask. */
#define DK_OP_UMASK 33
/* u64 persona: personality(2). */
#define DK_OP_PERSONALITY 34
/* path...: pick the first candidate that exists as a file; it is what
 * DK_OP_EXEC runs.  None: ENOENT; not executable: EACCES. */
#define DK_OP_FIND_EXEC 35
/* u64 argc, argv..., env...: execve the file DK_OP_FIND_EXEC chose. */
#define DK_OP_EXEC 36
/* u64 first: mark every fd >= first close-on-exec. */
#define DK_OP_CLOSE_FDS 37
/* u64 signal: ask the kernel to send signal when the parent dies. */
#define DK_OP_PDEATHSIG 38
/*
 * path, u64 timeout, state_prefix, state_suffix, u64 argc, argv...,
 * env...: run an OCI hook (createContainer, startContainer) from the
 * container process, in its namespaces: fork, execve path (resolved in
 * the current mount namespace) with fds 0-2 inherited but stdin a pipe
 * carrying state_prefix + the container's pid (as the host sees it,
 * which the outer passes on at the clone) + state_suffix, and wait.
 * timeout (seconds, 0 = none) passed: SIGKILL the hook, fail with
 * ETIMEDOUT.  A hook that fails fails the step with syscall "hook" and
 * the value DK_HOOK_EXITED | status or DK_HOOK_SIGNALED | signal.
 */
#define DK_OP_HOOK 39
#define DK_HOOK_EXITED 0x10000
#define DK_HOOK_SIGNALED 0x20000

/* opts bits */
#define DK_IN_ROOT 0x1u       /* path is inside the root */
#define DK_MKDIR 0x2u         /* create the target as a directory (-p) */
#define DK_MKFILE 0x4u        /* create the target as an empty file */
#define DK_IGNORE_MISSING 0x8u /* a missing path is not an error */
#define DK_NO_SETGROUPS 0x10u /* leave the supplementary groups alone */
#define DK_NO_CONSOLE 0x20u   /* DK_OP_TTY: leave /dev/console alone */

/* --- reports ------------------------------------------------------------ */

#define DK_REPORT_PID 'P'   /* value: the container pid (host view) */
#define DK_REPORT_ERROR 'E' /* step, value: errno, syscall: its name */
#define DK_REPORT_READY 'R' /* step */
#define DK_REPORT_TTY 'T'   /* step; the master went out on send_fd */

struct dk_report {
	uint32_t type;
	uint32_t step;
	int32_t value;
	int32_t reserved;
	char syscall[16];
};

#endif
