/*
 * memory: the address space. brk, anonymous and file-backed mmap, MAP_FIXED
 * and MAP_FIXED_NOREPLACE, munmap, mprotect, mremap, madvise, msync, mincore.
 *
 * Whether an address is mapped is asked of the kernel without faulting: a
 * write(2) from the address into a pipe fails with EFAULT if it cannot be
 * read, and a read(2) from the pipe into it fails with EFAULT if it cannot be
 * written. The pipe is non-blocking, so a kernel that loses the byte shows up
 * as a line of output rather than a hang. Only comparisons between addresses
 * are printed, never addresses.
 */
#define _GNU_SOURCE
#include "check.h"
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define P 4096L

static int pfd[2];

static void can_read(const char *label, const void *addr)
{
	char c;
	ssize_t r = write(pfd[1], addr, 1);

	printf("%s: %s\n", label, r == 1 ? "readable" : errname(errno));
	if (r == 1 && read(pfd[0], &c, 1) != 1)
		printf("pipe lost a byte\n");
}

static void can_write(const char *label, void *addr)
{
	char c;
	ssize_t r;

	if (write(pfd[1], "w", 1) != 1)
		printf("pipe refused a byte\n");
	r = read(pfd[0], addr, 1);
	printf("%s: %s\n", label, r == 1 ? "writable" : errname(errno));
	if (r != 1 && read(pfd[0], &c, 1) != 1)
		printf("pipe lost a byte\n");
}

static int all(const char *p, long n, char c)
{
	for (long i = 0; i < n; i++)
		if (p[i] != c)
			return 0;
	return 1;
}

static void resident(const char *label, void *addr, long len)
{
	unsigned char vec[8] = { 0 };

	if (mincore(addr, len, vec) < 0) {
		printf("mincore %s: -1 %s\n", label, errname(errno));
		return;
	}
	printf("mincore %s:", label);
	for (long i = 0; i < len / P; i++)
		printf(" %d", vec[i] & 1);
	printf("\n");
}

