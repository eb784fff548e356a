// SPDX-License-Identifier: MIT
/*
 * dokrust-monitor: watches one detached container, in the spirit of
 * conmon, for a few hundred kilobytes of memory instead of a JavaScript
 * runtime per container.
 *
 *	dokrust-monitor -d DIR -x EXECUTOR -c FD [-t] [-i] [-s BYTES]
 *	                [-- EXIT-COMMAND ARG...]
 *
 * dokrust (Bun) starts it with the executor's channel socket at FD and a
 * control pipe as stdin.  The monitor forks; the first process waits
 * until the second is set up, prints its pid on stdout and exits, so Bun
 * reaps it at once.  The second (the monitor) starts a new session,
 * becomes a child subreaper, and spawns EXECUTOR with
 *
 *	fd 0-2  the container's stdio: pipes (stdin /dev/null without -i),
 *	        or /dev/null with -t, where the executor's DK_OP_TTY
 *	        replaces them with the pty and sends the master on fd 4
 *	fd 3    the channel: Bun sends the plan and reads the reports there
 *	fd 4    with -t, the socket the pty master comes back on
 *
 * The plan clones in DK_CLONE_DETACH mode, so the container is
 * reparented to the monitor.  Bun writes the container's pid ("PID\n")
 * on the control pipe once the executor reported it, then closes it; an
 * end without a pid means the start failed: the monitor then only reaps
 * what is left and exits 1, and Bun cleans up.
 *
 * Files in DIR (the container's state directory):
 *
 *	container.log    the output, one record a line, as CRI writes it:
 *	                 "2026-12-04T16:00:00.000000000Z stdout F text";
 *	                 F ends a line, P is a piece of one (no newline yet).
 *	                 At BYTES (-s, default 10 MB) it is renamed to
 *	                 container.log.1 (replacing the older one).
 *	attach.sock      unix stream socket for `attach` (and `wait`).
 *	exit             {"exitCode":N,"signal":S,"finishedAt":"..."},
 *	                 written atomically once the container ended.
 *
 * Attach frames, both ways: u8 type, u32 length (little-endian), data.
 *	to clients:   1 stdout, 2 stderr, 3 exit (data: i32 exit code)
 *	from clients: 0 stdin data, 1 resize (u16 rows, u16 cols), 2 close
 *	              stdin
 * A client that does not take its output within two seconds is dropped:
 * the log, not the client, is where nothing may be lost.
 *
 * After the exit file, the clients get the exit frame, then the exit
 * command runs (dokrust's cleanup: cgroup, network, --rm), and the
 * monitor exits once it has.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#define MAX_CLIENTS 8
#define CHUNK 16384
#define DRAIN_MS 1000		/* output still read after the exit */
#define FRAME_STDOUT 1
#define FRAME_STDERR 2
#define FRAME_EXIT 3
#define IN_DATA 0
#define IN_RESIZE 1
#define IN_CLOSE 2

struct client {
	int fd;
	unsigned char head[5];
	unsigned got;		/* header bytes read */
	uint32_t left;		/* payload bytes still to come */
	unsigned char type;
	unsigned char resize[4];
};

static const char *dir, *executor;
static char **exit_argv;
static int tty, keep_stdin;
static long long max_log = 10ll << 20;
static int chan = -1;

static int log_fd = -1, listen_fd = -1, sig_fd = -1, ctl_fd = 0;
static long long log_size;
static int out_fd = -1, err_fd = -1, in_fd = -1, tty_sock = -1;
static struct client clients[MAX_CLIENTS];
static pid_t exec_pid, container_pid;
static int container_status = -1;
static pid_t early[16];		/* children reaped before the pid came */
static int early_status[16], n_early;

/* Output buffer for log records: a chunk can become many short lines. */
static char logbuf[CHUNK * 2 + 256];
static size_t loglen;

static void die(const char *what)
{
	dprintf(2, "dokrust-monitor: %s: %s\n", what, strerror(errno));
	_exit(1);
}

