/*
 * links: hard links (link/linkat, with and without AT_SYMLINK_FOLLOW),
 * symbolic links (symlink/symlinkat/readlink/readlinkat, truncation, O_PATH),
 * symlink loops giving ELOOP, dangling links with O_CREAT, and the rules for
 * trailing slashes.
 */
#define _GNU_SOURCE
#include "fsutil.h"

int main(void)
{
	char base[] = "/tmp/pysentry-links-XXXXXX";
	struct stat st, st2;
	char buf[64];
	int fd, dfd;

	umask(022);
	if (!mkdtemp(base) || chdir(base) < 0)
		return 100;
	SHOW_OK(dfd = open(".", O_RDONLY | O_DIRECTORY));
	SHOW(mkdir("d", 0755));
	touch("f", "file");
	touch("d/inner", "inner");

	printf("== link, linkat\n");
	SHOW(link("f", "h"));
	SHOW(stat("f", &st));
	SHOW(stat("h", &st2));
	YESNO(st.st_ino == st2.st_ino && st2.st_nlink == 2);
	SHOW(link("f", "h"));
	SHOW(link("d", "dlink"));
	SHOW(link("missing", "x"));
	SHOW(symlink("f", "sf"));
	SHOW(linkat(dfd, "sf", dfd, "hl_nofollow", 0));
	SHOW(linkat(dfd, "sf", dfd, "hl_follow", AT_SYMLINK_FOLLOW));
	show_mode("hl_nofollow");
	show_mode("hl_follow");
	SHOW(unlink("h"));
	SHOW(stat("f", &st));
	printf("nlink after unlink: %ld\n", (long)st.st_nlink);

	printf("== symlink, readlink, loops\n");
	SHOW(symlinkat("d", dfd, "sd"));
	SHOW(symlink("f", "sf"));
	SHOW(readlink("sf", buf, sizeof(buf)));
	SHOW(readlinkat(dfd, "sd", buf, sizeof(buf)));
	SHOW(readlink("sf_missing", buf, sizeof(buf)));
	SHOW(readlink("f", buf, sizeof(buf)));
	SHOW(symlink("a-rather-long-target", "slong"));
	memset(buf, 0, sizeof(buf));
	SHOW(readlink("slong", buf, 4));
	printf("truncated: '%s'\n", buf);
	SHOW_OK(fd = open("slong", O_PATH | O_NOFOLLOW));
	memset(buf, 0, sizeof(buf));
	SHOW(readlinkat(fd, "", buf, sizeof(buf)));
	printf("target: '%s'\n", buf);
	close(fd);
	cat("sd/inner");
	SHOW(symlink("loop2", "loop1"));
	SHOW(symlink("loop1", "loop2"));
	SHOW(symlink("self", "self"));
	SHOW(open("loop1", O_RDONLY));
	SHOW(stat("self", &st));
	SHOW(lstat("self", &st));
	SHOW(mkdir("self/x", 0755));
	SHOW(symlink("nowhere", "dangling"));
	SHOW(stat("dangling", &st));
	SHOW_OK(fd = open("dangling", O_CREAT | O_WRONLY, 0644));
	close(fd);
	SHOW(access("nowhere", F_OK));
	SHOW(open("dangling", O_CREAT | O_EXCL | O_WRONLY, 0644));

	printf("== trailing slashes\n");
	SHOW(stat("f/", &st));
	SHOW(open("f/", O_RDONLY));
	SHOW(unlink("f/"));
	SHOW(mkdir("t/", 0755));
	SHOW(stat("t/", &st));
	SHOW(rename("t/", "t2/"));
	SHOW(rename("f", "fnew/"));
	SHOW(lstat("sd/", &st));
	printf("lstat through trailing slash follows: %d\n", S_ISDIR(st.st_mode));
	SHOW(rmdir("t2/"));
	SHOW(rmdir("sd/"));

	printf("== cleanup\n");
	rm_tree(dfd);
	close(dfd);
	SHOW(chdir("/"));
	SHOW(rmdir(base));
	return 0;
}
