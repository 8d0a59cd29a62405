/*
 * threads: pthreads sharing one address space. A mutex-protected counter and
 * __thread counters (four threads, exact totals), a condition-variable queue,
 * joins with return values, thread ids, a thread that spins without system
 * calls and must not starve the others, signals to one thread, and exit from
 * a thread while others run.
 */
#define _GNU_SOURCE
#include "scenario.h"
#include <pthread.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>

#define THREADS 4
#define ROUNDS 20000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long shared_counter;
static __thread long tls_counter = 100;
static __thread char tls_name[16];

static void *count(void *arg)
{
	long id = (long)arg, i;

	snprintf(tls_name, sizeof(tls_name), "worker %ld", id);
	for (i = 0; i < ROUNDS; i++) {
		pthread_mutex_lock(&lock);
		shared_counter++;
		pthread_mutex_unlock(&lock);
		tls_counter++;
	}
	return (void *)(tls_counter * 10 + id);
}

static void mutex_tls(void)
{
	pthread_t th[THREADS];
	void *ret;
	long i;

	for (i = 0; i < THREADS; i++)
		SHOW(pthread_create(&th[i], NULL, count, (void *)i));
	for (i = 0; i < THREADS; i++) {
		SHOW(pthread_join(th[i], &ret));
		printf("thread %ld returned %ld\n", i, (long)ret);
	}
	printf("shared counter %ld (expected %d)\n", shared_counter, THREADS * ROUNDS);
	printf("main's tls counter %ld, name '%s'\n", tls_counter, tls_name);
}

/* A bounded queue: producers wait while full, consumers while empty. */
#define QSIZE 4
#define ITEMS 200

static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static int queue[QSIZE], qhead, qlen;

static void put(int v)
{
	pthread_mutex_lock(&qlock);
	while (qlen == QSIZE)
		pthread_cond_wait(&not_full, &qlock);
	queue[(qhead + qlen++) % QSIZE] = v;
	pthread_cond_signal(&not_empty);
	pthread_mutex_unlock(&qlock);
}

static int get(void)
{
	int v;

	pthread_mutex_lock(&qlock);
	while (qlen == 0)
		pthread_cond_wait(&not_empty, &qlock);
	v = queue[qhead];
	qhead = (qhead + 1) % QSIZE;
	qlen--;
	pthread_cond_signal(&not_full);
	pthread_mutex_unlock(&qlock);
	return v;
}

static void *consume(void *arg)
{
	long sum = 0, n = 0;
	int v;

	(void)arg;
	while ((v = get()) >= 0) {
		sum += v;
		n++;
	}
	return (void *)(sum * 1000 + n);
}

static void condvar(void)
{
	pthread_t th[THREADS];
	long sum = 0, n = 0;
	void *ret;
	int i;

	for (i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, consume, NULL);
	for (i = 1; i <= ITEMS; i++)
		put(i);
	for (i = 0; i < THREADS; i++)
		put(-1);
	for (i = 0; i < THREADS; i++) {
		pthread_join(th[i], &ret);
		sum += (long)ret / 1000;
		n += (long)ret % 1000;
	}
	printf("consumed %ld items, sum %ld (expected %d)\n", n, sum,
	       ITEMS * (ITEMS + 1) / 2);

	/* A timed wait that nobody signals times out. */
	{
		struct timespec ts;
		int r;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_mutex_lock(&qlock);
		r = pthread_cond_timedwait(&not_empty, &qlock, &ts);
		pthread_mutex_unlock(&qlock);
		printf("timedwait: %s\n", errname(r));
	}
}

static pid_t tids[THREADS];

static void *who(void *arg)
{
	tids[(long)arg] = syscall(SYS_gettid);
	return NULL;
}