/* Move fd to 10 or above, close-on-exec, so it clobbers no stdio slot. */
static int high(int fd)
{
	int h;

	if (fd < 0)
		return fd;
	h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
	if (h < 0)
		die("fcntl");
	close(fd);
	return h;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd w = { .fd = fd, .events = POLLOUT };

			if (poll(&w, 1, 2000) <= 0)
				return -1;
			continue;
		}
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void timestamp(char *out, size_t size)
{
	struct timespec ts;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, size, "%s.%09ldZ", base, ts.tv_nsec);
}

/* --- the log ------------------------------------------------------------ */

static void open_log(void)
{
	struct stat st;

	log_fd = open("container.log", O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (log_fd < 0)
		die("open container.log");
	log_size = fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

static void flush_log(void)
{
	if (loglen == 0)
		return;
	if (log_size > 0 && log_size + (long long)loglen > max_log) {
		/* rotate: the old file stays readable for a follower's fd */
		(void)rename("container.log", "container.log.1");
		close(log_fd);
		open_log();
	}
	if (write_all(log_fd, logbuf, loglen) == 0)
		log_size += (long long)loglen;
	loglen = 0;
}

static void log_record(const char *stamp, const char *stream, char tag, const char *text, size_t len)
{
	size_t need = strlen(stamp) + strlen(stream) + len + 6;

	if (loglen + need > sizeof(logbuf))
		flush_log();
	loglen += (size_t)snprintf(logbuf + loglen, sizeof(logbuf) - loglen, "%s %s %c ", stamp, stream, tag);
	memcpy(logbuf + loglen, text, len);
	loglen += len;
	logbuf[loglen++] = '\n';
}

/* Log one chunk of output: a record per line, P for a trailing piece. */
static void log_chunk(const char *stream, const char *data, size_t len)
{
	char stamp[48];
	size_t start = 0, i;

	timestamp(stamp, sizeof(stamp));
	for (i = 0; i < len; i++) {
		if (data[i] != '\n')
			continue;
		log_record(stamp, stream, 'F', data + start, i - start);
		start = i + 1;
	}
	if (start < len)
		log_record(stamp, stream, 'P', data + start, len - start);
	flush_log();
}

/* --- attach clients ----------------------------------------------------- */

static void drop_client(struct client *c)
{
	close(c->fd);
	c->fd = -1;
}

static void send_frame(struct client *c, unsigned char type, const void *data, uint32_t len)
{
	unsigned char head[5] = { type, len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, len >> 24 };

	if (write_all(c->fd, head, 5) < 0 || write_all(c->fd, data, len) < 0)
		drop_client(c);
}

static void broadcast(unsigned char type, const void *data, uint32_t len)
{
	int i;

	for (i = 0; i < MAX_CLIENTS; i++)
		if (clients[i].fd >= 0)
			send_frame(&clients[i], type, data, len);
}

static void accept_client(void)
{
	struct timeval two = { .tv_sec = 2 };
	int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC), i;

	if (fd < 0)
		return;
	for (i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i].fd < 0) {
			(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &two, sizeof(two));
			memset(&clients[i], 0, sizeof(clients[i]));
			clients[i].fd = fd;
			return;
		}
	}
	close(fd);		/* full */
}

static int input_fd(void)
{
	return tty ? out_fd : in_fd;	/* with -t, out_fd is the master */
}

static void client_payload(struct client *c, const unsigned char *data, size_t n)
{
	if (c->type == IN_DATA) {
		if (input_fd() >= 0 && write_all(input_fd(), data, n) < 0 && !tty) {
			close(in_fd);
			in_fd = -1;
		}
		return;
	}
	if (c->type == IN_RESIZE) {
		size_t have = 4 - c->left - n;	/* bytes of the 4 already in */

		memcpy(c->resize + have, data, n);
		if (c->left == n && tty && out_fd >= 0) {
			struct winsize ws = {
				.ws_row = (unsigned short)(c->resize[0] | c->resize[1] << 8),
				.ws_col = (unsigned short)(c->resize[2] | c->resize[3] << 8),
			};
			(void)ioctl(out_fd, TIOCSWINSZ, &ws);
		}
	}
}

