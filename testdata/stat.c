/*
 * stat: stat, fstat, lstat, newfstatat and statx on files, links, directories
 * and devices; the fields must agree between the calls and follow the
 * changes a program makes (size, links, mode, times).
 */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* statx(2) as the kernel lays it out; not every libc declares it. */
struct xstamp {
	int64_t sec;
	uint32_t nsec;
	int32_t pad;
};
struct kstatx {
	uint32_t mask, blksize;
	uint64_t attributes;
	uint32_t nlink, uid, gid;
	uint16_t mode, pad0;
	uint64_t ino, size, blocks, attributes_mask;
	struct xstamp atime, btime, ctime, mtime;
	uint32_t rdev_major, rdev_minor, dev_major, dev_minor;
	uint64_t spare[14];
};
#define XSTATX_TYPE 0x1U
#define XSTATX_SIZE 0x200U
#define XSTATX_BASIC_STATS 0x7ffU

static void describe(const char *label, const struct stat *st)
{
	const char *kind = S_ISREG(st->st_mode) ? "regular" :
			   S_ISDIR(st->st_mode) ? "directory" :
			   S_ISLNK(st->st_mode) ? "symlink" :
			   S_ISCHR(st->st_mode) ? "chardev" :
			   S_ISFIFO(st->st_mode) ? "fifo" : "other";

	printf("%s: %s mode %o nlink %ld uid %d gid %d", label, kind,
	       st->st_mode & 07777, (long)st->st_nlink, (int)st->st_uid,
	       (int)st->st_gid);
	if (!S_ISDIR(st->st_mode))
		printf(" size %ld", (long)st->st_size);
	printf("\n");
}

int main(void)
{
	char dir[] = "/tmp/pysentry-stat-XXXXXX";
	struct timespec old[2] = { { 1000, 0 }, { 2000, 0 } };
	struct stat st, st2;
	struct kstatx stx;
	int fd, dfd, p[2];

	umask(022);
	if (!mkdtemp(dir) || chdir(dir) < 0 || pipe(p) < 0)
		return 100;
	SHOW_OK(dfd = open(".", O_RDONLY | O_DIRECTORY));
	SHOW_OK(fd = open("a", O_CREAT | O_RDWR, 0640));
	SHOW(write(fd, "twelve bytes", 12));
	SHOW(symlink("a", "link"));

	printf("== stat, fstat, lstat\n");
	SHOW(stat("a", &st));
	describe("stat a", &st);
	SHOW(fstat(fd, &st2));
	YESNO(st.st_ino == st2.st_ino && st.st_dev == st2.st_dev);
	YESNO(st.st_mode == st2.st_mode && st.st_size == st2.st_size);
	YESNO(st.st_mtim.tv_sec == st2.st_mtim.tv_sec && st.st_blksize > 0);
	SHOW(lstat("link", &st2));
	describe("lstat link", &st2);
	SHOW(stat("link", &st2));
	YESNO(st.st_ino == st2.st_ino);
	SHOW(stat(".", &st2));
	describe("stat .", &st2);
	SHOW(stat("/dev/null", &st2));
	describe("stat /dev/null", &st2);
	YESNO(major(st2.st_rdev) == 1 && minor(st2.st_rdev) == 3);
	SHOW(fstat(p[0], &st2));
	describe("fstat pipe", &st2);
	SHOW(stat("missing", &st2));
	SHOW(stat("a/x", &st2));
	SHOW(stat("", &st2));
	SHOW(fstat(99, &st2));
	SHOW(syscall(SYS_stat, "a", bad_address()));
	SHOW(syscall(SYS_stat, bad_address(), &st2));

	printf("== newfstatat\n");
	SHOW(fstatat(dfd, "a", &st2, 0));
	YESNO(st.st_ino == st2.st_ino);
	SHOW(fstatat(AT_FDCWD, "link", &st2, AT_SYMLINK_NOFOLLOW));
	YESNO(S_ISLNK(st2.st_mode));
	SHOW(fstatat(fd, "", &st2, AT_EMPTY_PATH));
	YESNO(st.st_ino == st2.st_ino);
	SHOW(fstatat(fd, "", &st2, 0));
	SHOW(fstatat(dfd, "missing", &st2, 0));
	SHOW(fstatat(fd, "x", &st2, 0));
	SHOW(fstatat(99, "a", &st2, 0));
	SHOW(fstatat(dfd, "a", &st2, 0x1));

	printf("== statx\n");
	SHOW(syscall(SYS_statx, AT_FDCWD, "a", 0, XSTATX_BASIC_STATS, &stx));
	YESNO((stx.mask & XSTATX_BASIC_STATS) == XSTATX_BASIC_STATS);
	YESNO(stx.ino == st.st_ino && stx.size == (uint64_t)st.st_size);
	YESNO(stx.mode == st.st_mode && stx.nlink == st.st_nlink);
	YESNO(stx.uid == st.st_uid && stx.gid == st.st_gid);
	YESNO(makedev(stx.dev_major, stx.dev_minor) == st.st_dev);
	YESNO(stx.mtime.sec == st.st_mtim.tv_sec);
	SHOW(syscall(SYS_statx, dfd, "link", 0x100, XSTATX_BASIC_STATS, &stx));
	YESNO(S_ISLNK(stx.mode) && stx.size == 1);
	SHOW(syscall(SYS_statx, fd, "", 0x1000, XSTATX_TYPE | XSTATX_SIZE, &stx));
	YESNO((stx.mask & (XSTATX_TYPE | XSTATX_SIZE)) == (XSTATX_TYPE | XSTATX_SIZE));
	YESNO(S_ISREG(stx.mode) && stx.size == 12);
	SHOW(syscall(SYS_statx, AT_FDCWD, "missing", 0, XSTATX_BASIC_STATS, &stx));
	SHOW(syscall(SYS_statx, AT_FDCWD, "a", 0x1, XSTATX_BASIC_STATS, &stx));
	SHOW(syscall(SYS_statx, AT_FDCWD, "a", 0, 0x80000000U, &stx));
	SHOW(syscall(SYS_statx, AT_FDCWD, "a", 0, XSTATX_BASIC_STATS, bad_address()));

	printf("== fields follow changes\n");
	SHOW(ftruncate(fd, 100));
	SHOW(link("a", "b"));
	SHOW(fchmod(fd, 0600));
	SHOW(fstat(fd, &st2));
	describe("after truncate, link, chmod", &st2);
	SHOW(unlink("b"));
	SHOW(futimens(fd, old));
	SHOW(fstat(fd, &st2));
	printf("mtime %ld atime %ld\n", (long)st2.st_mtim.tv_sec,
	       (long)st2.st_atim.tv_sec);
	YESNO(st2.st_ctim.tv_sec > 2000);
	SHOW(write(fd, "x", 1));
	SHOW(fstat(fd, &st2));
	printf("write moved mtime on: %d\n", st2.st_mtim.tv_sec > 2000);
	SHOW(unlink("a"));
	SHOW(fstat(fd, &st2));
	describe("unlinked but open", &st2);

	printf("== cleanup\n");
	SHOW(unlink("link"));
	SHOW(chdir("/"));
	SHOW(rmdir(dir));
	return 0;
}
