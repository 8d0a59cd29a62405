/*
 * procs: processes. fork with pipes and exit codes, children killed by
 * signals, MAP_SHARED and MAP_PRIVATE memory across fork, wait4 with WNOHANG,
 * vfork, SIGCHLD handlers, orphans re-parented to the first process, and
 * writes larger than a pipe holds.
 *
 * Pids are never printed, only compared; run natively as the first process of
 * a pid namespace, orphans report a parent of 1 as they do in the sandbox.
 */
#define _GNU_SOURCE
#include "scenario.h"
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

static void fork_pipe_wait(void)
{
	char buf[8];
	pid_t pids[3];
	int p[2], i, st, n, total = 0;

	SHOW(pipe(p));
	for (i = 0; i < 3; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			char c = 'a' + i;

			close(p[0]);
			write(p[1], &c, 1);
			_exit(10 + i);
		}
	}
	close(p[1]);
	while ((n = read(p[0], buf + total, sizeof(buf) - total)) > 0)
		total += n;
	printf("bytes from children: %d\n", total);
	for (i = 0; i < total; i++)
		YESNO(memchr(buf, 'a' + i, total) != NULL);
	for (i = 0; i < 3; i++) {
		YESNO(waitpid(pids[i], &st, 0) == pids[i]);
		show_status("child", st);
	}
	SHOW(wait(&st));
	printf("pipe at end: %zd\n", read(p[0], buf, 1));

	/* Only the low byte of the exit code reaches the parent. */
	if (fork() == 0)
		_exit(256 + 5);
	wait(&st);
	show_status("exit(261)", st);
	if (fork() == 0)
		exit(-1);
	wait(&st);
	show_status("exit(-1)", st);
}

static void child_killed(const char *label, int how)
{
	volatile int *bad = (volatile int *)16;
	int p[2], go[2], st;
	pid_t pid;
	char c;

	pipe(p);
	pipe(go);
	pid = fork();
	if (pid == 0) {
		struct rlimit none = { 0, 0 };

		setrlimit(RLIMIT_CORE, &none);
		switch (how) {
		case 0: raise(SIGTERM); break;
		case 1: kill(getpid(), SIGKILL); break;
		case 2: *bad = 1; break;
		case 3: abort();
		case 4:
			/* Once the parent's read end is closed too. */
			close(p[0]);
			read(go[0], &c, 1);
			write(p[1], "x", 1);
			break;
		case 5: read(p[0], &st, 1); break;
		}
		_exit(99);
	}
	close(p[0]);
	write(go[1], "x", 1);
	if (how == 5)
		kill(pid, SIGUSR1);
	waitpid(pid, &st, 0);
	close(p[1]);
	close(go[0]);
	close(go[1]);
	show_status(label, st);
	YESNO(WIFSIGNALED(st));
	YESNO(WIFEXITED(st));
}

static void killed_by_signal(void)
{
	child_killed("raise(SIGTERM)", 0);
	child_killed("kill(getpid(), SIGKILL)", 1);
	child_killed("write to address 16", 2);
	child_killed("abort()", 3);
	child_killed("write to a pipe without readers", 4);
	child_killed("SIGUSR1 from the parent while blocked in read", 5);
}

static void mmap_across_fork(void)
{
	int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int *private = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	static int data = 1;
	int go[2], done[2], st;
	char c;

	*shared = *private = 1;
	pipe(go);
	pipe(done);
	if (fork() == 0) {
		printf("child sees shared %d private %d data %d\n", *shared, *private,
		       data);
		*shared = 2;
		*private = 2;
		data = 2;
		write(done[1], "x", 1);
		read(go[0], &c, 1);
		printf("child after parent wrote: shared %d private %d data %d\n",
		       *shared, *private, data);
		_exit(0);
	}
	read(done[0], &c, 1);
	printf("parent after child wrote: shared %d private %d data %d\n", *shared,
	       *private, data);
	*shared = 3;
	*private = 3;
	data = 3;
	write(go[1], "x", 1);
	wait(&st);
	show_status("child", st);
	printf("parent at end: shared %d private %d data %d\n", *shared, *private,
	       data);
}

static void wnohang(void)
{
	int p[2], st = -1, polls = 0;
	pid_t pid, r;
	char c;

	SHOW(waitpid(-1, &st, WNOHANG));
	pipe(p);
	pid = fork();
	if (pid == 0) {
		close(p[1]);
		read(p[0], &c, 1);
		_exit(7);
	}
	close(p[0]);
	SHOW(waitpid(pid, &st, WNOHANG));
	SHOW(waitpid(-1, &st, WNOHANG));
	write(p[1], "x", 1);
	while ((r = waitpid(pid, &st, WNOHANG)) == 0) {
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);
		polls++;
	}
	YESNO(r == pid);
	YESNO(polls < 5000);
	show_status("child", st);
	SHOW(waitpid(pid, &st, WNOHANG));
	SHOW(waitpid(-1, &st, 0));
}

