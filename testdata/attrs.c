/*
 * attrs: file attributes. chmod/fchmod/fchmodat (with set-id bits), the umask
 * applied to new files and directories, access/faccessat (including the X_OK
 * rule for privileged users), utimensat/futimens with explicit times,
 * UTIME_OMIT, UTIME_NOW and AT_SYMLINK_NOFOLLOW.
 */
#define _GNU_SOURCE
#include "fsutil.h"

int main(void)
{
	char base[] = "/tmp/pysentry-attrs-XXXXXX";
	struct timespec ts[2];
	struct stat st;
	int fd, dfd;

	umask(022);
	if (!mkdtemp(base) || chdir(base) < 0)
		return 100;
	SHOW_OK(dfd = open(".", O_RDONLY | O_DIRECTORY));
	touch("f", "file");
	SHOW(mkdir("g", 0755));
	touch("g/alpha", "alpha");
	SHOW(symlink("f", "sf"));

	printf("== chmod, fchmod, fchmodat, umask\n");
	SHOW(chmod("f", 0600));
	show_mode("f");
	SHOW_OK(fd = open("f", O_RDONLY));
	SHOW(fchmod(fd, 0640));
	show_mode("f");
	close(fd);
	SHOW(fchmodat(dfd, "f", 04711, 0));
	show_mode("f");
	SHOW(chmod("missing", 0600));
	SHOW(umask(077));
	SHOW(mkdir("u", 0777));
	touch("u/file", "");
	show_mode("u");
	show_mode("u/file");
	SHOW(umask(022));

	printf("== access, faccessat\n");
	SHOW(access("f", F_OK));
	SHOW(access("missing", F_OK));
	SHOW(access("f/x", F_OK));
	SHOW(chmod("f", 0644));
	SHOW(access("f", X_OK));
	SHOW(chmod("f", 0744));
	SHOW(access("f", X_OK));
	SHOW(access("f", R_OK | W_OK));
	SHOW(faccessat(dfd, "g/alpha", R_OK, 0));
	SHOW(faccessat(dfd, "g/missing", R_OK, 0));
	SHOW(access("f", 0100));

	printf("== utimensat\n");
	ts[0] = (struct timespec){ 1000000000, 123456789 };
	ts[1] = (struct timespec){ 1200000000, 0 };
	SHOW(utimensat(dfd, "f", ts, 0));
	SHOW(stat("f", &st));
	printf("atime %ld.%09ld mtime %ld.%09ld\n", (long)st.st_atim.tv_sec,
	       st.st_atim.tv_nsec, (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1] = (struct timespec){ 1300000000, 5 };
	SHOW(utimensat(AT_FDCWD, "f", ts, 0));
	SHOW(stat("f", &st));
	printf("atime %ld.%09ld mtime %ld.%09ld\n", (long)st.st_atim.tv_sec,
	       st.st_atim.tv_nsec, (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	ts[1].tv_nsec = UTIME_NOW;
	SHOW(utimensat(AT_FDCWD, "f", ts, 0));
	SHOW(stat("f", &st));
	printf("UTIME_NOW is recent: %d\n", st.st_mtim.tv_sec > 1600000000);
	ts[0] = (struct timespec){ 7, 0 };
	ts[1] = (struct timespec){ 8, 0 };
	SHOW(utimensat(AT_FDCWD, "sf", ts, AT_SYMLINK_NOFOLLOW));
	SHOW(lstat("sf", &st));
	printf("link mtime %ld\n", (long)st.st_mtim.tv_sec);
	SHOW(stat("sf", &st));
	YESNO(st.st_mtim.tv_sec != 8);
	SHOW_OK(fd = open("g/alpha", O_RDONLY));
	SHOW(futimens(fd, ts));
	close(fd);
	SHOW(stat("g/alpha", &st));
	printf("futimens mtime %ld\n", (long)st.st_mtim.tv_sec);
	SHOW(utimensat(AT_FDCWD, "missing", ts, 0));
	ts[0].tv_nsec = 1000000000;
	SHOW(utimensat(AT_FDCWD, "f", ts, 0));

	printf("== cleanup\n");
	rm_tree(dfd);
	close(dfd);
	SHOW(chdir("/"));
	SHOW(rmdir(base));
	return 0;
}
