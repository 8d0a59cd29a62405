/*
 * exec: execve. `#!` scripts (with and without an interpreter argument,
 * nested, with odd spacing), the errors ENOENT, EACCES and ENOEXEC, and what
 * survives an exec: the pid, descriptors without close-on-exec, ignored
 * signals, the signal mask and pending signals; handled signals go back to
 * their default action.
 *
 * The program is its own interpreter: "exec argv ..." prints its arguments,
 * "exec state ..." prints what it inherited. "exec DIR" (or "exec DIR
 * SCENARIO...") writes scripts into DIR and runs the scenarios; DIR must be
 * an absolute path, and the same in every run that is compared, since the
 * paths appear in the output.
 */
#define _GNU_SOURCE
#include "scenario.h"
#include <fcntl.h>
#include <sys/stat.h>

static char self[4096], dir[4096];

static void print_argv(int argc, char **argv)
{
	int i;

	printf("argc %d\n", argc);
	for (i = 0; i < argc; i++)
		printf("argv[%d] '%s'\n", i, argv[i]);
}

static void print_state(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t set;

	printf("pid kept: %s\n", argc > 2 && atoi(argv[2]) == getpid() ? "yes" : "no");
	printf("fd 10 (close-on-exec): %s\n",
	       fcntl(10, F_GETFD) < 0 ? errname(errno) : "open");
	printf("fd 11: %s\n", fcntl(11, F_GETFD) < 0 ? errname(errno) : "open");
	sigaction(SIGUSR1, NULL, &sa);
	printf("handled SIGUSR1 now: %s\n", sa.sa_handler == SIG_DFL ? "default" : "other");
	sigaction(SIGUSR2, NULL, &sa);
	printf("ignored SIGUSR2 now: %s\n", sa.sa_handler == SIG_IGN ? "ignored" : "other");
	sigprocmask(SIG_BLOCK, NULL, &set);
	printf("SIGINT still blocked: %d\n", sigismember(&set, SIGINT));
	sigpending(&set);
	printf("SIGINT still pending: %d\n", sigismember(&set, SIGINT));
	printf("environment X=%s\n", getenv("X") ? getenv("X") : "(unset)");
}

static void write_file(const char *name, const char *text, mode_t mode)
{
	char path[8192];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || write(fd, text, strlen(text)) < 0) {
		printf("cannot write %s: %s\n", name, errname(errno));
		return;
	}
	close(fd);
	chmod(path, mode);
}

/* Run ``name`` (relative to the directory) with the given arguments in a
 * child; report its status or the execve error. */
static void run(const char *name, char *const args[])
{
	char path[8192];
	char *argv[16];
	int i, st;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	argv[0] = (char *)name;
	for (i = 0; args && args[i] && i < 14; i++)
		argv[i + 1] = args[i];
	argv[i + 1] = NULL;
	pid = fork();
	if (pid == 0) {
		char *env[] = { "X=from-execve", NULL };

		execve(name[0] == '/' ? name : path, argv, env);
		printf("execve %s: %s\n", name, errname(errno));
		_exit(127);
	}
	waitpid(pid, &st, 0);
	show_status(name, st);
}

static void script(const char *name, const char *first_line)
{
	char text[8192];

	snprintf(text, sizeof(text), "%s\nthe rest is never read\n", first_line);
	write_file(name, text, 0755);
}

static void shebang(void)
{
	char line[8192];
	char *args[] = { "one", "two words", NULL };

	snprintf(line, sizeof(line), "#!%s argv", self);
	script("with-arg", line);
	run("with-arg", args);

	snprintf(line, sizeof(line), "#!%s", self);
	script("no-arg", line);
	run("no-arg", args);

	/* Spaces and tabs around the interpreter; the rest is one argument. */
	snprintf(line, sizeof(line), "#! \t%s  argv  and more\t ", self);
	script("spaced", line);
	run("spaced", NULL);

	/* A script whose interpreter is a script. */
	snprintf(line, sizeof(line), "#!%s/with-arg extra", dir);
	script("nested", line);
	run("nested", args);

	/* Without a trailing newline. */
	snprintf(line, sizeof(line), "#!%s argv", self);
	write_file("no-newline", line, 0755);
	run("no-newline", NULL);
}

static void errors(void)
{
	char line[8192];

	run("does-not-exist", NULL);
	write_file("not-executable", "#!/bin/sh\n", 0644);
	run("not-executable", NULL);
	write_file("garbage", "this is not a program\n", 0755);
	run("garbage", NULL);
	write_file("empty", "", 0755);
	run("empty", NULL);
	script("missing-interpreter", "#!/no/such/interpreter");
	run("missing-interpreter", NULL);
	snprintf(line, sizeof(line), "#!%s/garbage", dir);
	script("garbage-interpreter", line);
	run("garbage-interpreter", NULL);
	script("blank-shebang", "#!");
	run("blank-shebang", NULL);
	mkdir(dir, 0755);
	run("/", NULL);
	run(".", NULL);
	write_file("plain", "x", 0644);
	snprintf(line, sizeof(line), "plain/below");
	run(line, NULL);
}

static void on_usr1(int sig)
{
	(void)sig;
}

static void inherited(void)
{
	char pid[32];
	char *argv[] = { self, "state", pid, NULL };
	char *env[] = { "X=kept", NULL };
	struct sigaction sa = { 0 };
	sigset_t block;
	int p[2], st;

	if (fork() == 0) {
		snprintf(pid, sizeof(pid), "%d", getpid());
		/* Descriptors 10 (close-on-exec) and 11 (kept). */
		pipe2(p, 0);
		dup3(p[0], 10, O_CLOEXEC);
		dup2(p[1], 11);
		sa.sa_handler = on_usr1;
		sigaction(SIGUSR1, &sa, NULL);
		signal(SIGUSR2, SIG_IGN);
		sigemptyset(&block);
		sigaddset(&block, SIGINT);
		sigprocmask(SIG_BLOCK, &block, NULL);
		raise(SIGINT);
		execve(self, argv, env);
		printf("execve: %s\n", errname(errno));
		_exit(127);
	}
	wait(&st);
	show_status("after exec", st);
}

static const struct scenario scenarios[] = {
	{ "shebang", shebang },
	{ "errors", errors },
	{ "inherited", inherited },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	struct stat st;

	/* As an interpreter: "argv" (maybe with more words in the same
	 * argument) or, with no interpreter argument, the script's path. */
	if (argc > 1 && (!strncmp(argv[1], "argv", 4) ||
			 (stat(argv[1], &st) == 0 && S_ISREG(st.st_mode)))) {
		print_argv(argc, argv);
		return 0;
	}
	if (argc > 1 && !strcmp(argv[1], "state")) {
		print_state(argc, argv);
		return 0;
	}
	if (argc < 2 || argv[1][0] != '/') {
		fprintf(stderr, "usage: exec DIR [SCENARIO...]\n");
		return 2;
	}
	if (readlink("/proc/self/exe", self, sizeof(self) - 1) < 0)
		return 3;
	snprintf(dir, sizeof(dir), "%s", argv[1]);
	mkdir(dir, 0755);
	return run_scenarios(scenarios, argc - 1, argv + 1);
}
