// SPDX-License-Identifier: MIT
/*
 * dokrust-exec: carries out a plan (see plan.h) in the window between
 * clone() and execve(), where no JavaScript may run.
 *
 *	dokrust-exec FD
 *
 * FD is the channel, a unix stream socket.  The whole plan is read from
 * it and validated before any step runs.  Steps before DK_OP_CLONE run in
 * this ("outer") process; DK_OP_CLONE makes the container process and
 * every later step runs there.  A failed step sends a DK_REPORT_ERROR
 * record (step, errno, syscall name) and exits 125.  A successful
 * execve() closes the channel, which is close-on-exec.
 *
 * No policy lives here and nothing is allocated: the plan sits in a
 * static buffer and every string is used in place.  The process is
 * single-threaded, and the clone is a raw fork-like syscall, so the
 * child must not rely on glibc's idea of its thread id (no raise(),
 * abort() or pthread calls); it only makes plain system calls.
 */
#define _GNU_SOURCE
#define _FILE_OFFSET_BITS 64
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>

#include "plan.h"

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

/* The 32-bit id system calls where the architecture has both kinds. */
#ifdef SYS_setresuid32
#define SYS_SETGROUPS SYS_setgroups32
#define SYS_SETRESGID SYS_setresgid32
#define SYS_SETRESUID SYS_setresuid32
#else
#define SYS_SETGROUPS SYS_setgroups
#define SYS_SETRESGID SYS_setresgid
#define SYS_SETRESUID SYS_setresuid
#endif

#define HEADER_LEN 12u
#define MAX_OPS ((DK_PLAN_MAX - HEADER_LEN) / 8) /* an op is >= 8 bytes */
#define MAX_ARGV 4096
#define MAX_GROUPS 65536 /* the kernel's NGROUPS_MAX */
#define MAX_CGROUPS 64	/* cgroup.procs files one container joins */
#define BAD_STEP 0xffffffffu
#define SKIP (-2) /* a missing path that the op may ignore */

#define NS_FLAGS (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
		  CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP | CLONE_NEWTIME)
#define OPT_FLAGS (DK_IN_ROOT | DK_MKDIR | DK_MKFILE | DK_IGNORE_MISSING | \
		   DK_NO_SETGROUPS | DK_NO_CONSOLE)

struct op {
	uint32_t code;
	uint32_t nargs;
	unsigned char *args; /* first arg, inside plan[] */
};

static unsigned char plan[DK_PLAN_MAX];
static struct op ops[MAX_OPS];
static uint32_t nops;

static int chan = -1;		/* the channel socket */
static int rootfd = -1;		/* DK_OP_ROOT, "/" after DK_OP_PIVOT */
static int fifofd = -1;		/* DK_OP_OPEN_FIFO */
static int fifowr = -1;		/* DK_OP_WAIT: the fifo's write end */
static pid_t host_pid;		/* the container's pid, as the host sees it */
static char *exec_path;		/* DK_OP_FIND_EXEC */
static const char *fail_sc;	/* name of the system call that failed */
static int debug;

static char *argv_tab[MAX_ARGV + 1];
static char *envp_tab[MAX_ARGV + 1];
static gid_t groups[MAX_GROUPS];

/* --- reports and errors ------------------------------------------------ */

static void set_disposition(int sig, void (*handler)(int));

__attribute__((format(printf, 1, 2)))
static void dbg(const char *fmt, ...)
{
	va_list ap;

	if (!debug)
		return;
	va_start(ap, fmt);
	dprintf(2, "dokrust-exec[%d]: ", (int)getpid());
	vdprintf(2, fmt, ap);
	dprintf(2, "\n");
	va_end(ap);
}

static void report(uint32_t type, uint32_t step, int32_t value, const char *sc)
{
	struct dk_report r;
	size_t i;

	memset(&r, 0, sizeof(r));
	r.type = type;
	r.step = step;
	r.value = value;
	for (i = 0; sc && sc[i] && i < sizeof(r.syscall) - 1; i++)
		r.syscall[i] = sc[i];
	(void)send(chan, &r, sizeof(r), MSG_NOSIGNAL);
	/* after DK_OP_WAIT, `start` reads the failure from the fifo */
	if (type == DK_REPORT_ERROR && fifowr >= 0) {
		set_disposition(SIGPIPE, SIG_IGN);
		(void)!write(fifowr, &r, sizeof(r));
	}
}

static _Noreturn void die(uint32_t step, int err, const char *sc)
{
	dbg("step %u: %s: %s", step, sc, strerror(err));
	report(DK_REPORT_ERROR, step, err, sc);
	_exit(125);
}

/* Record which system call failed; errno is left as it is. */
static int fail(const char *sc)
{
	fail_sc = sc;
	return -1;
}

/* close() that keeps errno, for error paths. */
static void xclose(int fd)
{
	int err = errno;

	if (fd >= 0)
		close(fd);
	errno = err;
}

/* --- reading and validating the plan ----------------------------------- */

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

