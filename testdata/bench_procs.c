/*
 * Process benchmarks: "spawn N PROGRAM" runs PROGRAM (with the argument
 * "true", for busybox) N times with fork+exec+wait; "pingpong N" sends one
 * byte back and forth N times between two processes over two pipes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int spawn(long n, const char *program)
{
	for (long i = 0; i < n; i++) {
		pid_t pid = fork();
		int st;

		if (pid < 0)
			return 1;
		if (pid == 0) {
			execl(program, "true", (char *)NULL);
			_exit(127);
		}
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
			return 1;
	}
	return 0;
}

static int pingpong(long n)
{
	int there[2], back[2];
	char c = 'x';
	pid_t pid;

	if (pipe(there) || pipe(back))
		return 1;
	pid = fork();
	if (pid == 0) {
		for (long i = 0; i < n; i++) {
			if (read(there[0], &c, 1) != 1 || write(back[1], &c, 1) != 1)
				_exit(1);
		}
		_exit(0);
	}
	for (long i = 0; i < n; i++) {
		if (write(there[1], &c, 1) != 1 || read(back[0], &c, 1) != 1)
			return 1;
	}
	waitpid(pid, NULL, 0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "spawn"))
		return spawn(atol(argv[2]), argv[3]);
	if (argc == 3 && !strcmp(argv[1], "pingpong"))
		return pingpong(atol(argv[2]));
	fprintf(stderr, "usage: bench_procs spawn N PROGRAM | pingpong N\n");
	return 2;
}
