/*
 * pipes: pipe/pipe2 used within one process (write, then read), FIONREAD,
 * readiness through poll/ppoll/select/pselect6, end-of-file and hang-up after
 * the writer closes, and eventfd counters (plain, EFD_SEMAPHORE, EAGAIN with
 * EFD_NONBLOCK). Descriptor numbers are printed on purpose.
 */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <unistd.h>

#define FLBITS (O_ACCMODE | O_APPEND | O_NONBLOCK)

static void readable(const char *label, int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	int r = poll(&p, 1, 0);

	printf("%s: poll %d revents%s%s%s%s\n", label, r,
	       p.revents & POLLIN ? " IN" : "", p.revents & POLLHUP ? " HUP" : "",
	       p.revents & POLLERR ? " ERR" : "", p.revents & POLLNVAL ? " NVAL" : "");
}

static int selectable(int fd)
{
	struct timeval tv = { 0, 0 };
	fd_set set;

	FD_ZERO(&set);
	FD_SET(fd, &set);
	return select(fd + 1, &set, NULL, NULL, &tv);
}

int main(void)
{
	struct timespec zero = { 0, 0 };
	int p[2], q[2], efd, avail;
	static char big[70000];
	char buf[64];
	uint64_t v;
	fd_set set;

	printf("== pipes\n");
	SHOW(pipe(p));
	printf("pipe fds: %d %d\n", p[0], p[1]);
	readable("empty pipe", p[0]);
	SHOW(selectable(p[0]));
	SHOW(write(p[1], "hello", 5));
	SHOW(ioctl(p[0], FIONREAD, &avail));
	printf("FIONREAD: %d\n", avail);
	readable("after write", p[0]);
	SHOW(selectable(p[0]));
	SHOW(read(p[0], buf, 3));
	SHOW(read(p[0], buf + 3, sizeof(buf) - 3));
	printf("read back: '%.5s'\n", buf);
	SHOW(write(p[0], "x", 1));
	SHOW(read(p[1], buf, 1));
	SHOW(lseek(p[0], 0, SEEK_SET));
	SHOW(fcntl(p[0], F_GETPIPE_SZ));
	SHOW(pipe2(q, O_NONBLOCK | O_CLOEXEC));
	SHOW(fcntl(q[0], F_GETFD));
	SHOW(fcntl(q[1], F_GETFL) & FLBITS);
	SHOW(read(q[0], buf, 1));
	SHOW(write(q[1], big, sizeof(big)));
	SHOW(write(q[1], "x", 1));
	SHOW(read(q[0], big, sizeof(big)));
	SHOW(pipe2(q, 0x1234));
	SHOW(close(p[1]));
	readable("writer closed", p[0]);
	SHOW(read(p[0], buf, 1));
	SHOW(close(p[0]));
	readable("closed fd", p[0]);

	printf("== ppoll, pselect\n");
	struct pollfd pf[2] = { { q[0], POLLIN, 0 }, { q[1], POLLOUT, 0 } };
	SHOW(ppoll(pf, 2, &zero, NULL));
	printf("revents: %#x %#x\n", pf[0].revents, pf[1].revents);
	SHOW(write(q[1], "z", 1));
	SHOW(ppoll(pf, 2, &zero, NULL));
	printf("revents: %#x %#x\n", pf[0].revents, pf[1].revents);
	FD_ZERO(&set);
	FD_SET(q[0], &set);
	SHOW(pselect(q[0] + 1, &set, NULL, NULL, &zero, NULL));
	printf("FD_ISSET: %d\n", FD_ISSET(q[0], &set));
	SHOW(select(-1, NULL, NULL, NULL, NULL));
	SHOW(close(q[0]));
	SHOW(close(q[1]));

	printf("== eventfd\n");
	SHOW(efd = eventfd(0, EFD_NONBLOCK));
	SHOW(read(efd, &v, 8));
	v = 3;
	SHOW(write(efd, &v, 8));
	v = 4;
	SHOW(write(efd, &v, 8));
	SHOW(read(efd, &v, 8));
	printf("counter: %llu\n", (unsigned long long)v);
	SHOW(read(efd, &v, 8));
	SHOW(read(efd, &v, 4));
	v = ~0ULL;
	SHOW(write(efd, &v, 8));
	SHOW(close(efd));
	SHOW(efd = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK));
	for (int i = 0; i < 3; i++) {
		v = 0;
		SHOW(read(efd, &v, 8));
		printf("semaphore read: %llu\n", (unsigned long long)v);
	}
	SHOW(close(efd));
	SHOW(eventfd(0, 0x2));

	return 0;
}
