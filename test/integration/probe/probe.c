/*
 * probe: a tiny static program the escape tests copy into a container's
 * root file system and run there (busybox cannot do these things, or
 * drops privileges on its own when it is setuid).
 *
 *   probe ids                 print "uid euid suid" (a setuid copy shows what it gained)
 *   probe hunt MS OUT         for MS milliseconds, watch every /proc/<pid>/exe:
 *                             a link that reads as something other than the
 *                             container's own programs is appended to OUT/seen,
 *                             opened O_PATH and, once its process has moved on,
 *                             reopened for writing through /proc/self/fd (the
 *                             CVE-2019-5736 move); a success is appended to
 *                             OUT/wrote.  Nothing is ever written to the file.
 *   probe fds                 print the open fds (but the one listing them)
 *
 * Built by the test with `cc -static`; never run on the host.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void append(const char *dir, const char *file, const char *line)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	f = fopen(path, "a");
	if (f) {
		fprintf(f, "%s\n", line);
		fclose(f);
	}
}

static int own(const char *target)
{
	static const char *const mine[] = { "/bin/busybox", "/probe", "/suid-probe", NULL };
	int i;

	for (i = 0; mine[i]; i++)
		if (strcmp(target, mine[i]) == 0)
			return 1;
	return 0;
}

#define MAX_HELD 64
static int held[MAX_HELD];
static int nheld;

static void try_write(const char *out)
{
	char path[64], line[128];
	int i, fd;

	for (i = 0; i < nheld; i++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", held[i]);
		/* O_WRONLY without O_TRUNC: proves the write, changes nothing */
		fd = open(path, O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			snprintf(line, sizeof(line), "opened %s for writing", path);
			append(out, "wrote", line);
			close(fd);
		}
	}
}

static int hunt(long ms, const char *out)
{
	long end = now_ms() + ms;
	char path[300], target[512], line[900];
	struct dirent *e;
	DIR *proc;
	ssize_t n;
	int fd;

	while (now_ms() < end) {
		proc = opendir("/proc");
		if (!proc)
			return 1;
		while ((e = readdir(proc))) {
			if (e->d_name[0] < '0' || e->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/exe", e->d_name);
			n = readlink(path, target, sizeof(target) - 1);
			if (n <= 0)
				continue;
			target[n] = 0;
			if (own(target))
				continue;
			snprintf(line, sizeof(line), "%s -> %s", path, target);
			append(out, "seen", line);
			fd = open(path, O_PATH | O_CLOEXEC);
			/* the process may have exec'd one of ours in between */
			snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
			n = fd >= 0 ? readlink(path, target, sizeof(target) - 1) : -1;
			if (n > 0) {
				target[n] = 0;
				if (own(target)) {
					close(fd);
					fd = -1;
				}
			}
			if (fd >= 0 && nheld < MAX_HELD)
				held[nheld++] = fd;
			else if (fd >= 0)
				close(fd);
		}
		closedir(proc);
		try_write(out);
	}
	try_write(out);
	append(out, "done", "1");
	return 0;
}

static int fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char path[300], target[512];
	ssize_t n;

	if (!d)
		return 1;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = 0;
		printf("%s %s\n", e->d_name, target);
	}
	closedir(d);
	return 0;
}

int main(int argc, char **argv)
{
	uid_t r, e, s;

	if (argc >= 2 && strcmp(argv[1], "ids") == 0) {
		getresuid(&r, &e, &s);
		printf("%u %u %u\n", r, e, s);
		return 0;
	}
	if (argc >= 4 && strcmp(argv[1], "hunt") == 0)
		return hunt(atol(argv[2]), argv[3]);
	if (argc >= 2 && strcmp(argv[1], "fds") == 0)
		return fds();
	fprintf(stderr, "usage: probe ids | hunt MS OUT | fds\n");
	return 2;
}
