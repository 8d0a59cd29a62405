/*
 * fds: the descriptor table and the objects behind it. dup/dup2/dup3, fcntl,
 * record locks, close_range, sendfile, copy_file_range, the /dev/null,
 * /dev/zero and /dev/full devices, and ioctl on things that are not terminals.
 *
 * Descriptor numbers are printed on purpose: the lowest free number rule is
 * part of the contract. Standard input, output and error are assumed open.
 */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#define FLBITS (O_ACCMODE | O_APPEND | O_NONBLOCK)

static void lock(const char *label, int fd, int cmd, short type, off_t start)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
			    .l_start = start, .l_len = 10 };
	int r = fcntl(fd, cmd, &fl);
	int e = errno;

	if (r < 0)
		printf("%s: -1 %s\n", label, errname(e));
	else if (cmd == F_GETLK || cmd == F_OFD_GETLK)
		printf("%s: type %s start %ld len %ld\n", label,
		       fl.l_type == F_UNLCK ? "F_UNLCK" :
		       fl.l_type == F_WRLCK ? "F_WRLCK" : "F_RDLCK",
		       (long)fl.l_start, (long)fl.l_len);
	else
		printf("%s: 0\n", label);
}

int main(void)
{
	char path[] = "/tmp/pysentry-fds-XXXXXX", buf[256];
	char path2[] = "/tmp/pysentry-fds-XXXXXX";
	int fd, fd2, p[2], src, dst;
	off_t off, off2;

	if ((fd = mkstemp(path)) < 0)
		return 100;
	close(fd);

	printf("== dup, dup2, dup3\n");
	SHOW(fd = open(path, O_RDWR));
	SHOW(fd2 = dup(fd));
	SHOW(write(fd, "shared offset", 13));
	SHOW(lseek(fd2, 0, SEEK_CUR));
	SHOW(close(fd2));
	SHOW(dup(fd));
	SHOW(dup2(fd, 10));
	SHOW(dup2(fd, fd));
	SHOW(dup2(99, 11));
	SHOW(dup2(fd, -1));
	SHOW(fcntl(10, F_GETFD));
	SHOW(dup3(fd, 11, O_CLOEXEC));
	SHOW(fcntl(11, F_GETFD));
	SHOW(syscall(SYS_dup3, fd, fd, 0));
	SHOW(syscall(SYS_dup3, fd, 12, 0x40000000));
	SHOW(close(10));
	SHOW(close(11));
	SHOW(close(4));

	printf("== fcntl\n");
	SHOW(fcntl(fd, F_DUPFD, 20));
	SHOW(fcntl(20, F_GETFD));
	SHOW(fcntl(fd, F_DUPFD_CLOEXEC, 20));
	SHOW(fcntl(21, F_GETFD));
	SHOW(fcntl(21, F_SETFD, 0));
	SHOW(fcntl(21, F_GETFD));
	SHOW(fcntl(fd, F_DUPFD, -1));
	SHOW(fcntl(fd, F_GETFL) & FLBITS);
	SHOW(fcntl(fd, F_SETFL, O_APPEND | O_NONBLOCK | O_RDONLY));
	SHOW(fcntl(fd, F_GETFL) & FLBITS);
	SHOW(fcntl(20, F_GETFL) & FLBITS);
	SHOW(fcntl(fd, F_SETFL, 0));
	SHOW(fcntl(99, F_GETFD));
	SHOW(fcntl(fd, 9999));
	SHOW(close(20));
	SHOW(close(21));

	printf("== record locks\n");
	lock("F_SETLK write", fd, F_SETLK, F_WRLCK, 0);
	lock("F_GETLK own lock", fd, F_GETLK, F_WRLCK, 0);
	lock("F_SETLK unlock", fd, F_SETLK, F_UNLCK, 0);
	lock("F_SETLK bad type", fd, F_SETLK, 42, 0);
	SHOW(fd2 = open(path, O_RDONLY));
	lock("F_SETLK write on read-only fd", fd2, F_SETLK, F_WRLCK, 0);
	lock("F_OFD_SETLK write", fd, F_OFD_SETLK, F_WRLCK, 0);
	lock("F_OFD_GETLK other description", fd2, F_OFD_GETLK, F_RDLCK, 5);
	lock("F_OFD_SETLK conflicting", fd2, F_OFD_SETLK, F_RDLCK, 5);
	lock("F_OFD_SETLK disjoint", fd2, F_OFD_SETLK, F_RDLCK, 10);
	SHOW(close(fd2));

	printf("== close_range\n");
	SHOW(dup2(fd, 30));
	SHOW(dup2(fd, 31));
	SHOW(dup2(fd, 32));
	SHOW(syscall(SYS_close_range, 31, 40, 4));
	SHOW(fcntl(31, F_GETFD));
	SHOW(syscall(SYS_close_range, 30, 31, 0));
	SHOW(fcntl(30, F_GETFD));
	SHOW(fcntl(32, F_GETFD));
	SHOW(syscall(SYS_close_range, 40, 30, 0));
	SHOW(syscall(SYS_close_range, 32, ~0U, 0));
	SHOW(fcntl(32, F_GETFD));

	printf("== sendfile, copy_file_range\n");
	SHOW(src = open(path, O_RDWR | O_TRUNC));
	SHOW(write(src, "0123456789abcdefghij", 20));
	SHOW(lseek(src, 0, SEEK_SET));
	if ((dst = mkstemp(path2)) < 0)
		return 100;
	off = 5;
	SHOW(sendfile(dst, src, &off, 5));
	printf("offset now %ld, file position %ld\n", (long)off,
	       (long)lseek(src, 0, SEEK_CUR));
	SHOW(sendfile(dst, src, NULL, 3));
	printf("file position %ld\n", (long)lseek(src, 0, SEEK_CUR));
	SHOW(fd = open(path2, O_RDONLY));
	SHOW(sendfile(fd, src, NULL, 3));
	SHOW(close(fd));
	SHOW(fd = open(path2, O_WRONLY | O_APPEND));
	SHOW(sendfile(fd, src, NULL, 3));
	SHOW(close(fd));
	SHOW(pipe2(p, O_NONBLOCK));
	SHOW(sendfile(p[1], src, NULL, 4));
	SHOW(read(p[0], buf, 4));
	printf("through pipe: '%.4s'\n", buf);
	off = 18;
	SHOW(syscall(SYS_copy_file_range, src, &off, dst, NULL, 2, 0));
	printf("offset now %ld, file position %ld\n", (long)off,
	       (long)lseek(src, 0, SEEK_CUR));
	SHOW(syscall(SYS_copy_file_range, src, NULL, dst, NULL, 2, 0));
	SHOW(syscall(SYS_copy_file_range, src, NULL, dst, NULL, 2, 1));
	off = 0;
	off2 = 5;
	SHOW(syscall(SYS_copy_file_range, src, &off, src, &off2, 10, 0));
	SHOW(pread(dst, buf, sizeof(buf), 0));
	printf("copied: '%.12s'\n", buf);
	SHOW(close(src));
	SHOW(close(dst));
	SHOW(close(p[0]));
	SHOW(close(p[1]));
	SHOW(unlink(path2));

	printf("== devices\n");
	SHOW(fd = open("/dev/null", O_RDWR));
	SHOW(read(fd, buf, 10));
	SHOW(write(fd, "gone", 4));
	SHOW(close(fd));
	SHOW(fd = open("/dev/zero", O_RDWR));
	memset(buf, 'x', 16);
	SHOW(read(fd, buf, 16));
	printf("zero bytes: %d\n", buf[0] == 0 && buf[15] == 0);
	SHOW(write(fd, "ignored", 7));
	SHOW(close(fd));
	SHOW(fd = open("/dev/full", O_RDWR));
	SHOW(write(fd, "full", 4));
	memset(buf, 'x', 16);
	SHOW(read(fd, buf, 16));
	printf("zero bytes: %d\n", buf[0] == 0 && buf[15] == 0);
	SHOW(close(fd));

	printf("== ioctl on non-terminals\n");
	struct termios t;
	SHOW(fd = open(path, O_RDONLY));
	SHOW(ioctl(fd, TCGETS, &t));
	SHOW(isatty(fd));
	SHOW(pipe(p));
	SHOW(ioctl(p[0], TIOCGWINSZ, buf));
	SHOW(ioctl(99, TCGETS, &t));
	SHOW(close(fd));
	SHOW(unlink(path));
	return 0;
}
