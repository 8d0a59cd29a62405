/*
 * signals: handlers and what they are told (SA_SIGINFO), blocked signals left
 * pending and delivered on unblock, SIGSEGV caught and left with siglongjmp,
 * blocking reads interrupted with EINTR or restarted with SA_RESTART, alarm
 * and interval timers, the alternate signal stack, and the one-shot and
 * re-entrant handler flags.
 */
#define _GNU_SOURCE
#include "scenario.h"
#include <setjmp.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

static void on(int sig, void (*fn)(int, siginfo_t *, void *), int flags)
{
	struct sigaction sa = { 0 };

	sa.sa_sigaction = fn;
	sa.sa_flags = SA_SIGINFO | flags;
	sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* --- what a handler is told --------------------------------------------- */

static volatile sig_atomic_t got_signo, got_code, got_count, got_value;
static volatile pid_t got_pid;
static volatile uid_t got_uid;

static void record(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	got_count++;
	got_signo = si->si_signo == sig ? sig : -1;
	got_code = si->si_code;
	got_pid = si->si_pid;
	got_uid = si->si_uid;
	got_value = si->si_value.sival_int;
}

static const char *codename(int code)
{
	switch (code) {
	case SI_USER: return "SI_USER";
	case SI_QUEUE: return "SI_QUEUE";
	case SI_TKILL: return "SI_TKILL";
	case SI_KERNEL: return "SI_KERNEL";
	}
	return "other";
}

static void report(const char *how)
{
	printf("%s: count %d signo %s code %s pid is getpid %s uid is getuid %s\n",
	       how, (int)got_count, signame(got_signo), codename(got_code),
	       got_pid == getpid() ? "yes" : "no", got_uid == getuid() ? "yes" : "no");
	got_count = 0;
}

static void siginfo(void)
{
	union sigval v = { .sival_int = 42 };

	on(SIGUSR1, record, 0);
	SHOW(kill(getpid(), SIGUSR1));
	report("kill");
	SHOW(syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR1));
	report("tgkill");
	SHOW(sigqueue(getpid(), SIGUSR1, v));
	report("sigqueue");
	printf("sival_int %d\n", (int)got_value);
	SHOW(raise(SIGUSR1));
	printf("raise: count %d code %s\n", (int)got_count, codename(got_code));
	got_count = 0;
	SHOW(kill(getpid(), 0));
	SHOW(kill(getpid(), 1000));
	printf("count after signal 0 and 1000: %d\n", (int)got_count);
}

/* --- blocked, pending, then delivered ------------------------------------- */

static volatile sig_atomic_t order[8], norder;

static void in_order(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	if (norder < 8)
		order[norder++] = sig;
}

static void show_pending(const char *label)
{
	sigset_t set;

	sigpending(&set);
	printf("%s: pending USR1 %d USR2 %d RTMIN %d TERM %d\n", label,
	       sigismember(&set, SIGUSR1), sigismember(&set, SIGUSR2),
	       sigismember(&set, SIGRTMIN), sigismember(&set, SIGTERM));
}

static void show_order(const char *label)
{
	int i;

	printf("%s: %d delivered:", label, (int)norder);
	for (i = 0; i < norder; i++)
		printf(" %s", signame(order[i]));
	printf("\n");
	norder = 0;
}