static void ids(void)
{
	pthread_t th[THREADS];
	int i, j, distinct = 1;

	for (i = 0; i < THREADS; i++)
		pthread_create(&th[i], NULL, who, (void *)(long)i);
	for (i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	for (i = 0; i < THREADS; i++) {
		distinct &= tids[i] != getpid();
		for (j = 0; j < i; j++)
			distinct &= tids[i] != tids[j];
	}
	printf("thread ids distinct from each other and from the pid: %s\n",
	       distinct ? "yes" : "no");
	YESNO(syscall(SYS_gettid) == getpid());
}

/* --- a thread that never makes a system call ------------------------------ */

static volatile int stop_spinning;
static volatile unsigned long spins;

static void *spin(void *arg)
{
	(void)arg;
	while (!stop_spinning)
		spins++;
	return NULL;
}

static void spinner(void)
{
	struct timespec ms = { 0, 10000000 };
	pthread_t sp, th[2];
	void *ret;

	SHOW(pthread_create(&sp, NULL, spin, NULL));

	/* Sleeping, a mutex and condition-variable queue, and joins all make
	 * progress while the spinner runs. */
	SHOW(nanosleep(&ms, NULL));
	pthread_create(&th[0], NULL, consume, NULL);
	pthread_create(&th[1], NULL, consume, NULL);
	for (int i = 1; i <= 50; i++)
		put(i);
	put(-1);
	put(-1);
	pthread_join(th[0], &ret);
	pthread_join(th[1], NULL);
	stop_spinning = 1;
	SHOW(pthread_join(sp, NULL));
	printf("spinner ran: %s\n", spins > 0 ? "yes" : "no");
}

/* --- signals and threads -------------------------------------------------- */

static volatile pid_t handled_by;

static void note_thread(int sig)
{
	(void)sig;
	handled_by = syscall(SYS_gettid);
}

static pthread_barrier_t barrier;

static void *target(void *arg)
{
	sigset_t none;

	(void)arg;
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);
	tids[1] = syscall(SYS_gettid);
	pthread_barrier_wait(&barrier);
	while (!handled_by) {
		struct timespec ms = { 0, 1000000 };

		nanosleep(&ms, NULL);
	}
	return NULL;
}

static void thread_signals(void)
{
	sigset_t usr1;
	pthread_t th;

	signal(SIGUSR1, note_thread);
	pthread_barrier_init(&barrier, NULL, 2);

	/* A process-directed signal goes to the thread that does not block it. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);
	pthread_create(&th, NULL, target, NULL);
	pthread_barrier_wait(&barrier);
	kill(getpid(), SIGUSR1);
	pthread_join(th, NULL);
	printf("kill: handled by the unblocked thread: %s\n",
	       handled_by == tids[1] ? "yes" : "no");

	/* pthread_kill picks the thread. */
	handled_by = 0;
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	pthread_kill(pthread_self(), SIGUSR1);
	printf("pthread_kill: handled by the main thread: %s\n",
	       handled_by == getpid() ? "yes" : "no");
}

/* --- ending threads ------------------------------------------------------- */

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static void *exit_early(void *arg)
{
	(void)arg;
	pthread_exit((void *)7);
}

static void *exit_later(void *arg)
{
	struct timespec ms = { 0, 10000000 };

	(void)arg;
	nanosleep(&ms, NULL);
	exit(4);
}

static void thread_exit(void)
{
	pthread_t th;
	void *ret;
	int st;

	pthread_create(&th, NULL, exit_early, NULL);
	pthread_join(th, &ret);
	printf("pthread_exit value %ld\n", (long)ret);

	/* exit() from one thread ends the process while others sleep. */
	if (fork() == 0) {
		pthread_create(&th, NULL, sleeper, NULL);
		pthread_create(&th, NULL, sleeper, NULL);
		exit(9);
	}
	wait(&st);
	show_status("process whose threads sleep", st);

	/* The main thread leaves with pthread_exit; the process lives on until
	 * another thread ends it. */
	if (fork() == 0) {
		pthread_create(&th, NULL, exit_later, NULL);
		pthread_exit(NULL);
	}
	wait(&st);
	show_status("process whose main thread left first", st);
}

static const struct scenario scenarios[] = {
	{ "mutex_tls", mutex_tls },
	{ "condvar", condvar },
	{ "ids", ids },
	{ "spinner", spinner },
	{ "thread_signals", thread_signals },
	{ "thread_exit", thread_exit },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	return run_scenarios(scenarios, argc, argv);
}
