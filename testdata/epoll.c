/*
 * epoll: the interest list and its errors, level- and edge-triggered
 * reports, EPOLLONESHOT, nesting, closing watched descriptors, waits woken by
 * other processes, timeouts, signal masks and EINTR.
 */
#define _GNU_SOURCE
#include "scenario.h"
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static volatile sig_atomic_t caught;

static void on_signal(int sig)
{
	caught = sig;
}

static void handle(int sig, int flags)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sa.sa_flags = flags;
	sigaction(sig, &sa, NULL);
}

static void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static int add(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.u64 = data;
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static int mod(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.u64 = data;
	return epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* epoll_wait and print what came back, sorted by nothing: order matters. */
static void wait_show(const char *label, int ep, int max, int timeout)
{
	struct epoll_event evs[16];
	int i, n;

	errno = 0;
	n = epoll_wait(ep, evs, max, timeout);
	if (n < 0) {
		printf("%s: -1 %s\n", label, errname(errno));
		return;
	}
	printf("%s: %d", label, n);
	for (i = 0; i < n; i++)
		printf(" [%llu %#x]", (unsigned long long)evs[i].data.u64,
		       evs[i].events);
	printf("\n");
}

static void create_and_ctl_errors(void)
{
	struct epoll_event ev = { EPOLLIN, { 0 } };
	int ep = epoll_create1(0), fds[2], file, dir;
	struct stat st;

	pipe(fds);
	SHOW(epoll_create(0));
	SHOW(epoll_create1(42));
	SHOW_OK(epoll_create(1));
	SHOW(fstat(ep, &st));
	printf("mode: %o\n", st.st_mode);
	SHOW(add(ep, fds[0], EPOLLIN, 1));
	SHOW(add(ep, fds[0], EPOLLIN, 1));
	SHOW(mod(ep, fds[1], EPOLLOUT, 2));
	SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, fds[1], NULL));
	SHOW(epoll_ctl(ep, 99, fds[0], &ev));
	SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, fds[1], bad_address()));
	SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
	SHOW(epoll_ctl(fds[0], EPOLL_CTL_ADD, fds[1], &ev));
	SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, 99, &ev));
	SHOW(epoll_ctl(99, EPOLL_CTL_ADD, fds[1], &ev));
	file = open("/proc/self/exe", O_RDONLY);
	SHOW(add(ep, file, EPOLLIN, 3));
	dir = open("/", O_RDONLY | O_DIRECTORY);
	SHOW(add(ep, dir, EPOLLIN, 4));
	SHOW(add(ep, fds[1], EPOLLOUT | EPOLLEXCLUSIVE | EPOLLONESHOT, 5));
	SHOW(add(ep, fds[1], EPOLLOUT | EPOLLEXCLUSIVE | EPOLLET, 5));
	SHOW(mod(ep, fds[1], EPOLLOUT, 5));
	SHOW(mod(ep, fds[0], EPOLLIN | EPOLLEXCLUSIVE, 5));
	SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, fds[0], NULL));
	SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, fds[0], NULL));
	SHOW(epoll_wait(ep, NULL, 0, 0));
	SHOW(epoll_wait(fds[0], (struct epoll_event *)&ev, 1, 0));
	SHOW(read(ep, &ev, sizeof(ev)));
}

static void devices_without_poll_are_refused(void)
{
	static const char *names[] = { "/dev/null", "/dev/zero", "/dev/random" };
	int ep = epoll_create1(0), i, fd, r;

	for (i = 0; i < 3; i++) {
		fd = open(names[i], O_RDONLY);
		errno = 0;
		r = add(ep, fd, EPOLLIN, i);
		printf("%s: %d %s\n", names[i], r, errname(errno));
		close(fd);
	}
	/* The tests give every run /dev/null as standard input. */
	errno = 0;
	r = add(ep, 0, EPOLLIN, 9);
	printf("stdin: %d %s\n", r, errname(errno));
}

static void level_triggered_reports_until_drained(void)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), fds[2];
	char buf[8];

	pipe(fds);
	add(ep, fds[0], EPOLLIN, 7);
	add(ep, fds[1], EPOLLOUT, 8);
	wait_show("writable", ep, 16, 0);
	write(fds[1], "abc", 3);
	wait_show("both", ep, 16, 0);
	wait_show("again", ep, 16, 0);
	wait_show("one at a time", ep, 1, 0);
	wait_show("next one", ep, 1, 0);
	read(fds[0], buf, 3);
	wait_show("drained", ep, 16, 0);
	SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, fds[1], NULL));
	wait_show("nothing", ep, 16, 0);
	close(fds[1]);
	wait_show("hangup", ep, 16, 0);
}

