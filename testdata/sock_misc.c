/*
 * sock_misc: the rest of the socket surface. SO_RCVTIMEO ends a blocking
 * receive with EAGAIN; a signal without SA_RESTART interrupts a blocking
 * accept and recv with EINTR; readv/writev, FIONREAD and fcntl(O_NONBLOCK) on
 * sockets; recv(MSG_WAITALL) of more than a socket buffer holds, written
 * by another process; sendmmsg/recvmmsg; the edges edge-triggered epoll reports for a
 * Unix stream socket; and getaddrinfo of "localhost" (what the libc reads
 * from /etc/hosts).
 */
#define _GNU_SOURCE
#include "sock_check.h"
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void on_alarm(int sig)
{
	(void)sig;
}

/* SIGALRM in 100 ms. */
static void soon(void)
{
	struct itimerval it = { { 0, 0 }, { 0, 100000 } };

	setitimer(ITIMER_REAL, &it, NULL);
}

static long elapsed_ms(struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static void timeouts(void)
{
	int sv[2];
	struct timeval tv = { 0, 200000 }, got;
	socklen_t len = sizeof(got);
	struct timespec t0;
	char buf[8];

	printf("== SO_RCVTIMEO\n");
	S(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	S(setsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)));
	S(getsockopt(sv[0], SOL_SOCKET, SO_RCVTIMEO, &got, &len));
	printf("timeout %ld.%06ld len %d\n", (long)got.tv_sec, (long)got.tv_usec, (int)len);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	S(recv(sv[0], buf, sizeof(buf), 0));
	YESNO(elapsed_ms(&t0) >= 190);
	S(write(sv[1], "late", 4));
	S(recv(sv[0], buf, sizeof(buf), 0));
	close(sv[0]);
	close(sv[1]);
}

static void interrupted(void)
{
	struct sigaction sa = { 0 };
	struct sockaddr_in a = { 0 };
	int sv[2], lfd;
	char buf[8];

	printf("== EINTR\n");
	sa.sa_handler = on_alarm;
	sigaction(SIGALRM, &sa, NULL);
	S(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	soon();
	S(recv(sv[0], buf, sizeof(buf), 0));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	S(lfd = socket(AF_INET, SOCK_STREAM, 0));
	S(bind(lfd, (struct sockaddr *)&a, sizeof(a)));
	S(listen(lfd, 1));
	soon();
	S(accept(lfd, NULL, NULL));
	close(lfd);
	close(sv[0]);
	close(sv[1]);
}

static void file_calls(void)
{
	int sv[2], n, fl;
	struct iovec out[2] = { { "vec", 3 }, { "tored", 5 } };
	char a[4], b[16];
	struct iovec in[2] = { { a, 4 }, { b, sizeof(b) } };

	printf("== file calls\n");
	S(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	S(writev(sv[0], out, 2));
	S(ioctl(sv[1], FIONREAD, &n));
	printf("FIONREAD %d\n", n);
	S(n = readv(sv[1], in, 2));
	printf("got %.4s|%.*s\n", a, n - 4, b);
	S(fl = fcntl(sv[1], F_GETFL));
	S(fcntl(sv[1], F_SETFL, fl | O_NONBLOCK));
	S(read(sv[1], b, sizeof(b)));
	S(n = dup(sv[0]));
	close(sv[0]);
	S(write(n, "dup", 3));
	S(read(sv[1], b, sizeof(b)));
	S(lseek(n, 0, SEEK_SET));
	close(n);
	S(read(sv[1], b, sizeof(b)));
	close(sv[1]);
}

static void waitall(void)
{
	static char buf[3 << 18];
	int sv[2], status;
	long n;
	pid_t pid;

	printf("== MSG_WAITALL\n");
	S(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		memset(buf, 'w', sizeof(buf));
		write(sv[1], buf, sizeof(buf));
		_exit(0);
	}
	close(sv[1]);
	S(n = recv(sv[0], buf, sizeof(buf), MSG_WAITALL));
	YESNO(n == sizeof(buf) && buf[0] == 'w' && buf[sizeof(buf) - 1] == 'w');
	S(recv(sv[0], buf, 16, MSG_WAITALL));
	waitpid(pid, &status, 0);
	close(sv[0]);
}

static void multiple(void)
{
	int sv[2], i;
	struct mmsghdr msgs[3];
	struct iovec iov[3];
	char bufs[3][8];

	printf("== sendmmsg/recvmmsg\n");
	S(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	memset(msgs, 0, sizeof(msgs));
	for (i = 0; i < 3; i++) {
		snprintf(bufs[i], sizeof(bufs[i]), "m%d", i);
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = 2 + i;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	S(sendmmsg(sv[0], msgs, 3, 0));
	printf("lens %u %u %u\n", msgs[0].msg_len, msgs[1].msg_len, msgs[2].msg_len);
	memset(bufs, 0, sizeof(bufs));
	for (i = 0; i < 3; i++)
		iov[i].iov_len = sizeof(bufs[i]);
	S(recvmmsg(sv[1], msgs, 3, MSG_WAITFORONE, NULL));
	printf("got %s %s %s lens %u %u %u\n", bufs[0], bufs[1], bufs[2],
	       msgs[0].msg_len, msgs[1].msg_len, msgs[2].msg_len);
	close(sv[0]);
	close(sv[1]);
}

static void edges(int ep, const char *label)
{
	struct epoll_event ev[4];
	int n = epoll_wait(ep, ev, 4, 0), i;

	printf("%s: %d", label, n);
	for (i = 0; i < n; i++)
		printf(" %s%s%s%s", ev[i].events & EPOLLIN ? "IN" : "",
		       ev[i].events & EPOLLOUT ? "OUT" : "", ev[i].events & EPOLLHUP ? "HUP" : "",
		       ev[i].events & EPOLLRDHUP ? "RDHUP" : "");
	printf("\n");
}

static void edge_triggered(void)
{
	struct epoll_event e = { EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, { 0 } };
	int sv[2], ep;
	char b[4];

	printf("== epoll edges\n");
	S(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	S(ep = epoll_create1(0));
	S(epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &e));
	edges(ep, "start");
	edges(ep, "again");
	write(sv[0], "x", 1);
	edges(ep, "data");
	edges(ep, "again");
	read(sv[1], b, sizeof(b));
	edges(ep, "drained");
	write(sv[1], "y", 1);
	edges(ep, "wrote");
	read(sv[0], b, sizeof(b));
	edges(ep, "peer read");
	shutdown(sv[0], SHUT_WR);
	edges(ep, "peer shut down");
	close(sv[0]);
	edges(ep, "peer closed");
	close(sv[1]);
	close(ep);
}

static void names(void)
{
	struct addrinfo hints = { 0 }, *res, *ai;
	char host[64];

	printf("== getaddrinfo\n");
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_family = AF_INET;
	if (S(getaddrinfo("localhost", "80", &hints, &res)) != 0)
		return;
	for (ai = res; ai; ai = ai->ai_next) {
		getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof(host), NULL, 0,
			    NI_NUMERICHOST);
		printf("localhost: family %d %s port %d\n", ai->ai_family, host,
		       ntohs(((struct sockaddr_in *)ai->ai_addr)->sin_port));
	}
	freeaddrinfo(res);
}

int main(int argc, char **argv)
{
	timeouts();
	interrupted();
	file_calls();
	waitall();
	multiple();
	edge_triggered();
	if (argc > 1 && strcmp(argv[1], "names") == 0)
		names();
	return 0;
}
