/*
 * strace_calls: make a fixed series of system calls whose trace lines are
 * known in advance, for the tracer's tests. argv[1] is a path in a writable
 * directory; with "unknown" as argv[2], syscall 335 (which no kernel has) is
 * made too. Most calls go through syscall(2) so the C library cannot change
 * which call is made or how its arguments look. Exits with status 3.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static const char long_line[] = "0123456789abcdefghijklmnopqrstuvwxyz\n";
static const char odd_bytes[] = { 't', '\t', '"', '\\', 1, 0, '7', '\n' };

int main(int argc, char **argv)
{
	char buf[64];
	struct stat st;
	struct timespec ts = { 0, 1000 };
	struct utsname uts;
	struct iovec iov[2] = { { "ab", 2 }, { "cd\n", 3 } };
	struct pollfd pfd;
	int pipefd[2], sv[2];
	long fd;
	struct msghdr msg;
	struct mmsghdr mmsg[2], rmsg[3];
	struct iovec riov[3];
	char rbuf[3][16];

	if (argc < 2)
		return 100;

	/* Writes: a short string, a long one, bytes that need escapes. */
	syscall(SYS_write, 1, "hello\n", 6);
	syscall(SYS_write, 1, long_line, sizeof(long_line) - 1);
	syscall(SYS_write, 1, odd_bytes, sizeof(odd_bytes));
	syscall(SYS_writev, 1, iov, 2);

	/* Failures: a missing file, a bad pointer, a syscall nobody has. */
	syscall(SYS_openat, AT_FDCWD, "/nonexistent/strace", O_RDONLY);
	syscall(SYS_openat, AT_FDCWD, (char *)8, O_RDONLY);
	if (argc > 2 && strcmp(argv[2], "unknown") == 0)
		syscall(335, 1, 2, 3);

	/* A file written, then read back and looked at. */
	fd = syscall(SYS_openat, AT_FDCWD, argv[1],
		     O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	syscall(SYS_write, fd, "data", 4);
	syscall(SYS_close, fd);
	fd = syscall(SYS_openat, AT_FDCWD, argv[1], O_RDONLY);
	syscall(SYS_read, fd, buf, sizeof(buf));
	syscall(SYS_fstat, fd, &st);
	syscall(SYS_close, fd);

	/* Descriptors, memory, time and the system. */
	syscall(SYS_pipe2, pipefd, O_CLOEXEC);
	pfd.fd = pipefd[1];
	pfd.events = POLLOUT;
	syscall(SYS_poll, &pfd, 1, 0);
	syscall(SYS_mmap, NULL, 8192, PROT_READ | PROT_WRITE,
		MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	syscall(SYS_nanosleep, &ts, NULL);
	syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
	syscall(SYS_uname, &uts);
	syscall(SYS_kill, 0, 0);

	/* Messages over a datagram socket pair, one and several at a time. */
	syscall(SYS_socketpair, AF_UNIX, SOCK_DGRAM, 0, sv);
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = iov;
	msg.msg_iovlen = 2;
	syscall(SYS_sendmsg, sv[0], &msg, 0);
	memset(mmsg, 0, sizeof(mmsg));
	mmsg[0].msg_hdr.msg_iov = &iov[0];
	mmsg[0].msg_hdr.msg_iovlen = 1;
	mmsg[1].msg_hdr.msg_iov = &iov[1];
	mmsg[1].msg_hdr.msg_iovlen = 1;
	syscall(SYS_sendmmsg, sv[0], mmsg, 2, 0);
	memset(rmsg, 0, sizeof(rmsg));
	for (int i = 0; i < 3; i++) {
		rmsg[i].msg_hdr.msg_iov = &riov[i];
		rmsg[i].msg_hdr.msg_iovlen = 1;
		riov[i].iov_base = rbuf[i];
		riov[i].iov_len = sizeof(rbuf[i]);
	}
	syscall(SYS_recvmmsg, sv[1], rmsg, 3, MSG_DONTWAIT, NULL);
	syscall(SYS_exit_group, 3);
	return 100;
}
