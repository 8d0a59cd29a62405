/*
 * hook_probe: small, fixed series of syscalls for the JavaScript hook tests.
 *
 * The first argument names the scenario; each prints what the kernel
 * answered, so a test can see what a hook changed:
 *
 *   write TEXT      write(1, TEXT, len) and the count it returned
 *   getppid [N]     getppid() N times (default 1); the last value
 *   open PATH       openat(AT_FDCWD, PATH, O_RDONLY): OK or the errno name
 *   signed          getppid with six chosen 64-bit arguments, then small ones
 *   bind PATH       socket(AF_UNIX) and bind to PATH: OK or strerror
 *   read FILE       read FILE 7 bytes at a time, retrying on EINTR
 *   uname           the uname fields and gethostname
 *   signal          a SIGUSR1 handler, then getppid: did the handler run?
 *   threads         a second thread calls gettid and waits on a pipe while
 *                   the main thread calls gettid
 *   pipe            a child writes to a pipe after a pause; the parent's
 *                   read waits for it
 *   exit CODE       exit_group(CODE)
 */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got_signal;

static void on_usr1(int signo)
{
	(void)signo;
	got_signal = 1;
}

static int to_main[2], to_thread[2];

static void *second_thread(void *arg)
{
	char c;

	(void)arg;
	syscall(SYS_gettid);
	write(to_main[1], "x", 1);
	read(to_thread[0], &c, 1);
	return NULL;
}

static int probe_write(const char *text)
{
	ssize_t n = write(1, text, strlen(text));

	printf("\nwrite returned %zd\n", n);
	return 0;
}

static int probe_getppid(long n)
{
	long value = 0;

	for (long i = 0; i < n; i++)
		value = syscall(SYS_getppid);
	printf("getppid %ld\n", value);
	return 0;
}

static int probe_open(const char *path)
{
	int fd = openat(AT_FDCWD, path, O_RDONLY);

	printf("open %s: %s\n", path, fd < 0 ? errname(errno) : "OK");
	if (fd >= 0)
		close(fd);
	return 0;
}

static int probe_signed(void)
{
	syscall(SYS_getppid, -1L, -100L, 1L << 40, (long)0x8000000000000000UL,
		0x7fffffffffffffffL, (1L << 53) + 1);
	syscall(SYS_getppid, 0L, 1L, 2L, 3L, 4L, 5L);
	printf("signed done\n");
	return 0;
}

static int probe_bind(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	int rc;

	printf("socket: %s\n", fd < 0 ? strerror(errno) : "OK");
	strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
	rc = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
	printf("bind: %s\n", rc < 0 ? strerror(errno) : "OK");
	return 0;
}

static int probe_read(const char *path)
{
	char buf[7];
	long total = 0, eintr = 0;
	unsigned long sum = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		printf("open: %s\n", errname(errno));
		return 1;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR) {
			eintr++;
			continue;
		}
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			sum = sum * 31 + (unsigned char)buf[i];
		total += n;
	}
	printf("bytes %ld sum %lx eintr %ld\n", total, sum, eintr);
	return 0;
}

static int probe_uname(void)
{
	struct utsname u;
	char host[256];

	uname(&u);
	gethostname(host, sizeof(host));
	printf("sysname %s\nnodename %s\nrelease %s\nmachine %s\nhostname %s\n",
	       u.sysname, u.nodename, u.release, u.machine, host);
	return 0;
}

static int probe_signal(void)
{
	signal(SIGUSR1, on_usr1);
	syscall(SYS_getppid);
	printf("handler ran: %s\n", got_signal ? "yes" : "no");
	return 0;
}

static int probe_threads(void)
{
	pthread_t thread;
	char c;

	if (pipe(to_main) < 0 || pipe(to_thread) < 0)
		return 1;
	pthread_create(&thread, NULL, second_thread, NULL);
	read(to_main[0], &c, 1);
	syscall(SYS_gettid);
	write(to_thread[1], "x", 1);
	pthread_join(thread, NULL);
	printf("threads done\n");
	return 0;
}

static int probe_pipe(void)
{
	int fds[2];
	char buf[16];
	ssize_t n;
	pid_t child;

	if (pipe(fds) < 0)
		return 1;
	child = fork();
	if (child == 0) {
		struct timespec pause = { 0, 50 * 1000 * 1000 };

		nanosleep(&pause, NULL);
		write(fds[1], "hello", 5);
		_exit(0);
	}
	n = read(fds[0], buf, sizeof(buf));
	waitpid(child, NULL, 0);
	printf("read %zd\n", n);
	return 0;
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	const char *arg = argc > 2 ? argv[2] : "";

	setvbuf(stdout, NULL, _IONBF, 0);
	if (!strcmp(what, "write"))
		return probe_write(arg);
	if (!strcmp(what, "getppid"))
		return probe_getppid(argc > 2 ? atol(arg) : 1);
	if (!strcmp(what, "open"))
		return probe_open(arg);
	if (!strcmp(what, "signed"))
		return probe_signed();
	if (!strcmp(what, "bind"))
		return probe_bind(arg);
	if (!strcmp(what, "read"))
		return probe_read(arg);
	if (!strcmp(what, "uname"))
		return probe_uname();
	if (!strcmp(what, "signal"))
		return probe_signal();
	if (!strcmp(what, "threads"))
		return probe_threads();
	if (!strcmp(what, "pipe"))
		return probe_pipe();
	if (!strcmp(what, "exit"))
		syscall(SYS_exit_group, atoi(arg));
	fprintf(stderr, "usage: hook_probe SCENARIO [ARG]\n");
	return 2;
}
