/*
 * Shared helpers for the test programs in this folder.
 *
 * Every program prints lines that depend only on what the kernel answered:
 * return values, errno names, sizes, contents and comparisons. Nothing that
 * differs between two runs (pids, addresses, inode numbers, times) is printed,
 * so the output of a native run and a sandboxed run can be compared as text.
 */
#ifndef PYSENTRY_CHECK_H
#define PYSENTRY_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

__attribute__((unused)) static const char *errname(int e)
{
	static char other[32];

	switch (e) {
	case 0: return "OK";
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case ESRCH: return "ESRCH";
	case EOWNERDEAD: return "EOWNERDEAD";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case E2BIG: return "E2BIG";
	case ENOEXEC: return "ENOEXEC";
	case EBADF: return "EBADF";
	case ECHILD: return "ECHILD";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EXDEV: return "EXDEV";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ENFILE: return "ENFILE";
	case EMFILE: return "EMFILE";
	case ENOTTY: return "ENOTTY";
	case ETXTBSY: return "ETXTBSY";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case ESPIPE: return "ESPIPE";
	case EROFS: return "EROFS";
	case EMLINK: return "EMLINK";
	case EPIPE: return "EPIPE";
	case EDOM: return "EDOM";
	case ERANGE: return "ERANGE";
	case EDEADLK: return "EDEADLK";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOSYS: return "ENOSYS";
	case ENOTEMPTY: return "ENOTEMPTY";
	case ELOOP: return "ELOOP";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EOVERFLOW: return "EOVERFLOW";
	case EBADFD: return "EBADFD";
	case ETIMEDOUT: return "ETIMEDOUT";
	}
	snprintf(other, sizeof(other), "errno%d", e);
	return other;
}

/*
 * Print "label: value" for a non-negative result, or "label: -1 ENAME" for a
 * failed call. The errno is read before anything else can change it.
 */
__attribute__((unused)) static void show(const char *label, long r)
{
	int e = errno;

	if (r < 0)
		printf("%s: -1 %s\n", label, errname(e));
	else
		printf("%s: %ld\n", label, r);
}

/* Like show() but for calls whose success value is an fd or address. */
__attribute__((unused)) static void show_ok(const char *label, long r)
{
	int e = errno;

	if (r < 0)
		printf("%s: -1 %s\n", label, errname(e));
	else
		printf("%s: ok\n", label);
}

/* An address no program maps: the kernel must answer EFAULT for it. */
__attribute__((unused)) static void *bad_address(void)
{
	volatile unsigned long p = 16;

	return (void *)p;
}

#define SHOW(expr) (errno = 0, show(#expr, (long)(expr)))
#define SHOW_OK(expr) (errno = 0, show_ok(#expr, (long)(expr)))
#define YESNO(cond) printf("%s: %s\n", #cond, (cond) ? "yes" : "no")

#endif
