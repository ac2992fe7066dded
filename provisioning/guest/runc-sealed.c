/*
 * runc-sealed PATH: puts one sealed in-memory copy of the runc binary at PATH (a bind mount)
 * and keeps it there until SIGTERM.
 *
 * Why: runc 1.1 guards against CVE-2019-5736 by copying its own binary into a new memfd for
 * every `runc init` (each container start, each `docker exec`), about 10 MB of RAM apiece
 * while the container starts. Twenty containers started at once on a 1 GiB guest then took
 * 200-400 MB at the same moment, and the copying itself cost CPU under TCG. runc skips the
 * copy when its own executable already is a memfd with all four seals (cloned_binary.c,
 * is_self_cloned): that is what this makes, once, shared by every runc started from PATH.
 * The same trick as runc's contrib/cmd/memfd-bind, for the guest without Go.
 *
 * The mount is of the /proc/PID/fd link to the memfd of the process that made it, so that
 * process must stay: a child does the work and stays, waiting for SIGTERM to unmount; the
 * parent prints the child's pid and exits 0 once the mount is in place (its caller may start
 * containers right after), or exits 1 with the child's message on stderr. Should the child
 * die another way, PATH is left a dead link that nothing can run: the next start clears it,
 * and the child asks the OOM killer to pass it over (its copy stays in memory either way).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

/* runc's own name and seals for its clones (libcontainer/nsenter/cloned_binary.c). */
#define RUNC_MEMFD_COMMENT "runc_cloned:/proc/self/exe"
#define RUNC_MEMFD_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

static const char *target;

static int fail(const char *what)
{
	fprintf(stderr, "runc-sealed: %s %s: %s\n", what, target, strerror(errno));
	return 1;
}

/* NOFOLLOW: the mount is a link to the memfd, which an unmount that followed it would miss. */
static void unmount_and_exit(int sig)
{
	(void)sig;
	umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW);
	_exit(0);
}

int main(int argc, char **argv)
{
	if (argc != 2 || argv[1][0] != '/') {
		fprintf(stderr, "usage: runc-sealed /ABSOLUTE/PATH/TO/runc\n");
		return 2;
	}
	target = argv[1];
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0)
		return fail("no pipe for");
	pid_t child = fork();
	if (child < 0)
		return fail("cannot fork to keep");
	if (child > 0) {
		char byte;
		close(ready[1]);
		if (read(ready[0], &byte, 1) != 1)
			return 1;
		printf("%d\n", (int)child);
		return 0;
	}
	close(ready[0]);
	setsid();
	int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (adj >= 0) {
		if (write(adj, "-1000", 5) != 5)
			fprintf(stderr, "runc-sealed: warning: the OOM killer may choose it\n");
		close(adj);
	}
	/* Mounts left by an earlier run (a dead link if it was killed) come off first. */
	while (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
		;
	int binary = open(target, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (binary < 0 || fstat(binary, &st) < 0)
		return fail("cannot read");
	int copy = memfd_create(RUNC_MEMFD_COMMENT, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (copy < 0)
		return fail("no memfd for");
	for (off_t done = 0; done < st.st_size;) {
		ssize_t n = sendfile(copy, binary, NULL, st.st_size - done);
		if (n <= 0)
			return fail("cannot copy");
		done += n;
	}
	close(binary);
	if (fchmod(copy, 0755) < 0 || fcntl(copy, F_ADD_SEALS, RUNC_MEMFD_SEALS) < 0)
		return fail("cannot seal the copy of");
	/* The memfd lives in the kernel's internal mount, which cannot be bind-mounted from;
	 * its /proc/self/fd magic link can (opened as itself, O_PATH|O_NOFOLLOW). */
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", copy);
	int link = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (link < 0)
		return fail("cannot open the memfd link for");
	snprintf(path, sizeof path, "/proc/self/fd/%d", link);
	if (mount(path, target, NULL, MS_BIND, NULL) < 0)
		return fail("cannot bind-mount over");
	close(link);

	signal(SIGTERM, unmount_and_exit);
	signal(SIGINT, unmount_and_exit);
	if (write(ready[1], "", 1) != 1)
		unmount_and_exit(0);
	close(ready[1]);
	int null = open("/dev/null", O_RDWR);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
	}
	for (;;)
		pause();
}
