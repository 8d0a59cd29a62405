/*
 * Resource limits: a fork bomb, an allocation loop, and memory shared out
 * between processes. Run under `--max-tasks` and `--memory-limit`; prints
 * what failed with which errno, and that things work again once the
 * resources are given back.
 */
#define _GNU_SOURCE
#include "check.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CHILDREN 100000
#define MIB (1024 * 1024)

static pid_t children[MAX_CHILDREN];

static void forkbomb(void)
{
	int n = 0, err = 0;
	pid_t pid;

	while (n < MAX_CHILDREN) {
		pid = fork();
		if (pid == 0) {
			for (;;)
				pause();
		}
		if (pid < 0) {
			err = errno;
			break;
		}
		children[n++] = pid;
	}
	printf("fork failed with %s after %d children\n", err ? errname(err) : "nothing", n);
	for (int i = 0; i < n; i++)
		kill(children[i], SIGKILL);
	for (int i = 0; i < n; i++)
		waitpid(children[i], NULL, 0);
	pid = fork();
	if (pid == 0)
		_exit(42);
	if (pid > 0) {
		int st;

		waitpid(pid, &st, 0);
		printf("fork after reaping: child exited %d\n", WEXITSTATUS(st));
	} else {
		printf("fork after reaping: %s\n", errname(errno));
	}
}

static void *chunks[100000];

static void allocate(void)
{
	int n = 0, err = 0;
	void *p;

	while (n < 100000) {
		p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			err = errno;
			break;
		}
		memset(p, 1, 4096);
		chunks[n++] = p;
	}
	printf("mmap failed with %s after %d MiB\n", err ? errname(err) : "nothing", n);
	for (int i = 0; i < n; i++)
		munmap(chunks[i], MIB);
	p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	printf("mmap after munmap: %s\n", p == MAP_FAILED ? errname(errno) : "ok");

	n = 0;
	err = 0;
	while (n < 100000) {
		if (sbrk(MIB) == (void *)-1) {
			err = errno;
			break;
		}
		n++;
	}
	printf("sbrk failed with %s after %d MiB\n", err ? errname(err) : "nothing", n);
	p = malloc(64 * MIB);
	printf("malloc of 64 MiB: %s\n", p ? "ok" : "NULL");
}

/* argv[2]: MiB the parent holds while a child asks for as much again. */
static void shared_out(int mib)
{
	void *mine = mmap(NULL, (size_t)mib * MIB, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pid_t pid;
	int st;

	printf("parent maps %d MiB: %s\n", mib, mine == MAP_FAILED ? errname(errno) : "ok");
	pid = fork();
	if (pid == 0) {
		void *p = mmap(NULL, (size_t)mib * MIB, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		printf("child maps %d MiB more: %s\n", mib, p == MAP_FAILED ? errname(errno) : "ok");
		fflush(stdout);
		_exit(0);
	}
	if (pid < 0)
		printf("fork: %s\n", errname(errno));
	else
		waitpid(pid, &st, 0);
	{
		void *more = mmap(NULL, (size_t)mib * MIB, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		printf("parent maps %d MiB more: %s\n", mib,
		       more == MAP_FAILED ? errname(errno) : "ok");
		pid = fork();
		if (pid == 0)
			_exit(0);
		printf("fork copying all that: %s\n", pid < 0 ? errname(errno) : "ok");
		if (pid > 0)
			waitpid(pid, &st, 0);
		if (more != MAP_FAILED)
			munmap(more, (size_t)mib * MIB);
	}
	munmap(mine, (size_t)mib * MIB);
	pid = fork();
	if (pid == 0) {
		void *p = mmap(NULL, (size_t)mib * MIB, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		printf("after the parent unmapped, the child maps %d MiB: %s\n", mib,
		       p == MAP_FAILED ? errname(errno) : "ok");
		fflush(stdout);
		_exit(0);
	}
	waitpid(pid, &st, 0);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && !strcmp(argv[1], "forkbomb"))
		forkbomb();
	else if (argc > 1 && !strcmp(argv[1], "allocate"))
		allocate();
	else if (argc > 2 && !strcmp(argv[1], "shared"))
		shared_out(atoi(argv[2]));
	else
		return 2;
	return 0;
}
