/*
 * sock_unix: AF_UNIX sockets. socketpair of each type (data, shutdown, poll,
 * options, peer credentials), a pair shared across fork, SCM_RIGHTS passing a
 * pipe to another process, SCM_CREDENTIALS, a path-bound listener (the socket
 * inode, EADDRINUSE, ECONNREFUSED, ENOENT), abstract and autobound names,
 * datagrams between named sockets, seqpacket records, non-blocking mode, and
 * EPIPE with and without SIGPIPE. Only values that match between runs are
 * printed (pids and inode numbers are compared, not shown).
 */
#define _GNU_SOURCE
#include "sock_check.h"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int sigpipes;

static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
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

static void stream_pair(void)
{
	int sv[2], n;
	char buf[64];
	struct stat st;
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct sockaddr_un sun;
	char link[64], path[64];

	printf("== stream pair\n");
	S(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	S(write(sv[0], "hello", 5));
	S(send(sv[0], " world", 6, 0));
	S(n = read(sv[1], buf, sizeof(buf)));
	printf("got: %.*s\n", n, buf);
	show_poll("empty", sv[1]);
	S(fstat(sv[0], &st));
	YESNO(S_ISSOCK(st.st_mode));
	snprintf(path, sizeof(path), "/proc/self/fd/%d", sv[0]);
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = 0;
	YESNO(strncmp(link, "socket:[", 8) == 0);
	printf("SO_TYPE %d SO_DOMAIN %d SO_ERROR %d SO_ACCEPTCONN %d\n",
	       intopt(sv[0], SOL_SOCKET, SO_TYPE), intopt(sv[0], SOL_SOCKET, SO_DOMAIN),
	       intopt(sv[0], SOL_SOCKET, SO_ERROR),
	       intopt(sv[0], SOL_SOCKET, SO_ACCEPTCONN));
	S(getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cred, &len));
	YESNO(cred.pid == getpid() && cred.uid == geteuid() && cred.gid == getegid());
	len = sizeof(sun);
	S(getsockname(sv[0], (struct sockaddr *)&sun, &len));
	printf("name len %d family %d\n", (int)len, sun.sun_family);
	len = sizeof(sun);
	S(getpeername(sv[0], (struct sockaddr *)&sun, &len));
	printf("peer len %d\n", (int)len);
	n = 1000;
	S(setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &n, sizeof(n)));
	printf("SO_RCVBUF %d\n", intopt(sv[0], SOL_SOCKET, SO_RCVBUF));
	S(getsockopt(sv[0], SOL_SOCKET, 12345, &n, &len));

	/* shutdown(SHUT_WR): the peer reads end of file, and may still write. */
	S(shutdown(sv[0], SHUT_WR));
	show_poll("after peer SHUT_WR", sv[1]);
	S(read(sv[1], buf, sizeof(buf)));
	signal(SIGPIPE, SIG_IGN);
	S(write(sv[0], "x", 1));
	signal(SIGPIPE, SIG_DFL);
	S(write(sv[1], "back", 4));
	S(read(sv[0], buf, sizeof(buf)));
	S(shutdown(sv[0], 7));
	S(close(sv[1]));
	show_poll("peer closed", sv[0]);
	S(read(sv[0], buf, sizeof(buf)));
	S(close(sv[0]));
}

static void epipe(void)
{
	int sv[2];

	printf("== EPIPE\n");
	signal(SIGPIPE, on_sigpipe);
	S(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	S(close(sv[1]));
	S(write(sv[0], "x", 1));
	printf("sigpipes %d\n", sigpipes);
	S(send(sv[0], "x", 1, MSG_NOSIGNAL));
	printf("sigpipes %d\n", sigpipes);
	S(close(sv[0]));
	signal(SIGPIPE, SIG_DFL);
}

static void nonblocking(void)
{
	int sv[2], total = 0;
	char buf[4096];

	printf("== non-blocking\n");
	S(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv));
	S(read(sv[0], buf, sizeof(buf)));
	S(recv(sv[0], buf, sizeof(buf), MSG_DONTWAIT));
	memset(buf, 'a', sizeof(buf));
	for (;;) {
		int n = write(sv[0], buf, sizeof(buf));
		if (n < 0) {
			printf("filled: %s\n", sockerr(errno));
			break;
		}
		total += n;
	}
	YESNO(total > 0);
	show_poll("full", sv[0]);
	S(close(sv[0]));
	S(close(sv[1]));
}

