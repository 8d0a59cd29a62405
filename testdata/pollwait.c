/*
 * Waiting for readiness: poll, select, ppoll and pselect6 on pipes and
 * eventfds, woken by other processes, by timeouts and by signals; nanosleep's
 * time left after a signal; sched_yield between two processes.
 *
 * Every scenario prints only what the kernel answered, never times.
 */
#define _GNU_SOURCE
#include "scenario.h"
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/select.h>
#include <sys/time.h>

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

/* A child that sleeps, writes one byte into `fd`, and exits. */
static pid_t writer_after(int fd, int ms)
{
	pid_t pid = fork();

	if (pid == 0) {
		pause_ms(ms);
		if (write(fd, "x", 1) != 1)
			_exit(1);
		_exit(0);
	}
	return pid;
}

static void poll_wakes_on_pipe_write(void)
{
	struct pollfd p[2];
	int a[2], b[2], st;
	pid_t pid;

	pipe(a);
	pipe(b);
	pid = writer_after(b[1], 50);
	p[0].fd = a[0];
	p[0].events = POLLIN;
	p[1].fd = b[0];
	p[1].events = POLLIN;
	SHOW(poll(p, 2, 10000));
	printf("revents: %#x %#x\n", p[0].revents, p[1].revents);
	waitpid(pid, &st, 0);
	show_status("writer", st);
}

static void poll_reports_hangup_and_nval(void)
{
	struct pollfd p[3];
	int fds[2], w[2];

	pipe(fds);
	pipe(w);
	close(fds[1]);
	close(w[0]);
	p[0].fd = fds[0];
	p[0].events = POLLIN;
	p[1].fd = 99;
	p[1].events = POLLIN;
	p[2].fd = w[1];
	p[2].events = POLLOUT;
	SHOW(poll(p, 3, 0));
	printf("revents: %#x %#x %#x\n", p[0].revents, p[1].revents, p[2].revents);
	p[0].fd = -1;
	SHOW(poll(p, 1, 0));
	printf("ignored revents: %#x\n", p[0].revents);
}

static void poll_times_out(void)
{
	struct pollfd p;
	int fds[2];

	pipe(fds);
	p.fd = fds[0];
	p.events = POLLIN;
	SHOW(poll(&p, 1, 30));
	printf("revents: %#x\n", p.revents);
	SHOW(poll(NULL, 0, 20));
}

static void poll_wakes_when_last_writer_closes(void)
{
	struct pollfd p;
	int fds[2], st;
	pid_t pid;

	pipe(fds);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		pause_ms(50);
		_exit(0);
	}
	close(fds[1]);
	p.fd = fds[0];
	p.events = POLLIN;
	SHOW(poll(&p, 1, -1));
	printf("revents: %#x\n", p.revents);
	waitpid(pid, &st, 0);
}

static void poll_on_eventfd_written_by_child(void)
{
	struct pollfd p;
	uint64_t v = 0;
	int efd = eventfd(0, 0), st;
	pid_t pid = fork();

	if (pid == 0) {
		v = 5;
		pause_ms(40);
		write(efd, &v, 8);
		_exit(0);
	}
	p.fd = efd;
	p.events = POLLIN | POLLOUT;
	SHOW(poll(&p, 1, -1));
	printf("revents: %#x\n", p.revents);
	p.events = POLLIN;
	SHOW(poll(&p, 1, -1));
	SHOW(read(efd, &v, 8));
	printf("value: %llu\n", (unsigned long long)v);
	waitpid(pid, &st, 0);
}

static void poll_interrupted_by_signal_even_with_sa_restart(void)
{
	struct pollfd p;
	int fds[2];

	pipe(fds);
	handle(SIGALRM, SA_RESTART);
	p.fd = fds[0];
	p.events = POLLIN;
	alarm(1);
	SHOW(poll(&p, 1, -1));
	printf("caught: %s\n", signame(caught));
}

