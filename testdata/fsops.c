/*
 * fsops: run a list of file system operations given on the command line and
 * print the outcome of each, so one run can both change files and show what
 * it sees afterwards. Operations:
 *
 *   write PATH TEXT    create or truncate PATH and write TEXT
 *   append PATH TEXT   append TEXT to PATH
 *   cat PATH           print the content of PATH
 *   rm PATH            unlink PATH
 *   mkdir PATH         mkdir PATH 0755
 *   rmdir PATH         rmdir PATH
 *   mv OLD NEW         rename OLD to NEW
 *   chmod MODE PATH    chmod PATH to the octal MODE, then print the mode
 *   truncate PATH LEN  truncate PATH to LEN bytes
 *   symlink TARGET PATH
 *   link OLD NEW       hard link NEW to OLD, then print OLD's link count
 *   mtime PATH SECS    set PATH's times to SECS, then print the mtime read back
 *   ls PATH            list the names in directory PATH, sorted
 *
 * Exit status is the number of operations that failed; 100 means the command
 * line could not be understood.
 */
#include "check.h"
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int put(const char *path, const char *text, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | flags, 0644);
	ssize_t n = fd < 0 ? -1 : write(fd, text, strlen(text));
	int e = errno;

	if (fd >= 0)
		close(fd);
	errno = e;
	return n < 0 ? -1 : 0;
}

static int cat(const char *path)
{
	char buf[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));

	if (n >= 0)
		printf("'%.*s' ", (int)n, buf);
	if (fd >= 0)
		close(fd);
	return n < 0 ? -1 : 0;
}

static int ls(const char *path)
{
	char *names[256];
	struct dirent *d;
	DIR *dir = opendir(path);
	int n = 0;

	if (!dir)
		return -1;
	while ((d = readdir(dir)) && n < 256)
		if (strcmp(d->d_name, ".") && strcmp(d->d_name, ".."))
			names[n++] = strdup(d->d_name);
	closedir(dir);
	qsort(names, n, sizeof(names[0]), by_name);
	for (int i = 0; i < n; i++) {
		printf("%s ", names[i]);
		free(names[i]);
	}
	return 0;
}

static int chmod_show(const char *mode, const char *path)
{
	struct stat st;

	if (chmod(path, strtol(mode, NULL, 8)) < 0 || stat(path, &st) < 0)
		return -1;
	printf("%o ", st.st_mode & 07777);
	return 0;
}

static int link_show(const char *old, const char *new)
{
	struct stat st;

	if (link(old, new) < 0 || stat(old, &st) < 0)
		return -1;
	printf("%lu ", (unsigned long)st.st_nlink);
	return 0;
}

static int mtime_show(const char *path, const char *secs)
{
	struct timespec times[2] = { { atol(secs), 0 }, { atol(secs), 0 } };
	struct stat st;

	if (utimensat(AT_FDCWD, path, times, 0) < 0 || stat(path, &st) < 0)
		return -1;
	printf("%ld ", (long)st.st_mtim.tv_sec);
	return 0;
}

static int arity(const char *op)
{
	static const char *const one[] = { "cat", "rm", "mkdir", "rmdir", "ls" };
	static const char *const two[] = { "write", "append", "mv", "chmod",
					   "truncate", "symlink", "link", "mtime" };

	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++)
		if (!strcmp(op, one[i]))
			return 1;
	for (size_t i = 0; i < sizeof(two) / sizeof(two[0]); i++)
		if (!strcmp(op, two[i]))
			return 2;
	return 0;
}

static int run(const char *op, const char *a, const char *b)
{
	if (!strcmp(op, "cat"))
		return cat(a);
	if (!strcmp(op, "rm"))
		return unlink(a);
	if (!strcmp(op, "mkdir"))
		return mkdir(a, 0755);
	if (!strcmp(op, "rmdir"))
		return rmdir(a);
	if (!strcmp(op, "ls"))
		return ls(a);
	if (!strcmp(op, "write"))
		return put(a, b, O_TRUNC);
	if (!strcmp(op, "append"))
		return put(a, b, O_APPEND);
	if (!strcmp(op, "mv"))
		return rename(a, b);
	if (!strcmp(op, "chmod"))
		return chmod_show(a, b);
	if (!strcmp(op, "truncate"))
		return truncate(a, atol(b));
	if (!strcmp(op, "link"))
		return link_show(a, b);
	if (!strcmp(op, "mtime"))
		return mtime_show(a, b);
	return symlink(a, b);
}

int main(int argc, char **argv)
{
	int failed = 0, n;

	for (int i = 1; i < argc; i += 1 + n) {
		const char *op = argv[i], *a, *b;
		int r;

		n = arity(op);
		if (!n || i + n >= argc)
			return 100;
		a = argv[i + 1];
		b = n == 2 ? argv[i + 2] : NULL;
		printf("%s %s%s%s: ", op, a, b ? " " : "", b ? b : "");
		errno = 0;
		r = run(op, a, b);
		printf("%s\n", r < 0 ? errname(errno) : "ok");
		failed += r < 0;
	}
	return failed;
}
