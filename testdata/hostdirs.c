/*
 * hostdirs: directories that existed before the program started (on the
 * host, below the sandbox's memory layer) keep the attributes the host gives
 * them while the program changes what is inside: the size and block count
 * stay, the link count follows the subdirectories, and a removed file that
 * is still open has no links left.
 *
 * Usage: hostdirs DIR, where DIR holds a directory "pre" and a file "file"
 * containing "host data". Everything is put back as it was before exiting.
 */
#define _GNU_SOURCE
#include "fsutil.h"

static struct stat start;

static void show_dir(const char *label, const char *dir)
{
	struct stat st;

	if (stat(dir, &st) < 0) {
		printf("%s: %s\n", label, errname(errno));
		return;
	}
	printf("%s: links %+ld, same size %s, same blocks %s\n", label,
	       (long)st.st_nlink - (long)start.st_nlink,
	       st.st_size == start.st_size ? "yes" : "no",
	       st.st_blocks == start.st_blocks ? "yes" : "no");
}

int main(int argc, char **argv)
{
	struct stat st;
	int fd;

	if (argc < 2 || chdir(argv[1]) < 0 || stat(".", &start) < 0)
		return 100;

	printf("== the root and the working directory, as the host has them\n");
	SHOW(stat("/", &st));
	printf("/: links %ld size %ld blocks %ld mode %o\n", (long)st.st_nlink,
	       (long)st.st_size, (long)st.st_blocks, st.st_mode);
	printf(".: links %ld size %ld blocks %ld mode %o\n", (long)start.st_nlink,
	       (long)start.st_size, (long)start.st_blocks, start.st_mode);

	printf("== subdirectories come and go\n");
	SHOW(mkdir("new", 0755));
	show_dir("after mkdir", ".");
	SHOW(rmdir("pre"));
	show_dir("after rmdir of a host directory", ".");
	SHOW(rename("new", "pre"));
	show_dir("after rename into its place", ".");
	SHOW(mkdir("pre/inner", 0755));
	show_dir("after mkdir below", ".");
	SHOW(stat("pre", &st));
	printf("pre: links %ld\n", (long)st.st_nlink);
	SHOW(rmdir("pre/inner"));
	touch("made", "x");
	show_dir("after creating a file", ".");

	printf("== a host file removed while open\n");
	SHOW_OK(fd = open("file", O_RDONLY));
	SHOW(fstat(fd, &st));
	printf("links before %ld\n", (long)st.st_nlink);
	SHOW(unlink("file"));
	SHOW(fstat(fd, &st));
	printf("links after %ld size %ld\n", (long)st.st_nlink, (long)st.st_size);
	close(fd);
	SHOW(rename("made", "file"));
	touch("file", "host data");
	show_dir("put back", ".");
	return 0;
}
