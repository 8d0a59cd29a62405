/*
 * sock_inet: TCP and UDP over the loopback, IPv4 and IPv6. An echo server
 * and its client in two processes, EADDRINUSE and SO_REUSEADDR, ECONNREFUSED
 * to a closed port (blocking and non-blocking), a non-blocking connect
 * completed through poll, shutdown and a write after the peer closed, UDP
 * datagrams with their source addresses, an IPv4 client of an IPv6 wildcard
 * listener, and options read back. Port numbers differ between runs and are
 * compared, never printed.
 */
#define _GNU_SOURCE
#include "sock_check.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct sockaddr_in loop4(int port)
{
	struct sockaddr_in a = { 0 };

	a.sin_family = AF_INET;
	a.sin_port = htons(port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static int port_of(int fd)
{
	struct sockaddr_in6 a;
	socklen_t len = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	return ntohs(a.sin6_port);  /* same offset in sockaddr_in */
}

static const char *addr_text(const struct sockaddr *sa)
{
	static char buf[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET)
		return inet_ntop(AF_INET, &((struct sockaddr_in *)sa)->sin_addr, buf, sizeof(buf));
	return inet_ntop(AF_INET6, &((struct sockaddr_in6 *)sa)->sin6_addr, buf, sizeof(buf));
}

static void show_poll(const char *label, int fd)
{
	struct pollfd p = { fd, POLLIN | POLLOUT | POLLRDHUP, 0 };

	poll(&p, 1, 0);
	printf("%s: poll%s%s%s%s%s\n", label, p.revents & POLLIN ? " IN" : "",
	       p.revents & POLLOUT ? " OUT" : "", p.revents & POLLHUP ? " HUP" : "",
	       p.revents & POLLERR ? " ERR" : "",
	       p.revents & POLLRDHUP ? " RDHUP" : "");
}

static int intopt(int fd, int level, int name)
{
	int v = -1;
	socklen_t len = sizeof(v);

	if (getsockopt(fd, level, name, &v, &len) < 0)
		return -errno;
	return v;
}

/* Serve one client: echo every read back until end of file. */
static void echo_once(int lfd)
{
	char buf[256];
	int c = accept(lfd, NULL, NULL), n;

	while ((n = read(c, buf, sizeof(buf))) > 0)
		write(c, buf, n);
	close(c);
}

static void tcp_echo(void)
{
	struct sockaddr_in a = loop4(0), peer, local;
	socklen_t len;
	int lfd, c, port, status, n;
	pid_t pid;
	char buf[64];

	printf("== TCP echo across processes\n");
	S(lfd = socket(AF_INET, SOCK_STREAM, 0));
	S(bind(lfd, (struct sockaddr *)&a, sizeof(a)));
	port = port_of(lfd);
	YESNO(port >= 1024);
	S(listen(lfd, 8));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		echo_once(lfd);
		_exit(0);
	}
	S(c = socket(AF_INET, SOCK_STREAM, 0));
	a = loop4(port);
	S(connect(c, (struct sockaddr *)&a, sizeof(a)));
	len = sizeof(peer);
	S(getpeername(c, (struct sockaddr *)&peer, &len));
	printf("peer %s same port %d len %d\n", addr_text((struct sockaddr *)&peer),
	       ntohs(peer.sin_port) == port, (int)len);
	len = sizeof(local);
	S(getsockname(c, (struct sockaddr *)&local, &len));
	printf("local %s ephemeral %d\n", addr_text((struct sockaddr *)&local),
	       ntohs(local.sin_port) >= 32768);
	S(write(c, "echo me", 7));
	S(n = read(c, buf, sizeof(buf)));
	printf("got: %.*s\n", n, buf);
	S(send(c, "and me", 6, 0));
	S(n = recv(c, buf, 6, MSG_WAITALL));
	printf("got: %.*s\n", n, buf);
	S(shutdown(c, SHUT_WR));
	S(read(c, buf, sizeof(buf)));
	waitpid(pid, &status, 0);
	printf("server status %d\n", WEXITSTATUS(status));
	close(c);

	/* The listener is still there in this process: a second client. */
	S(c = socket(AF_INET, SOCK_STREAM, 0));
	S(connect(c, (struct sockaddr *)&a, sizeof(a)));
	{
		int s = accept(lfd, (struct sockaddr *)&peer, &len);

		printf("accepted from %s port matches %d\n", addr_text((struct sockaddr *)&peer),
		       ntohs(peer.sin_port) == port_of(c));
		S(close(s));
	}
	/* The peer closed: the first write is lost, the next one fails. */
	S(read(c, buf, sizeof(buf)));
	S(send(c, "x", 1, MSG_NOSIGNAL));
	S(send(c, "x", 1, MSG_NOSIGNAL));
	close(c);

	/* Closing with unread data, or with a zero linger time, resets. */
	{
		struct linger l = { 1, 0 };
		int s;

		S(c = socket(AF_INET, SOCK_STREAM, 0));
		S(connect(c, (struct sockaddr *)&a, sizeof(a)));
		s = accept(lfd, NULL, NULL);
		S(write(c, "unread", 6));
		close(s);
		S(read(c, buf, sizeof(buf)));
		S(read(c, buf, sizeof(buf)));
		close(c);
		S(c = socket(AF_INET, SOCK_STREAM, 0));
		S(connect(c, (struct sockaddr *)&a, sizeof(a)));
		s = accept(lfd, NULL, NULL);
		S(setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof(l)));
		close(s);
		S(recv(c, buf, sizeof(buf), 0));
		close(c);
	}
	close(lfd);
}