static void select_wakes_and_reports_sets(void)
{
	fd_set r, w;
	int a[2], b[2], st;
	pid_t pid;
	struct timeval tv = { 10, 0 };

	pipe(a);
	pipe(b);
	pid = writer_after(b[1], 40);
	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_SET(a[0], &r);
	FD_SET(b[0], &r);
	SHOW(select(b[0] + 1, &r, &w, NULL, &tv));
	YESNO(FD_ISSET(a[0], &r));
	YESNO(FD_ISSET(b[0], &r));
	YESNO(tv.tv_sec > 0 && tv.tv_sec <= 10);
	FD_ZERO(&w);
	FD_SET(a[1], &w);
	FD_SET(b[1], &w);
	SHOW(select(b[1] + 1, NULL, &w, NULL, NULL));
	YESNO(FD_ISSET(a[1], &w) && FD_ISSET(b[1], &w));
	waitpid(pid, &st, 0);
}

static void select_timeout_is_written_back(void)
{
	fd_set r;
	int fds[2];
	struct timeval tv = { 0, 30000 };

	pipe(fds);
	FD_ZERO(&r);
	FD_SET(fds[0], &r);
	SHOW(select(fds[0] + 1, &r, NULL, NULL, &tv));
	printf("left: %ld %ld\n", (long)tv.tv_sec, (long)tv.tv_usec);
	YESNO(FD_ISSET(fds[0], &r));
	close(fds[1]);
	FD_ZERO(&r);
	FD_SET(fds[1], &r);
	SHOW(select(fds[1] + 1, &r, NULL, NULL, &tv));
	SHOW(select(-1, NULL, NULL, NULL, &tv));
}

static void select_interrupted_reports_time_left(void)
{
	fd_set r;
	int fds[2];
	struct timeval tv = { 20, 0 };

	pipe(fds);
	handle(SIGALRM, SA_RESTART);
	FD_ZERO(&r);
	FD_SET(fds[0], &r);
	alarm(1);
	SHOW(select(fds[0] + 1, &r, NULL, NULL, &tv));
	YESNO(tv.tv_sec >= 15 && tv.tv_sec < 20);
	printf("caught: %s\n", signame(caught));
}

static void ppoll_temporary_mask_lets_a_blocked_signal_in(void)
{
	struct pollfd p;
	sigset_t block, during, now;
	int fds[2];

	pipe(fds);
	handle(SIGUSR1, 0);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, NULL);
	kill(getpid(), SIGUSR1);
	printf("caught before: %d\n", caught);
	p.fd = fds[0];
	p.events = POLLIN;
	sigemptyset(&during);
	SHOW(ppoll(&p, 1, NULL, &during));
	printf("caught: %s\n", signame(caught));
	sigprocmask(SIG_BLOCK, NULL, &now);
	YESNO(sigismember(&now, SIGUSR1));
}

static void ppoll_ready_keeps_the_signal_pending(void)
{
	struct pollfd p;
	sigset_t block, during, pending;
	int fds[2];
	struct timespec ts = { 5, 0 };

	pipe(fds);
	write(fds[1], "y", 1);
	handle(SIGUSR2, 0);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, NULL);
	kill(getpid(), SIGUSR2);
	p.fd = fds[0];
	p.events = POLLIN;
	sigemptyset(&during);
	SHOW(ppoll(&p, 1, &ts, &during));
	printf("caught: %d\n", caught);
	sigpending(&pending);
	YESNO(sigismember(&pending, SIGUSR2));
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	printf("caught after unblock: %s\n", signame(caught));
}

static void pselect_mask_blocks_a_signal_while_waiting(void)
{
	fd_set r;
	sigset_t during, pending;
	int fds[2];
	struct timespec ts = { 0, 300000000 };

	pipe(fds);
	handle(SIGUSR1, 0);
	sigemptyset(&during);
	sigaddset(&during, SIGUSR1);
	if (fork() == 0) {
		pause_ms(50);
		kill(getppid(), SIGUSR1);
		_exit(0);
	}
	FD_ZERO(&r);
	FD_SET(fds[0], &r);
	SHOW(pselect(fds[0] + 1, &r, NULL, NULL, &ts, &during));
	sigpending(&pending);
	YESNO(sigismember(&pending, SIGUSR1));
	printf("caught: %s\n", signame(caught));
	wait(NULL);
}

