/* A watcher for containers in the end-to-end tests (busybox-static has no inotifyd): watches
 * each folder given, and prints one line per event, "MASK COOKIE NAME", as inotify gives it. */
#include <stdio.h>
#include <sys/inotify.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buffer[65536];
	int fd = inotify_init1(0);

	if (fd < 0)
		return 1;
	for (int i = 1; i < argc; i++)
		if (inotify_add_watch(fd, argv[i], IN_ALL_EVENTS) < 0)
			return 2;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("watching\n");
	for (;;) {
		ssize_t count = read(fd, buffer, sizeof buffer);

		if (count <= 0)
			return 3;
		for (char *p = buffer; p < buffer + count;) {
			struct inotify_event *event = (struct inotify_event *)p;

			printf("%08x %u %s\n", event->mask, event->cookie, event->len ? event->name : "");
			p += sizeof *event + event->len;
		}
	}
}