static void pending(void)
{
	sigset_t block, old;

	on(SIGUSR1, in_order, 0);
	on(SIGUSR2, in_order, 0);
	on(SIGRTMIN, in_order, 0);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGRTMIN);
	SHOW(sigprocmask(SIG_BLOCK, &block, &old));
	show_pending("nothing sent");

	/* Standard signals do not queue; real-time signals do. */
	kill(getpid(), SIGUSR2);
	kill(getpid(), SIGUSR2);
	kill(getpid(), SIGRTMIN);
	kill(getpid(), SIGRTMIN);
	kill(getpid(), SIGUSR1);
	show_order("while blocked");
	show_pending("sent USR2 twice, RTMIN twice, USR1");

	/* Unblocking delivers before sigprocmask returns, lowest number first. */
	SHOW(sigprocmask(SIG_SETMASK, &old, NULL));
	show_order("after unblock");
	show_pending("after unblock");

	/* An ignored signal stays pending while blocked, and is dropped when
	 * it is unblocked. */
	signal(SIGUSR2, SIG_IGN);
	sigprocmask(SIG_BLOCK, &block, NULL);
	kill(getpid(), SIGUSR2);
	show_pending("ignored USR2 while blocked");
	sigprocmask(SIG_UNBLOCK, &block, NULL);
	show_order("after unblocking the ignored one");

	/* sigwaitinfo takes a blocked signal without running the handler. */
	sigprocmask(SIG_BLOCK, &block, NULL);
	kill(getpid(), SIGUSR1);
	{
		siginfo_t si;
		int r = sigwaitinfo(&block, &si);

		printf("sigwaitinfo: %s code %s\n", signame(r), codename(si.si_code));
	}
	show_order("after sigwaitinfo");
	show_pending("after sigwaitinfo");
}

/* --- SIGSEGV and siglongjmp ------------------------------------------------ */

static sigjmp_buf env;
static volatile void *fault_addr;
static volatile int fault_code;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	fault_addr = si->si_addr;
	fault_code = si->si_code;
	siglongjmp(env, 1);
}

static void try_write(const char *label, volatile int *where)
{
	sigset_t mask;

	fault_addr = NULL;
	if (sigsetjmp(env, 1) == 0) {
		*where = 1;
		printf("%s: no fault\n", label);
	} else {
		printf("%s: recovered, si_addr is the address %s, code %s\n", label,
		       fault_addr == (void *)where ? "yes" : "no",
		       fault_code == SEGV_MAPERR ? "SEGV_MAPERR" :
		       fault_code == SEGV_ACCERR ? "SEGV_ACCERR" : "other");
	}
	sigprocmask(SIG_BLOCK, NULL, &mask);
	printf("%s: SIGSEGV blocked afterwards %d\n", label,
	       sigismember(&mask, SIGSEGV));
}

static void segv_longjmp(void)
{
	int *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	on(SIGSEGV, on_segv, 0);
	try_write("unmapped address", (volatile int *)bad_address());
	try_write("read-only page", ro);
	try_write("unmapped address again", (volatile int *)bad_address());
	SHOW(mprotect(ro, 4096, PROT_READ | PROT_WRITE));
	try_write("page made writable", ro);
	printf("value written: %d\n", *ro);
}

/* --- EINTR and SA_RESTART ------------------------------------------------- */

static int pfd[2];
static volatile sig_atomic_t handled;

static void feed_pipe(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)si;
	(void)uc;
	handled++;
	write(pfd[1], "x", 1);
}

static void read_after(const char *label)
{
	char c = 0;
	ssize_t r;

	handled = 0;
	errno = 0;
	r = read(pfd[0], &c, 1);
	printf("%s: read %zd %s handled %d\n", label, r, r < 0 ? errname(errno) : "",
	       (int)handled);
	if (r < 0) {
		r = read(pfd[0], &c, 1);
		printf("%s: next read %zd '%c'\n", label, r, c);
	}
}

