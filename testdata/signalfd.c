/*
 * signalfd: blocked signals read as records (kill, sigqueue values, SIGCHLD
 * from a child), several at once, blocking and non-blocking reads, mask
 * updates, poll and epoll readiness, argument errors.
 */
#define _GNU_SOURCE
#include "scenario.h"
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>

static void block(int sig)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

static sigset_t set_of(int a, int b)
{
	sigset_t set;

	sigemptyset(&set);
	if (a)
		sigaddset(&set, a);
	if (b)
		sigaddset(&set, b);
	return set;
}

static void show_record(const struct signalfd_siginfo *si, int self)
{
	printf("record: %s code=%d from_self=%d int=%d ptr=%llu status=%d\n",
	       signame(si->ssi_signo), si->ssi_code, (int)si->ssi_pid == self,
	       si->ssi_int, (unsigned long long)si->ssi_ptr, si->ssi_status);
}

static void create_errors(void)
{
	sigset_t set = set_of(SIGUSR1, 0);
	int fds[2];

	pipe(fds);
	SHOW(signalfd(-1, &set, 4));
	SHOW(signalfd(-1, bad_address(), sizeof(sigset_t)));
	SHOW(signalfd(-1, &set, 0x1234));
	SHOW(signalfd(fds[0], &set, 0));
	SHOW(signalfd(99, &set, 0));
	SHOW_OK(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
}

static void reads_pending_signals_as_records(void)
{
	sigset_t set = set_of(SIGUSR1, SIGUSR2);
	struct signalfd_siginfo si[4];
	union sigval val;
	char small[16];
	int fd, self = getpid();

	block(SIGUSR1);
	block(SIGUSR2);
	fd = signalfd(-1, &set, SFD_NONBLOCK);
	SHOW(read(fd, si, sizeof(si)));
	kill(self, SIGUSR2);
	memset(&val, 0, sizeof(val));
	val.sival_int = 77;
	sigqueue(self, SIGUSR1, val);
	SHOW(read(fd, small, sizeof(small)));
	SHOW(read(fd, si, sizeof(si)));
	show_record(&si[0], self);
	show_record(&si[1], self);
	SHOW(read(fd, si, sizeof(si)));
	kill(self, SIGUSR1);
	kill(self, SIGUSR2);
	SHOW(read(fd, si, sizeof(si[0])));
	show_record(&si[0], self);
	SHOW(read(fd, si, sizeof(si[0])));
	show_record(&si[0], self);
}

static void realtime_signals_queue_each_value(void)
{
	sigset_t set = set_of(SIGRTMIN + 1, 0);
	struct signalfd_siginfo si[4];
	union sigval val;
	int fd, i, n;

	block(SIGRTMIN + 1);
	fd = signalfd(-1, &set, SFD_NONBLOCK);
	for (i = 0; i < 3; i++) {
		memset(&val, 0, sizeof(val));
		val.sival_int = 10 + i;
		sigqueue(getpid(), SIGRTMIN + 1, val);
	}
	n = read(fd, si, sizeof(si));
	printf("read: %d\n", n);
	for (i = 0; i < n / (int)sizeof(si[0]); i++)
		show_record(&si[i], getpid());
}

static void blocking_read_waits_for_a_child_signal(void)
{
	sigset_t set = set_of(SIGUSR1, SIGCHLD);
	struct signalfd_siginfo si;
	int fd, st;
	pid_t pid;

	block(SIGUSR1);
	block(SIGCHLD);
	fd = signalfd(-1, &set, 0);
	pid = fork();
	if (pid == 0) {
		struct timespec ts = { 0, 50000000 };

		nanosleep(&ts, NULL);
		kill(getppid(), SIGUSR1);
		nanosleep(&ts, NULL);
		_exit(3);
	}
	SHOW(read(fd, &si, sizeof(si)));
	printf("got: %s from child: %d\n", signame(si.ssi_signo), (int)si.ssi_pid == pid);
	SHOW(read(fd, &si, sizeof(si)));
	printf("got: %s code=%d status=%d from child: %d\n", signame(si.ssi_signo),
	       si.ssi_code, si.ssi_status, (int)si.ssi_pid == pid);
	waitpid(pid, &st, 0);
	show_status("child", st);
}

static void mask_update_on_existing_fd(void)
{
	sigset_t one = set_of(SIGUSR1, 0), two = set_of(SIGUSR2, 0), pending;
	struct signalfd_siginfo si;
	int fd;

	block(SIGUSR1);
	block(SIGUSR2);
	fd = signalfd(-1, &one, SFD_NONBLOCK);
	kill(getpid(), SIGUSR2);
	SHOW(read(fd, &si, sizeof(si)));
	printf("same fd: %d\n", signalfd(fd, &two, 0) == fd);
	SHOW(read(fd, &si, sizeof(si)));
	printf("got: %s\n", signame(si.ssi_signo));
	sigpending(&pending);
	YESNO(sigismember(&pending, SIGUSR2));
}

static void readiness_through_poll_and_epoll(void)
{
	sigset_t set = set_of(SIGUSR1, 0);
	struct signalfd_siginfo si;
	struct epoll_event ev = { EPOLLIN, { .u64 = 4 } }, got;
	struct pollfd p;
	int fd, ep = epoll_create1(0), st;
	pid_t pid;

	block(SIGUSR1);
	fd = signalfd(-1, &set, SFD_NONBLOCK);
	p.fd = fd;
	p.events = POLLIN;
	SHOW(poll(&p, 1, 0));
	SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	pid = fork();
	if (pid == 0) {
		struct timespec ts = { 0, 50000000 };

		nanosleep(&ts, NULL);
		kill(getppid(), SIGUSR1);
		_exit(0);
	}
	SHOW(epoll_wait(ep, &got, 1, 5000));
	printf("event: %llu %#x\n", (unsigned long long)got.data.u64, got.events);
	SHOW(poll(&p, 1, 0));
	printf("revents: %#x\n", p.revents);
	SHOW(read(fd, &si, sizeof(si)));
	SHOW(poll(&p, 1, 0));
	waitpid(pid, &st, 0);
}

static const struct scenario scenarios[] = {
	{ "create_errors", create_errors },
	{ "reads_pending_signals_as_records", reads_pending_signals_as_records },
	{ "realtime_signals_queue_each_value", realtime_signals_queue_each_value },
	{ "blocking_read_waits_for_a_child_signal",
	  blocking_read_waits_for_a_child_signal },
	{ "mask_update_on_existing_fd", mask_update_on_existing_fd },
	{ "readiness_through_poll_and_epoll", readiness_through_poll_and_epoll },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	return run_scenarios(scenarios, argc, argv);
}