int main(void)
{
	char path[] = "/tmp/pysentry-memory-XXXXXX", buf[64];
	const char text[] = "file contents 0123456789";
	char *a, *f, *g, *h, *m, *r, *s, *t;
	long cur, got;
	int fd, rfd, wfd, dfd;

	if (pipe2(pfd, O_NONBLOCK) < 0 || (fd = mkstemp(path)) < 0)
		return 100;
	if (write(fd, text, sizeof(text) - 1) != sizeof(text) - 1)
		return 100;
	printf("page size: %ld\n", sysconf(_SC_PAGESIZE));

	printf("== brk\n");
	cur = syscall(SYS_brk, 0);
	YESNO(sbrk(0) == (void *)cur);
	got = syscall(SYS_brk, cur + 4 * P);
	printf("grow by: %ld\n", got - cur);
	memset((char *)cur, 'b', 4 * P);
	can_read("last grown page", (char *)cur + 3 * P);
	got = syscall(SYS_brk, cur + P);
	printf("shrink to: %ld\n", got - cur);
	can_read("released page", (char *)cur + 3 * P);
	YESNO(((char *)cur)[P - 1] == 'b');
	got = syscall(SYS_brk, cur + 4 * P);
	printf("grow again by: %ld\n", got - cur);
	YESNO(((char *)cur)[3 * P] == 0);
	got = syscall(SYS_brk, 4096);
	printf("brk below start keeps: %ld\n", got - cur);
	got = syscall(SYS_brk, cur);
	printf("restored: %ld\n", got - cur);

	printf("== anonymous mappings\n");
	SHOW_OK(a = mmap(NULL, 3 * P, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	YESNO(all(a, 3 * P, 0));
	memset(a, 'a', 3 * P);
	YESNO(all(a, 3 * P, 'a'));
	resident("touched", a, 3 * P);
	SHOW_OK(s = mmap(NULL, P, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0));
	memset(s, 's', P);
	SHOW(madvise(s, P, MADV_DONTNEED));
	YESNO(all(s, P, 's'));
	SHOW(madvise(a, P, MADV_DONTNEED));
	YESNO(all(a, P, 0) && all(a + P, 2 * P, 'a'));
	SHOW(madvise(a + 1, P, MADV_DONTNEED));
	SHOW(madvise(a, P, 999));

	printf("== file mappings\n");
	SHOW_OK(m = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
	printf("private sees: '%.24s' tail zero: %d\n", m, all(m + 24, P - 24, 0));
	m[0] = 'F';
	SHOW(pread(fd, buf, 24, 0));
	printf("file after private write: '%.24s'\n", buf);
	SHOW(madvise(m, P, MADV_DONTNEED));
	printf("private after DONTNEED: '%.4s'\n", m);
	SHOW_OK(h = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
	h[0] = 'S';
	SHOW(msync(h, P, MS_SYNC));
	SHOW(pread(fd, buf, 24, 0));
	printf("file after shared write: '%.24s'\n", buf);
	SHOW(pwrite(fd, "W", 1, 1));
	printf("shared sees file write: '%.4s'\n", h);
	SHOW(msync(h + 1, P, MS_SYNC));
	SHOW(msync(h, P, MS_SYNC | MS_ASYNC));
	SHOW(munmap(h, P));
	SHOW_OK(h = mmap(NULL, 2 * P, PROT_READ, MAP_SHARED, fd, 0));
	can_read("page past end of file", h + P);
	SHOW(munmap(h, 2 * P));
	SHOW_OK(rfd = open(path, O_RDONLY));
	SHOW_OK(wfd = open(path, O_WRONLY));
	SHOW_OK(mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0));
	SHOW_OK(t = mmap(NULL, P, PROT_READ, MAP_SHARED, rfd, 0));
	SHOW(mprotect(t, P, PROT_READ | PROT_WRITE));
	SHOW_OK(mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_PRIVATE, rfd, 0));
	SHOW_OK(mmap(NULL, P, PROT_READ, MAP_PRIVATE, wfd, 0));
	SHOW_OK(mmap(NULL, P, PROT_READ, MAP_PRIVATE, 99, 0));
	SHOW_OK(dfd = open("/tmp", O_RDONLY | O_DIRECTORY));
	SHOW_OK(mmap(NULL, P, PROT_READ, MAP_PRIVATE, dfd, 0));

	printf("== bad arguments\n");
	SHOW_OK(mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	SHOW_OK(mmap(NULL, P, PROT_READ, MAP_ANONYMOUS, -1, 0));
	SHOW_OK(mmap(NULL, P, PROT_READ, MAP_PRIVATE, fd, 1));
	SHOW_OK(mmap(NULL, 1L << 62, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));

	printf("== MAP_FIXED, MAP_FIXED_NOREPLACE, munmap\n");
	SHOW_OK(f = mmap(NULL, 4 * P, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	memset(f, 'A', 4 * P);
	r = mmap(f + P, P, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	YESNO(r == f + P);
	YESNO(all(f + P, P, 0) && all(f, P, 'A') && all(f + 2 * P, 2 * P, 'A'));
	SHOW_OK(mmap(f + P, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		  -1, 0));
	SHOW_OK(mmap(f + 1, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	r = mmap(f + P, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	YESNO(r != MAP_FAILED && r != f + P);
	SHOW(munmap(f + 3 * P, P));
	r = mmap(f + 3 * P, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0);
	YESNO(r == f + 3 * P);
	SHOW(munmap(f + P, P));
	can_read("unmapped page", f + P);
	can_read("page before it", f);
	resident("unmapped", f + P, P);
	YESNO(all(f + 2 * P, P, 'A'));
	SHOW(munmap(f + 1, P));
	SHOW(munmap(f, 0));
	SHOW(munmap(f + P, P));

	printf("== mprotect\n");
	SHOW(mprotect(f, P, PROT_NONE));
	can_read("PROT_NONE page", f);
	SHOW(mprotect(f, P, PROT_READ));
	can_read("PROT_READ page", f);
	can_write("PROT_READ page", f);
	YESNO(all(f, P, 'A'));
	SHOW(syscall(SYS_mprotect, f + 1, P, PROT_READ));
	SHOW(mprotect(f + P, P, PROT_READ));
	SHOW(mprotect(f, P, 0x100));
	SHOW(mprotect(f, P, PROT_READ | PROT_WRITE));
	can_write("PROT_READ|PROT_WRITE page", f);

	printf("== mremap\n");
	SHOW_OK(g = mmap(NULL, P, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	memset(g, 'G', P);
	SHOW_OK(h = mremap(g, P, 3 * P, MREMAP_MAYMOVE));
	YESNO(all(h, P, 'G') && all(h + P, 2 * P, 0));
	r = mremap(h, 3 * P, P, 0);
	YESNO(r == h);
	can_read("page cut off by shrink", h + P);
	SHOW_OK(t = mmap(NULL, 2 * P, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
	SHOW_OK(mremap(t, P, 2 * P, 0));
	r = mremap(h, P, P, MREMAP_MAYMOVE | MREMAP_FIXED, t + P);
	YESNO(r == t + P);
	YESNO(all(t + P, P, 'G'));
	can_read("old place after move", h);
	SHOW_OK(mremap(t, P, 0, MREMAP_MAYMOVE));
	SHOW_OK(mremap(t + 1, P, P, MREMAP_MAYMOVE));
	SHOW_OK(mremap(h, P, 2 * P, MREMAP_MAYMOVE));

	close(fd);
	unlink(path);
	return 0;
}