static void eintr_restart(void)
{
	struct itimerval it = { { 0, 0 }, { 0, 50000 } };
	pid_t child;
	int st;

	pipe(pfd);

	/* The handler puts a byte in the pipe, so a restarted read finds it. */
	on(SIGALRM, feed_pipe, 0);
	SHOW(alarm(1));
	read_after("alarm, no SA_RESTART");

	on(SIGALRM, feed_pipe, SA_RESTART);
	SHOW(setitimer(ITIMER_REAL, &it, NULL));
	read_after("setitimer, SA_RESTART");

	/* The same with the signal sent by a child while we wait. */
	on(SIGUSR1, feed_pipe, 0);
	child = fork();
	if (child == 0) {
		wait_until_sleeping(getppid());
		kill(getppid(), SIGUSR1);
		_exit(0);
	}
	read_after("child's SIGUSR1, no SA_RESTART");
	waitpid(child, &st, 0);

	on(SIGUSR1, feed_pipe, SA_RESTART);
	child = fork();
	if (child == 0) {
		wait_until_sleeping(getppid());
		kill(getppid(), SIGUSR1);
		_exit(0);
	}
	read_after("child's SIGUSR1, SA_RESTART");
	waitpid(child, &st, 0);

	/* wait4 is restarted too; pause never is. */
	on(SIGUSR1, feed_pipe, SA_RESTART);
	child = fork();
	if (child == 0) {
		wait_until_sleeping(getppid());
		kill(getppid(), SIGUSR1);
		sleep_ms(100);
		_exit(3);
	}
	handled = 0;
	YESNO(waitpid(child, &st, 0) == child);
	printf("wait4 restarted: handled %d\n", (int)handled);
	show_status("child", st);
	read(pfd[0], &st, 1);
}

/* --- alarm and interval timers --------------------------------------------- */

static volatile sig_atomic_t ticks;

static void tick(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sig == SIGALRM && si->si_code == SI_KERNEL)
		ticks++;
	else
		ticks = -100;
}

static void timers(void)
{
	struct itimerval it = { { 0, 20000 }, { 0, 20000 } }, cur, old;
	volatile unsigned long spin = 0;
	long long loops = 0;

	on(SIGALRM, tick, 0);
	SHOW(alarm(5));
	SHOW(alarm(3));
	SHOW(getitimer(ITIMER_REAL, &cur));
	YESNO(cur.it_value.tv_sec == 2 || cur.it_value.tv_sec == 3);
	YESNO(cur.it_interval.tv_sec == 0 && cur.it_interval.tv_usec == 0);
	SHOW(alarm(0));
	SHOW(alarm(0));
	SHOW(getitimer(ITIMER_REAL, &cur));
	YESNO(cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0);

	/* A periodic timer keeps firing; pause() returns after each tick. */
	SHOW(setitimer(ITIMER_REAL, &it, NULL));
	while (ticks < 3)
		pause();
	printf("ticks >= 3: %s\n", ticks >= 3 ? "yes" : "no");
	SHOW(getitimer(ITIMER_REAL, &cur));
	YESNO(cur.it_interval.tv_usec == 20000);
	YESNO(cur.it_value.tv_usec <= 20000 && cur.it_value.tv_sec == 0);
	memset(&it, 0, sizeof(it));
	SHOW(setitimer(ITIMER_REAL, &it, &old));
	YESNO(old.it_interval.tv_usec == 20000);

	/* A timer interrupts a loop that makes no system calls. */
	ticks = 0;
	it.it_value.tv_usec = 30000;
	SHOW(setitimer(ITIMER_REAL, &it, NULL));
	while (!ticks)
		spin++, loops++;
	printf("loop interrupted: ticks %d\n", (int)ticks);

	/* Bad arguments. */
	SHOW(setitimer(ITIMER_REAL + 42, &it, NULL));
	it.it_value.tv_usec = 1000000;
	SHOW(setitimer(ITIMER_REAL, &it, NULL));

	/* Unhandled SIGALRM ends the process; the timer is not inherited. */
	it.it_value.tv_sec = 10;
	it.it_value.tv_usec = 0;
	SHOW(setitimer(ITIMER_REAL, &it, NULL));
	if (fork() == 0) {
		SHOW(getitimer(ITIMER_REAL, &cur));
		YESNO(cur.it_value.tv_sec == 0 && cur.it_value.tv_usec == 0);
		signal(SIGALRM, SIG_DFL);
		it.it_value.tv_sec = 0;
		it.it_value.tv_usec = 20000;
		setitimer(ITIMER_REAL, &it, NULL);
		pause();
		_exit(0);
	}
	{
		int st;

		wait(&st);
		show_status("child with its own timer", st);
	}
	SHOW(alarm(0));

	/* A timer set by a process that then never makes a system call. */
	if (fork() == 0) {
		signal(SIGALRM, SIG_DFL);
		it.it_value.tv_sec = 0;
		it.it_value.tv_usec = 30000;
		setitimer(ITIMER_REAL, &it, NULL);
		for (;;)
			spin++;
	}
	{
		int st;

		wait(&st);
		show_status("child spinning after setitimer", st);
	}
}

