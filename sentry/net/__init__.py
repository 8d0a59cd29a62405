"""Sockets: Unix domain sockets, the sandbox's loopback, and host sockets.

Theory of operation
-------------------
Every socket is an open file description (a :class:`sentry.net.base.Socket`,
an :class:`vfs.core.OpenFile`), so read/write/readv/writev, fstat, dup, fork,
close-on-exec and /proc/PID/fd (``socket:[INODE]``) work on it like on any
file. The socket system calls in :mod:`sentry.syscalls.socket` decode guest
memory (addresses, msghdr, control messages) and call methods of the socket;
the socket never touches guest memory itself, except to install descriptors
received with SCM_RIGHTS.

Where a socket lives depends on its family and on the policy of the sandbox
(:class:`sentry.net.policy.NetPolicy`, chosen with ``--net``):

* AF_UNIX sockets always live in the kernel (:mod:`sentry.net.unix`), whatever
  the policy. Path addresses are socket inodes made in the guest's VFS;
  abstract addresses live in a table of the kernel.
* With ``--net none`` (the default) AF_INET and AF_INET6 sockets live in the
  kernel too (:mod:`sentry.net.inet`): the sandbox has a loopback interface
  only (127.0.0.0/8 and ::1), and any other destination is ENETUNREACH. The
  host socket module is never used, so the guest cannot reach the host's
  network by any path.
* With ``--net host`` AF_INET and AF_INET6 sockets are host sockets
  (:mod:`sentry.net.host`), opened non-blocking; the policy's allow lists
  decide which connects and binds reach the host at all.

Connection-oriented in-kernel sockets (Unix stream and seqpacket, loopback
TCP) share :mod:`sentry.net.stream`; datagram ones (Unix datagram, loopback
UDP) share :mod:`sentry.net.dgram`. What differs between families (address
formats, name tables, the errno of a few corner cases) is an
:class:`sentry.net.base.Family` object each socket holds.

Waiting follows :mod:`vfs.wait`: an operation that cannot proceed raises
EAGAIN in non-blocking mode and :class:`vfs.wait.WouldBlock` naming the
socket's wait queue (or the host descriptor) otherwise. Every socket offers
``poll()``, ``poll_queue()`` and, for host sockets, ``poll_host_fd()``.
"""