static void vfork_exit(void)
{
	volatile int touched = 0;
	int st;
	pid_t pid;

	pid = vfork();
	if (pid == 0) {
		/* The parent is suspended until this child exits. */
		touched = getppid() > 0 ? 1 : 2;
		_exit(5);
	}
	printf("parent resumed after the child wrote: touched %d\n", touched);
	YESNO(waitpid(pid, &st, 0) == pid);
	show_status("vfork child", st);

	/* A vfork child that execs lets the parent go on at the exec. */
	pid = vfork();
	if (pid == 0) {
		char *argv[] = { "/no/such/program", NULL };

		execv(argv[0], argv);
		touched = errno == ENOENT ? 3 : 4;
		_exit(6);
	}
	printf("after a failed exec: touched %d\n", touched);
	waitpid(pid, &st, 0);
	show_status("vfork child", st);
}

static volatile sig_atomic_t chld_count, chld_code, chld_status;
static volatile pid_t chld_pid;

static void on_chld(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	chld_count++;
	chld_code = si->si_code;
	chld_status = si->si_status;
	chld_pid = si->si_pid;
	if (sig != SIGCHLD || si->si_signo != SIGCHLD)
		chld_count = -100;
}

static void sigchld_handler(void)
{
	struct sigaction sa = { 0 };
	sigset_t block, old;
	int st;
	pid_t pid;

	sa.sa_sigaction = on_chld;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old);

	pid = fork();
	if (pid == 0)
		_exit(3);
	while (!chld_count)
		sigsuspend(&old);
	printf("handler ran %d time(s)\n", (int)chld_count);
	YESNO(chld_code == CLD_EXITED);
	printf("si_status %d\n", (int)chld_status);
	YESNO(chld_pid == pid);
	waitpid(pid, &st, 0);
	show_status("child", st);

	chld_count = 0;
	pid = fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	kill(pid, SIGTERM);
	while (!chld_count)
		sigsuspend(&old);
	YESNO(chld_code == CLD_KILLED);
	YESNO(chld_status == SIGTERM);
	YESNO(chld_pid == pid);
	waitpid(pid, &st, 0);
	show_status("child", st);

	/* SIGCHLD ignored: the child is reaped without a wait. */
	signal(SIGCHLD, SIG_IGN);
	pid = fork();
	if (pid == 0)
		_exit(0);
	SHOW(waitpid(pid, &st, 0));
}

static void orphan(void)
{
	int report[2], st;
	pid_t middle;

	pipe(report);
	middle = fork();
	if (middle == 0) {
		pid_t me = getpid();

		if (fork() == 0) {
			int waited = 0;
			char line[64];

			/* Wait until the middle process has gone. */
			while (getppid() == me && waited < 5000) {
				struct timespec ms = { 0, 1000000 };

				nanosleep(&ms, NULL);
				waited++;
			}
			snprintf(line, sizeof(line), "orphan's parent: %d\n", getppid());
			write(report[1], line, strlen(line));
			_exit(0);
		}
		_exit(4);
	}
	close(report[1]);
	waitpid(middle, &st, 0);
	show_status("middle", st);
	for (;;) {
		char buf[64];
		ssize_t n = read(report[0], buf, sizeof(buf));

		if (n <= 0)
			break;
		fwrite(buf, 1, n, stdout);
	}
	/* The orphan is not our child any more. */
	SHOW(waitpid(-1, &st, WNOHANG));
}

static void on_usr1(int sig)
{
	(void)sig;
}

static void big_pipe_write(void)
{
	static char big[200000];
	struct sigaction sa = { 0 };
	int p[2], st, i, ok = 1;
	ssize_t n;
	pid_t pid;

	for (i = 0; i < (int)sizeof(big); i++)
		big[i] = i % 251;

	/* One write of more than the pipe holds waits for the reader. */
	pipe(p);
	pid = fork();
	if (pid == 0) {
		char buf[1000];
		long at = 0;

		close(p[1]);
		while ((n = read(p[0], buf, sizeof(buf))) > 0) {
			for (i = 0; i < n; i++)
				ok &= buf[i] == (char)((at + i) % 251);
			at += n;
		}
		_exit(at == sizeof(big) && ok ? 0 : 1);
	}
	close(p[0]);
	SHOW(write(p[1], big, sizeof(big)));
	close(p[1]);
	waitpid(pid, &st, 0);
	show_status("reader got every byte in order", st);

	/* A signal while such a write waits: it returns what it wrote. */
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	pipe(p);
	pid = fork();
	if (pid == 0) {
		struct timespec ms = { 0, 50000000 };
		char buf[1000];

		close(p[1]);
		read(p[0], buf, sizeof(buf));
		wait_until_sleeping(getppid());
		kill(getppid(), SIGUSR1);
		nanosleep(&ms, NULL);
		while (read(p[0], buf, sizeof(buf)) > 0)
			;
		_exit(0);
	}
	close(p[0]);
	n = write(p[1], big, sizeof(big));
	printf("interrupted write returned part: %s\n",
	       n > 0 && n < (ssize_t)sizeof(big) ? "yes" : "no");
	close(p[1]);
	waitpid(pid, &st, 0);
	show_status("reader", st);
}

static const struct scenario scenarios[] = {
	{ "fork_pipe_wait", fork_pipe_wait },
	{ "killed_by_signal", killed_by_signal },
	{ "mmap_across_fork", mmap_across_fork },
	{ "wnohang", wnohang },
	{ "vfork_exit", vfork_exit },
	{ "sigchld_handler", sigchld_handler },
	{ "orphan", orphan },
	{ "big_pipe_write", big_pipe_write },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	return run_scenarios(scenarios, argc, argv);
}