static void addresses_in_use(void)
{
	struct sockaddr_in a = loop4(0), any = loop4(0);
	int x, y, z, port, on = 1;

	printf("== EADDRINUSE\n");
	S(x = socket(AF_INET, SOCK_STREAM, 0));
	S(bind(x, (struct sockaddr *)&a, sizeof(a)));
	port = port_of(x);
	a = loop4(port);
	any.sin_addr.s_addr = htonl(INADDR_ANY);
	any.sin_port = htons(port);
	S(y = socket(AF_INET, SOCK_STREAM, 0));
	S(bind(y, (struct sockaddr *)&a, sizeof(a)));
	S(bind(y, (struct sockaddr *)&any, sizeof(any)));
	S(setsockopt(x, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)));
	S(setsockopt(y, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)));
	printf("SO_REUSEADDR %d\n", intopt(y, SOL_SOCKET, SO_REUSEADDR));
	S(bind(y, (struct sockaddr *)&a, sizeof(a)));
	S(listen(x, 1));
	S(z = socket(AF_INET, SOCK_STREAM, 0));
	S(setsockopt(z, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)));
	S(bind(z, (struct sockaddr *)&a, sizeof(a)));
	S(bind(x, (struct sockaddr *)&a, sizeof(a)));
	close(x);
	close(y);
	close(z);

	/* A bound socket closed frees its port: nobody is there any more. */
	S(x = socket(AF_INET, SOCK_STREAM, 0));
	S(connect(x, (struct sockaddr *)&a, sizeof(a)));
	close(x);
	a.sin_addr.s_addr = htonl(0x01020304);
	S(x = socket(AF_INET, SOCK_STREAM, 0));
	S(bind(x, (struct sockaddr *)&a, sizeof(a)));
	a.sin_family = AF_INET6;
	S(bind(x, (struct sockaddr *)&a, sizeof(a)));
	S(bind(x, (struct sockaddr *)&a, 4));
	close(x);
}

