/*
 * pidfd: pidfd_open, readiness when the process exits and when it is
 * reaped, pidfd_send_signal with and without a siginfo, waitid(P_PIDFD),
 * argument errors.
 */
#define _GNU_SOURCE
#include "scenario.h"
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/syscall.h>

#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL
#endif
#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static int pidfd_open(pid_t pid, unsigned int flags)
{
	return syscall(SYS_pidfd_open, pid, flags);
}

static int pidfd_send_signal(int fd, int sig, siginfo_t *info, unsigned int flags)
{
	return syscall(SYS_pidfd_send_signal, fd, sig, info, flags);
}

static pid_t sleeper(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		for (;;)
			pause();
	}
	return pid;
}

static volatile sig_atomic_t caught, caught_value;

static void on_usr1(int sig, siginfo_t *info, void *uc)
{
	(void)uc;
	caught = sig;
	caught_value = info->si_value.sival_int;
}

static void open_errors(void)
{
	int fd = pidfd_open(getpid(), 0), fds[2];
	pid_t gone;

	pipe(fds);
	printf("cloexec: %d\n", (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	SHOW(pidfd_open(0, 0));
	SHOW(pidfd_open(-5, 0));
	SHOW(pidfd_open(getpid(), 0x40));
	gone = fork();
	if (gone == 0)
		_exit(0);
	waitpid(gone, NULL, 0);
	SHOW(pidfd_open(gone, 0));
	SHOW(pidfd_send_signal(fds[0], 0, NULL, 0));
	SHOW(pidfd_send_signal(fd, 0, NULL, 8));
	SHOW(pidfd_send_signal(fd, 0, NULL, 3));
	SHOW(pidfd_send_signal(fd, 0, NULL, 0));
	SHOW(read(fd, &fds, 4));
}

static void poll_reports_exit_then_reap(void)
{
	pid_t pid = sleeper();
	int fd = pidfd_open(pid, 0), st;
	struct pollfd p = { fd, POLLIN, 0 };

	SHOW(poll(&p, 1, 0));
	SHOW(pidfd_send_signal(fd, SIGTERM, NULL, 0));
	SHOW(poll(&p, 1, 5000));
	printf("revents: %#x\n", p.revents);
	SHOW(waitpid(pid, &st, 0) == pid);
	show_status("child", st);
	SHOW(poll(&p, 1, 0));
	printf("revents after reap: %#x\n", p.revents);
	SHOW(pidfd_send_signal(fd, SIGTERM, NULL, 0));
}

static void epoll_wakes_when_child_exits(void)
{
	pid_t pid = fork();
	int fd, ep = epoll_create1(0), st;
	struct epoll_event ev = { EPOLLIN, { .u64 = 6 } }, got;

	if (pid == 0) {
		struct timespec ts = { 0, 60000000 };

		nanosleep(&ts, NULL);
		_exit(9);
	}
	fd = pidfd_open(pid, PIDFD_NONBLOCK);
	SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	SHOW(epoll_wait(ep, &got, 1, 0));
	SHOW(epoll_wait(ep, &got, 1, 5000));
	printf("event: %llu %#x\n", (unsigned long long)got.data.u64, got.events);
	waitpid(pid, &st, 0);
	show_status("child", st);
}

static void send_signal_with_siginfo(void)
{
	struct sigaction sa;
	siginfo_t info;
	int fd = pidfd_open(getpid(), 0);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_usr1;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGUSR1, &sa, NULL);
	memset(&info, 0, sizeof(info));
	info.si_signo = SIGUSR1;
	info.si_code = SI_QUEUE;
	info.si_pid = getpid();
	info.si_uid = getuid();
	info.si_value.sival_int = 31;
	SHOW(pidfd_send_signal(fd, SIGUSR1, &info, 0));
	printf("caught: %s value=%d\n", signame(caught), (int)caught_value);
	SHOW(pidfd_send_signal(fd, SIGUSR2, &info, 0));
	SHOW(pidfd_send_signal(fd, SIGUSR1, bad_address(), 0));
}

static void waitid_by_pidfd(void)
{
	pid_t pid = fork();
	siginfo_t info;
	int fd, nb, fds[2];

	if (pid == 0) {
		struct timespec ts = { 0, 50000000 };

		nanosleep(&ts, NULL);
		_exit(5);
	}
	pipe(fds);
	fd = pidfd_open(pid, 0);
	nb = pidfd_open(pid, PIDFD_NONBLOCK);
	memset(&info, 0, sizeof(info));
	SHOW(waitid(P_PIDFD, nb, &info, WEXITED));
	SHOW(waitid(P_PIDFD, fds[0], &info, WEXITED));
	SHOW(waitid(P_PIDFD, fd, &info, WEXITED));
	printf("info: pid_ok=%d code=%d status=%d\n", info.si_pid == pid, info.si_code,
	       info.si_status);
	SHOW(waitid(P_PIDFD, fd, &info, WEXITED));
}

static volatile pid_t thread_tid, handler_tid;
static volatile int thread_go;

static void on_usr2(int sig)
{
	(void)sig;
	handler_tid = gettid();
}

static void *thread_body(void *arg)
{
	(void)arg;
	thread_tid = gettid();
	while (!thread_go)
		usleep(1000);
	return NULL;
}

static void thread_pidfd(void)
{
	struct pollfd p;
	pthread_t th;
	int fd;

	signal(SIGUSR2, on_usr2);
	pthread_create(&th, NULL, thread_body, NULL);
	while (!thread_tid)
		usleep(1000);
	SHOW(pidfd_open(thread_tid, 0));
	fd = pidfd_open(thread_tid, PIDFD_THREAD);
	printf("thread pidfd: %s\n", fd >= 0 ? "ok" : errname(errno));
	p.fd = fd;
	p.events = POLLIN;
	SHOW(poll(&p, 1, 0));
	SHOW(pidfd_send_signal(fd, SIGUSR2, NULL, 0));
	while (!handler_tid)
		usleep(1000);
	printf("handled by the thread: %d\n", handler_tid == thread_tid);
	thread_go = 1;
	SHOW(poll(&p, 1, 5000));
	printf("revents: %#x\n", p.revents);
	pthread_join(th, NULL);
	SHOW(pidfd_send_signal(fd, SIGUSR2, NULL, 0));
	fd = pidfd_open(getpid(), PIDFD_THREAD);
	p.fd = fd;
	SHOW(poll(&p, 1, 0));
}

static const struct scenario scenarios[] = {
	{ "open_errors", open_errors },
	{ "poll_reports_exit_then_reap", poll_reports_exit_then_reap },
	{ "epoll_wakes_when_child_exits", epoll_wakes_when_child_exits },
	{ "send_signal_with_siginfo", send_signal_with_siginfo },
	{ "waitid_by_pidfd", waitid_by_pidfd },
	{ "thread_pidfd", thread_pidfd },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	return run_scenarios(scenarios, argc, argv);
}