/* Returns 0, or -1 with errno set (EINVAL for a short plan). */
static int read_full(void *buf, size_t len)
{
	unsigned char *p = buf;
	ssize_t n;

	while (len) {
		n = read(chan, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail("read");
		if (n == 0) {
			errno = EINVAL;
			return fail("plan");
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int read_plan(uint32_t *total)
{
	if (read_full(plan, HEADER_LEN) < 0)
		return -1;
	*total = get32(plan + 4);
	if (memcmp(plan, DK_PLAN_MAGIC, 4) || *total < HEADER_LEN ||
	    *total > DK_PLAN_MAX) {
		errno = EINVAL;
		return fail("plan");
	}
	return read_full(plan + HEADER_LEN, *total - HEADER_LEN);
}

/*
 * Argument kinds per op: s string, n number (8 bytes), b bytes.  A
 * trailing '+' repeats the kind before it one or more times, a '*' zero
 * or more times.
 */
static const char *const op_kinds[] = {
	[DK_OP_CGROUP_JOIN] = "s",	[DK_OP_SETNS] = "sn",
	[DK_OP_CLONE] = "nsssn",	[DK_OP_MOUNT] = "sssnsn",
	[DK_OP_REMOUNT] = "snn",	[DK_OP_ROOT] = "s",
	[DK_OP_MKDIR] = "sn",		[DK_OP_MKNOD] = "snnnn",
	[DK_OP_SYMLINK] = "ss",		[DK_OP_MASK] = "s",
	[DK_OP_PIVOT] = "",		[DK_OP_HOSTNAME] = "s",
	[DK_OP_DOMAINNAME] = "s",	[DK_OP_WRITE] = "ssn",
	[DK_OP_RLIMIT] = "nnn",		[DK_OP_IFUP] = "s",
	[DK_OP_TTY] = "nnnn*",		[DK_OP_OPEN_FIFO] = "s",
	[DK_OP_READY] = "",		[DK_OP_WAIT] = "",
	[DK_OP_CAP_BOUNDING] = "n",	[DK_OP_USER] = "nnbn",
	[DK_OP_CAPS] = "nnnn",		[DK_OP_NO_NEW_PRIVS] = "",
	[DK_OP_SECCOMP] = "bn",		[DK_OP_CHDIR] = "s",
	[DK_OP_UMASK] = "n",		[DK_OP_PERSONALITY] = "n",
	[DK_OP_FIND_EXEC] = "s+",	[DK_OP_EXEC] = "ns*",
	[DK_OP_CLOSE_FDS] = "n",	[DK_OP_PDEATHSIG] = "n",
	[DK_OP_HOOK] = "snssns*",
};

static int check_arg(char kind, const unsigned char *d, uint32_t len)
{
	switch (kind) {
	case 'n':
		return len == 8;
	case 's':	/* NUL-terminated, no NUL inside */
		return len >= 1 && memchr(d, 0, len) == d + len - 1;
	default:
		return 1;
	}
}

/* Check the args of op against its kinds; the end of the plan is end. */
static int check_args(struct op *op, const unsigned char *end,
		      unsigned char **next)
{
	const char *kinds = op_kinds[op->code];
	size_t n = strlen(kinds), fixed = n;
	unsigned char *p = op->args;
	uint32_t i, len;
	char kind;

	if (n && (kinds[n - 1] == '+' || kinds[n - 1] == '*'))
		fixed = kinds[n - 1] == '+' ? n - 1 : n - 2;
	if (fixed == n ? op->nargs != n : op->nargs < fixed)
		return 0;
	for (i = 0; i < op->nargs; i++) {
		kind = fixed == n || i < n - 1 ? kinds[i] : kinds[n - 2];
		if ((size_t)(end - p) < 4)
			return 0;
		len = get32(p);
		if ((size_t)(end - p - 4) < len || !check_arg(kind, p + 4, len))
			return 0;
		p += 4 + len;
	}
	*next = p;
	return 1;
}

/* The i-th argument of op (0-based) and its length. */
static unsigned char *arg_at(const struct op *op, uint32_t i, uint32_t *len)
{
	unsigned char *p = op->args;

	while (i--)
		p += 4 + get32(p);
	*len = get32(p);
	return p + 4;
}

static uint64_t num_at(const struct op *op, uint32_t i)
{
	uint32_t len;

	return get64(arg_at(op, i, &len));
}

/* Checks that go beyond the shape of the arguments. */
static int check_op(const struct op *op, int *found)
{
	uint32_t len;

	switch (op->code) {
	case DK_OP_CLONE:
		return !(num_at(op, 0) & ~(uint64_t)NS_FLAGS) &&
		       num_at(op, 4) <= DK_CLONE_DETACH;
	case DK_OP_MOUNT:
	case DK_OP_REMOUNT:
	case DK_OP_WRITE:
	case DK_OP_USER: {
		uint64_t o = num_at(op, op->nargs - 1);

		if (o & ~(uint64_t)OPT_FLAGS)
			return 0;
		if ((o & (DK_MKDIR | DK_MKFILE)) == (DK_MKDIR | DK_MKFILE))
			return 0;
		if (op->code == DK_OP_USER) {
			arg_at(op, 2, &len);
			return len % 4 == 0 && len / 4 <= MAX_GROUPS;
		}
		/* creating a target only makes sense inside the root */
		return !(o & (DK_MKDIR | DK_MKFILE)) || (o & DK_IN_ROOT);
	}
	case DK_OP_TTY:
		return op->nargs <= 4 &&
		       (op->nargs < 4 || !(num_at(op, 3) & ~(uint64_t)DK_NO_CONSOLE));
	case DK_OP_SECCOMP:
		arg_at(op, 0, &len);
		return len && len % 8 == 0 && len / 8 <= USHRT_MAX;
	case DK_OP_FIND_EXEC:
		*found = 1;
		return 1;
	case DK_OP_EXEC:
		return *found && num_at(op, 0) <= op->nargs - 1;
	case DK_OP_HOOK:
		return num_at(op, 4) <= op->nargs - 5;
	}
	return 1;
}

static int parse_plan(uint32_t total)
{
	const unsigned char *end = plan + total;
	unsigned char *p = plan + HEADER_LEN;
	uint32_t count = get32(plan + 8), i;
	int found = 0;

	if (count > MAX_OPS)
		return -1;
	for (i = 0; i < count; i++) {
		struct op *op = &ops[i];

		if ((size_t)(end - p) < 8)
			return -1;
		op->code = get32(p);
		op->nargs = get32(p + 4);
		op->args = p + 8;
		if (op->code >= sizeof(op_kinds) / sizeof(op_kinds[0]) ||
		    !op_kinds[op->code] || !check_args(op, end, &p) ||
		    !check_op(op, &found))
			return -1;
	}
	nops = count;
	return p == end ? 0 : -1;
}

/* Sequential readers of an op's arguments, already validated. */
static unsigned char *next_arg(unsigned char **p, uint32_t *len)
{
	uint32_t n = get32(*p);
	unsigned char *d = *p + 4;

	*p = d + n;
	if (len)
		*len = n;
	return d;
}

static char *str(unsigned char **p)
{
	return (char *)next_arg(p, NULL);
}

/* A string where empty means none (NULL to the kernel). */
static char *opt_str(unsigned char **p)
{
	char *s = str(p);

	return *s ? s : NULL;
}

static uint64_t num(unsigned char **p)
{
	return get64(next_arg(p, NULL));
}

/* --- small helpers ----------------------------------------------------- */

static char *fmt_u(char *buf, size_t size, uint64_t v)
{
	char *s = buf + size;

	*--s = '\0';
	do
		*--s = (char)('0' + v % 10);
	while ((v /= 10) && s > buf);
	return s;
}

/*
 * Mounting on "/proc/self/fd/N" rather than on a path makes the kernel
 * use exactly the inode that openat2() resolved inside the root: a
 * symlink swapped in later cannot redirect the mount (the runc fix for
 * CVE-2021-30465).  It needs a procfs at /proc: the host's before the
 * pivot, the container's after it.
 */
static char *fd_path(char buf[32], int fd)
{
	char n[24];

	strcpy(buf, "/proc/self/fd/");
	strcat(buf, fmt_u(n, sizeof(n), (uint64_t)fd));
	return buf;
}

static int write_all(int fd, const char *data, size_t len)
{
	ssize_t n;

	while (len) {
		n = write(fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* --- paths inside the root --------------------------------------------- */

/* In-root paths are relative to rootfd: drop the leading slashes. */
static const char *rel(const char *path)
{
	const char *p = path;

	while (*p == '/')
		p++;
	return *p || p == path ? p : ".";
}

/*
 * openat2() with RESOLVE_IN_ROOT treats rootfd as "/" for every
 * component, symlinks and ".." included, so nothing resolves outside the
 * container's root; RESOLVE_NO_MAGICLINKS refuses /proc/<pid>/fd style
 * links, which jump anywhere.  The kernel answers EAGAIN when a rename or
 * mount raced with a ".." step; trying again is the documented remedy.
 */
static int resolve(const char *path, int flags)
{
	struct open_how how;
	int fd, tries = 64;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	do
		fd = (int)syscall(SYS_openat2, rootfd, rel(path), &how,
				  sizeof(how));
	while (fd < 0 && (errno == EINTR || errno == EAGAIN) && --tries);
	return fd;
}

/*
 * mkdir -p inside the root; returns an O_PATH fd of the directory.  Each
 * component is created relative to its parent's fd and then resolved
 * again from the root, so a symlink planted meanwhile still cannot lead
 * out of the root.
 */
static int mkdir_p_depth(const char *path, mode_t mode, int depth);

static int mkdir_p(const char *path, mode_t mode)
{
	return mkdir_p_depth(path, mode, 0);
}

/*
 * A component that exists but does not resolve is a dangling symlink.
 * Like runc, follow it inside the root: build the path the link names
 * (relative links from the component's parent) with the rest appended,
 * and make that instead.  depth bounds symlink loops, as ELOOP does.
 */
static int follow_dangling(int parent, char *buf, size_t start, size_t i,
			   size_t len, mode_t mode, int depth)
{
	char link[PATH_MAX], next[PATH_MAX];
	const char *rest = i < len ? buf + i + 1 : "";
	ssize_t n;
	int w;

	n = readlinkat(parent, buf + start, link, sizeof(link) - 1);
	xclose(parent);
	if (n < 0)
		return fail("readlinkat");
	link[n] = '\0';
	if (depth >= 40) {
		errno = ELOOP;
		return fail("openat2");
	}
	if (link[0] == '/')
		w = snprintf(next, sizeof(next), "%s/%s", link, rest);
	else
		w = snprintf(next, sizeof(next), "%.*s%s/%s", (int)start, buf,
			     link, rest);
	if (w < 0 || (size_t)w >= sizeof(next)) {
		errno = ENAMETOOLONG;
		return fail("openat2");
	}
	return mkdir_p_depth(next, mode, depth + 1);
}

static int mkdir_p_depth(const char *path, mode_t mode, int depth)
{
	char buf[PATH_MAX];
	size_t len, i = 0, start;
	int fd, parent;

	fd = resolve(path, O_PATH | O_DIRECTORY);
	if (fd >= 0 || errno != ENOENT)
		return fd >= 0 ? fd : fail("openat2");
	path = rel(path);
	len = strlen(path);
	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return fail("openat2");
	}
	memcpy(buf, path, len + 1);
	parent = resolve(".", O_PATH | O_DIRECTORY);
	if (parent < 0)
		return fail("openat2");
	while (i < len) {
		start = i;
		while (i < len && buf[i] != '/')
			i++;
		if (i > start) {
			buf[i] = '\0';
			fd = resolve(buf, O_PATH | O_DIRECTORY);
			if (fd < 0 && errno == ENOENT) {
				if (mkdirat(parent, buf + start, mode) < 0) {
					if (errno != EEXIST) {
						xclose(parent);
						return fail("mkdirat");
					}
					fd = resolve(buf, O_PATH | O_DIRECTORY);
					if (fd < 0 && errno == ENOENT)
						return follow_dangling(parent, buf,
								       start, i, len,
								       mode, depth);
				} else {
					fd = resolve(buf, O_PATH | O_DIRECTORY);
				}
			}
			xclose(parent);
			if (fd < 0)
				return fail("openat2");
			parent = fd;
			if (i < len)
				buf[i] = '/';
		}
		i++;
	}
	return parent;
}

/*
 * Split an in-root path into its last component (copied to base) and
 * its parent directory, made as with mkdir -p; returns the parent's fd.
 */
static int open_parent(const char *path, char base[NAME_MAX + 1])
{
	char buf[PATH_MAX], *slash, *name;
	size_t len;

	path = rel(path);
	len = strlen(path);
	if (len >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return fail("openat2");
	}
	memcpy(buf, path, len + 1);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';
	slash = strrchr(buf, '/');
	name = slash ? slash + 1 : buf;
	if (!*name || !strcmp(name, ".") || !strcmp(name, "..") ||
	    strlen(name) > NAME_MAX) {
		errno = EINVAL;
		return fail("plan");
	}
	strcpy(base, name);
	if (!slash)
		return mkdir_p(".", 0755);
	*slash = '\0';
	return mkdir_p(buf, 0755);
}

/* Create an empty file inside the root unless something is there. */
static int make_file(const char *path)
{
	char base[NAME_MAX + 1];
	int dir, fd;

	dir = open_parent(path, base);
	if (dir < 0)
		return -1;
	fd = openat(dir, base, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC |
		    O_NOFOLLOW, 0644);
	xclose(dir);
	if (fd < 0 && errno != EEXIST)
		return fail("openat");
	xclose(fd);
	return 0;
}

/*
 * Open the target of an in-root op as O_PATH, creating it first with
 * DK_MKDIR or DK_MKFILE.  Returns the fd, SKIP when it is missing and
 * DK_IGNORE_MISSING allows that, or -1.
 */
static int root_target(const char *path, uint64_t opts)
{
	int fd;

	if (opts & DK_MKDIR)
		return mkdir_p(path, 0755);
	if ((opts & DK_MKFILE) && make_file(path) < 0)
		return -1;
	fd = resolve(path, O_PATH);
	if (fd < 0 && errno == ENOENT && (opts & DK_IGNORE_MISSING))
		return SKIP;
	return fd < 0 ? fail("openat2") : fd;
}

/* A target outside the root that is missing and may be. */
static int missing(const char *path, uint64_t opts)
{
	return (opts & DK_IGNORE_MISSING) && access(path, F_OK) < 0 &&
	       errno == ENOENT;
}

/* --- outer ops --------------------------------------------------------- */

/*
 * Cgroups are joined by the container process, not the outer executor:
 * the outer would otherwise count against the container's limits (a pids
 * limit of 1 could never fork).  The op only records the file; the outer
 * writes the child's pid into it right after the clone, before letting
 * the child go on, and the child makes its cgroup namespace only then,
 * so that namespace is rooted at the container's cgroup.
 */
static char *cgroup_files[MAX_CGROUPS];
static uint32_t cgroup_steps[MAX_CGROUPS];
static unsigned int ncgroups;

static int op_cgroup_join(uint32_t step, unsigned char *p)
{
	if (ncgroups == MAX_CGROUPS) {
		errno = E2BIG;
		return fail("plan");
	}
	cgroup_steps[ncgroups] = step;
	cgroup_files[ncgroups++] = str(&p);
	return 0;
}

/*
 * A v1 "tasks" file written "0" by the thread itself moves it without the
 * kernel's global cgroup_threadgroup_rwsem, whose write side waits for an
 * RCU grace period (10-16 ms); the child, single-threaded, does that.
 * Other files (cgroup.procs of v2), and every file when the child is in
 * a new user namespace (its ids may not open host files), get the
 * child's pid from the outer.
 */
static int self_joins(const char *file, int userns)
{
	size_t len = strlen(file);

	return !userns && len >= 6 && !strcmp(file + len - 6, "/tasks");
}

/*
 * Write pid (0: the caller) into the recorded cgroup files that `mine`
 * selects; on failure *step names the join.
 */
static int join_cgroups(pid_t pid, int userns, int mine, uint32_t *step)
{
	char n[24], *text = fmt_u(n, sizeof(n), (uint64_t)pid);
	unsigned int i;
	int fd;

	for (i = 0; i < ncgroups; i++) {
		if (self_joins(cgroup_files[i], userns) != mine)
			continue;
		*step = cgroup_steps[i];
		fd = open(cgroup_files[i], O_WRONLY | O_CLOEXEC);
		if (fd < 0)
			return fail("open");
		if (write_all(fd, text, strlen(text)) < 0) {
			xclose(fd);
			return fail("write");
		}
		close(fd);
	}
	return 0;
}

static int op_setns(unsigned char *p)
{
	int fd = open(str(&p), O_RDONLY | O_CLOEXEC);
	int ret;

	if (fd < 0)
		return fail("open");
	ret = setns(fd, (int)num(&p));
	xclose(fd);
	return ret < 0 ? fail("setns") : 0;
}

static const int outer_ignored[] = {
	SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE,
	SIGTTOU, SIGTTIN, SIGTSTP,
};

static void set_disposition(int sig, void (*handler)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigemptyset(&sa.sa_mask);
	(void)sigaction(sig, &sa, NULL);
}

/*
 * The container starts with default dispositions and nothing blocked,
 * whatever the outer set up.  glibc refuses 32 and 33 (its own signals);
 * those failures are harmless and ignored.
 */
static void reset_signals(void)
{
	sigset_t none;
	int sig;

	for (sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			set_disposition(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static int write_map(pid_t pid, const char *file, const char *data)
{
	char path[64], n[24];
	int fd, ret;

	strcpy(path, "/proc/");
	strcat(path, fmt_u(n, sizeof(n), (uint64_t)pid));
	strcat(path, "/");
	strcat(path, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(file);
	/* the kernel takes a whole map in one write(), or refuses it */
	ret = write_all(fd, data, strlen(data));
	xclose(fd);
	return ret < 0 ? fail(file) : 0;
}

static int wait_status(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return 125;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 125;
}

/*
 * The child waits here until the outer has written its id maps; the
 * outer then sends the child's pid as the host sees it (for the state
 * hooks get: in a new pid namespace the child is 1 to itself).
 */
static void child_wait(int pfd[2])
{
	ssize_t n;

	reset_signals();
	close(pfd[1]);
	do
		n = read(pfd[0], &host_pid, sizeof(host_pid));
	while (n < 0 && errno == EINTR);
	if (n != sizeof(host_pid))	/* the outer failed, and has said so */
		_exit(125);
	close(pfd[0]);
}

/* Write the id maps of the child; setgroups must precede gid_map. */
static int write_maps(pid_t pid, const char *uid_map, const char *gid_map,
		      const char *setgroups)
{
	if (*setgroups && write_map(pid, "setgroups", setgroups) < 0)
		return -1;
	if (*uid_map && write_map(pid, "uid_map", uid_map) < 0)
		return -1;
	if (*gid_map && write_map(pid, "gid_map", gid_map) < 0)
		return -1;
	return 0;
}

/* Returns 0 in the child; the outer never returns. */
static int op_clone(uint32_t step, unsigned char *p)
{
	uint64_t flags = num(&p);
	char *uid_map = str(&p), *gid_map = str(&p), *setgroups = str(&p);
	uint64_t mode = num(&p);
	uint64_t cgroupns = flags & CLONE_NEWCGROUP;
	int userns = (flags & CLONE_NEWUSER) != 0;
	uint32_t failed = step;
	int pfd[2], i;
	pid_t pid;

	/*
	 * CLONE_NEWTIME shares its bit with the exit signal of clone(2), so
	 * it is asked for with unshare(): the next child enters it.
	 */
	if (flags & CLONE_NEWTIME) {
		if (unshare(CLONE_NEWTIME) < 0)
			return fail("unshare");
		flags &= ~(uint64_t)CLONE_NEWTIME;
	}
	flags &= ~cgroupns;	/* made by the child, after joining */
	/*
	 * Waiting, the outer dies with its parent, and the container's own
	 * parent-death signal then takes the container down with it.
	 */
	if (mode == DK_CLONE_WAIT) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			return fail("prctl");
		if (getppid() == 1) {
			errno = ESRCH;
			return fail("getppid");
		}
	}
	/* Bun forwards signals to the container; the outer just waits. */
	for (i = 0; i < (int)(sizeof(outer_ignored) / sizeof(int)); i++)
		set_disposition(outer_ignored[i], SIG_IGN);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return fail("pipe2");
	/* fork-like: no new stack, so the child returns right here */
	pid = (pid_t)syscall(SYS_clone, (unsigned long)flags | SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		return fail("clone");
	if (pid == 0) {
		child_wait(pfd);
		if (join_cgroups(0, userns, 1, &failed) < 0)
			die(failed, errno, fail_sc);
		if (cgroupns && unshare(CLONE_NEWCGROUP) < 0)
			die(step, errno, "unshare");
		return 0;
	}
	close(pfd[0]);
	dbg("clone: child %d", (int)pid);
	if (join_cgroups(pid, userns, 0, &failed) < 0 ||
	    (failed = step, write_maps(pid, uid_map, gid_map, setgroups)) < 0) {
		int err = errno;

		kill(pid, SIGKILL);
		wait_status(pid);
		die(failed, err, fail_sc);
	}
	report(DK_REPORT_PID, step, pid, NULL);
	(void)write_all(pfd[1], (const char *)&pid, sizeof(pid));
	close(pfd[1]);
	if (mode == DK_CLONE_DETACH)
		_exit(0);
	close(chan);
	_exit(wait_status(pid));
}

/* --- mounts ------------------------------------------------------------ */

/*
 * procfs and sysfs go on a real directory only, never through a symlink
 * (runc refuses the same): the masked and read-only paths under them
 * are named by path, and the container's tools expect them at /proc and
 * /sys.  A symlink anywhere on the way fails with ELOOP; a missing
 * target is left to root_target(), which creates it.
 */
static int no_symlink(const char *path)
{
	struct open_how how;
	int fd;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(O_PATH | O_CLOEXEC);
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	fd = (int)syscall(SYS_openat2, rootfd, rel(path), &how, sizeof(how));
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno == ELOOP ? fail("openat2") : 0;
}

static int op_mount(unsigned char *p)
{
	char *src = opt_str(&p), *target = str(&p), *fstype = opt_str(&p);
	unsigned long flags = (unsigned long)num(&p);
	char *data = opt_str(&p), fdp[32], *where = target;
	uint64_t opts = num(&p);
	int fd = -1, ret;

	if (opts & DK_IN_ROOT) {
		if (fstype && (strcmp(fstype, "proc") == 0 ||
			       strcmp(fstype, "sysfs") == 0) &&
		    no_symlink(target) < 0)
			return -1;
		fd = root_target(target, opts);
		if (fd == SKIP)
			return 0;
		if (fd < 0)
			return -1;
		where = fd_path(fdp, fd);
	} else if (missing(target, opts)) {
		return 0;
	}
	dbg("mount %s on %s (%s) type %s flags %#lx", src ? src : "none",
	    target, where, fstype ? fstype : "-", flags);
	ret = mount(src, where, fstype, flags, data);
	xclose(fd);
	return ret < 0 ? fail("mount") : 0;
}

/* statvfs flags a bind remount must repeat (they may be locked). */
static const struct {
	unsigned long st, ms;
} kept_flags[] = {
	{ ST_NOSUID, MS_NOSUID },	{ ST_NODEV, MS_NODEV },
	{ ST_NOEXEC, MS_NOEXEC },	{ ST_NOATIME, MS_NOATIME },
	{ ST_NODIRATIME, MS_NODIRATIME }, { ST_RELATIME, MS_RELATIME },
};

/*
 * A bind remount replaces the mount's flags with exactly the given ones,
 * and in a user namespace the kernel refuses (EPERM) to clear a flag
 * that was locked when the mount was inherited: so repeat them all.
 */
static int op_remount(unsigned char *p)
{
	char *target = str(&p), fdp[32];
	unsigned long flags = (unsigned long)num(&p);
	uint64_t opts = num(&p);
	struct statvfs sv;
	size_t i;
	int fd = -1, ret;

	if (opts & DK_IN_ROOT) {
		fd = root_target(target, opts);
		if (fd == SKIP)
			return 0;
		if (fd < 0)
			return -1;
		target = fd_path(fdp, fd);
	} else if (missing(target, opts)) {
		return 0;
	}
	if (statvfs(target, &sv) < 0) {
		xclose(fd);
		return fail("statvfs");
	}
	for (i = 0; i < sizeof(kept_flags) / sizeof(kept_flags[0]); i++)
		if (sv.f_flag & kept_flags[i].st)
			flags |= kept_flags[i].ms;
	ret = mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | flags, NULL);
	xclose(fd);
	return ret < 0 ? fail("mount") : 0;
}

static int op_root(unsigned char *p)
{
	int fd = open(str(&p), O_PATH | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return fail("open");
	xclose(rootfd);
	rootfd = fd;
	return 0;
}

static int op_mask(unsigned char *p)
{
	char fdp[32];
	struct stat st;
	int fd, ret;

	fd = resolve(str(&p), O_PATH);
	if (fd < 0)
		return errno == ENOENT ? 0 : fail("openat2");
	if (fstat(fd, &st) < 0) {
		xclose(fd);
		return fail("fstat");
	}
	fd_path(fdp, fd);
	if (S_ISDIR(st.st_mode))
		ret = mount("tmpfs", fdp, "tmpfs", MS_RDONLY, NULL);
	else
		ret = mount("/dev/null", fdp, NULL, MS_BIND, NULL);
	xclose(fd);
	return ret < 0 ? fail("mount") : 0;
}

/*
 * pivot_root(".", ".") stacks the old root on top of the new one at
 * "/", so no directory is needed to park it.  The old root is made a
 * recursive slave before it is detached: if its mounts were shared, the
 * unmount would otherwise propagate to their peers, i.e. to the host.
 */
static int op_pivot(void)
{
	if (fchdir(rootfd) < 0)
		return fail("fchdir");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return fail("pivot_root");
	if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
		return fail("mount");
	if (umount2(".", MNT_DETACH) < 0)
		return fail("umount2");
	if (chdir("/") < 0)
		return fail("chdir");
	close(rootfd);
	rootfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	return rootfd < 0 ? fail("open") : 0;
}

/* --- files in the root ------------------------------------------------- */

static int op_mkdir(unsigned char *p)
{
	char *path = str(&p);
	int fd = mkdir_p(path, (mode_t)num(&p));

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* An existing node will do if it is the same kind of device. */
static int same_node(int dir, const char *base, mode_t mode, dev_t dev)
{
	struct stat st;

	if (fstatat(dir, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return (st.st_mode & S_IFMT) == (mode & S_IFMT) && st.st_rdev == dev;
}

static int op_mknod(unsigned char *p)
{
	char *path = str(&p), base[NAME_MAX + 1];
	mode_t mode = (mode_t)num(&p);
	dev_t dev = (dev_t)num(&p);
	uid_t uid = (uid_t)num(&p);
	gid_t gid = (gid_t)num(&p);
	int dir, ret, err;
	mode_t old;

	dir = open_parent(path, base);
	if (dir < 0)
		return -1;
	/* the plan's mode is the mode: no umask */
	old = umask(0);
	ret = mknodat(dir, base, mode, dev);
	err = errno;
	umask(old);
	errno = err;
	if (ret == 0) {
		if (fchownat(dir, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			ret = fail("fchownat");
	} else if (errno == EEXIST && same_node(dir, base, mode, dev)) {
		ret = 0;
	} else {
		ret = fail("mknodat");
	}
	xclose(dir);
	return ret;
}

static int op_symlink(unsigned char *p)
{
	char *target = str(&p), *path = str(&p), base[NAME_MAX + 1];
	int dir, ret;

	dir = open_parent(path, base);
	if (dir < 0)
		return -1;
	ret = symlinkat(target, dir, base);
	xclose(dir);
	return ret < 0 && errno != EEXIST ? fail("symlinkat") : 0;
}

static int op_write(unsigned char *p)
{
	char *path = str(&p), *data;
	uint64_t opts;
	uint32_t len;
	int fd, ret;

	data = (char *)next_arg(&p, &len);
	opts = num(&p);
	if (opts & DK_IN_ROOT)
		fd = resolve(path, O_WRONLY);
	else
		fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && (opts & DK_IGNORE_MISSING))
		return 0;
	if (fd < 0)
		return fail(opts & DK_IN_ROOT ? "openat2" : "open");
	ret = write_all(fd, data, len - 1);
	xclose(fd);
	return ret < 0 ? fail("write") : 0;
}

/* --- the process and its environment ----------------------------------- */

static int op_rlimit(unsigned char *p)
{
	int resource = (int)num(&p);
	struct rlimit rl;

	rl.rlim_cur = (rlim_t)num(&p);
	rl.rlim_max = (rlim_t)num(&p);
	return prlimit(0, resource, &rl, NULL) < 0 ? fail("prlimit") : 0;
}

static int op_ifup(unsigned char *p)
{
	char *name = str(&p);
	struct ifreq ifr;
	int s, ret;

	if (strlen(name) >= IFNAMSIZ) {
		errno = EINVAL;
		return fail("ioctl");
	}
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, name);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return fail("socket");
	ret = ioctl(s, SIOCGIFFLAGS, &ifr);
	if (ret == 0) {
		ifr.ifr_flags |= IFF_UP;
		ret = ioctl(s, SIOCSIFFLAGS, &ifr);
	}
	xclose(s);
	return ret < 0 ? fail("ioctl") : 0;
}

static int send_fd(int sock, int fd)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	char byte = 'T';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg;
	struct cmsghdr *c;
	ssize_t n;

	memset(&u, 0, sizeof(u));
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -1 : 0;
}

/* Make the pty peer the controlling terminal and fds 0-2. */
static int take_tty(int peer)
{
	int fd;

	if (setsid() < 0)
		return fail("setsid");
	if (ioctl(peer, TIOCSCTTY, 0) < 0)
		return fail("ioctl");
	for (fd = 0; fd < 3; fd++)
		if (dup2(peer, fd) < 0)
			return fail("dup2");
	return 0;
}

/* Bind the pty peer over the root's /dev/console when there is one. */
static int bind_console(int peer)
{
	char src[32], dst[32];
	int fd, ret;

	fd = resolve("/dev/console", O_PATH);
	if (fd < 0)
		return errno == ENOENT ? 0 : fail("openat2");
	ret = mount(fd_path(src, peer), fd_path(dst, fd), NULL, MS_BIND, NULL);
	xclose(fd);
	return ret < 0 ? fail("mount") : 0;
}

/*
 * The master is opened inside the root, so it belongs to the container's
 * devpts instance; TIOCGPTPEER then opens the peer through the master
 * itself, not through a /dev/pts/N path that could be swapped.
 */
static int op_tty(uint32_t step, const struct op *op)
{
	unsigned char *p = op->args;
	int sock = (int)num(&p), unlock = 0, master, peer, ret = -1;
	struct winsize ws;
	uint64_t opts;

	memset(&ws, 0, sizeof(ws));
	ws.ws_row = (unsigned short)num(&p);
	ws.ws_col = (unsigned short)num(&p);
	opts = op->nargs > 3 ? num(&p) : 0;
	master = resolve("/dev/pts/ptmx", O_RDWR | O_NOCTTY);
	if (master < 0)
		return fail("openat2");
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0 ||
	    ((ws.ws_row || ws.ws_col) && ioctl(master, TIOCSWINSZ, &ws) < 0)) {
		xclose(master);
		return fail("ioctl");
	}
	peer = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY);
	if (peer < 0) {
		xclose(master);
		return fail("ioctl");
	}
	if (take_tty(peer) == 0 &&
	    ((opts & DK_NO_CONSOLE) || bind_console(peer) == 0)) {
		ret = send_fd(sock, master);
		if (ret < 0)
			fail("sendmsg");
	}
	if (peer > 2)
		xclose(peer);
	xclose(master);
	xclose(sock);
	if (ret == 0)
		report(DK_REPORT_TTY, step, 0, NULL);
	return ret;
}

static int op_open_fifo(unsigned char *p)
{
	xclose(fifofd);
	fifofd = open(str(&p), O_PATH | O_CLOEXEC);
	return fifofd < 0 ? fail("open") : 0;
}

/*
 * The fifo was opened O_PATH; opening it again through /proc/self/fd
 * gives a real fifo end, and blocks until `start` opens the other end.
 */
static int op_wait(void)
{
	char fdp[32];
	int fd, ret;

	do
		fd = open(fd_path(fdp, fifofd), O_WRONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return fail("open");
	ret = write_all(fd, "0", 1);
	xclose(fifofd);
	fifofd = -1;
	if (ret < 0) {
		xclose(fd);
		return fail("write");
	}
	fifowr = fd;	/* open until execve: see DK_OP_WAIT */
	return 0;
}

static int op_cap_bounding(unsigned char *p)
{
	uint64_t keep = num(&p);
	int cap;

	for (cap = 0; cap < 64; cap++) {
		if (keep & (1ull << cap))
			continue;
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0)
			continue;
		if (errno == EINVAL)	/* past the kernel's last cap */
			break;
		return fail("prctl");
	}
	return 0;
}

/*
 * Changing from uid 0 to another uid clears the permitted and effective
 * capability sets, unless PR_SET_KEEPCAPS is on: with it the permitted
 * set survives, and DK_OP_CAPS sets the container's sets afterwards.
 * The raw system calls change just this thread, which is all there is;
 * glibc's wrappers would try to broadcast to threads it believes exist.
 */
static int op_user(unsigned char *p)
{
	uid_t uid = (uid_t)num(&p);
	gid_t gid = (gid_t)num(&p);
	unsigned char *list;
	uint32_t len, i;
	uint64_t opts;

	list = next_arg(&p, &len);
	opts = num(&p);
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return fail("prctl");
	if (!(opts & DK_NO_SETGROUPS)) {
		for (i = 0; i < len / 4; i++)
			groups[i] = (gid_t)get32(list + 4 * i);
		if (syscall(SYS_SETGROUPS, len / 4, len ? groups : NULL) < 0)
			return fail("setgroups");
	}
	if (syscall(SYS_SETRESGID, gid, gid, gid) < 0)
		return fail("setresgid");
	if (syscall(SYS_SETRESUID, uid, uid, uid) < 0)
		return fail("setresuid");
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return fail("prctl");
	return 0;
}

static int op_caps(unsigned char *p)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
		.pid = 0,
	};
	struct __user_cap_data_struct data[2];
	uint64_t eff = num(&p), perm = num(&p), inh = num(&p), amb = num(&p);
	int i, cap;

	for (i = 0; i < 2; i++) {
		data[i].effective = (uint32_t)(eff >> (32 * i));
		data[i].permitted = (uint32_t)(perm >> (32 * i));
		data[i].inheritable = (uint32_t)(inh >> (32 * i));
	}
	if (syscall(SYS_capset, &hdr, data) < 0)
		return fail("capset");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		return fail("prctl");
	for (cap = 0; cap < 64; cap++) {
		if (!(amb & (1ull << cap)))
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0 &&
		    errno != EINVAL)	/* EINVAL: unknown to this kernel */
			return fail("prctl");
	}
	return 0;
}

static int op_seccomp(unsigned char *p)
{
	struct sock_fprog prog;
	uint32_t len;
	unsigned int flags;

	prog.filter = (struct sock_filter *)(void *)next_arg(&p, &len);
	prog.len = (unsigned short)(len / 8);
	flags = (unsigned int)num(&p);
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) == 0)
		return 0;
	if (errno != ENOSYS)
		return fail("seccomp");
	/* kernels before 3.17 only have the prctl, and no flags */
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
		return fail("seccomp");
	return 0;
}

/*
 * The first candidate that exists as a regular file wins.  Like execvp,
 * a candidate we may not use (EACCES, or a directory) makes the final
 * answer EACCES rather than ENOENT.
 */
static int op_find_exec(const struct op *op)
{
	unsigned char *p = op->args;
	int denied = 0;
	struct stat st;
	uint32_t i;
	char *path;

	for (i = 0; i < op->nargs; i++) {
		path = str(&p);
		if (stat(path, &st) < 0) {
			denied |= errno == EACCES;
			continue;
		}
		if (!S_ISREG(st.st_mode)) {
			denied = 1;
			continue;
		}
		if (access(path, X_OK) < 0)
			return fail("execve");
		exec_path = path;
		return 0;
	}
	errno = denied ? EACCES : ENOENT;
	return fail("execve");
}

/* Fill argv_tab and envp_tab from "u64 argc, argv..., env..." (nargs args). */
static int fill_argv(unsigned char *p, uint32_t nargs)
{
	uint64_t argc = num(&p);
	uint32_t nenv = nargs - 1 - (uint32_t)argc, i;

	if (argc > MAX_ARGV || nenv > MAX_ARGV) {
		errno = E2BIG;
		return fail("execve");
	}
	for (i = 0; i < argc; i++)
		argv_tab[i] = str(&p);
	argv_tab[argc] = NULL;
	for (i = 0; i < nenv; i++)
		envp_tab[i] = str(&p);
	envp_tab[nenv] = NULL;
	return 0;
}

static int op_exec(const struct op *op)
{
	if (fill_argv(op->args, op->nargs) < 0)
		return -1;
	dbg("execve %s", exec_path);
	execve(exec_path, argv_tab, envp_tab);
	return fail("execve");
}

struct dirent64_hdr {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

/* Without close_range(): walk /proc/self/fd (no opendir, no malloc). */
static int cloexec_walk(unsigned int first)
{
	char buf[4096] __attribute__((aligned(8)));
	struct dirent64_hdr *d;
	long n, off;
	int dir, fd;

	dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return fail("open");
	while ((n = syscall(SYS_getdents64, dir, buf, sizeof(buf))) > 0) {
		for (off = 0; off < n; off += d->reclen) {
			d = (struct dirent64_hdr *)(void *)(buf + off);
			if (d->name[0] < '0' || d->name[0] > '9')
				continue;
			fd = atoi(d->name);
			if (fd >= (int)first && fd != dir)
				(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		}
	}
	xclose(dir);
	return n < 0 ? fail("getdents64") : 0;
}

static int op_close_fds(unsigned char *p)
{
	unsigned int first = (unsigned int)num(&p);

	if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
		return 0;
	if (errno != ENOSYS && errno != EINVAL)
		return fail("close_range");
	return cloexec_walk(first);
}

/* --- hooks ------------------------------------------------------------- */

static volatile pid_t hook_pid;
static volatile sig_atomic_t hook_timed_out;

/* SIGALRM: the hook's timeout passed; killing it here leaves no race. */
static void hook_alarm(int sig)
{
	(void)sig;
	hook_timed_out = 1;
	kill(hook_pid, SIGKILL);
}

/*
 * In the hook's process: the state pipe as stdin, only fds 0-2 kept, and
 * the root as the working directory (runc: the rootfs before pivot_root).
 */
static _Noreturn void hook_child(int in, const char *path)
{
	if (dup2(in, 0) < 0 || (rootfd >= 0 && fchdir(rootfd) < 0))
		_exit(127);
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		(void)cloexec_walk(3);
	execve(path, argv_tab, envp_tab);
	_exit(127);
}

/* Write prefix, host_pid, suffix; a hook that does not read is no error. */
static void hook_feed(int fd, const char *prefix, const char *suffix)
{
	char n[24];
	const char *pid = fmt_u(n, sizeof(n), (uint64_t)host_pid);

	if (write_all(fd, prefix, strlen(prefix)) == 0 &&
	    write_all(fd, pid, strlen(pid)) == 0)
		(void)write_all(fd, suffix, strlen(suffix));
	close(fd);
}

static int op_hook(const struct op *op)
{
	unsigned char *p = op->args;
	char *path = str(&p);
	uint64_t timeout = num(&p);
	char *prefix = str(&p), *suffix = str(&p);
	int pfd[2], status;
	siginfo_t info;

	if (fill_argv(p, op->nargs - 4) < 0)
		return -1;
	if (access(path, X_OK) < 0)
		return fail("execve");
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return fail("pipe2");
	/* fork-like, as in op_clone: glibc's fork() is not for this process */
	hook_pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (hook_pid < 0) {
		xclose(pfd[0]);
		xclose(pfd[1]);
		return fail("clone");
	}
	if (hook_pid == 0)
		hook_child(pfd[0], path);
	close(pfd[0]);
	hook_timed_out = 0;
	set_disposition(SIGPIPE, SIG_IGN);
	set_disposition(SIGALRM, hook_alarm);	/* no SA_RESTART */
	alarm((unsigned int)(timeout > UINT_MAX ? UINT_MAX : timeout));
	hook_feed(pfd[1], prefix, suffix);
	/* WNOWAIT: until the alarm is off, the pid it kills stays ours */
	while (waitid(P_PID, (id_t)hook_pid, &info, WEXITED | WNOWAIT) < 0)
		if (errno != EINTR)
			return fail("waitid");
	alarm(0);
	while (waitpid(hook_pid, &status, 0) < 0)
		if (errno != EINTR)
			return fail("waitpid");
	set_disposition(SIGALRM, SIG_DFL);
	set_disposition(SIGPIPE, SIG_DFL);
	if (hook_timed_out)
		errno = ETIMEDOUT;
	else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	else
		errno = WIFEXITED(status) ? DK_HOOK_EXITED | WEXITSTATUS(status)
					  : DK_HOOK_SIGNALED | WTERMSIG(status);
	return fail("hook");
}

/* --- the loop ---------------------------------------------------------- */

static int run(uint32_t step)
{
	const struct op *op = &ops[step];
	unsigned char *p = op->args;

	dbg("step %u: op %u", step, op->code);
	switch (op->code) {
	case DK_OP_CGROUP_JOIN:	return op_cgroup_join(step, p);
	case DK_OP_SETNS:	return op_setns(p);
	case DK_OP_CLONE:	return op_clone(step, p);
	case DK_OP_MOUNT:	return op_mount(p);
	case DK_OP_REMOUNT:	return op_remount(p);
	case DK_OP_ROOT:	return op_root(p);
	case DK_OP_MKDIR:	return op_mkdir(p);
	case DK_OP_MKNOD:	return op_mknod(p);
	case DK_OP_SYMLINK:	return op_symlink(p);
	case DK_OP_MASK:	return op_mask(p);
	case DK_OP_PIVOT:	return op_pivot();
	case DK_OP_HOSTNAME: {
		char *name = str(&p);

		return sethostname(name, strlen(name)) < 0 ?
		       fail("sethostname") : 0;
	}
	case DK_OP_DOMAINNAME: {
		char *name = str(&p);

		return setdomainname(name, strlen(name)) < 0 ?
		       fail("setdomainname") : 0;
	}
	case DK_OP_WRITE:	return op_write(p);
	case DK_OP_RLIMIT:	return op_rlimit(p);
	case DK_OP_IFUP:	return op_ifup(p);
	case DK_OP_TTY:		return op_tty(step, op);
	case DK_OP_OPEN_FIFO:	return op_open_fifo(p);
	case DK_OP_READY:
		report(DK_REPORT_READY, step, 0, NULL);
		return 0;
	case DK_OP_WAIT:	return op_wait();
	case DK_OP_CAP_BOUNDING: return op_cap_bounding(p);
	case DK_OP_USER:	return op_user(p);
	case DK_OP_CAPS:	return op_caps(p);
	case DK_OP_NO_NEW_PRIVS:
		return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ?
		       fail("prctl") : 0;
	case DK_OP_SECCOMP:	return op_seccomp(p);
	case DK_OP_CHDIR:
		return chdir(str(&p)) < 0 ? fail("chdir") : 0;
	case DK_OP_UMASK:
		umask((mode_t)num(&p));
		return 0;
	case DK_OP_PERSONALITY:
		return personality((unsigned long)num(&p)) < 0 ?
		       fail("personality") : 0;
	case DK_OP_FIND_EXEC:	return op_find_exec(op);
	case DK_OP_EXEC:	return op_exec(op);
	case DK_OP_CLOSE_FDS:	return op_close_fds(p);
	case DK_OP_HOOK:	return op_hook(op);
	case DK_OP_PDEATHSIG:
		return prctl(PR_SET_PDEATHSIG, (unsigned long)num(&p), 0, 0, 0) < 0 ?
		       fail("prctl") : 0;
	}
	errno = EINVAL;		/* not reached: the plan was validated */
	return fail("plan");
}

static int parse_fd(const char *s)
{
	long v = 0;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > INT_MAX / 10)
			return -1;
		v = v * 10 + (*s - '0');
	}
	return (int)v;
}

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

/*
 * CVE-2019-5736: a container that gets a process of its own to run this
 * binary (a program whose interpreter is #!/proc/self/exe, started by
 * `dokrust exec`, is enough) can hold /proc/<pid>/exe open and, once
 * that process is gone, reopen it for writing and replace the host's
 * executor.  So the executor never runs from its file: it copies itself
 * into a sealed memfd and runs again from there.  /proc/<pid>/exe then
 * names a copy that nothing can write and that vanishes with its last
 * user.  A copy already sealed is where we are on the second pass.
 */
static void run_sealed(char **argv)
{
	const int want = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW |
			 F_SEAL_WRITE;
	struct stat st;
	off_t off = 0;
	ssize_t n;
	int self, copy, seals;

	self = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		die(BAD_STEP, errno, "open");
	seals = fcntl(self, F_GET_SEALS);
	if (seals >= 0 && (seals & want) == want) {
		close(self);
		return;
	}
	/* MFD_EXEC: kernels with vm.memfd_noexec want it said (6.3+) */
	copy = memfd_create("dokrust-exec", MFD_CLOEXEC | MFD_ALLOW_SEALING |
			    MFD_EXEC);
	if (copy < 0 && errno == EINVAL)
		copy = memfd_create("dokrust-exec",
				    MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (copy < 0)
		die(BAD_STEP, errno, "memfd_create");
	if (fstat(self, &st) < 0)
		die(BAD_STEP, errno, "fstat");
	while (off < st.st_size) {
		n = sendfile(copy, self, &off, (size_t)(st.st_size - off));
		if (n <= 0)
			die(BAD_STEP, n < 0 ? errno : EIO, "sendfile");
	}
	if (fcntl(copy, F_ADD_SEALS, want) < 0)
		die(BAD_STEP, errno, "fcntl");
	close(self);
	syscall(SYS_execveat, copy, "", argv, environ, AT_EMPTY_PATH);
	die(BAD_STEP, errno, "execveat");
}

int main(int argc, char **argv)
{
	uint32_t total, step;

	chan = parse_fd(argc == 2 ? argv[1] : NULL);
	if (chan >= 0)
		run_sealed(argv);
	if (chan < 0 || fcntl(chan, F_SETFD, FD_CLOEXEC) < 0) {
		static const char usage[] =
			"usage: dokrust-exec FD (started by dokrust)\n";

		(void)!write(2, usage, sizeof(usage) - 1);
		return 125;
	}
	debug = getenv("DOKRUST_EXEC_DEBUG") != NULL;
	/*
	 * Not dumpable: until it execs the container's program, this
	 * process runs the host's executor binary, and a process of a
	 * container it joins (exec) could open /proc/<pid>/exe and later
	 * rewrite that binary through /proc/self/fd (CVE-2019-5736).  The
	 * /proc/<pid>/exe, fd/, cwd and root of a non-dumpable process are
	 * reachable only with CAP_SYS_PTRACE; execve() of the container's
	 * program makes it dumpable again.
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		die(BAD_STEP, errno, "prctl");
	if (read_plan(&total) < 0)
		die(BAD_STEP, errno, fail_sc);
	if (parse_plan(total) < 0)
		die(BAD_STEP, EINVAL, "plan");
	for (step = 0; step < nops; step++)
		if (run(step) < 0)
			die(step, errno, fail_sc);
	_exit(0);
}
