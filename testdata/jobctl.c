/*
 * Job control: stopping and continuing processes, what the parent hears of
 * it (wait4 WUNTRACED/WCONTINUED, waitid, SIGCHLD codes), process groups and
 * sessions, and the terminal requests without a terminal.
 */
#define _GNU_SOURCE
#include "scenario.h"
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <termios.h>

/* The state letter of process `pid` in /proc/PID/stat. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return '?';
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return '?';
	}
	fclose(f);
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : '?';
}

/* Wait until `pid` shows state `want`, for at most five seconds. */
static int wait_state(pid_t pid, char want)
{
	struct timespec ms = { 0, 1000000 };
	int tries;

	for (tries = 0; tries < 5000; tries++) {
		if (proc_state(pid) == want)
			return 1;
		nanosleep(&ms, NULL);
	}
	return 0;
}

static void report(const char *label, pid_t pid, int options)
{
	int st = 0;
	pid_t got = waitpid(pid, &st, options);

	if (got < 0) {
		printf("%s: waitpid: %s\n", label, errname(errno));
		return;
	}
	if (got == 0) {
		printf("%s: nothing to report\n", label);
		return;
	}
	if (WIFCONTINUED(st))
		printf("%s: continued\n", label);
	else
		show_status(label, st);
}

/* A child in a process group of its own that sleeps until signalled. */
static pid_t sleeper(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		setpgid(0, 0);
		for (;;)
			pause();
	}
	wait_until_sleeping(pid);
	return pid;
}

static void stop_and_continue(void)
{
	pid_t pid = sleeper();

	kill(pid, SIGSTOP);
	report("after SIGSTOP", pid, WUNTRACED);
	printf("state while stopped: %c\n", proc_state(pid));
	report("a stop is reported once", pid, WUNTRACED | WNOHANG);
	kill(pid, SIGCONT);
	report("after SIGCONT", pid, WCONTINUED);
	report("a continue is reported once", pid, WCONTINUED | WNOHANG);
	wait_until_sleeping(pid);
	printf("state after continuing: %c\n", proc_state(pid));
	kill(pid, SIGTERM);
	report("after SIGTERM", pid, 0);
}

static void stop_not_reported_without_wuntraced(void)
{
	pid_t pid = sleeper();

	kill(pid, SIGSTOP);
	wait_state(pid, 'T');
	report("WNOHANG without WUNTRACED", pid, WNOHANG);
	report("WNOHANG with WUNTRACED", pid, WNOHANG | WUNTRACED);
	kill(pid, SIGKILL);
	report("SIGKILL ends a stopped process", pid, 0);
}

static void signals_wait_while_stopped(void)
{
	pid_t pid = sleeper();

	kill(pid, SIGSTOP);
	report("stopped", pid, WUNTRACED);
	kill(pid, SIGTERM);
	usleep(20000);
	report("SIGTERM waits while stopped", pid, WNOHANG);
	printf("state: %c\n", proc_state(pid));
	kill(pid, SIGCONT);
	report("after SIGCONT", pid, 0);
}

static siginfo_t chld[8];
static volatile int nchld;

static void on_chld(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (nchld < 8)
		chld[nchld++] = *si;
}

static void wait_chld(int n)
{
	int tries;

	for (tries = 0; tries < 5000 && nchld < n; tries++)
		usleep(1000);
}

static const char *cld_code(int code)
{
	switch (code) {
	case CLD_EXITED: return "CLD_EXITED";
	case CLD_KILLED: return "CLD_KILLED";
	case CLD_DUMPED: return "CLD_DUMPED";
	case CLD_STOPPED: return "CLD_STOPPED";
	case CLD_CONTINUED: return "CLD_CONTINUED";
	}
	return "other";
}

static void sigchld_codes(void)
{
	struct sigaction sa;
	pid_t pid;
	int i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_chld;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGCHLD, &sa, NULL);
	pid = sleeper();
	kill(pid, SIGSTOP);
	wait_chld(1);
	kill(pid, SIGCONT);
	wait_chld(2);
	kill(pid, SIGKILL);
	wait_chld(3);
	for (i = 0; i < nchld; i++)
		printf("SIGCHLD %s status %s from child: %s\n", cld_code(chld[i].si_code),
		       signame(chld[i].si_status), chld[i].si_pid == pid ? "yes" : "no");
	report("reaped", pid, 0);
}