static void across_fork(void)
{
	int sv[2], status, n;
	char buf[64];
	pid_t pid;

	printf("== pair across fork\n");
	S(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		n = read(sv[1], buf, sizeof(buf));
		if (n > 0)
			write(sv[1], buf, n);
		_exit(n == 4 ? 0 : 1);
	}
	close(sv[1]);
	S(write(sv[0], "ping", 4));
	S(n = read(sv[0], buf, sizeof(buf)));
	printf("echo: %.*s\n", n, buf);
	waitpid(pid, &status, 0);
	printf("child status %d\n", WEXITSTATUS(status));
	S(read(sv[0], buf, sizeof(buf)));
	close(sv[0]);
}

static int send_fd(int sock, int fd)
{
	struct msghdr msg = { 0 };
	struct iovec iov = { "F", 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct cmsghdr *c;

	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(sock, &msg, 0);
}

static int recv_fd_flags(int sock, int *flags, int recv_flags)
{
	struct msghdr msg = { 0 };
	char byte;
	struct iovec iov = { &byte, 1 };
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct cmsghdr *c;
	int fd = -1;

	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	if (recvmsg(sock, &msg, recv_flags) < 0)
		return -1;
	*flags = msg.msg_flags;
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

static int recv_fd(int sock, int *flags)
{
	return recv_fd_flags(sock, flags, 0);
}

static void rights(void)
{
	int sv[2], p[2], status, flags = 0;
	pid_t pid;

	printf("== SCM_RIGHTS\n");
	S(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	S(pipe(p));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		/* The child gets the read end of a pipe it never had. */
		char buf[32];
		int fd, n;

		close(sv[0]);
		close(p[0]);
		close(p[1]);
		fd = recv_fd(sv[1], &flags);
		if (fd < 0)
			_exit(2);
		n = read(fd, buf, sizeof(buf));
		write(sv[1], buf, n > 0 ? n : 0);
		_exit(0);
	}
	close(sv[1]);
	S(send_fd(sv[0], p[0]));
	/* Our copy closes; the one in flight keeps the pipe's read end open. */
	S(close(p[0]));
	S(write(p[1], "through the pipe", 16));
	{
		char buf[32];
		int n = read(sv[0], buf, sizeof(buf));
		printf("child read: %.*s\n", n > 0 ? n : 0, buf);
	}
	waitpid(pid, &status, 0);
	printf("child status %d\n", WEXITSTATUS(status));
	/* Every reader is gone now. */
	signal(SIGPIPE, SIG_IGN);
	S(write(p[1], "x", 1));
	signal(SIGPIPE, SIG_DFL);
	close(p[1]);

	/* A descriptor received in the same process, and one read with read(2). */
	S(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	S(send_fd(sv[0], 1));
	{
		int fd = recv_fd(sv[1], &flags);
		struct stat a, b;

		fstat(fd, &a);
		fstat(1, &b);
		YESNO(fd > 2 && a.st_ino == b.st_ino);
		printf("flags %d\n", flags);
		close(fd);
	}
	S(send_fd(sv[0], 1));
	{
		char buf[8];
		S(read(sv[1], buf, sizeof(buf)));
	}
	close(sv[0]);
	close(sv[1]);

	/* A peek installs the descriptors too; the read then gets its own. */
	S(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	S(send_fd(sv[0], 1));
	{
		int a = recv_fd_flags(sv[1], &flags, MSG_PEEK);
		int b = recv_fd(sv[1], &flags);

		YESNO(a > 2 && b > 2 && a != b);
		close(a);
		close(b);
	}
	close(sv[0]);
	close(sv[1]);
}

static void credentials(void)
{
	int sv[2], on = 1;
	struct msghdr msg = { 0 };
	char buf[16];
	struct iovec iov = { buf, sizeof(buf) };
	union {
		char buf[CMSG_SPACE(sizeof(struct ucred))];
		struct cmsghdr align;
	} u;
	struct cmsghdr *c;
	struct ucred cred;

	printf("== SCM_CREDENTIALS\n");
	S(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	S(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)));
	S(send(sv[0], "c", 1, 0));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	S(recvmsg(sv[1], &msg, 0));
	c = CMSG_FIRSTHDR(&msg);
	YESNO(c && c->cmsg_type == SCM_CREDENTIALS);
	if (c) {
		memcpy(&cred, CMSG_DATA(c), sizeof(cred));
		YESNO(cred.pid == getpid() && cred.uid == getuid() && cred.gid == getgid());
	}

	/* Sending someone else's pid needs privileges. */
	memset(&msg, 0, sizeof(msg));
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = u.buf;
	msg.msg_controllen = sizeof(u.buf);
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_CREDENTIALS;
	c->cmsg_len = CMSG_LEN(sizeof(cred));
	cred.pid = getpid();
	cred.uid = getuid();
	cred.gid = getgid();
	memcpy(CMSG_DATA(c), &cred, sizeof(cred));
	S(sendmsg(sv[0], &msg, 0));
	if (getuid() != 0) {
		cred.pid = getpid() + 1000;
		memcpy(CMSG_DATA(c), &cred, sizeof(cred));
		S(sendmsg(sv[0], &msg, 0) == -1 && errno == EPERM);
	}
	close(sv[0]);
	close(sv[1]);
}

static void named(const char *dir)
{
	struct sockaddr_un sun = { AF_UNIX, "" }, got;
	socklen_t len;
	struct stat st;
	int srv, cli, conn, status, n;
	char buf[64];
	struct ucred cred;
	pid_t pid;

	printf("== path names\n");
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/sock", dir);
	S(srv = socket(AF_UNIX, SOCK_STREAM, 0));
	S(connect(srv, (struct sockaddr *)&sun, sizeof(sun)));
	S(bind(srv, (struct sockaddr *)&sun, sizeof(sun)));
	S(stat(sun.sun_path, &st));
	YESNO(S_ISSOCK(st.st_mode));
	S(bind(srv, (struct sockaddr *)&sun, sizeof(sun)));
	S(cli = socket(AF_UNIX, SOCK_STREAM, 0));
	S(bind(cli, (struct sockaddr *)&sun, sizeof(sun)));
	S(connect(cli, (struct sockaddr *)&sun, sizeof(sun)));
	close(cli);
	len = sizeof(got);
	S(getsockname(srv, (struct sockaddr *)&got, &len));
	YESNO(len == offsetof(struct sockaddr_un, sun_path) + strlen(sun.sun_path) + 1);
	YESNO(strcmp(got.sun_path, sun.sun_path) == 0);
	S(listen(srv, 5));
	printf("SO_ACCEPTCONN %d\n", intopt(srv, SOL_SOCKET, SO_ACCEPTCONN));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int c = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un peer;
		socklen_t plen = sizeof(peer);

		if (connect(c, (struct sockaddr *)&sun, sizeof(sun)) < 0)
			_exit(1);
		getpeername(c, (struct sockaddr *)&peer, &plen);
		if (strcmp(peer.sun_path, sun.sun_path) != 0)
			_exit(2);
		write(c, "from child", 10);
		n = read(c, buf, sizeof(buf));
		_exit(n == 2 ? 0 : 3);
	}
	S_OK(conn = accept(srv, (struct sockaddr *)&got, &len));
	printf("peer addr len %d\n", (int)len);
	len = sizeof(cred);
	S(getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len));
	YESNO(cred.pid == pid);
	S(n = read(conn, buf, sizeof(buf)));
	printf("got: %.*s\n", n, buf);
	S(write(conn, "ok", 2));
	waitpid(pid, &status, 0);
	printf("child status %d\n", WEXITSTATUS(status));
	close(conn);

	/* Nobody listens once the socket is closed; the file stays. */
	close(srv);
	S(cli = socket(AF_UNIX, SOCK_STREAM, 0));
	S(connect(cli, (struct sockaddr *)&sun, sizeof(sun)));
	S(unlink(sun.sun_path));
	S(connect(cli, (struct sockaddr *)&sun, sizeof(sun)));
	close(cli);

	/* A regular file is not a socket. */
	n = open(sun.sun_path, O_CREAT | O_WRONLY, 0600);
	close(n);
	S(cli = socket(AF_UNIX, SOCK_STREAM, 0));
	S(connect(cli, (struct sockaddr *)&sun, sizeof(sun)));
	close(cli);
	unlink(sun.sun_path);
}

static void abstract(void)
{
	struct sockaddr_un sun = { AF_UNIX, "" }, got;
	socklen_t len, alen;
	int a, b, c;
	char buf[16];

	printf("== abstract and autobind\n");
	snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "pysentry-test-%d", getpid());
	alen = offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sun.sun_path + 1);
	S(a = socket(AF_UNIX, SOCK_SEQPACKET, 0));
	S(bind(a, (struct sockaddr *)&sun, alen));
	S(b = socket(AF_UNIX, SOCK_SEQPACKET, 0));
	S(bind(b, (struct sockaddr *)&sun, alen));
	S(listen(a, 1));
	len = sizeof(got);
	S(getsockname(a, (struct sockaddr *)&got, &len));
	YESNO(len == alen && memcmp(&got, &sun, alen) == 0);
	S(connect(b, (struct sockaddr *)&sun, alen));
	S_OK(c = accept(a, NULL, NULL));

	/* Records keep their boundaries; a short read truncates one. */
	S(send(b, "first record", 12, 0));
	S(send(b, "second", 6, 0));
	{
		struct msghdr msg = { 0 };
		struct iovec iov = { buf, 5 };

		msg.msg_iov = &iov;
		msg.msg_iovlen = 1;
		S(recvmsg(c, &msg, 0));
		printf("flags trunc %d\n", !!(msg.msg_flags & MSG_TRUNC));
	}
	S(recv(c, buf, sizeof(buf), 0));
	close(b);
	S(recv(c, buf, sizeof(buf), 0));
	close(c);
	close(a);

	/* A Unix stream read names a sender that has a name. */
	{
		struct sockaddr_un from;
		socklen_t flen = sizeof(from);
		int l, named, s2;

		S(l = socket(AF_UNIX, SOCK_STREAM, 0));
		S(bind(l, (struct sockaddr *)&sun, alen));
		S(listen(l, 1));
		S(named = socket(AF_UNIX, SOCK_STREAM, 0));
		S(bind(named, (struct sockaddr *)&sun, sizeof(sa_family_t)));
		S(connect(named, (struct sockaddr *)&sun, alen));
		S_OK(s2 = accept(l, NULL, NULL));
		S(write(named, "n", 1));
		S(recvfrom(s2, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen));
		printf("sender name len %d\n", (int)flen);
		S(write(s2, "m", 1));
		flen = sizeof(from);
		S(recvfrom(named, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen));
		YESNO(flen == alen && memcmp(&from, &sun, alen) == 0);
		close(s2);
		close(named);
		close(l);
	}

	/* bind with the family alone picks a name: NUL and five hex digits. */
	S(a = socket(AF_UNIX, SOCK_DGRAM, 0));
	S(bind(a, (struct sockaddr *)&sun, sizeof(sa_family_t)));
	len = sizeof(got);
	S(getsockname(a, (struct sockaddr *)&got, &len));
	printf("autobind len %d first byte %d\n", (int)len, got.sun_path[0]);
	S(listen(a, 1));
	close(a);
}

