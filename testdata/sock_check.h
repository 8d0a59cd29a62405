/*
 * Helpers of the socket test programs: errno names check.h does not know,
 * and a way to print a call's result with them.
 */
#ifndef PYSENTRY_SOCK_CHECK_H
#define PYSENTRY_SOCK_CHECK_H

#include "check.h"

__attribute__((unused)) static const char *sockerr(int e)
{
	switch (e) {
	case ENOTSOCK: return "ENOTSOCK";
	case EDESTADDRREQ: return "EDESTADDRREQ";
	case EMSGSIZE: return "EMSGSIZE";
	case EPROTOTYPE: return "EPROTOTYPE";
	case ENOPROTOOPT: return "ENOPROTOOPT";
	case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
	case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
	case EAFNOSUPPORT: return "EAFNOSUPPORT";
	case EADDRINUSE: return "EADDRINUSE";
	case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
	case ENETUNREACH: return "ENETUNREACH";
	case ECONNABORTED: return "ECONNABORTED";
	case ECONNRESET: return "ECONNRESET";
	case EISCONN: return "EISCONN";
	case ENOTCONN: return "ENOTCONN";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EALREADY: return "EALREADY";
	case EINPROGRESS: return "EINPROGRESS";
	}
	return errname(e);
}

/* "label: value", or "label: -1 ENAME" with socket errno names. */
__attribute__((unused)) static long sshow(const char *label, long r)
{
	int e = errno;

	if (r < 0)
		printf("%s: -1 %s\n", label, sockerr(e));
	else
		printf("%s: %ld\n", label, r);
	fflush(stdout);
	errno = e;
	return r;
}

/* Like sshow() for calls whose success value (an fd) is not printed. */
__attribute__((unused)) static long sshow_ok(const char *label, long r)
{
	int e = errno;

	if (r < 0)
		printf("%s: -1 %s\n", label, sockerr(e));
	else
		printf("%s: ok\n", label);
	fflush(stdout);
	errno = e;
	return r;
}

#define S(expr) (errno = 0, sshow(#expr, (long)(expr)))
#define S_OK(expr) (errno = 0, sshow_ok(#expr, (long)(expr)))

#endif