static void sa_nocldstop(void)
{
	struct sigaction sa;
	pid_t pid;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_chld;
	sa.sa_flags = SA_SIGINFO | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	pid = sleeper();
	kill(pid, SIGSTOP);
	report("stopped", pid, WUNTRACED);
	kill(pid, SIGCONT);
	report("continued", pid, WCONTINUED);
	printf("SIGCHLD for stop/continue: %d\n", nchld);
	kill(pid, SIGKILL);
	report("killed", pid, 0);
	printf("SIGCHLD after the kill: %d (%s)\n", nchld,
	       nchld ? cld_code(chld[0].si_code) : "-");
}

static void waitid_reports(void)
{
	siginfo_t si;
	pid_t pid = sleeper();

	kill(pid, SIGSTOP);
	memset(&si, 0, sizeof(si));
	waitid(P_PID, pid, &si, WSTOPPED | WNOWAIT);
	printf("waitid WNOWAIT: %s status %s\n", cld_code(si.si_code), signame(si.si_status));
	memset(&si, 0, sizeof(si));
	waitid(P_PID, pid, &si, WSTOPPED);
	printf("waitid again: %s status %s\n", cld_code(si.si_code), signame(si.si_status));
	memset(&si, 0, sizeof(si));
	si.si_pid = 12345;
	waitid(P_PID, pid, &si, WSTOPPED | WNOHANG);
	printf("waitid after the report: si_pid %s\n", si.si_pid ? "set" : "zero");
	kill(pid, SIGCONT);
	memset(&si, 0, sizeof(si));
	waitid(P_PID, pid, &si, WCONTINUED);
	printf("waitid: %s status %s\n", cld_code(si.si_code), signame(si.si_status));
	kill(pid, SIGKILL);
	memset(&si, 0, sizeof(si));
	waitid(P_PID, pid, &si, WEXITED);
	printf("waitid: %s status %s\n", cld_code(si.si_code), signame(si.si_status));
}

/* Print "LABEL: " and what the other end of pipe `fd` sends first. */
static void print_from(const char *label, int fd)
{
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	buf[n > 0 ? n : 0] = 0;
	printf("%s: %s\n", label, buf);
}

static void child_stops_itself(void)
{
	int fds[2];
	pid_t pid;

	if (pipe(fds))
		return;
	pid = fork();
	if (pid == 0) {
		setpgid(0, 0);
		close(fds[0]);
		raise(SIGTSTP);
		write(fds[1], "resumed", 7);
		_exit(7);
	}
	close(fds[1]);
	report("child raised SIGTSTP", pid, WUNTRACED);
	kill(pid, SIGCONT);
	print_from("child wrote", fds[0]);
	report("child", pid, 0);
}

static void orphaned_group_ignores_tstp(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		/* A new session: its only group has no parent in the session. */
		setsid();
		raise(SIGTSTP);
		raise(SIGTTIN);
		raise(SIGTTOU);
		printf("terminal stops were discarded\n");
		fflush(stdout);
		raise(SIGSTOP);
		_exit(3);
	}
	report("orphaned child", pid, WUNTRACED);
	kill(pid, SIGCONT);
	report("orphaned child", pid, 0);
}

/* The write end of the pipe the SIGCONT handler reports through. */
static int cont_fd = -1;

static void on_cont(int sig)
{
	(void)sig;
	write(cont_fd, "SIGCONT handled", 15);
}

static void sigcont_handler_runs(void)
{
	int fds[2];
	pid_t pid;

	if (pipe(fds))
		return;
	pid = fork();
	if (pid == 0) {
		struct sigaction sa;

		close(fds[0]);
		cont_fd = fds[1];
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_cont;
		sigaction(SIGCONT, &sa, NULL);
		setpgid(0, 0);
		for (;;)
			pause();
	}
	close(fds[1]);
	wait_until_sleeping(pid);
	kill(pid, SIGSTOP);
	report("stopped", pid, WUNTRACED);
	kill(pid, SIGCONT);
	print_from("handler wrote", fds[0]);
	kill(pid, SIGKILL);
	report("child", pid, 0);
}

static void pending_stop_and_continue_cancel(void)
{
	int go[2], back[2];
	char c;
	pid_t pid;

	if (pipe(go) || pipe(back))
		return;
	pid = fork();
	if (pid == 0) {
		sigset_t set, pending;

		sigemptyset(&set);
		sigaddset(&set, SIGTSTP);
		sigaddset(&set, SIGCONT);
		sigprocmask(SIG_BLOCK, &set, NULL);
		setpgid(0, 0);
		write(back[1], "r", 1);
		read(go[0], &c, 1);
		sigpending(&pending);
		printf("pending SIGTSTP %d SIGCONT %d\n", sigismember(&pending, SIGTSTP),
		       sigismember(&pending, SIGCONT));
		fflush(stdout);
		write(back[1], "r", 1);
		read(go[0], &c, 1);
		sigpending(&pending);
		printf("pending SIGTSTP %d SIGCONT %d\n", sigismember(&pending, SIGTSTP),
		       sigismember(&pending, SIGCONT));
		fflush(stdout);
		_exit(0);
	}
	read(back[0], &c, 1);
	kill(pid, SIGTSTP);
	kill(pid, SIGCONT); /* discards the pending SIGTSTP */
	write(go[1], "g", 1);
	read(back[0], &c, 1);
	kill(pid, SIGCONT);
	kill(pid, SIGTSTP); /* discards the pending SIGCONT */
	write(go[1], "g", 1);
	report("child", pid, 0);
}

