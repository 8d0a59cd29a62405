/*
 * catpath: open each path given and print "path: content" (newlines shown as
 * '|', at most 4096 bytes) or "path: ENAME" when open or read fails. Used to
 * probe what a confined program can see. Exit status is the number of paths
 * that could not be read.
 */
#include "check.h"
#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static char buf[4096];
	int failed = 0;

	for (int i = 1; i < argc; i++) {
		int fd = open(argv[i], O_RDONLY);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));

		if (n < 0) {
			printf("%s: %s\n", argv[i], errname(errno));
			failed++;
		} else {
			printf("%s: ", argv[i]);
			for (ssize_t j = 0; j < n; j++)
				putchar(buf[j] == '\n' ? '|' : buf[j]);
			putchar('\n');
		}
		if (fd >= 0)
			close(fd);
	}
	return failed;
}
