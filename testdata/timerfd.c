/*
 * timerfd: one-shot and periodic timers on each clock, absolute times,
 * expiry counts, non-blocking reads, gettime, poll and epoll readiness,
 * argument errors.
 *
 * Times are never printed, only comparisons that hold with any scheduling
 * delay (a count of at least N, a time left within a range).
 */
#define _GNU_SOURCE
#include "scenario.h"
#include <poll.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

static struct itimerspec spec(long value_ms, long interval_ms)
{
	struct itimerspec its;

	its.it_value.tv_sec = value_ms / 1000;
	its.it_value.tv_nsec = (value_ms % 1000) * 1000000L;
	its.it_interval.tv_sec = interval_ms / 1000;
	its.it_interval.tv_nsec = (interval_ms % 1000) * 1000000L;
	return its;
}

static long ms_of(struct timespec ts)
{
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void create_errors(void)
{
	struct itimerspec its = spec(10, 0), old;
	int fd = timerfd_create(CLOCK_MONOTONIC, 0), fds[2];
	uint64_t v;
	char small[4];

	pipe(fds);
	SHOW(timerfd_create(42, 0));
	SHOW(timerfd_create(CLOCK_MONOTONIC, 0x1234));
	SHOW(timerfd_create(CLOCK_PROCESS_CPUTIME_ID, 0));
	SHOW_OK(timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK));
	SHOW_OK(timerfd_create(CLOCK_BOOTTIME, 0));
	SHOW(timerfd_settime(fd, 0x10, &its, NULL));
	its.it_value.tv_nsec = 1000000000;
	SHOW(timerfd_settime(fd, 0, &its, NULL));
	its = spec(10, 0);
	SHOW(timerfd_settime(fds[0], 0, &its, NULL));
	SHOW(timerfd_settime(99, 0, &its, NULL));
	SHOW(timerfd_settime(fd, 0, bad_address(), NULL));
	SHOW(timerfd_gettime(fds[0], &old));
	SHOW(read(fd, small, sizeof(small)));
	SHOW(write(fd, &v, 8));
	SHOW(lseek(fd, 0, SEEK_SET));
}

static void one_shot_counts_one_expiry(void)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, 0);
	struct itimerspec its = spec(50, 0), cur;
	uint64_t v = 0;

	SHOW(timerfd_gettime(fd, &cur));
	printf("disarmed: %ld %ld\n", ms_of(cur.it_value), ms_of(cur.it_interval));
	SHOW(timerfd_settime(fd, 0, &its, NULL));
	timerfd_gettime(fd, &cur);
	YESNO(ms_of(cur.it_value) > 0 && ms_of(cur.it_value) <= 50);
	SHOW(read(fd, &v, 8));
	printf("expirations: %llu\n", (unsigned long long)v);
	timerfd_gettime(fd, &cur);
	printf("after: %ld %ld\n", ms_of(cur.it_value), ms_of(cur.it_interval));
}

static void periodic_counts_missed_intervals(void)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct itimerspec its = spec(20, 20), cur;
	struct timespec nap = { 0, 130000000 };
	uint64_t v = 0;

	SHOW(read(fd, &v, 8));
	SHOW(timerfd_settime(fd, 0, &its, NULL));
	nanosleep(&nap, NULL);
	SHOW(read(fd, &v, 8));
	YESNO(v >= 5 && v <= 7);
	SHOW(read(fd, &v, 8));
	timerfd_gettime(fd, &cur);
	YESNO(ms_of(cur.it_value) <= 20);
	printf("interval: %ld\n", ms_of(cur.it_interval));
	its = spec(0, 0);
	SHOW(timerfd_settime(fd, 0, &its, &cur));
	printf("old interval: %ld\n", ms_of(cur.it_interval));
	nanosleep(&nap, NULL);
	SHOW(read(fd, &v, 8));
}

static void absolute_time_on_each_clock(void)
{
	static const int clocks[] = { CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME };
	static const char *names[] = { "realtime", "monotonic", "boottime" };
	struct itimerspec its;
	struct timespec now;
	uint64_t v;
	ssize_t n;
	int i, fd;

	for (i = 0; i < 3; i++) {
		fd = timerfd_create(clocks[i], 0);
		clock_gettime(clocks[i], &now);
		memset(&its, 0, sizeof(its));
		its.it_value = now;
		its.it_value.tv_nsec += 30000000;
		if (its.it_value.tv_nsec >= 1000000000) {
			its.it_value.tv_sec++;
			its.it_value.tv_nsec -= 1000000000;
		}
		printf("%s set: %d\n", names[i],
		       timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL));
		v = 0;
		n = read(fd, &v, 8);
		printf("%s read: %zd %llu\n", names[i], n, (unsigned long long)v);
		its.it_value.tv_sec -= 10;
		timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL);
		n = read(fd, &v, 8);
		printf("%s past: %zd %llu\n", names[i], n, (unsigned long long)v);
		close(fd);
	}
}

static void settime_resets_the_count(void)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct itimerspec its = spec(10, 0);
	struct timespec nap = { 0, 40000000 };
	uint64_t v;

	timerfd_settime(fd, 0, &its, NULL);
	nanosleep(&nap, NULL);
	its = spec(1000, 0);
	timerfd_settime(fd, 0, &its, NULL);
	SHOW(read(fd, &v, 8));
}

static void readiness_through_poll_and_epoll(void)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	int ep = epoll_create1(0);
	struct itimerspec its = spec(60, 0);
	struct epoll_event ev = { EPOLLIN, { .u64 = 5 } }, got;
	struct pollfd p = { fd, POLLIN, 0 };
	uint64_t v;

	SHOW(poll(&p, 1, 0));
	SHOW(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
	timerfd_settime(fd, 0, &its, NULL);
	SHOW(epoll_wait(ep, &got, 1, 5000));
	printf("event: %llu %#x\n", (unsigned long long)got.data.u64, got.events);
	SHOW(poll(&p, 1, 0));
	printf("revents: %#x\n", p.revents);
	SHOW(read(fd, &v, 8));
	SHOW(epoll_wait(ep, &got, 1, 0));
	its = spec(30, 0);
	timerfd_settime(fd, 0, &its, NULL);
	SHOW(poll(&p, 1, 5000));
}

static void fork_shares_the_timer(void)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, 0), st;
	struct itimerspec its = spec(40, 0);
	uint64_t v = 0;
	pid_t pid;

	timerfd_settime(fd, 0, &its, NULL);
	pid = fork();
	if (pid == 0) {
		ssize_t n = read(fd, &v, 8);

		printf("child read: %zd %llu\n", n, (unsigned long long)v);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	show_status("child", st);
}

static const struct scenario scenarios[] = {
	{ "create_errors", create_errors },
	{ "one_shot_counts_one_expiry", one_shot_counts_one_expiry },
	{ "periodic_counts_missed_intervals", periodic_counts_missed_intervals },
	{ "absolute_time_on_each_clock", absolute_time_on_each_clock },
	{ "settime_resets_the_count", settime_resets_the_count },
	{ "readiness_through_poll_and_epoll", readiness_through_poll_and_epoll },
	{ "fork_shares_the_timer", fork_shares_the_timer },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	return run_scenarios(scenarios, argc, argv);
}
