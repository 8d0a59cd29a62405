/*
 * Job control on a terminal: the program is a session leader with a
 * terminal on stdin (the test gives it a pty), and treats a child in a
 * process group of its own as a shell treats a job: the child reads in the
 * background and stops, the program gives it the terminal and continues
 * it, then takes the terminal back.
 *
 * The test writes "hello\n" to the terminal before starting the program.
 */
#define _GNU_SOURCE
#include "scenario.h"
#include <fcntl.h>
#include <string.h>
#include <termios.h>

int main(void)
{
	pid_t me = getpid(), child;
	char buf[64];
	ssize_t n;
	int st;
	sigset_t ttou;

	setvbuf(stdout, NULL, _IONBF, 0);
	printf("in the foreground: %s\n", tcgetpgrp(0) == getpgrp() ? "yes" : "no");
	printf("session of the terminal is ours: %s\n", tcgetsid(0) == getsid(0) ? "yes" : "no");

	/* Like a shell, take the terminal back with SIGTTOU blocked. */
	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	sigprocmask(SIG_BLOCK, &ttou, NULL);

	child = fork();
	if (child == 0) {
		sigprocmask(SIG_UNBLOCK, &ttou, NULL);
		setpgid(0, 0);
		/* In the background: SIGTTIN stops us until we are continued. */
		n = read(0, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = 0;
		printf("child read: %s", n > 0 ? buf : "nothing\n");
		printf("child in the foreground: %s\n",
		       tcgetpgrp(0) == getpgrp() ? "yes" : "no");
		_exit(0);
	}
	setpgid(child, child);
	waitpid(child, &st, WUNTRACED);
	show_status("background reader", st);
	printf("tcsetpgrp to the child's group: %s\n",
	       tcsetpgrp(0, child) ? errname(errno) : "ok");
	kill(child, SIGCONT);
	waitpid(child, &st, 0);
	show_status("child", st);
	printf("we are in the background: %s\n", tcgetpgrp(0) != getpgrp() ? "yes" : "no");
	printf("tcsetpgrp back, SIGTTOU blocked: %s\n",
	       tcsetpgrp(0, me) ? errname(errno) : "ok");
	printf("back in the foreground: %s\n", tcgetpgrp(0) == getpgrp() ? "yes" : "no");

	/* A background reader that ignores SIGTTIN gets EIO instead. */
	child = fork();
	if (child == 0) {
		setpgid(0, 0);
		signal(SIGTTIN, SIG_IGN);
		n = read(0, buf, sizeof(buf));
		printf("background read ignoring SIGTTIN: %s\n", n < 0 ? errname(errno) : "data");
		_exit(0);
	}
	setpgid(child, child);
	waitpid(child, &st, 0);
	show_status("second child", st);
	printf("tcsetpgrp to a group of no process: %s\n",
	       tcsetpgrp(0, 999999) ? errname(errno) : "ok");
	return 0;
}
