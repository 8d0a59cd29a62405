/*
 * files: open and its flags, read/write in plain, positional and vector forms,
 * lseek, truncation, fallocate and fsync, with their errors.
 */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* Print the whole content of fd with NUL bytes shown as '.'. */
static void content(const char *label, int fd)
{
	char buf[256];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);

	printf("%s: %zd '", label, n);
	for (ssize_t i = 0; i < n; i++)
		putchar(buf[i] ? buf[i] : '.');
	printf("'\n");
}

static long size_of(int fd)
{
	struct stat st;

	return fstat(fd, &st) < 0 ? -1 : (long)st.st_size;
}

static int all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

int main(void)
{
	char dir[] = "/tmp/pysentry-files-XXXXXX";
	char big[8192], buf[64], a[2], b[3], c[16], longname[300];
	struct iovec iov[3];
	struct stat st;
	volatile int neg = -1;
	int fd, fd2, dfd;

	umask(022);
	if (!mkdtemp(dir) || chdir(dir) < 0)
		return 100;

	printf("== open\n");
	SHOW_OK(fd = open("a", O_CREAT | O_EXCL | O_WRONLY, 0640));
	SHOW(open("a", O_CREAT | O_EXCL | O_WRONLY, 0640));
	SHOW(open("missing", O_RDONLY));
	SHOW(open("", O_RDONLY));
	SHOW(open("a/x", O_RDONLY));
	SHOW(open(".", O_WRONLY));
	SHOW(open("newdir/", O_CREAT | O_WRONLY, 0644));
	SHOW(open("a", O_RDONLY | O_DIRECTORY));
	SHOW_OK(dfd = open(".", O_RDONLY | O_DIRECTORY));
	memset(longname, 'n', 299);
	longname[299] = 0;
	SHOW(open(longname, O_CREAT | O_WRONLY, 0644));
	SHOW(write(fd, "hello world", 11));
	SHOW(fstat(fd, &st));
	printf("size %ld mode %o reg %d nlink %ld\n", (long)st.st_size,
	       st.st_mode & 07777, S_ISREG(st.st_mode), (long)st.st_nlink);
	SHOW(read(fd, buf, 4));
	close(fd);
	SHOW_OK(fd = open("m", O_CREAT | O_WRONLY, 0777));
	SHOW(fstat(fd, &st));
	printf("umask applied: mode %o\n", st.st_mode & 07777);
	close(fd);

	printf("== creat, O_TRUNC, O_APPEND\n");
	SHOW_OK(fd = creat("b", 0600));
	SHOW(read(fd, buf, 1));
	SHOW(write(fd, "xyz", 3));
	close(fd);
	SHOW_OK(fd = open("a", O_RDWR | O_TRUNC));
	printf("size after O_TRUNC: %ld\n", size_of(fd));
	SHOW(write(fd, "0123456789", 10));
	SHOW_OK(fd2 = open("a", O_WRONLY | O_APPEND));
	SHOW(lseek(fd2, 0, SEEK_SET));
	SHOW(write(fd2, "AB", 2));
	SHOW(lseek(fd2, 0, SEEK_CUR));
	SHOW(pwrite(fd2, "zz", 2, 0));
	content("after append", fd);
	close(fd2);

	printf("== O_NOFOLLOW, O_PATH, openat\n");
	SHOW(symlink("a", "link"));
	SHOW(open("link", O_RDONLY | O_NOFOLLOW));
	SHOW_OK(fd2 = open("link", O_RDONLY));
	close(fd2);
	SHOW_OK(fd2 = open("link", O_PATH | O_NOFOLLOW));
	SHOW(fstat(fd2, &st));
	printf("O_PATH|O_NOFOLLOW sees link: %d size %ld\n", S_ISLNK(st.st_mode),
	       (long)st.st_size);
	SHOW(read(fd2, buf, 1));
	close(fd2);
	SHOW_OK(fd2 = openat(dfd, "a", O_RDONLY));
	close(fd2);
	SHOW(openat(999, "a", O_RDONLY));
	SHOW_OK(fd2 = openat(999, "/tmp", O_RDONLY | O_DIRECTORY));
	close(fd2);
	SHOW(openat(fd, "a", O_RDONLY));

	printf("== read, write, pread, pwrite\n");
	SHOW(ftruncate(fd, 0));
	SHOW(lseek(fd, 0, SEEK_SET));
	SHOW(write(fd, "abcdefghij", 10));
	SHOW(read(fd, buf, sizeof(buf)));
	SHOW(lseek(fd, 0, SEEK_SET));
	SHOW(read(fd, buf, 4));
	printf("read: '%.4s'\n", buf);
	SHOW(pread(fd, buf, 3, 6));
	printf("pread: '%.3s'\n", buf);
	SHOW(pwrite(fd, "XY", 2, 1));
	SHOW(lseek(fd, 0, SEEK_CUR));
	SHOW(pread(fd, buf, 8, 100));
	SHOW(pread(fd, buf, 8, -1));
	SHOW(read(fd, buf, 0));
	SHOW(read(fd, bad_address(), 4));
	SHOW(write(fd, bad_address(), 4));
	content("after pwrite", fd);

	printf("== readv, writev, preadv, pwritev\n");
	iov[0] = (struct iovec){ "one ", 4 };
	iov[1] = (struct iovec){ "two ", 4 };
	iov[2] = (struct iovec){ "three", 5 };
	SHOW(ftruncate(fd, 0));
	SHOW(lseek(fd, 0, SEEK_SET));
	SHOW(writev(fd, iov, 3));
	SHOW(pwritev(fd, iov + 1, 1, 20));
	content("after writev", fd);
	iov[0] = (struct iovec){ a, 2 };
	iov[1] = (struct iovec){ b, 3 };
	iov[2] = (struct iovec){ c, 16 };
	SHOW(lseek(fd, 0, SEEK_SET));
	SHOW(readv(fd, iov, 3));
	printf("readv: '%.2s' '%.3s' '%.8s'\n", a, b, c);
	SHOW(preadv(fd, iov, 2, 4));
	printf("preadv: '%.2s' '%.3s'\n", a, b);
	SHOW(readv(fd, iov, neg));

	printf("== lseek\n");
	SHOW(lseek(fd, 0, SEEK_END));
	SHOW(lseek(fd, -3, SEEK_END));
	SHOW(lseek(fd, 2, SEEK_CUR));
	SHOW(lseek(fd, -1, SEEK_SET));
	SHOW(lseek(fd, 0, 42));
	SHOW(lseek(fd, 8192, SEEK_SET));
	printf("size after seek past end: %ld\n", size_of(fd));
	SHOW(write(fd, "end", 3));
	printf("size after write past end: %ld\n", size_of(fd));
	SHOW(pread(fd, big, sizeof(big), 24));
	printf("hole reads as zeros: %d\n", all_zero(big, 8192 - 24));
	SHOW(lseek(-1, 0, SEEK_SET));

	printf("== truncate, ftruncate\n");
	SHOW(ftruncate(fd, 5));
	content("ftruncate 5", fd);
	SHOW(ftruncate(fd, 12));
	content("ftruncate 12", fd);
	SHOW(truncate("a", 3));
	content("truncate 3", fd);
	SHOW(truncate("missing", 0));
	SHOW(truncate(".", 0));
	SHOW(ftruncate(fd, -1));
	SHOW(ftruncate(dfd, 0));
	SHOW_OK(fd2 = open("a", O_RDONLY));
	SHOW(ftruncate(fd2, 0));

	printf("== fallocate\n");
	SHOW(fallocate(fd, 0, 0, 4096));
	printf("size: %ld\n", size_of(fd));
	SHOW(fallocate(fd, FALLOC_FL_KEEP_SIZE, 4096, 4096));
	printf("size: %ld\n", size_of(fd));
	SHOW(pwrite(fd, "data", 4, 100));
	SHOW(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
	SHOW(pread(fd, big, 4096, 0));
	printf("punched range reads as zeros: %d\n", all_zero(big, 4096));
	SHOW(fallocate(fd, 0, 0, 0));
	SHOW(fallocate(fd, 0, -1, 10));
	SHOW(fallocate(fd2, 0, 0, 10));

	printf("== fsync and bad descriptors\n");
	SHOW(fsync(fd));
	SHOW(fdatasync(fd));
	SHOW(fsync(-1));
	SHOW(write(fd2, "x", 1));
	SHOW(close(fd2));
	SHOW(close(fd2));
	SHOW(read(fd2, buf, 1));
	SHOW(fstat(fd2, &st));
	close(fd);
	close(dfd);

	printf("== cleanup\n");
	SHOW(unlink("a"));
	SHOW(unlink("b"));
	SHOW(unlink("m"));
	SHOW(unlink("link"));
	SHOW(chdir("/"));
	SHOW(rmdir(dir));
	return 0;
}
