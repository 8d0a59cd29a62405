/*
 * control_loop: a guest that runs until told to stop, for the control socket
 * and log stream tests.
 *
 *   tick STOPFILE   every 10 ms print "tick N PPID" (getppid's answer) until
 *                   STOPFILE exists (at most 6000 ticks, then exit 3)
 *   spin STOPFILE   burn the CPU with no syscalls between checks of
 *                   STOPFILE; print how many rounds ran
 *   read            echo each line of stdin as "got LINE" until EOF
 *   calls N         N getppid calls, then print "done N"
 *   burst N STOPFILE  N getppid calls, print "burst done", then tick quietly
 *                   (every 10 ms, no output) until STOPFILE exists
 *   files PATH      open PATH and copy it to stdout, then try to open
 *                   PATH.missing and print the errno name
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int stop_requested(const char *stopfile)
{
	return access(stopfile, F_OK) == 0;
}

static int tick(const char *stopfile)
{
	struct timespec pause = {0, 10 * 1000 * 1000};
	for (int i = 0; i < 6000; i++) {
		printf("tick %d %ld\n", i, (long)getppid());
		fflush(stdout);
		if (stop_requested(stopfile))
			return 0;
		nanosleep(&pause, NULL);
	}
	return 3;
}

static int spin(const char *stopfile)
{
	volatile unsigned long sum = 0;
	long rounds = 0;
	printf("spinning\n");
	fflush(stdout);
	while (!stop_requested(stopfile)) {
		for (unsigned long k = 0; k < 20000000UL; k++)
			sum += k;
		rounds++;
	}
	printf("spun %s\n", rounds > 0 ? "yes" : "no");
	return 0;
}

static int echo(void)
{
	char line[256];
	while (fgets(line, sizeof line, stdin)) {
		printf("got %s", line);
		fflush(stdout);
	}
	return 0;
}

static int calls(long n)
{
	for (long i = 0; i < n; i++)
		getppid();
	printf("done %ld\n", n);
	return 0;
}

static int burst(long n, const char *stopfile)
{
	struct timespec pause = {0, 10 * 1000 * 1000};
	calls(n);
	printf("burst done\n");
	fflush(stdout);
	for (int i = 0; i < 6000; i++) {
		if (stop_requested(stopfile))
			return 0;
		nanosleep(&pause, NULL);
	}
	return 3;
}

static int files(const char *path)
{
	char buf[512];
	char missing[4096];
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		printf("open: %s\n", strerror(errno));
		return 1;
	}
	ssize_t n;
	while ((n = read(fd, buf, sizeof buf)) > 0)
		if (write(1, buf, (size_t)n) != n)
			return 1;
	close(fd);
	snprintf(missing, sizeof missing, "%s.missing", path);
	if (open(missing, O_RDONLY) < 0)
		printf("missing: %s\n", errno == ENOENT ? "ENOENT" : strerror(errno));
	return 0;
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	if (!strcmp(what, "tick") && argc > 2)
		return tick(argv[2]);
	if (!strcmp(what, "spin") && argc > 2)
		return spin(argv[2]);
	if (!strcmp(what, "read"))
		return echo();
	if (!strcmp(what, "calls") && argc > 2)
		return calls(atol(argv[2]));
	if (!strcmp(what, "burst") && argc > 3)
		return burst(atol(argv[2]), argv[3]);
	if (!strcmp(what, "files") && argc > 2)
		return files(argv[2]);
	fprintf(stderr, "usage: control_loop tick|spin STOPFILE | read | calls N | "
			"burst N STOPFILE | files PATH\n");
	return 2;
}