static void nanosleep_reports_time_left(void)
{
	struct timespec req = { 5, 0 }, rem = { -1, -1 };

	handle(SIGALRM, SA_RESTART);
	alarm(1);
	SHOW(nanosleep(&req, &rem));
	YESNO(rem.tv_sec >= 3 && rem.tv_sec < 5);
	YESNO(rem.tv_nsec >= 0 && rem.tv_nsec < 1000000000);
	req.tv_sec = 5;
	alarm(1);
	SHOW(clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem));
	YESNO(rem.tv_sec >= 3 && rem.tv_sec < 5);
	clock_gettime(CLOCK_MONOTONIC, &req);
	req.tv_sec += 5;
	rem.tv_sec = 42;
	alarm(1);
	printf("absolute: %s\n", errname(clock_nanosleep(CLOCK_MONOTONIC,
							 TIMER_ABSTIME, &req, &rem)));
	printf("rem untouched: %ld\n", (long)rem.tv_sec);
}

/* musl's sigtimedwait() calls the kernel again after EINTR, glibc's not. */
static void sigtimedwait_interrupted_by_a_handler(void)
{
	struct timespec ts = { 3, 0 };
	siginfo_t info;
	sigset_t wanted;

	handle(SIGALRM, SA_RESTART);
	sigemptyset(&wanted);
	sigaddset(&wanted, SIGUSR1);
	sigprocmask(SIG_BLOCK, &wanted, NULL);
	alarm(1);
	SHOW(sigtimedwait(&wanted, &info, &ts));
	printf("caught: %s\n", signame(caught));
	kill(getpid(), SIGUSR1);
	SHOW(sigtimedwait(&wanted, &info, &ts) == SIGUSR1);
}

static void sched_yield_lets_the_other_process_run(void)
{
	volatile int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int i, st;
	pid_t pid;

	shared[0] = 0;
	pid = fork();
	if (pid == 0) {
		while (!shared[0])
			sched_yield();
		shared[1] = 1;
		_exit(0);
	}
	shared[0] = 1;
	for (i = 0; i < 1000000 && !shared[1]; i++) {
		sched_yield();
	}
	printf("child ran: %d\n", shared[1]);
	waitpid(pid, &st, 0);
	show_status("child", st);
}

static const struct scenario scenarios[] = {
	{ "poll_wakes_on_pipe_write", poll_wakes_on_pipe_write },
	{ "poll_reports_hangup_and_nval", poll_reports_hangup_and_nval },
	{ "poll_times_out", poll_times_out },
	{ "poll_wakes_when_last_writer_closes", poll_wakes_when_last_writer_closes },
	{ "poll_on_eventfd_written_by_child", poll_on_eventfd_written_by_child },
	{ "poll_interrupted_by_signal_even_with_sa_restart",
	  poll_interrupted_by_signal_even_with_sa_restart },
	{ "select_wakes_and_reports_sets", select_wakes_and_reports_sets },
	{ "select_timeout_is_written_back", select_timeout_is_written_back },
	{ "select_interrupted_reports_time_left",
	  select_interrupted_reports_time_left },
	{ "ppoll_temporary_mask_lets_a_blocked_signal_in",
	  ppoll_temporary_mask_lets_a_blocked_signal_in },
	{ "ppoll_ready_keeps_the_signal_pending", ppoll_ready_keeps_the_signal_pending },
	{ "pselect_mask_blocks_a_signal_while_waiting",
	  pselect_mask_blocks_a_signal_while_waiting },
	{ "nanosleep_reports_time_left", nanosleep_reports_time_left },
	{ "sigtimedwait_interrupted_by_a_handler",
	  sigtimedwait_interrupted_by_a_handler },
	{ "sched_yield_lets_the_other_process_run",
	  sched_yield_lets_the_other_process_run },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	return run_scenarios(scenarios, argc, argv);
}