static void nonblocking_connect(void)
{
	struct sockaddr_in a = loop4(0);
	int lfd, c, s, port, err;
	struct pollfd p;
	socklen_t len = sizeof(err);
	char buf[8];

	printf("== non-blocking connect\n");
	S(lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
	S(bind(lfd, (struct sockaddr *)&a, sizeof(a)));
	S(listen(lfd, 4));
	port = port_of(lfd);
	a = loop4(port);
	S(accept(lfd, NULL, NULL));
	S(c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
	S(connect(c, (struct sockaddr *)&a, sizeof(a)));
	p.fd = c;
	p.events = POLLOUT;
	S(poll(&p, 1, 5000));
	printf("revents OUT %d\n", !!(p.revents & POLLOUT));
	S(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len));
	printf("SO_ERROR %d\n", err);
	{
		struct sockaddr_in peer;
		socklen_t plen = sizeof(peer);

		S(getpeername(c, (struct sockaddr *)&peer, &plen));
	}
	S(connect(c, (struct sockaddr *)&a, sizeof(a)));
	S(connect(c, (struct sockaddr *)&a, sizeof(a)));
	p.fd = lfd;
	p.events = POLLIN;
	S(poll(&p, 1, 5000));
	S_OK(s = accept4(lfd, NULL, NULL, SOCK_NONBLOCK));
	S(recv(s, buf, sizeof(buf), 0));
	S(fcntl(s, F_GETFL) & O_NONBLOCK ? 1 : 0);
	close(s);
	close(c);

	/* Nobody listens: EINPROGRESS, then the error through SO_ERROR. */
	close(lfd);
	S(c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
	S(connect(c, (struct sockaddr *)&a, sizeof(a)));
	p.fd = c;
	p.events = POLLOUT;
	S(poll(&p, 1, 5000));
	show_poll("refused", c);
	len = sizeof(err);
	S(getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len));
	printf("SO_ERROR %s\n", sockerr(err));
	S(connect(c, (struct sockaddr *)&a, sizeof(a)));
	close(c);
	S(c = socket(AF_INET, SOCK_STREAM, 0));
	S(connect(c, (struct sockaddr *)&a, sizeof(a)));
	S(read(c, buf, 1));
	S(send(c, "x", 1, MSG_NOSIGNAL));
	show_poll("fresh", c);
	close(c);
}

static void udp(void)
{
	struct sockaddr_in a = loop4(0), b = loop4(0), from;
	socklen_t len;
	int x, y, n, pa;
	char buf[64];

	printf("== UDP\n");
	S(x = socket(AF_INET, SOCK_DGRAM, 0));
	S(y = socket(AF_INET, SOCK_DGRAM, 0));
	S(bind(x, (struct sockaddr *)&a, sizeof(a)));
	pa = port_of(x);
	a = loop4(pa);
	S(send(y, "x", 1, 0));
	S(sendto(y, "datagram one", 12, 0, (struct sockaddr *)&a, sizeof(a)));
	S(sendto(y, "two", 3, 0, (struct sockaddr *)&a, sizeof(a)));
	printf("sender bound %d\n", port_of(y) >= 32768);
	len = sizeof(from);
	S(n = recvfrom(x, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len));
	printf("got %.*s from %s port ok %d\n", n, buf, addr_text((struct sockaddr *)&from),
	       ntohs(from.sin_port) == port_of(y));
	S(recv(x, buf, 2, MSG_TRUNC));
	S(recv(x, buf, sizeof(buf), MSG_DONTWAIT));
	{
		/* A connected UDP socket hears "port unreachable" on its next call. */
		int z = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in closed = loop4(0);

		bind(z, (struct sockaddr *)&closed, sizeof(closed));
		closed = loop4(port_of(z));
		close(z);
		S(connect(y, (struct sockaddr *)&closed, sizeof(closed)));
		len = sizeof(b);
		S(getsockname(y, (struct sockaddr *)&b, &len));
		printf("connected source %s\n", addr_text((struct sockaddr *)&b));
		S(send(y, "lost", 4, 0));
		S(recv(y, buf, sizeof(buf), MSG_DONTWAIT));
		S(recv(y, buf, sizeof(buf), MSG_DONTWAIT));
	}
	close(x);
	close(y);
}

static void ipv6(void)
{
	struct sockaddr_in6 a = { 0 }, peer;
	struct sockaddr_in v4;
	socklen_t len;
	int lfd, c, s, port, off = 0, on = 1;
	char buf[16];

	printf("== IPv6\n");
	a.sin6_family = AF_INET6;
	a.sin6_addr = in6addr_any;
	S(lfd = socket(AF_INET6, SOCK_STREAM, 0));
	printf("V6ONLY %d\n", intopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY));
	S(setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)));
	S(bind(lfd, (struct sockaddr *)&a, sizeof(a)));
	S(setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)));
	S(listen(lfd, 4));
	port = port_of(lfd);

	/* An IPv4 client reaches the IPv6 wildcard; the server sees it mapped. */
	v4 = loop4(port);
	S(c = socket(AF_INET, SOCK_STREAM, 0));
	S(connect(c, (struct sockaddr *)&v4, sizeof(v4)));
	len = sizeof(peer);
	S_OK(s = accept(lfd, (struct sockaddr *)&peer, &len));
	printf("peer %s len %d\n", addr_text((struct sockaddr *)&peer), (int)len);
	len = sizeof(peer);
	S(getsockname(s, (struct sockaddr *)&peer, &len));
	printf("local %s\n", addr_text((struct sockaddr *)&peer));
	close(s);
	close(c);

	/* And an IPv6 one over ::1. */
	a.sin6_addr = in6addr_loopback;
	a.sin6_port = htons(port);
	S(c = socket(AF_INET6, SOCK_STREAM, 0));
	S(connect(c, (struct sockaddr *)&a, sizeof(a)));
	S_OK(s = accept(lfd, NULL, NULL));
	S(write(c, "six", 3));
	S(read(s, buf, sizeof(buf)));
	len = sizeof(peer);
	S(getpeername(s, (struct sockaddr *)&peer, &len));
	printf("peer %s\n", addr_text((struct sockaddr *)&peer));
	close(s);
	close(c);
	close(lfd);
}