static void frame_done(struct client *c)
{
	if (c->type == IN_CLOSE && !tty && in_fd >= 0) {
		close(in_fd);
		in_fd = -1;
	}
}

static void read_client(struct client *c)
{
	unsigned char buf[CHUNK];
	ssize_t n = read(c->fd, buf, sizeof(buf));
	size_t off = 0;

	if (n <= 0) {
		if (n < 0 && errno == EINTR)
			return;
		drop_client(c);
		return;
	}
	while (off < (size_t)n) {
		if (c->got < 5) {
			c->head[c->got++] = buf[off++];
			if (c->got < 5)
				continue;
			c->type = c->head[0];
			c->left = (uint32_t)c->head[1] | (uint32_t)c->head[2] << 8 |
				  (uint32_t)c->head[3] << 16 | (uint32_t)c->head[4] << 24;
			if (c->type == IN_RESIZE && c->left != 4) {
				drop_client(c);
				return;
			}
		} else {
			size_t take = (size_t)n - off < c->left ? (size_t)n - off : c->left;

			client_payload(c, buf + off, take);
			c->left -= (uint32_t)take;
			off += take;
		}
		if (c->got == 5 && c->left == 0) {
			frame_done(c);
			c->got = 0;
		}
	}
}

/* --- output ------------------------------------------------------------- */

/* Read one chunk of output; returns 0 at its end (EOF, or EIO on a pty). */
static int read_output(int *fd, const char *stream, unsigned char frame)
{
	char buf[CHUNK];
	ssize_t n = read(*fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 1;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return 0;
	}
	log_chunk(stream, buf, (size_t)n);
	broadcast(frame, buf, (uint32_t)n);
	return 1;
}

static int receive_master(void)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	int fd = -1;

	if (recvmsg(tty_sock, &msg, MSG_CMSG_CLOEXEC) <= 0)
		return -1;
	c = CMSG_FIRSTHDR(&msg);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/* --- children ----------------------------------------------------------- */

static void reaped(pid_t pid, int status)
{
	if (pid == exec_pid)
		return;
	if (container_pid > 0) {
		if (pid == container_pid)
			container_status = status;
		return;		/* an orphan that came to us: nothing to record */
	}
	if (n_early < 16) {
		early[n_early] = pid;
		early_status[n_early++] = status;
	}
}

/* Reap every child that ended; returns 0 once none is left. */
static int reap(void)
{
	struct signalfd_siginfo si;
	int status;
	pid_t pid;

	while (read(sig_fd, &si, sizeof(si)) == sizeof(si))
		;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		reaped(pid, status);
	return !(pid < 0 && errno == ECHILD);
}

/* The control pipe: the container's pid, or an end without one. */
static int read_control(void)
{
	char buf[32];
	ssize_t n = read(ctl_fd, buf, sizeof(buf) - 1);
	int i;

	if (n > 0) {
		buf[n] = 0;
		container_pid = (pid_t)atoi(buf);
		for (i = 0; i < n_early; i++)
			if (early[i] == container_pid)
				container_status = early_status[i];
	}
	close(ctl_fd);
	ctl_fd = -1;
	return container_pid > 0;
}

