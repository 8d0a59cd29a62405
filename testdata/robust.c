/*
 * Robust mutexes: a lock held by a thread or a process that dies is handed
 * to the next locker with EOWNERDEAD, which the kernel makes possible by
 * walking the dead thread's robust list (set_robust_list).
 */
#define _GNU_SOURCE
#include "scenario.h"
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>

static pthread_mutex_t *new_robust(int pshared)
{
	pthread_mutexattr_t attr;
	pthread_mutex_t *m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	if (pshared)
		pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(m, &attr);
	return m;
}

static pthread_mutex_t *held;

static void *lock_and_exit(void *arg)
{
	(void)arg;
	pthread_mutex_lock(held);
	return NULL; /* ends holding the lock */
}

static void lock_then(const char *who)
{
	int err = pthread_mutex_lock(held);

	printf("%s: lock: %s\n", who, err ? errname(err) : "ok");
	if (err == EOWNERDEAD) {
		printf("%s: consistent: %s\n", who,
		       pthread_mutex_consistent(held) ? "failed" : "ok");
	}
	printf("%s: unlock: %s\n", who, pthread_mutex_unlock(held) ? "failed" : "ok");
	printf("%s: lock again: %s\n", who, pthread_mutex_lock(held) ? "failed" : "ok");
	pthread_mutex_unlock(held);
}

static void thread_dies_holding(void)
{
	pthread_t th;

	held = new_robust(0);
	pthread_create(&th, NULL, lock_and_exit, NULL);
	pthread_join(th, NULL);
	lock_then("after the thread died");
}

static void *wait_for_lock(void *arg)
{
	(void)arg;
	lock_then("waiting thread");
	return NULL;
}

static void waiter_is_woken(void)
{
	int go[2];
	char c;
	pid_t pid;
	pthread_t th;

	held = new_robust(1);
	if (pipe(go))
		return;
	pid = fork();
	if (pid == 0) {
		pthread_mutex_lock(held);
		write(go[1], "l", 1);
		usleep(100000);
		_exit(0); /* dies holding the lock; a waiter sleeps on it */
	}
	read(go[0], &c, 1);
	pthread_create(&th, NULL, wait_for_lock, NULL);
	pthread_join(th, NULL);
	waitpid(pid, NULL, 0);
}

static void process_dies_holding(void)
{
	pid_t pid;
	int st;

	held = new_robust(1);
	pid = fork();
	if (pid == 0) {
		pthread_mutex_lock(held);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	lock_then("after the process died");
}

static const struct scenario scenarios[] = {
	{ "thread_dies_holding", thread_dies_holding },
	{ "waiter_is_woken", waiter_is_woken },
	{ "process_dies_holding", process_dies_holding },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	return run_scenarios(scenarios, argc, argv);
}