static void options(void)
{
	int fd, v = 1;
	struct linger l = { 1, 5 }, got;
	socklen_t len = sizeof(got);

	printf("== options\n");
	S(fd = socket(AF_INET, SOCK_STREAM, 0));
	printf("SO_TYPE %d SO_PROTOCOL %d SO_DOMAIN %d\n", intopt(fd, SOL_SOCKET, SO_TYPE),
	       intopt(fd, SOL_SOCKET, SO_PROTOCOL), intopt(fd, SOL_SOCKET, SO_DOMAIN));
	printf("TCP_NODELAY %d SO_KEEPALIVE %d\n", intopt(fd, IPPROTO_TCP, TCP_NODELAY),
	       intopt(fd, SOL_SOCKET, SO_KEEPALIVE));
	S(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)));
	v = 7;
	S(setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, sizeof(v)));
	printf("TCP_NODELAY %d SO_KEEPALIVE %d\n", intopt(fd, IPPROTO_TCP, TCP_NODELAY),
	       intopt(fd, SOL_SOCKET, SO_KEEPALIVE));
	v = 4096;
	S(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v)));
	S(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v)));
	printf("SO_RCVBUF %d SO_SNDBUF %d\n", intopt(fd, SOL_SOCKET, SO_RCVBUF),
	       intopt(fd, SOL_SOCKET, SO_SNDBUF));
	S(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l)));
	S(getsockopt(fd, SOL_SOCKET, SO_LINGER, &got, &len));
	printf("linger %d %d len %d\n", got.l_onoff, got.l_linger, (int)len);
	printf("IP_TTL %d TCP_KEEPIDLE %d\n", intopt(fd, IPPROTO_IP, IP_TTL),
	       intopt(fd, IPPROTO_TCP, TCP_KEEPIDLE));
	S(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, 2));
	S(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len));
	S(setsockopt(fd, SOL_SOCKET, SO_TYPE, &v, sizeof(v)));
	S(socket(AF_INET, SOCK_SEQPACKET, 0));
	S(socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
	{ int sv[2]; S(socketpair(AF_INET, SOCK_STREAM, 0, sv)); }
	S(listen(0, 1));
	close(fd);
}

int main(void)
{
	tcp_echo();
	addresses_in_use();
	nonblocking_connect();
	udp();
	ipv6();
	options();
	return 0;
}