static volatile long *spins;

static void *spinner(void *arg)
{
	(void)arg;
	for (;;)
		__atomic_add_fetch(spins, 1, __ATOMIC_RELAXED);
	return NULL;
}

static void every_thread_stops(void)
{
	long a, b, c;
	pid_t pid;

	spins = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid = fork();
	if (pid == 0) {
		pthread_t th;

		setpgid(0, 0);
		pthread_create(&th, NULL, spinner, NULL);
		for (;;)
			pause();
	}
	while (*spins == 0)
		usleep(1000);
	kill(pid, SIGSTOP);
	report("stopped", pid, WUNTRACED);
	usleep(20000);
	a = *spins;
	usleep(50000);
	b = *spins;
	printf("the spinning thread is stopped too: %s\n", a == b ? "yes" : "no");
	kill(pid, SIGCONT);
	usleep(50000);
	c = *spins;
	printf("it runs again after SIGCONT: %s\n", c != b ? "yes" : "no");
	kill(pid, SIGKILL);
	report("child", pid, 0);
}

static void groups_and_sessions(void)
{
	pid_t pid, me = getpid();
	int go[2];
	char c;

	printf("setpgid to a group that does not exist: %s\n",
	       setpgid(0, 999999) ? errname(errno) : "ok");
	printf("setpgid of a process that is not a child: %s\n",
	       setpgid(getppid() == 1 ? 999998 : getppid(), 0) ? errname(errno) : "ok");
	if (pipe(go))
		return;
	pid = fork();
	if (pid == 0) {
		read(go[0], &c, 1);
		execl("/proc/self/exe", "jobctl", "--idle", (char *)NULL);
		_exit(99);
	}
	printf("setpgid of a child: %s\n", setpgid(pid, pid) ? errname(errno) : "ok");
	printf("child's group is its own: %s\n", getpgid(pid) == pid ? "yes" : "no");
	printf("setpgid of the child into our group: %s\n",
	       setpgid(pid, getpgrp()) ? errname(errno) : "ok");
	write(go[1], "g", 1);
	wait_until_sleeping(pid);
	printf("setpgid after the child exec'd: %s\n",
	       setpgid(pid, pid) ? errname(errno) : "ok");
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	setpgid(0, 0);
	printf("setsid as a group leader: %s\n", setsid() < 0 ? errname(errno) : "ok");
	pid = fork();
	if (pid == 0) {
		pid_t sid = setsid();

		printf("setsid in a child: %s, session is own pid: %s\n",
		       sid < 0 ? errname(errno) : "ok", getsid(0) == getpid() ? "yes" : "no");
		printf("setpgid of a session leader: %s\n",
		       setpgid(0, 0) ? errname(errno) : "ok");
		printf("tcgetpgrp without a terminal: %s\n",
		       tcgetpgrp(0) < 0 ? errname(errno) : "ok");
		_exit(0);
	}
	waitpid(pid, NULL, 0);
	(void)me;
}

static const struct scenario scenarios[] = {
	{ "stop_and_continue", stop_and_continue },
	{ "stop_not_reported_without_wuntraced", stop_not_reported_without_wuntraced },
	{ "signals_wait_while_stopped", signals_wait_while_stopped },
	{ "sigchld_codes", sigchld_codes },
	{ "sa_nocldstop", sa_nocldstop },
	{ "waitid_reports", waitid_reports },
	{ "child_stops_itself", child_stops_itself },
	{ "orphaned_group_ignores_tstp", orphaned_group_ignores_tstp },
	{ "sigcont_handler_runs", sigcont_handler_runs },
	{ "pending_stop_and_continue_cancel", pending_stop_and_continue_cancel },
	{ "every_thread_stops", every_thread_stops },
	{ "groups_and_sessions", groups_and_sessions },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--idle")) {
		for (;;)
			pause();
	}
	return run_scenarios(scenarios, argc, argv);
}
