/*
 * dirs: directories and names. mkdir/mkdirat/rmdir, unlink/unlinkat,
 * rename/renameat/renameat2 (including over directories), getdents64 listings,
 * chdir/fchdir/getcwd and the *at forms with a directory fd.
 */
#define _GNU_SOURCE
#include "fsutil.h"

#define XRENAME_NOREPLACE 1
#define XRENAME_EXCHANGE 2

static char base[] = "/tmp/pysentry-dirs-XXXXXX";

/* Print the working directory relative to the test's own base directory. */
static void cwd(void)
{
	char buf[4096];

	if (!getcwd(buf, sizeof(buf)))
		printf("getcwd: %s\n", errname(errno));
	else if (strncmp(buf, base, strlen(base)) == 0)
		printf("getcwd: <base>%s\n", buf + strlen(base));
	else
		printf("getcwd: outside base\n");
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List a directory with getdents64 in small batches, sorted by name. */
static void list(const char *path)
{
	char buf[64], *names[64];
	int fd = open(path, O_RDONLY | O_DIRECTORY), n = 0;
	long got;

	while ((got = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < got && n < 64;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			char *s = malloc(strlen(d->d_name) + 3);

			sprintf(s, "%s:%c", d->d_name, d->d_type == DT_DIR ? 'd' :
				d->d_type == DT_REG ? 'f' : d->d_type == DT_LNK ? 'l' : '?');
			names[n++] = s;
			off += d->d_reclen;
		}
	}
	qsort(names, n, sizeof(names[0]), by_name);
	printf("list %s (end %ld):", path, got);
	for (int i = 0; i < n; i++) {
		printf(" %s", names[i]);
		free(names[i]);
	}
	printf("\n");
	close(fd);
}

int main(void)
{
	struct stat st, st2;
	char buf[64];
	int fd, dfd;

	umask(022);
	if (!mkdtemp(base) || chdir(base) < 0)
		return 100;
	SHOW_OK(dfd = open(".", O_RDONLY | O_DIRECTORY));

	printf("== mkdir, rmdir, unlink\n");
	SHOW(mkdir("d", 0755));
	SHOW(mkdir("d", 0755));
	SHOW(mkdir("nope/x", 0755));
	SHOW(mkdirat(dfd, "d/sub", 0700));
	touch("f", "file");
	touch("d/inner", "inner");
	SHOW(mkdir("f/x", 0755));
	show_mode("d");
	show_mode("d/sub");
	SHOW(rmdir("d"));
	SHOW(rmdir("f"));
	SHOW(rmdir("missing"));
	SHOW(rmdir("."));
	SHOW(rmdir("d/sub/.."));
	SHOW(unlink("d"));
	SHOW(unlink("missing"));
	SHOW(unlinkat(dfd, "d/sub", AT_REMOVEDIR));
	SHOW(unlinkat(dfd, "f", AT_REMOVEDIR));
	SHOW(unlinkat(dfd, "f", 0x1));

	printf("== rename, renameat, renameat2\n");
	touch("r1", "one");
	touch("r2", "two");
	SHOW(rename("r1", "r2"));
	cat("r1");
	cat("r2");
	SHOW(rename("missing", "r3"));
	SHOW(rename("r2", "d"));
	SHOW(mkdir("e", 0755));
	SHOW(rename("e", "r2"));
	SHOW(rename("e", "d"));
	SHOW(mkdir("empty", 0755));
	SHOW(rename("e", "empty"));
	SHOW(rename("d", "d/inner2"));
	SHOW(renameat(dfd, "empty", dfd, "e2"));
	touch("n1", "n1");
	SHOW(syscall(SYS_renameat2, dfd, "n1", dfd, "r2", XRENAME_NOREPLACE));
	SHOW(syscall(SYS_renameat2, dfd, "n1", dfd, "n2", XRENAME_NOREPLACE));
	SHOW(syscall(SYS_renameat2, dfd, "n2", dfd, "r2", XRENAME_EXCHANGE));
	cat("n2");
	cat("r2");
	SHOW(syscall(SYS_renameat2, dfd, "n2", dfd, "n9", XRENAME_EXCHANGE));
	SHOW(syscall(SYS_renameat2, dfd, "n2", dfd, "r2", 3));

	printf("== getdents64\n");
	SHOW(mkdir("g", 0755));
	touch("g/charlie", "");
	touch("g/alpha", "");
	touch("g/bravo-with-a-longer-name", "");
	SHOW(mkdir("g/delta", 0755));
	SHOW(symlink("alpha", "g/echo"));
	list("g");
	SHOW_OK(fd = open("f", O_RDONLY));
	SHOW(syscall(SYS_getdents64, fd, buf, sizeof(buf)));
	close(fd);
	SHOW_OK(fd = open("g", O_RDONLY | O_DIRECTORY));
	SHOW(syscall(SYS_getdents64, fd, buf, 1));
	close(fd);
	SHOW(syscall(SYS_getdents64, 999, buf, sizeof(buf)));

	printf("== chdir, fchdir, getcwd\n");
	cwd();
	SHOW(chdir("g/delta"));
	cwd();
	SHOW(chdir(".."));
	cwd();
	SHOW(fchdir(dfd));
	cwd();
	SHOW(chdir("f"));
	SHOW(chdir("missing"));
	SHOW_OK(fd = open("f", O_RDONLY));
	SHOW(fchdir(fd));
	close(fd);
	SHOW(syscall(SYS_getcwd, buf, 1));

	printf("== *at with dirfd, AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW\n");
	SHOW_OK(fd = open("g", O_RDONLY | O_DIRECTORY));
	SHOW(fstatat(fd, "alpha", &st, 0));
	SHOW(fstatat(fd, "echo", &st2, AT_SYMLINK_NOFOLLOW));
	printf("echo is link: %d\n", S_ISLNK(st2.st_mode));
	SHOW(fstatat(fd, "echo", &st2, 0));
	YESNO(st.st_ino == st2.st_ino);
	SHOW(fstatat(fd, "", &st2, AT_EMPTY_PATH));
	printf("empty path is dir: %d\n", S_ISDIR(st2.st_mode));
	SHOW(mkdirat(fd, "delta/deeper", 0755));
	SHOW(unlinkat(fd, "delta/deeper", AT_REMOVEDIR));
	SHOW(openat(fd, "../f", O_RDONLY) >= 0);
	close(fd);

	printf("== cleanup\n");
	rm_tree(dfd);
	close(dfd);
	SHOW(chdir("/"));
	SHOW(rmdir(base));
	return 0;
}
