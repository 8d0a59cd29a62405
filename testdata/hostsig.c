/*
 * Signals from outside: prints whether SIGHUP was inherited ignored, then
 * waits for three signals. With "catch" it handles SIGINT, SIGTERM and
 * SIGUSR1 and prints each one; without, the default actions apply.
 *
 * The signals are blocked except inside sigsuspend(), so one that arrives
 * early waits there instead of being taken before the program sleeps, and
 * the line for a signal is printed after sigsuspend() returned, with the
 * signals blocked again: each wait takes exactly one signal, natively and
 * sandboxed alike, as long as the sender waits for that line.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t last;

static void on_signal(int signo)
{
	last = signo;
}

int main(int argc, char **argv)
{
	struct sigaction old;
	sigset_t waited, during;

	sigaction(SIGHUP, NULL, &old);
	printf("SIGHUP ignored: %s\n", old.sa_handler == SIG_IGN ? "yes" : "no");
	if (argc > 1 && !strcmp(argv[1], "catch")) {
		signal(SIGINT, on_signal);
		signal(SIGTERM, on_signal);
		signal(SIGUSR1, on_signal);
	}
	sigemptyset(&waited);
	sigaddset(&waited, SIGINT);
	sigaddset(&waited, SIGTERM);
	sigaddset(&waited, SIGUSR1);
	sigaddset(&waited, SIGHUP);
	sigprocmask(SIG_BLOCK, &waited, &during);
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < 3; i++) {
		sigsuspend(&during);
		printf("caught %d\n", (int)last);
		fflush(stdout);
	}
	printf("done\n");
	return 0;
}
