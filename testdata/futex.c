/*
 * futex: the checks futex(2) makes before it waits, timeouts, WAKE_OP,
 * priority-inheritance locks held by this thread, and a wait another thread
 * ends with a wake.
 */
#define _GNU_SOURCE
#include "check.h"
#include <pthread.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The futex(2) ABI (linux/futex.h), which not every libc installs. */
#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_REQUEUE 3
#define FUTEX_CMP_REQUEUE 4
#define FUTEX_WAKE_OP 5
#define FUTEX_LOCK_PI 6
#define FUTEX_UNLOCK_PI 7
#define FUTEX_TRYLOCK_PI 8
#define FUTEX_WAIT_BITSET 9
#define FUTEX_WAKE_BITSET 10
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_CLOCK_REALTIME 256
#define FUTEX_WAIT_PRIVATE (FUTEX_WAIT | FUTEX_PRIVATE_FLAG)
#define FUTEX_WAKE_PRIVATE (FUTEX_WAKE | FUTEX_PRIVATE_FLAG)
#define FUTEX_WAIT_BITSET_PRIVATE (FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG)
#define FUTEX_BITSET_MATCH_ANY 0xffffffff
#define FUTEX_TID_MASK 0x3fffffff
#define FUTEX_OP_ADD 1
#define FUTEX_OP_OR 2
#define FUTEX_OP_OPARG_SHIFT 8
#define FUTEX_OP_CMP_EQ 0
#define FUTEX_OP(op, oparg, cmp, cmparg) \
	((((op) & 0xf) << 28) | (((cmp) & 0xf) << 24) | \
	 (((oparg) & 0xfff) << 12) | ((cmparg) & 0xfff))

static long fx(uint32_t *uaddr, int op, uint32_t val, const struct timespec *ts,
	       uint32_t *uaddr2, uint32_t val3)
{
	return syscall(SYS_futex, uaddr, op, val, ts, uaddr2, val3);
}

static uint32_t word, other;

/* Change the word, then wake whoever waits for the change. */
static void *waker(void *arg)
{
	(void)arg;
	__atomic_store_n(&word, 1, __ATOMIC_SEQ_CST);
	fx(&word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	return NULL;
}

int main(void)
{
	struct timespec rel = { 0, 20 * 1000 * 1000 }, abs;
	uint32_t pi = 0;
	pthread_t th;

	printf("== checks before waiting\n");
	SHOW(fx(&word, FUTEX_WAIT, 1, NULL, NULL, 0));
	SHOW(fx((uint32_t *)((char *)&word + 1), FUTEX_WAIT, 0, NULL, NULL, 0));
	SHOW(fx(&word, FUTEX_WAIT_BITSET, 0, NULL, NULL, 0));
	SHOW(fx(&word, FUTEX_WAKE | FUTEX_CLOCK_REALTIME, 1, NULL, NULL, 0));
	SHOW(fx(bad_address(), FUTEX_WAIT, 0, NULL, NULL, 0));
	SHOW(fx(&word, 99, 0, NULL, NULL, 0));

	printf("== timeouts\n");
	SHOW(fx(&word, FUTEX_WAIT_PRIVATE, 0, &rel, NULL, 0));
	clock_gettime(CLOCK_MONOTONIC, &abs);
	abs.tv_nsec = (abs.tv_nsec + 20 * 1000 * 1000) % 1000000000;
	abs.tv_sec += 1;
	SHOW(fx(&word, FUTEX_WAIT_BITSET_PRIVATE, 0, &abs, NULL, FUTEX_BITSET_MATCH_ANY));
	clock_gettime(CLOCK_REALTIME, &abs);
	SHOW(fx(&word, FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME, 0, &abs, NULL,
		FUTEX_BITSET_MATCH_ANY));
	rel.tv_nsec = -1;
	SHOW(fx(&word, FUTEX_WAIT, 0, &rel, NULL, 0));

	printf("== wakes with nobody waiting\n");
	SHOW(fx(&word, FUTEX_WAKE, 1, NULL, NULL, 0));
	SHOW(fx(&word, FUTEX_WAKE_BITSET, 1, NULL, NULL, 0));
	other = 5;
	SHOW(fx(&word, FUTEX_WAKE_OP, 1, NULL, &other,
		FUTEX_OP(FUTEX_OP_ADD, 3, FUTEX_OP_CMP_EQ, 5)));
	printf("other after WAKE_OP add 3: %u\n", other);
	SHOW(fx(&word, FUTEX_WAKE_OP, 1, NULL, &other,
		FUTEX_OP((FUTEX_OP_OPARG_SHIFT | FUTEX_OP_OR), 4, FUTEX_OP_CMP_EQ, 0)));
	printf("other after WAKE_OP or 1<<4: %u\n", other);
	SHOW(fx(&word, FUTEX_WAKE_OP, 1, NULL, &other, FUTEX_OP(7, 0, 0, 0)));
	SHOW(fx(&word, FUTEX_CMP_REQUEUE, 1, (void *)1, &other, 1));
	SHOW(fx(&word, FUTEX_CMP_REQUEUE, 1, (void *)1, &other, 0));
	SHOW(fx(&word, FUTEX_REQUEUE, 1, (void *)1, &other, 0));

	printf("== priority-inheritance locks\n");
	SHOW(fx(&pi, FUTEX_LOCK_PI, 0, NULL, NULL, 0));
	printf("owner is us: %s\n", (pi & FUTEX_TID_MASK) == (uint32_t)syscall(SYS_gettid) ?
	       "yes" : "no");
	SHOW(fx(&pi, FUTEX_LOCK_PI, 0, NULL, NULL, 0));
	SHOW(fx(&pi, FUTEX_TRYLOCK_PI, 0, NULL, NULL, 0));
	SHOW(fx(&pi, FUTEX_UNLOCK_PI, 0, NULL, NULL, 0));
	printf("word after unlock: %u\n", pi);
	SHOW(fx(&pi, FUTEX_UNLOCK_PI, 0, NULL, NULL, 0));
	pi = 0x3ffffff0;
	SHOW(fx(&pi, FUTEX_LOCK_PI, 0, NULL, NULL, 0));

	printf("== another thread wakes\n");
	word = 0;
	SHOW(pthread_create(&th, NULL, waker, NULL));
	while (__atomic_load_n(&word, __ATOMIC_SEQ_CST) == 0)
		fx(&word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	printf("main saw the word change: yes\n");
	SHOW(pthread_join(th, NULL));
	return 0;
}
