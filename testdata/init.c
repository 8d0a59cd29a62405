/*
 * init: what the first process of a pid namespace lives through. Signals it
 * left at their default action are discarded, SIGKILL included, whether they
 * come from itself, from a child or from the kernel (SIGPIPE, SIGALRM); a
 * signal it handles is delivered. Run natively under `unshare --pid --fork`
 * so that it is pid 1, as it is in the sandbox.
 */
#define _GNU_SOURCE
#include "scenario.h"
#include <sys/time.h>
#include <time.h>

static volatile sig_atomic_t handled;

static void on_usr1(int sig)
{
	handled = sig;
}

int main(void)
{
	struct itimerval it = { { 0, 0 }, { 0, 20000 } };
	struct timespec ms = { 0, 50000000 };
	sigset_t set;
	int p[2], st;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("pid is 1: %s\n", getpid() == 1 ? "yes" : "no");
	SHOW(raise(SIGTERM));
	SHOW(kill(getpid(), SIGKILL));
	SHOW(kill(1, SIGINT));
	if (fork() == 0) {
		kill(getppid(), SIGQUIT);
		kill(getppid(), SIGKILL);
		_exit(0);
	}
	wait(&st);
	show_status("child that signalled init", st);

	/* SIGPIPE is discarded: the write fails with EPIPE. */
	pipe(p);
	close(p[0]);
	SHOW(write(p[1], "x", 1));

	/* So is an expired timer's SIGALRM. */
	SHOW(setitimer(ITIMER_REAL, &it, NULL));
	nanosleep(&ms, NULL);
	printf("after SIGALRM\n");

	/* A default-action signal blocked when it came is dropped at unblock. */
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	raise(SIGHUP);
	sigpending(&set);
	printf("SIGHUP pending while blocked: %d\n", sigismember(&set, SIGHUP));
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	printf("after unblocking SIGHUP\n");

	/* A handled signal is delivered. */
	signal(SIGUSR1, on_usr1);
	SHOW(raise(SIGUSR1));
	printf("handled: %s\n", handled == SIGUSR1 ? "yes" : "no");
	return 3;
}
