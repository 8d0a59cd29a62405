/*
 * nodes: FIFOs and device nodes made with mkfifo/mknod. A FIFO opens its
 * pipe (the O_NONBLOCK rules of fifo(7), data in order, no seeking, a
 * blocking open waiting for the other end); a device node opens the driver
 * its numbers name, or fails with ENXIO.
 */
#define _GNU_SOURCE
#include "fsutil.h"
#include <sys/sysmacros.h>
#include <sys/wait.h>

static char base[] = "/tmp/pysentry-nodes-XXXXXX";

static void read_fd(const char *label, int fd, size_t count)
{
	char buf[64];
	ssize_t n = read(fd, buf, count < sizeof(buf) ? count : sizeof(buf));

	if (n < 0) {
		printf("%s: %s\n", label, errname(errno));
		return;
	}
	printf("%s: %zd bytes:", label, n);
	for (ssize_t i = 0; i < n; i++)
		printf(" %02x", (unsigned char)buf[i]);
	printf("\n");
}

int main(void)
{
	struct stat st;
	int fd, rd, wr, status;
	pid_t pid;

	if (!mkdtemp(base) || chdir(base) < 0)
		return 100;

	printf("== FIFOs\n");
	SHOW(mkfifo("fifo", 0640));
	SHOW(mkfifo("fifo", 0640));
	SHOW(lstat("fifo", &st));
	printf("fifo: %s mode %o size %ld\n", S_ISFIFO(st.st_mode) ? "yes" : "no",
	       st.st_mode & 07777, (long)st.st_size);
	SHOW(open("fifo", O_WRONLY | O_NONBLOCK));
	SHOW_OK(rd = open("fifo", O_RDONLY | O_NONBLOCK));
	read_fd("nothing written yet", rd, 8);
	SHOW_OK(wr = open("fifo", O_WRONLY | O_NONBLOCK));
	SHOW(write(wr, "first", 5));
	SHOW(write(wr, "second", 6));
	read_fd("in order", rd, 7);
	read_fd("the rest", rd, 64);
	SHOW(lseek(rd, 0, SEEK_SET));
	SHOW(fstat(wr, &st));
	printf("fstat: fifo %s size %ld\n", S_ISFIFO(st.st_mode) ? "yes" : "no",
	       (long)st.st_size);
	close(wr);
	read_fd("after the writer closed", rd, 8);
	close(rd);
	SHOW_OK(fd = open("fifo", O_RDWR));
	SHOW(write(fd, "both", 4));
	read_fd("read and write ends in one", fd, 8);
	close(fd);
	SHOW(mknod("made-by-mknod", S_IFIFO | 0600, 0));
	SHOW_OK(fd = open("made-by-mknod", O_RDWR | O_NONBLOCK));
	read_fd("an empty FIFO", fd, 8);
	close(fd);

	printf("== a blocking reader and a writer in another process\n");
	SHOW(mkfifo("meet", 0600));
	pid = fork();
	if (pid == 0) {
		wr = open("meet", O_WRONLY);
		_exit(wr < 0 || write(wr, "over the fifo", 13) != 13);
	}
	SHOW_OK(rd = open("meet", O_RDONLY));
	read_fd("what the child wrote", rd, 64);
	read_fd("then end of file", rd, 64);
	close(rd);
	SHOW(waitpid(pid, &status, 0) == pid);
	printf("child exit status %d\n", WEXITSTATUS(status));
	SHOW(unlink("meet"));

	printf("== device nodes\n");
	SHOW(mknod("null", S_IFCHR | 0666, makedev(1, 3)));
	SHOW(mknod("zero", S_IFCHR | 0600, makedev(1, 5)));
	SHOW(mknod("full", S_IFCHR | 0600, makedev(1, 7)));
	SHOW(mknod("nodriver", S_IFCHR | 0600, makedev(240, 77)));
	SHOW(lstat("zero", &st));
	printf("zero: chr %s %u,%u mode %o\n", S_ISCHR(st.st_mode) ? "yes" : "no",
	       major(st.st_rdev), minor(st.st_rdev), st.st_mode & 07777);
	SHOW_OK(fd = open("null", O_RDWR));
	SHOW(write(fd, "gone", 4));
	read_fd("null", fd, 8);
	close(fd);
	SHOW_OK(fd = open("zero", O_RDONLY));
	read_fd("zero", fd, 4);
	SHOW(fstat(fd, &st));
	printf("fstat: chr %s mode %o\n", S_ISCHR(st.st_mode) ? "yes" : "no",
	       st.st_mode & 07777);
	close(fd);
	SHOW_OK(fd = open("full", O_WRONLY));
	SHOW(write(fd, "x", 1));
	close(fd);
	SHOW(open("nodriver", O_RDONLY));
	SHOW_OK(fd = open("nodriver", O_PATH));
	close(fd);

	printf("== a socket node\n");
	SHOW(mknod("sock", S_IFSOCK | 0600, 0));
	SHOW(lstat("sock", &st));
	printf("sock: socket %s\n", S_ISSOCK(st.st_mode) ? "yes" : "no");
	SHOW(open("sock", O_RDONLY));
	SHOW(open("sock", O_WRONLY));
	SHOW_OK(fd = open("sock", O_PATH));
	close(fd);
	SHOW(unlink("sock"));

	SHOW(unlink("fifo"));
	SHOW(unlink("made-by-mknod"));
	SHOW(unlink("null"));
	SHOW(unlink("zero"));
	SHOW(unlink("full"));
	SHOW(unlink("nodriver"));
	SHOW(chdir("/"));
	SHOW(rmdir(base));
	return 0;
}