static void edge_triggered_reports_each_change_once(void)
{
	int ep = epoll_create1(0), fds[2], efd = eventfd(0, EFD_NONBLOCK);
	char buf[8];
	uint64_t v = 1;

	pipe(fds);
	add(ep, fds[0], EPOLLIN | EPOLLET, 1);
	wait_show("empty", ep, 16, 0);
	write(fds[1], "ab", 2);
	wait_show("first write", ep, 16, 0);
	wait_show("no new edge", ep, 16, 0);
	read(fds[0], buf, 1);
	wait_show("after a partial read", ep, 16, 0);
	write(fds[1], "c", 1);
	wait_show("second write", ep, 16, 0);
	add(ep, efd, EPOLLIN | EPOLLOUT | EPOLLET, 2);
	wait_show("eventfd added", ep, 16, 0);
	write(efd, &v, 8);
	wait_show("eventfd written", ep, 16, 0);
	read(efd, &v, 8);
	wait_show("eventfd read", ep, 16, 0);
}

static void oneshot_fires_once_until_rearmed(void)
{
	int ep = epoll_create1(0), fds[2];

	pipe(fds);
	write(fds[1], "x", 1);
	add(ep, fds[0], EPOLLIN | EPOLLONESHOT, 9);
	wait_show("first", ep, 16, 0);
	wait_show("disarmed", ep, 16, 0);
	write(fds[1], "y", 1);
	wait_show("still disarmed", ep, 16, 0);
	SHOW(add(ep, fds[0], EPOLLIN, 9));
	SHOW(mod(ep, fds[0], EPOLLIN | EPOLLONESHOT, 10));
	wait_show("rearmed", ep, 16, 0);
	SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, fds[0], NULL));
}

static void close_removes_interest_with_last_reference(void)
{
	int ep = epoll_create1(0), fds[2], copy;

	pipe(fds);
	write(fds[1], "x", 1);
	add(ep, fds[0], EPOLLIN, 11);
	copy = dup(fds[0]);
	close(fds[0]);
	wait_show("dup keeps it", ep, 16, 0);
	SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, fds[0], NULL));
	SHOW(add(ep, copy, EPOLLIN, 12));
	wait_show("two interests", ep, 16, 0);
	close(copy);
	wait_show("all closed", ep, 16, 0);
	pipe(fds);
	SHOW(add(ep, fds[0], EPOLLIN, 13));
	SHOW(epoll_ctl(ep, EPOLL_CTL_DEL, fds[0], NULL));
}

static void nested_epoll_is_pollable(void)
{
	int outer = epoll_create1(0), inner = epoll_create1(0), third, fds[2];
	struct pollfd p;

	pipe(fds);
	SHOW(add(inner, fds[0], EPOLLIN, 1));
	SHOW(add(outer, inner, EPOLLIN, 2));
	SHOW(add(inner, outer, EPOLLIN, 3));
	third = epoll_create1(0);
	SHOW(add(third, outer, EPOLLIN, 4));
	SHOW(add(inner, third, EPOLLIN, 5));
	SHOW(add(outer, inner, EPOLLIN | EPOLLEXCLUSIVE, 2));
	p.fd = inner;
	p.events = POLLIN;
	SHOW(poll(&p, 1, 0));
	wait_show("outer before", outer, 16, 0);
	write(fds[1], "x", 1);
	SHOW(poll(&p, 1, 0));
	printf("revents: %#x\n", p.revents);
	wait_show("outer after", outer, 16, 0);
	wait_show("inner", inner, 16, 0);
}

static void wait_wakes_when_a_child_writes(void)
{
	int ep = epoll_create1(0), fds[2], efd = eventfd(0, 0), st;
	pid_t pid;
	uint64_t v = 3;

	pipe(fds);
	add(ep, fds[0], EPOLLIN, 21);
	add(ep, efd, EPOLLIN, 22);
	pid = fork();
	if (pid == 0) {
		pause_ms(50);
		write(efd, &v, 8);
		pause_ms(50);
		write(fds[1], "z", 1);
		_exit(0);
	}
	wait_show("eventfd first", ep, 16, -1);
	read(efd, &v, 8);
	wait_show("then the pipe", ep, 16, 10000);
	waitpid(pid, &st, 0);
	show_status("child", st);
}