/* --- the alternate signal stack ------------------------------------------- */

static char altstack[65536] __attribute__((aligned(16)));
static volatile int on_alt, ss_flags_seen;
static volatile sig_atomic_t depth;

static void where_am_i(int sig, siginfo_t *si, void *uc)
{
	char local;
	stack_t now;

	(void)sig;
	(void)si;
	(void)uc;
	on_alt = &local >= altstack && &local < altstack + sizeof(altstack);
	sigaltstack(NULL, &now);
	ss_flags_seen = now.ss_flags;
}

static void overflow_handler(int sig, siginfo_t *si, void *uc)
{
	char local;

	(void)si;
	(void)uc;
	on_alt = &local >= altstack && &local < altstack + sizeof(altstack);
	fault_code = sig;
	siglongjmp(env, 1);
}

static int recurse(int n)
{
	volatile char pad[4096];

	pad[0] = n;
	depth++;
	return recurse(n + 1) + pad[0];
}

static void sigaltstack_onstack(void)
{
	stack_t ss = { 0 }, old;

	SHOW(sigaltstack(NULL, &old));
	printf("initially disabled: %s\n", old.ss_flags == SS_DISABLE ? "yes" : "no");
	ss.ss_sp = altstack;
	ss.ss_size = sizeof(altstack);
	SHOW(sigaltstack(&ss, NULL));
	SHOW(sigaltstack(NULL, &old));
	printf("flags %d size ok %s\n", old.ss_flags,
	       old.ss_size == sizeof(altstack) ? "yes" : "no");

	on(SIGUSR1, where_am_i, SA_ONSTACK);
	raise(SIGUSR1);
	printf("SA_ONSTACK handler on the alternate stack: %d, SS_ONSTACK %d\n",
	       on_alt, ss_flags_seen & SS_ONSTACK ? 1 : 0);
	on(SIGUSR2, where_am_i, 0);
	raise(SIGUSR2);
	printf("plain handler on the alternate stack: %d, SS_ONSTACK %d\n", on_alt,
	       ss_flags_seen & SS_ONSTACK ? 1 : 0);

	/* The classic use: survive a stack overflow. */
	on(SIGSEGV, overflow_handler, SA_ONSTACK);
	if (sigsetjmp(env, 1) == 0) {
		recurse(0);
		printf("no overflow?\n");
	} else {
		printf("overflow caught: %s, on the alternate stack: %d\n",
		       signame(fault_code), on_alt);
	}
	printf("deep recursion happened: %s\n", depth > 100 ? "yes" : "no");

	/* Too small a stack; unknown flags. */
	ss.ss_size = 100;
	SHOW(sigaltstack(&ss, NULL));
	ss.ss_size = sizeof(altstack);
	ss.ss_flags = 12345;
	SHOW(sigaltstack(&ss, NULL));
	ss.ss_flags = SS_DISABLE;
	SHOW(sigaltstack(&ss, NULL));
	SHOW(sigaltstack(NULL, &old));
	printf("disabled again: %s\n", old.ss_flags == SS_DISABLE ? "yes" : "no");
}

/* --- SA_RESETHAND and SA_NODEFER ------------------------------------------ */

static volatile sig_atomic_t nesting, max_nesting, calls;

