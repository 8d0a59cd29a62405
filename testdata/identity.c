/*
 * identity: who and where the program is. Ids, uname and hostname, resource
 * limits and usage, clocks and sleeping, getrandom, CPU affinity, sysinfo,
 * the thread name and umask.
 *
 * Values that legitimately differ between runs (pids, times, host name) are
 * reduced to comparisons; the user and group ids are printed because the
 * sandbox reports the host's.
 */
#define _GNU_SOURCE
#include "check.h"
#include <sched.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static long long ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(void)
{
	char host[256], name[32], rnd[32];
	struct rlimit rl, old, lim;
	struct timespec ts, ts2;
	struct utsname u;
	struct rusage ru;
	struct sysinfo si;
	struct timeval tv;
	uid_t r, e, s;
	gid_t gr, ge, gs;
	cpu_set_t cpus;
	long long t0, t1;
	int ok;

	printf("== ids\n");
	YESNO(getpid() > 0);
	YESNO(getppid() >= 0);
	YESNO(syscall(SYS_gettid) == getpid());
	printf("uid %d euid %d gid %d egid %d\n", (int)getuid(), (int)geteuid(),
	       (int)getgid(), (int)getegid());
	SHOW(getresuid(&r, &e, &s));
	YESNO(r == getuid() && e == geteuid() && s == geteuid());
	SHOW(getresgid(&gr, &ge, &gs));
	YESNO(gr == getgid() && ge == getegid() && gs == getegid());

	printf("== uname, hostname\n");
	SHOW(uname(&u));
	printf("sysname %s machine %s\n", u.sysname, u.machine);
	SHOW(gethostname(host, sizeof(host)));
	YESNO(strcmp(host, u.nodename) == 0);
	SHOW(syscall(SYS_uname, (void *)16));

	printf("== resource limits\n");
	SHOW(getrlimit(RLIMIT_NOFILE, &old));
	rl.rlim_cur = 64;
	rl.rlim_max = old.rlim_max;
	SHOW(setrlimit(RLIMIT_NOFILE, &rl));
	SHOW(getrlimit(RLIMIT_NOFILE, &lim));
	printf("soft %ld hard unchanged %d\n", (long)lim.rlim_cur,
	       lim.rlim_max == old.rlim_max);
	SHOW(dup2(0, 64));
	SHOW(dup2(0, 63) == 63);
	close(63);
	SHOW(prlimit(0, RLIMIT_NOFILE, &old, &lim));
	printf("prlimit returned the previous soft limit: %ld\n", (long)lim.rlim_cur);
	SHOW(prlimit(0, RLIMIT_NOFILE, NULL, &lim));
	YESNO(lim.rlim_cur == old.rlim_cur && lim.rlim_max == old.rlim_max);
	rl.rlim_cur = 100;
	rl.rlim_max = 50;
	SHOW(setrlimit(RLIMIT_NOFILE, &rl));
	SHOW(getrlimit(999, &rl));
	SHOW(getrlimit(RLIMIT_STACK, &rl));
	SHOW(getrusage(RUSAGE_SELF, &ru));
	SHOW(getrusage(RUSAGE_CHILDREN, &ru));
	SHOW(getrusage(42, &ru));

	printf("== clocks\n");
	ok = 1;
	t0 = ns(CLOCK_MONOTONIC);
	for (int i = 0; i < 1000; i++) {
		t1 = ns(CLOCK_MONOTONIC);
		ok &= t1 >= t0;
		t0 = t1;
	}
	printf("monotonic never goes back: %d\n", ok);
	SHOW(clock_gettime(CLOCK_REALTIME, &ts));
	SHOW(gettimeofday(&tv, NULL));
	YESNO(tv.tv_sec - ts.tv_sec <= 2 && ts.tv_sec - tv.tv_sec <= 2);
	YESNO(time(NULL) - ts.tv_sec <= 2 && ts.tv_sec - time(NULL) <= 2);
	YESNO(ts.tv_sec > 1600000000);
	SHOW(clock_getres(CLOCK_MONOTONIC, &ts));
	YESNO(ts.tv_sec == 0 && ts.tv_nsec > 0);
	SHOW(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts));
	SHOW(clock_gettime(CLOCK_BOOTTIME, &ts));
	SHOW(syscall(SYS_clock_gettime, 12345, &ts));

	printf("== sleeping\n");
	ts = (struct timespec){ 0, 10000000 };
	t0 = ns(CLOCK_MONOTONIC);
	SHOW(nanosleep(&ts, NULL));
	t1 = ns(CLOCK_MONOTONIC);
	printf("nanosleep 10 ms took at least 10 ms: %d\n", t1 - t0 >= 10000000);
	t0 = ns(CLOCK_MONOTONIC);
	SHOW(clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL));
	t1 = ns(CLOCK_MONOTONIC);
	printf("clock_nanosleep 10 ms took at least 10 ms: %d\n", t1 - t0 >= 10000000);
	clock_gettime(CLOCK_MONOTONIC, &ts2);
	ts2.tv_nsec += 5000000;
	if (ts2.tv_nsec >= 1000000000) {
		ts2.tv_sec++;
		ts2.tv_nsec -= 1000000000;
	}
	SHOW(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts2, NULL));
	YESNO(ns(CLOCK_MONOTONIC) >= ts2.tv_sec * 1000000000LL + ts2.tv_nsec);
	ts = (struct timespec){ 0, 1000000000 };
	SHOW(syscall(SYS_nanosleep, &ts, NULL));
	ts = (struct timespec){ -1, 0 };
	SHOW(syscall(SYS_nanosleep, &ts, NULL));

	printf("== getrandom\n");
	memset(rnd, 0, sizeof(rnd));
	SHOW(getrandom(rnd, sizeof(rnd), 0));
	ok = 0;
	for (size_t i = 0; i < sizeof(rnd); i++)
		ok |= rnd[i];
	printf("not all zero: %d\n", ok != 0);
	SHOW(getrandom(rnd, sizeof(rnd), GRND_NONBLOCK));
	SHOW(getrandom(rnd, sizeof(rnd), 0x40));

	printf("== affinity, sysinfo\n");
	SHOW(sched_getaffinity(0, sizeof(cpus), &cpus));
	printf("at least one cpu: %d\n", CPU_COUNT(&cpus) >= 1);
	SHOW(syscall(SYS_sched_getaffinity, 0, 1, &cpus));
	SHOW(sysinfo(&si));
	YESNO(si.totalram > 0 && si.mem_unit >= 1 && si.uptime > 0);
	YESNO(si.freeram <= si.totalram);
	YESNO(sysconf(_SC_NPROCESSORS_ONLN) >= 1);

	printf("== prctl, umask\n");
	SHOW(prctl(PR_SET_NAME, "pysentry-test", 0, 0, 0));
	memset(name, 0, sizeof(name));
	SHOW(prctl(PR_GET_NAME, name, 0, 0, 0));
	printf("name '%s'\n", name);
	SHOW(prctl(PR_SET_NAME, "a-name-longer-than-fifteen", 0, 0, 0));
	SHOW(prctl(PR_GET_NAME, name, 0, 0, 0));
	printf("name '%s'\n", name);
	SHOW(prctl(9999, 0, 0, 0, 0));
	umask(027);
	printf("umask was %03o\n", umask(022));
	printf("umask was %03o\n", umask(0777 | 022));
	printf("umask was %03o\n", umask(022));
	return 0;
}