static int exit_code(int status)
{
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

static void write_exit(void)
{
	char stamp[48], text[160];
	int fd, len;

	timestamp(stamp, sizeof(stamp));
	len = snprintf(text, sizeof(text), "{\"exitCode\":%d,\"signal\":%d,\"finishedAt\":\"%s\"}\n",
		       exit_code(container_status),
		       WIFSIGNALED(container_status) ? WTERMSIG(container_status) : 0, stamp);
	fd = open("exit.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write_all(fd, text, (size_t)len) == 0 && fsync(fd) == 0)
		(void)rename("exit.tmp", "exit");
	close(fd);
}

static void run_exit_command(void)
{
	pid_t pid;
	int status;

	if (!exit_argv || !exit_argv[0])
		return;
	pid = fork();
	if (pid == 0) {
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		(void)prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
		execv(exit_argv[0], exit_argv);
		_exit(127);
	}
	while (pid > 0 && waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

/* --- set-up ------------------------------------------------------------- */

static void make_socket(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	strcpy(addr.sun_path, "attach.sock");
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (listen_fd < 0)
		die("socket");
	(void)unlink("attach.sock");
	if (bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(listen_fd, MAX_CLIENTS) < 0)
		die("bind attach.sock");
	(void)chmod("attach.sock", 0600);
}

static void spawn_executor(void)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC), out[2] = { -1, -1 }, err[2] = { -1, -1 };
	int in[2] = { -1, -1 }, sp[2] = { -1, -1 };

	if (null < 0)
		die("open /dev/null");
	null = high(null);
	if (tty) {
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
			die("socketpair");
	} else {
		if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0)
			die("pipe2");
		if (keep_stdin && pipe2(in, O_CLOEXEC) < 0)
			die("pipe2");
	}
	out[0] = high(out[0]), out[1] = high(out[1]), err[0] = high(err[0]), err[1] = high(err[1]);
	in[0] = high(in[0]), in[1] = high(in[1]), sp[0] = high(sp[0]), sp[1] = high(sp[1]);
	exec_pid = fork();
	if (exec_pid < 0)
		die("fork");
	if (exec_pid == 0) {
		static char *env[2];
		char *argv[] = { (char *)"dokrust-exec", (char *)"3", NULL };
		sigset_t none;

		if (getenv("DOKRUST_EXEC_DEBUG"))
			env[0] = (char *)"DOKRUST_EXEC_DEBUG=1";
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(in[0] >= 0 ? in[0] : null, 0) < 0 || dup2(out[1] >= 0 ? out[1] : null, 1) < 0 ||
		    dup2(err[1] >= 0 ? err[1] : null, 2) < 0 || dup2(chan, 3) < 0 ||
		    (sp[1] >= 0 && dup2(sp[1], 4) < 0))
			_exit(125);
		execve(executor, argv, env);
		_exit(125);
	}
	close(null), close(chan), close(in[0]), close(out[1]), close(err[1]), close(sp[1]);
	chan = -1;
	out_fd = out[0], err_fd = err[0], in_fd = in[1], tty_sock = sp[0];
	if (in_fd >= 0)
		(void)fcntl(in_fd, F_SETFL, O_NONBLOCK);
}

static void usage(void)
{
	dprintf(2, "usage: dokrust-monitor -d DIR -x EXECUTOR -c FD [-t] [-i] [-s BYTES] [-- EXIT-COMMAND...] (started by dokrust)\n");
	_exit(2);
}

static void parse(int argc, char **argv)
{
	int opt;

	while ((opt = getopt(argc, argv, "+d:x:c:tis:")) != -1) {
		switch (opt) {
		case 'd': dir = optarg; break;
		case 'x': executor = optarg; break;
		case 'c': chan = atoi(optarg); break;
		case 't': tty = 1; break;
		case 'i': keep_stdin = 1; break;
		case 's': max_log = atoll(optarg); break;
		default: usage();
		}
	}
	if (!dir || !executor || chan < 3 || max_log <= 0)
		usage();
	exit_argv = argv + optind;
}

/* The monitor's own set-up, in the daemon; errors go to dokrust's stderr. */
static void setup(void)
{
	sigset_t set;
	int i;

	if (setsid() < 0)
		die("setsid");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		die("prctl");
	if (chdir(dir) < 0)
		die("chdir");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, NULL);
	sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig_fd < 0)
		die("signalfd");
	for (i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	chan = high(chan);
	open_log();
	make_socket();
	spawn_executor();
}