/* Raises its own signal until it has run three times. */
static void nest(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	nesting++;
	calls++;
	if (nesting > max_nesting)
		max_nesting = nesting;
	if (calls < 3)
		raise(sig);
	nesting--;
}

static void handler_flags(void)
{
	struct sigaction cur;
	int st;

	on(SIGUSR1, nest, 0);
	raise(SIGUSR1);
	printf("without SA_NODEFER: ran %d, deepest nesting %d\n", (int)calls,
	       (int)max_nesting);
	max_nesting = calls = 0;
	on(SIGUSR1, nest, SA_NODEFER);
	raise(SIGUSR1);
	printf("with SA_NODEFER: ran %d, deepest nesting %d\n", (int)calls,
	       (int)max_nesting);

	on(SIGUSR2, record, SA_RESETHAND);
	got_count = 0;
	raise(SIGUSR2);
	sigaction(SIGUSR2, NULL, &cur);
	printf("SA_RESETHAND: ran %d, now default %s\n", (int)got_count,
	       cur.sa_handler == SIG_DFL ? "yes" : "no");
	if (fork() == 0) {
		on(SIGUSR2, record, SA_RESETHAND);
		raise(SIGUSR2);
		raise(SIGUSR2);
		_exit(0);
	}
	wait(&st);
	show_status("second SIGUSR2 after SA_RESETHAND", st);
}

/* A handler that clobbers the x87 and SSE state: fninit empties the x87
 * stack and resets the control word, and xmm0 changes. */
static void clobber_fpu(int signo)
{
	(void)signo;
	__asm__ volatile("fninit\n\tfld1\n\tfldz\n\tfaddp\n\tfstp %%st(0)\n\t"
			 "pcmpeqd %%xmm0, %%xmm0" ::: "memory", "xmm0");
}

static void fpu_state_survives_a_handler(void)
{
	struct sigaction sa;
	unsigned short cw = 0x77f, cw_after = 0;
	long double pi = 0, two = 0;
	double kept = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = clobber_fpu;
	sigaction(SIGUSR1, &sa, NULL);
	/* Two values on the x87 stack, a changed control word and a value in
	 * xmm0, all live across the kill() whose return delivers the signal. */
	__asm__ volatile(
		"fldcw %[cw]\n\t"
		"fld1\n\tfld1\n\tfaddp\n\t"
		"fldpi\n\t"
		"movsd %[half], %%xmm0\n\t"
		"mov $62, %%eax\n\t"          /* kill(getpid(), SIGUSR1) */
		"mov %[pid], %%edi\n\t"
		"mov $10, %%esi\n\t"
		"syscall\n\t"
		"fstpt %[pi]\n\t"
		"fstpt %[two]\n\t"
		"fnstcw %[cw_after]\n\t"
		"movsd %%xmm0, %[kept]"
		: [pi] "=m"(pi), [two] "=m"(two), [cw_after] "=m"(cw_after), [kept] "=m"(kept)
		: [cw] "m"(cw), [half] "m"((double){0.5}), [pid] "r"((int)getpid())
		: "rax", "rdi", "rsi", "rcx", "r11", "xmm0", "memory");
	printf("x87 ST0: %.18Lf\n", pi);
	printf("x87 ST1: %.18Lf\n", two);
	printf("control word: %#x\n", cw_after);
	printf("xmm0: %g\n", kept);
	cw = 0x37f;
	__asm__ volatile("fldcw %0" :: "m"(cw));
}

static const struct scenario scenarios[] = {
	{ "siginfo", siginfo },
	{ "pending", pending },
	{ "segv_longjmp", segv_longjmp },
	{ "eintr_restart", eintr_restart },
	{ "timers", timers },
	{ "sigaltstack_onstack", sigaltstack_onstack },
	{ "handler_flags", handler_flags },
	{ "fpu_state_survives_a_handler", fpu_state_survives_a_handler },
	{ NULL, NULL },
};

int main(int argc, char **argv)
{
	return run_scenarios(scenarios, argc, argv);
}