static void datagrams(const char *dir)
{
	struct sockaddr_un sa = { AF_UNIX, "" }, sb = { AF_UNIX, "" }, from;
	socklen_t len;
	int a, b, c, i;
	char buf[64];

	printf("== datagrams\n");
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/a", dir);
	snprintf(sb.sun_path, sizeof(sb.sun_path), "%s/b", dir);
	S(a = socket(AF_UNIX, SOCK_DGRAM, 0));
	S(b = socket(AF_UNIX, SOCK_DGRAM, 0));
	S(c = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0));
	S(bind(a, (struct sockaddr *)&sa, sizeof(sa)));
	S(bind(b, (struct sockaddr *)&sb, sizeof(sb)));
	S(send(c, "x", 1, 0));
	S(sendto(c, "x", 1, 0, (struct sockaddr *)&sa, sizeof(sa)));
	S(sendto(a, "to b", 4, 0, (struct sockaddr *)&sb, sizeof(sb)));
	len = sizeof(from);
	S(recvfrom(b, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len));
	YESNO(strcmp(from.sun_path, sa.sun_path) == 0);
	S(recvfrom(a, buf, 1, MSG_TRUNC, (struct sockaddr *)&from, &len));
	printf("anonymous sender len %d\n", (int)len);
	S(recv(c, buf, sizeof(buf), 0));

	/* A socket connected to another one takes nothing from a third. */
	S(connect(b, (struct sockaddr *)&sa, sizeof(sa)));
	S(connect(a, (struct sockaddr *)&sb, sizeof(sb)));
	S(sendto(c, "y", 1, 0, (struct sockaddr *)&sa, sizeof(sa)));
	S(send(b, "z", 1, 0));
	S(recv(a, buf, sizeof(buf), 0));

	/* The receiver's queue fills up. */
	S(connect(c, (struct sockaddr *)&sb, sizeof(sb)));
	{
		struct sockaddr unspec = { AF_UNSPEC, "" };
		S(connect(b, &unspec, sizeof(unspec)));
	}
	S(connect(c, (struct sockaddr *)&sb, sizeof(sb)));
	for (i = 0; i < 100; i++)
		if (send(c, "q", 1, 0) < 0)
			break;
	printf("queued before %s: %d\n", sockerr(errno), i);
	close(b);
	S(send(c, "q", 1, 0));
	S(send(c, "q", 1, 0));
	close(a);
	close(c);
	unlink(sa.sun_path);
	unlink(sb.sun_path);
}

int main(void)
{
	/* Named sockets go in a new directory under $TMPDIR (default /tmp). */
	const char *base = getenv("TMPDIR");
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s/pysentry-sock-XXXXXX", base ? base : "/tmp");
	if (!mkdtemp(dir))
		return 1;
	stream_pair();
	epipe();
	nonblocking();
	across_fork();
	rights();
	credentials();
	named(dir);
	abstract();
	datagrams(dir);
	rmdir(dir);
	return 0;
}
