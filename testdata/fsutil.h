/*
 * File system helpers shared by the programs that work in a directory of
 * their own under /tmp: small file writers and readers that print what they
 * find, and a recursive remove for the final cleanup.
 */
#ifndef PYSENTRY_FSUTIL_H
#define PYSENTRY_FSUTIL_H

#include "check.h"
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Create (or truncate) path and write text into it. */
__attribute__((unused)) static void touch(const char *path, const char *text)
{
	int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);

	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0)
			perror("write");
		close(fd);
	}
}

/* Print the content of path, or the errno name if it cannot be read. */
__attribute__((unused)) static void cat(const char *path)
{
	char buf[64];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));

	if (n < 0)
		printf("cat %s: %s\n", path, errname(errno));
	else
		printf("cat %s: '%.*s'\n", path, (int)n, buf);
	if (fd >= 0)
		close(fd);
}

/* Print the permission bits of path itself (symlinks are not followed). */
__attribute__((unused)) static void show_mode(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		printf("mode %s: %s\n", path, errname(errno));
	else
		printf("mode %s: %o\n", path, st.st_mode & 07777);
}

/* Remove everything below dfd: names are collected first, then removed. */
__attribute__((unused)) static void rm_tree(int dfd)
{
	char buf[4096], *names[64];
	int types[64], n = 0;
	long got;

	while ((got = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < got && n < 64;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);

			off += d->d_reclen;
			if (strcmp(d->d_name, ".") && strcmp(d->d_name, "..")) {
				types[n] = d->d_type;
				names[n++] = strdup(d->d_name);
			}
		}
	}
	for (int i = 0; i < n; i++) {
		if (types[i] == DT_DIR) {
			int sub = openat(dfd, names[i], O_RDONLY | O_DIRECTORY);

			rm_tree(sub);
			close(sub);
			unlinkat(dfd, names[i], AT_REMOVEDIR);
		} else {
			unlinkat(dfd, names[i], 0);
		}
		free(names[i]);
	}
}

#endif