/* --- the loop ----------------------------------------------------------- */

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ll + ts.tv_nsec / 1000000;
}

enum { P_CTL, P_SIG, P_LISTEN, P_OUT, P_ERR, P_TTY, P_CLIENT };

static int loop_once(long long deadline)
{
	struct pollfd p[P_CLIENT + MAX_CLIENTS];
	int i, timeout = -1;

	p[P_CTL] = (struct pollfd){ .fd = ctl_fd, .events = POLLIN };
	p[P_SIG] = (struct pollfd){ .fd = sig_fd, .events = POLLIN };
	p[P_LISTEN] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
	p[P_OUT] = (struct pollfd){ .fd = out_fd, .events = POLLIN };
	p[P_ERR] = (struct pollfd){ .fd = err_fd, .events = POLLIN };
	p[P_TTY] = (struct pollfd){ .fd = tty_sock, .events = POLLIN };
	for (i = 0; i < MAX_CLIENTS; i++)
		p[P_CLIENT + i] = (struct pollfd){ .fd = clients[i].fd, .events = POLLIN };
	if (deadline > 0)
		timeout = deadline > now_ms() ? (int)(deadline - now_ms()) : 0;
	if (poll(p, P_CLIENT + MAX_CLIENTS, timeout) < 0 && errno != EINTR)
		die("poll");
	if (p[P_OUT].revents)
		read_output(&out_fd, "stdout", FRAME_STDOUT);
	if (p[P_ERR].revents)
		read_output(&err_fd, "stderr", FRAME_STDERR);
	if (p[P_TTY].revents) {
		out_fd = receive_master();
		close(tty_sock);
		tty_sock = -1;
	}
	if (p[P_LISTEN].revents)
		accept_client();
	for (i = 0; i < MAX_CLIENTS; i++)
		if (clients[i].fd >= 0 && p[P_CLIENT + i].revents)
			read_client(&clients[i]);
	if (p[P_CTL].revents && !read_control())
		return 0;	/* the start failed */
	if (p[P_SIG].revents)
		reap();
	return 1;
}

static int monitor(void)
{
	long long deadline = 0;
	int i;

	for (;;) {
		if (!loop_once(deadline))
			break;
		if (container_status >= 0 && deadline == 0)
			deadline = now_ms() + DRAIN_MS;
		if (deadline > 0 && (now_ms() >= deadline || (out_fd < 0 && err_fd < 0)))
			break;
	}
	if (container_status < 0) {
		/* Bun gave up on the start and cleans up: reap, then go. */
		while (reap())
			poll(NULL, 0, 50);
		return 1;
	}
	flush_log();
	write_exit();
	{
		int32_t code = exit_code(container_status);

		broadcast(FRAME_EXIT, &code, sizeof(code));
	}
	for (i = 0; i < MAX_CLIENTS; i++)
		if (clients[i].fd >= 0)
			drop_client(&clients[i]);
	close(listen_fd);
	(void)unlink("attach.sock");
	close(log_fd);
	run_exit_command();
	return 0;
}

int main(int argc, char **argv)
{
	int sync[2], null;
	char line[32];
	ssize_t n;
	pid_t pid;

	parse(argc, argv);
	if (pipe2(sync, O_CLOEXEC) < 0)
		die("pipe2");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid > 0) {
		/* The first process: report the monitor's pid once it is ready. */
		close(sync[1]);
		while ((n = read(sync[0], line, sizeof(line) - 1)) < 0 && errno == EINTR)
			;
		if (n <= 0)
			return 1;
		return write_all(1, line, (size_t)n) < 0;
	}
	close(sync[0]);
	setup();
	/* From here on the monitor holds none of dokrust's terminal or pipes. */
	null = open("/dev/null", O_RDWR);
	if (null < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
		die("dup2");
	close(null);
	n = snprintf(line, sizeof(line), "%d\n", (int)getpid());
	if (write_all(sync[1], line, (size_t)n) < 0)
		_exit(1);
	close(sync[1]);
	return monitor();
}
