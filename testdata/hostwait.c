/*
 * Waiting on a host descriptor: standard input is a pipe the test writes to
 * in three steps, with pauses between them. poll, select and epoll (directly
 * and through a nested instance) must sleep until the host has data, then
 * report it; the last step closes the pipe, which they report as a hangup.
 *
 * The test writes "one", then "two", then closes; the program prints only
 * what it was told and what it read.
 */
#include "check.h"
#include <poll.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <unistd.h>

static void show_read(void)
{
	char buf[64];
	ssize_t n = read(0, buf, sizeof(buf) - 1);

	if (n < 0) {
		printf("read: -1 %s\n", errname(errno));
		return;
	}
	buf[n] = 0;
	printf("read: %zd \"%s\"\n", n, buf);
}

int main(void)
{
	struct epoll_event ev = { EPOLLIN, { .u64 = 1 } }, got;
	int ep = epoll_create1(0), outer = epoll_create1(0), n;
	struct pollfd p = { 0, POLLIN, 0 };
	fd_set r;

	setvbuf(stdout, NULL, _IONBF, 0);
	SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev));
	ev.data.u64 = 2;
	SHOW(epoll_ctl(outer, EPOLL_CTL_ADD, ep, &ev));
	SHOW(poll(&p, 1, 0));
	printf("ready\n");

	/* First step: the nested instance wakes, then the inner one reports. */
	n = epoll_wait(outer, &got, 1, 20000);
	printf("outer: %d %llu\n", n, (unsigned long long)got.data.u64);
	n = epoll_wait(ep, &got, 1, 0);
	printf("inner: %d %#x\n", n, got.events);
	show_read();
	SHOW(epoll_wait(ep, &got, 1, 0));
	printf("next\n");

	/* Second step: select sleeps until the data comes. */
	FD_ZERO(&r);
	FD_SET(0, &r);
	SHOW(select(1, &r, NULL, NULL, NULL));
	show_read();
	printf("next\n");

	/* Last step: the writer closes; poll reports a hangup. */
	SHOW(poll(&p, 1, 20000));
	printf("revents: %#x\n", p.revents);
	show_read();
	return 0;
}
