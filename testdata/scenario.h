/*
 * A harness for programs made of named scenarios, and helpers for printing
 * wait statuses and signals.
 *
 * "prog" runs every scenario; "prog NAME..." runs the named ones. Each
 * scenario runs in a child process of its own, so one that crashes or leaves
 * signal state behind does not disturb the next. Its output is introduced by
 * "== NAME" and closed by "-- NAME: <how the child ended>", so a test can cut
 * the output into one section per scenario and compare sections one by one.
 */
#ifndef PYSENTRY_SCENARIO_H
#define PYSENTRY_SCENARIO_H

#include "check.h"
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct scenario {
	const char *name;
	void (*run)(void);
};

__attribute__((unused)) static const char *signame(int sig)
{
	static char other[32];

	switch (sig) {
	case SIGHUP: return "SIGHUP";
	case SIGINT: return "SIGINT";
	case SIGQUIT: return "SIGQUIT";
	case SIGILL: return "SIGILL";
	case SIGTRAP: return "SIGTRAP";
	case SIGABRT: return "SIGABRT";
	case SIGBUS: return "SIGBUS";
	case SIGFPE: return "SIGFPE";
	case SIGKILL: return "SIGKILL";
	case SIGUSR1: return "SIGUSR1";
	case SIGSEGV: return "SIGSEGV";
	case SIGUSR2: return "SIGUSR2";
	case SIGPIPE: return "SIGPIPE";
	case SIGALRM: return "SIGALRM";
	case SIGTERM: return "SIGTERM";
	case SIGCHLD: return "SIGCHLD";
	case SIGCONT: return "SIGCONT";
	case SIGSTOP: return "SIGSTOP";
	case SIGTSTP: return "SIGTSTP";
	case SIGTTIN: return "SIGTTIN";
	case SIGTTOU: return "SIGTTOU";
	}
	if (sig >= SIGRTMIN && sig <= SIGRTMAX)
		snprintf(other, sizeof(other), "SIGRTMIN+%d", sig - SIGRTMIN);
	else
		snprintf(other, sizeof(other), "signal%d", sig);
	return other;
}

/* "label: exited 3", "label: killed SIGTERM", ... (no core-dump flag: it
 * depends on the host's core limit, not on the kernel under test). */
__attribute__((unused)) static void show_status(const char *label, int st)
{
	if (WIFEXITED(st))
		printf("%s: exited %d\n", label, WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		printf("%s: killed %s\n", label, signame(WTERMSIG(st)));
	else if (WIFSTOPPED(st))
		printf("%s: stopped %s\n", label, signame(WSTOPSIG(st)));
	else
		printf("%s: status %#x\n", label, st);
}

/*
 * Wait until process `pid` sleeps in the kernel (state S in /proc/PID/stat),
 * for at most five seconds: a signal sent then finds it blocked in a system
 * call, however slowly it got there.
 */
__attribute__((unused)) static void wait_until_sleeping(pid_t pid)
{
	struct timespec ms = { 0, 1000000 };
	char path[64], buf[512], *state;
	int tries;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	for (tries = 0; tries < 5000; tries++) {
		f = fopen(path, "r");
		if (f && fgets(buf, sizeof(buf), f)) {
			state = strrchr(buf, ')');
			if (state && state[1] == ' ' && state[2] == 'S') {
				fclose(f);
				return;
			}
		}
		if (f)
			fclose(f);
		nanosleep(&ms, NULL);
	}
}

/* Run the scenarios named on the command line, or all of them. */
__attribute__((unused)) static int run_scenarios(const struct scenario *list,
						 int argc, char **argv)
{
	char label[128];
	int i, j, st;
	pid_t pid;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (i = 0; list[i].name; i++) {
		int wanted = argc < 2;

		for (j = 1; j < argc; j++)
			wanted |= !strcmp(argv[j], list[i].name);
		if (!wanted)
			continue;
		printf("== %s\n", list[i].name);
		fflush(stdout);
		pid = fork();
		if (pid == 0) {
			list[i].run();
			fflush(stdout);
			_exit(0);
		}
		if (pid < 0 || waitpid(pid, &st, 0) != pid) {
			printf("-- %s: cannot run: %s\n", list[i].name, errname(errno));
			continue;
		}
		snprintf(label, sizeof(label), "-- %s", list[i].name);
		show_status(label, st);
	}
	return 0;
}

#endif
