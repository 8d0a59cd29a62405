/*
 * fdlinks: /proc/self/fd/N and /dev/fd/N lead to the open file itself.
 * Opening one makes a new description of the same object (a pipe end, a
 * deleted file, a directory) with its own offset; stat follows it; the
 * link's own text is only a name. Anonymous inodes cannot be reopened.
 */
#define _GNU_SOURCE
#include "fsutil.h"
#include <sys/eventfd.h>

static char base[] = "/tmp/pysentry-fdlinks-XXXXXX";

/* Open /proc/self/fd/<fd><suffix> with flags. */
static int reopen(int fd, const char *suffix, int flags)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d%s", fd, suffix);
	return open(path, flags, 0644);
}

/* Print the start of the link text of fd, up to its first bracket. */
static void link_kind(int fd)
{
	char path[64], text[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, text, sizeof(text) - 1);
	if (n < 0) {
		printf("readlink fd: %s\n", errname(errno));
		return;
	}
	text[n] = 0;
	text[strcspn(text, "[")] = 0;
	if (strncmp(text, base, strlen(base)) == 0)
		printf("readlink fd: <base>%s\n", text + strlen(base));
	else
		printf("readlink fd: %s\n", text);
}

static void read_fd(const char *label, int fd)
{
	char buf[64];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n < 0)
		printf("%s: %s\n", label, errname(errno));
	else
		printf("%s: '%.*s'\n", label, (int)n, buf);
}

int main(void)
{
	struct stat st, st2;
	int p[2], fd, fd2, dfd;

	if (!mkdtemp(base) || chdir(base) < 0)
		return 100;

	printf("== pipes\n");
	SHOW(pipe(p));
	link_kind(p[0]);
	SHOW_OK(fd = reopen(p[1], "", O_WRONLY));
	SHOW(write(fd, "through the link", 16));
	read_fd("read end", p[0]);
	SHOW_OK(fd2 = reopen(p[0], "", O_RDONLY | O_NONBLOCK));
	read_fd("empty reopened read end", fd2);
	SHOW(fstat(fd2, &st));
	SHOW(fstat(p[0], &st2));
	YESNO(st.st_ino == st2.st_ino && S_ISFIFO(st.st_mode));
	SHOW(stat("/dev/fd/0", &st) == 0 && stat("/dev/stdin", &st2) == 0);
	YESNO(st.st_ino == st2.st_ino && st.st_dev == st2.st_dev);
	SHOW(reopen(p[0], "", O_WRONLY | O_CREAT | O_EXCL));
	SHOW(reopen(p[0], "", O_RDONLY | O_NOFOLLOW));
	SHOW(reopen(p[0], "/", O_RDONLY));
	close(fd);
	close(fd2);

	printf("== regular files\n");
	touch("f", "0123456789");
	SHOW_OK(fd = open("f", O_RDONLY));
	SHOW(lseek(fd, 4, SEEK_SET));
	SHOW_OK(fd2 = reopen(fd, "", O_RDONLY));
	read_fd("reopened has its own offset", fd2);
	read_fd("original keeps its offset", fd);
	close(fd2);
	SHOW(unlink("f"));
	link_kind(fd);
	SHOW_OK(fd2 = reopen(fd, "", O_RDWR));
	SHOW(write(fd2, "AB", 2));
	SHOW(lseek(fd, 0, SEEK_SET));
	read_fd("a deleted file reopened", fd);
	SHOW(fstat(fd2, &st));
	printf("nlink %ld size %ld\n", (long)st.st_nlink, (long)st.st_size);
	close(fd2);
	SHOW_OK(fd2 = reopen(fd, "", O_WRONLY | O_TRUNC));
	SHOW(fstat(fd, &st));
	printf("size after O_TRUNC %ld\n", (long)st.st_size);
	close(fd2);
	close(fd);
	SHOW_OK(fd = open("g", O_CREAT | O_WRONLY | O_APPEND, 0600));
	SHOW(write(fd, "one", 3));
	SHOW_OK(fd2 = reopen(fd, "", O_WRONLY | O_APPEND));
	SHOW(write(fd2, "two", 3));
	close(fd2);
	close(fd);
	cat("g");

	printf("== directories\n");
	SHOW(mkdir("d", 0755));
	touch("d/inside", "inner");
	SHOW_OK(dfd = open("d", O_RDONLY | O_DIRECTORY));
	SHOW(chdir("/"));
	SHOW_OK(fd = reopen(dfd, "/inside", O_RDONLY));
	read_fd("a file below a directory descriptor", fd);
	close(fd);
	SHOW_OK(fd = reopen(dfd, "", O_RDONLY | O_DIRECTORY));
	close(fd);
	SHOW(reopen(dfd, "/missing", O_RDONLY));
	SHOW(chdir(base));

	printf("== anonymous inodes\n");
	SHOW_OK(fd = eventfd(0, 0));
	link_kind(fd);
	SHOW(reopen(fd, "", O_RDWR));
	SHOW(fstatat(AT_FDCWD, "/proc/self/fd/0", &st, 0) == 0);
	close(fd);

	SHOW(unlink("g"));
	SHOW(unlink("d/inside"));
	SHOW(rmdir("d"));
	SHOW(chdir("/"));
	SHOW(rmdir(base));
	return 0;
}
