/*
 * sock_client: a small network client for tests run against servers the
 * test starts on the host. "sock_client HOST PORT MESSAGE" connects over TCP
 * (HOST an IPv4 or IPv6 literal), sends MESSAGE, shuts down its side and
 * prints the reply; "sock_client -u HOST PORT MESSAGE" does the same with
 * one UDP datagram; "sock_client -b PORT" binds and listens on PORT;
 * "sock_client -r NAME" prints the IPv4 addresses getaddrinfo finds for
 * NAME. Every step prints its result with errno names.
 */
#define _GNU_SOURCE
#include "sock_check.h"
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static int address(const char *host, int port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *b = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &a->sin_addr) == 1) {
		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		return sizeof(*a);
	}
	if (inet_pton(AF_INET6, host, &b->sin6_addr) == 1) {
		b->sin6_family = AF_INET6;
		b->sin6_port = htons(port);
		return sizeof(*b);
	}
	return -1;
}

static int bind_only(int port)
{
	struct sockaddr_in a = { 0 };
	int fd;

	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	S_OK(fd = socket(AF_INET, SOCK_STREAM, 0));
	if (S(bind(fd, (struct sockaddr *)&a, sizeof(a))) < 0)
		return 1;
	return S(listen(fd, 1)) < 0;
}

static int resolve(const char *name)
{
	struct addrinfo hints = { 0 }, *res, *ai;
	char text[INET_ADDRSTRLEN];
	int r;

	hints.ai_family = AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	r = getaddrinfo(name, NULL, &hints, &res);
	printf("getaddrinfo: %s\n", r == 0 ? "OK" : gai_strerror(r));
	if (r != 0)
		return 1;
	for (ai = res; ai; ai = ai->ai_next) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, text,
			  sizeof(text));
		printf("address: %s\n", text);
	}
	freeaddrinfo(res);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	int udp = 0, len, fd, n;
	char buf[4096];

	if (argc == 3 && strcmp(argv[1], "-b") == 0)
		return bind_only(atoi(argv[2]));
	if (argc == 3 && strcmp(argv[1], "-r") == 0)
		return resolve(argv[2]);
	if (argc > 1 && strcmp(argv[1], "-u") == 0) {
		udp = 1;
		argv++;
		argc--;
	}
	if (argc != 4)
		return 2;
	len = address(argv[1], atoi(argv[2]), &ss);
	if (len < 0)
		return 2;
	S_OK(fd = socket(ss.ss_family, udp ? SOCK_DGRAM : SOCK_STREAM, 0));
	if (S(connect(fd, (struct sockaddr *)&ss, len)) < 0)
		return 1;
	S(send(fd, argv[3], strlen(argv[3]), 0));
	if (!udp)
		S(shutdown(fd, SHUT_WR));
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		printf("reply: %.*s\n", n, buf);
		if (udp)
			break;
	}
	S(n);
	return 0;
}