static void wait_times_out(void)
{
	int ep = epoll_create1(0), fds[2];
	struct timespec ts = { 0, 20000000 };

	pipe(fds);
	add(ep, fds[0], EPOLLIN, 1);
	wait_show("timeout", ep, 16, 30);
	wait_show("empty set", epoll_create1(0), 16, 10);
	errno = 0;
	show("pwait2", syscall(SYS_epoll_pwait2, ep, (struct epoll_event *)&ts, 4, &ts,
			       NULL, 8));
	ts.tv_nsec = -1;
	show("pwait2 bad timeout",
	     syscall(SYS_epoll_pwait2, ep, (struct epoll_event *)&ts, 4, &ts, NULL, 8));
}

static void wait_interrupted_by_signal(void)
{
	int ep = epoll_create1(0), fds[2];

	pipe(fds);
	add(ep, fds[0], EPOLLIN, 1);
	handle(SIGALRM, SA_RESTART);
	alarm(1);
	wait_show("interrupted", ep, 16, -1);
	printf("caught: %s\n", signame(caught));
}

static void pwait_mask_applies_while_waiting(void)
{
	int ep = epoll_create1(0), fds[2];
	struct epoll_event ev;
	sigset_t block, during, now;

	pipe(fds);
	add(ep, fds[0], EPOLLIN, 1);
	handle(SIGUSR1, 0);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, NULL);
	kill(getpid(), SIGUSR1);
	sigemptyset(&during);
	SHOW(epoll_pwait(ep, &ev, 1, -1, &during));
	printf("caught: %s\n", signame(caught));
	sigprocmask(SIG_BLOCK, NULL, &now);
	YESNO(sigismember(&now, SIGUSR1));
	SHOW(syscall(SYS_epoll_pwait, ep, &ev, 1, 0, &during, 4));
}

/*
 * Two processes each wait in epoll_wait on an instance of their own, both
 * with an EPOLLEXCLUSIVE interest in one eventfd; one write wakes one of
 * them. Each reports through a pipe whether it woke before its timeout.
 */
static void exclusive_wakes_one_waiter(void)
{
	int efd = eventfd(0, EFD_NONBLOCK), report[2], i, woke = 0, st;
	pid_t pids[2];
	uint64_t v = 1;
	char c;

	pipe(report);
	for (i = 0; i < 2; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct epoll_event got;
			int ep = epoll_create1(0);

			add(ep, efd, EPOLLIN | EPOLLEXCLUSIVE, i);
			c = epoll_wait(ep, &got, 1, 1000) == 1 ? 'y' : 'n';
			write(report[1], &c, 1);
			_exit(0);
		}
	}
	wait_until_sleeping(pids[0]);
	wait_until_sleeping(pids[1]);
	write(efd, &v, 8);
	for (i = 0; i < 2; i++) {
		read(report[0], &c, 1);
		woke += c == 'y';
	}
	printf("woken: %d\n", woke);
	while (wait(&st) > 0)
		;
}

static const struct scenario scenarios[] = {
	{ "create_and_ctl_errors", create_and_ctl_errors },
	{ "devices_without_poll_are_refused", devices_without_poll_are_refused },
	{ "level_triggered_reports_until_drained", level_triggered_reports_until_drained },
	{ "edge_triggered_reports_each_change_once",
	  edge_triggered_reports_each_change_once },
	{ "oneshot_fires_once_until_rearmed", oneshot_fires_once_until_rearmed },
	{ "close_removes_interest_with_last_reference",
	  close_removes_interest_with_last_reference },
	{ "nested_epoll_is_pollable", nested_epoll_is_pollable },
	{ "wait_wakes_when_a_child_writes", wait_wakes_when_a_child_writes },
	{ "wait_times_out", wait_times_out },
	{ "wait_interrupted_by_signal", wait_interrupted_by_signal },
	{ "pwait_mask_applies_while_waiting", pwait_mask_applies_while_waiting },
	{ "exclusive_wakes_one_waiter", exclusive_wakes_one_waiter },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	return run_scenarios(scenarios, argc, argv);
}
