"""How the tracer shows what an argument points to: strings, buffers, structs.

These decoders read guest memory through :class:`~sentry.strace_args.Call`,
which raises :class:`~sentry.errors.SyscallError` for a bad pointer; the
tracer then shows the pointer itself. Layouts are those of x86-64 Linux.
"""

from __future__ import annotations

import ipaddress
import struct

from sentry import abi
from sentry.errors import SyscallError
from sentry.strace_args import (
    ADDRESS_FAMILIES,
    AF_INET,
    AF_INET6,
    AF_UNIX,
    CLONE_FLAGS,
    EPOLL_EVENTS,
    MSG_FLAGS,
    POLL_EVENTS,
    RET,
    SA_FLAGS,
    SA_RESTORER,
    SCM_TYPES,
    SOCKET_LEVELS,
    SS_FLAGS,
    STATX_MASK,
    WHENCE,
    Call,
    Kind,
    Show,
    c_hex,
    file_mode,
    flag_names,
    hex_or_null,
    makedev,
    octal,
    open_flags,
    quote,
    signal_name,
)
from sentry.syscalls.args import s32

# The longest path we read.
PATH_LIMIT = 4096

# --- strings and buffers ------------------------------------------------------


def in_struct(decode: Show) -> Kind:
    """A pointer to something the guest passes in; NULL stays NULL."""
    return Kind(lambda call, v: decode(call, v) if v else "NULL")


def out_struct(decode: Show) -> Kind:
    """A pointer to something the kernel fills in, shown when the call returns."""
    return Kind(lambda call, v: decode(call, v) if v else "NULL", at_exit=True)


def _length(call: Call, source: int) -> int:
    if source == RET:
        assert call.result is not None
        return call.result
    return call.args[source]


def buffer_text(call: Call, addr: int, n: int) -> str:
    """The first ``n`` bytes at ``addr``, quoted and cut at the string limit."""
    if n <= 0:
        return '""'
    data = call.read(addr, min(n, call.limit))
    return quote(data) + ("..." if n > call.limit else "")


def in_buffer(length_arg: int) -> Kind:
    """Bytes the guest passes in; the length is another argument."""
    return Kind(lambda call, v: buffer_text(call, v, call.args[length_arg]))


def out_buffer(length_from: int = RET) -> Kind:
    """Bytes the kernel fills in; by default the result says how many."""
    return Kind(lambda call, v: buffer_text(call, v, _length(call, length_from)),
                at_exit=True)


def _cstring(call: Call, addr: int, limit: int) -> tuple[bytes, bool]:
    """A NUL-terminated string of at most ``limit`` bytes, and whether it went on."""
    if addr == 0:
        raise SyscallError(abi.EFAULT)
    try:
        return call.task.mm.read_cstring(addr, limit), False
    except SyscallError as err:
        if err.errno != abi.ENAMETOOLONG:
            raise
        return call.task.mm.read(addr, limit), True


def _path(call: Call, v: int) -> str:
    if v == 0:
        return "NULL"
    data, longer = _cstring(call, v, PATH_LIMIT)
    return quote(data) + ("..." if longer else "")


def _string(call: Call, v: int) -> str:
    if v == 0:
        return "NULL"
    data, longer = _cstring(call, v, call.limit)
    return quote(data) + ("..." if longer else "")


PATH = Kind(_path)
STRING = Kind(_string)
OUT_PATH = Kind(_path, at_exit=True)


# --- arguments whose meaning depends on another ------------------------------


def _prctl_arg(call: Call, v: int) -> str:
    option = s32(call.args[0])
    if option == abi.PR_SET_NAME:
        return _string(call, v)
    if option == abi.PR_SET_PDEATHSIG:
        return signal_name(s32(v))
    return c_hex(v)


def _prctl_name_out(call: Call, v: int) -> str:
    if s32(call.args[0]) == abi.PR_GET_NAME and call.succeeded:
        return _string(call, v)
    return _prctl_arg(call, v)


# PR_GET_NAME fills its buffer, so this argument is looked at on the way out.
PRCTL_ARG2 = Kind(_prctl_name_out, at_exit=True)
PRCTL_ARG = Kind(_prctl_arg)


def _fcntl_arg(call: Call, v: int) -> str:
    cmd = s32(call.args[1])
    if cmd == abi.F_SETFD:
        return flag_names(v & 0xFFFFFFFF, {"FD_CLOEXEC": abi.FD_CLOEXEC})
    if cmd == abi.F_SETFL:
        return open_flags(v)
    if cmd in (abi.F_GETLK, abi.F_SETLK, abi.F_SETLKW, abi.F_OFD_GETLK,
               abi.F_OFD_SETLK, abi.F_OFD_SETLKW):
        return flock_struct(call, v) if v else "NULL"
    return str(s32(v))


FCNTL_ARG = Kind(_fcntl_arg)


# --- structs ------------------------------------------------------------------

_i32 = struct.Struct("<i")
_u32 = struct.Struct("<I")
_u64 = struct.Struct("<Q")
_two_i32 = struct.Struct("<ii")
_two_i64 = struct.Struct("<qq")
_two_u64 = struct.Struct("<QQ")
_stat = struct.Struct("<QQQIII4xQqqq")
_statx_head = struct.Struct("<IIQIIIH2xQQQ")
_flock = struct.Struct("<hh4xqqi4x")
_sigaction = struct.Struct("<QQQQ")
_stack_t = struct.Struct("<Qi4xQ")
_pollfd = struct.Struct("<ihh")
_iovec = struct.Struct("<QQ")
_epoll_event = struct.Struct("<IQ")  # packed on x86-64
_open_how = struct.Struct("<QQQ")
_statfs = struct.Struct("<qqQQQQQ")
_sysinfo = struct.Struct("<q3QQQQQQQH")
_tms = struct.Struct("<qqqq")
_clone_args = struct.Struct("<QQQQQQQ")


def stat_struct(call: Call, addr: int) -> str:
    _dev, _ino, _nlink, mode, _uid, _gid, rdev, size, _bs, _blocks = call.unpack(
        _stat, addr)
    if mode & abi.S_IFMT in (abi.S_IFCHR, abi.S_IFBLK):
        return f"{{st_mode={file_mode(mode)}, st_rdev={makedev(rdev)}, ...}}"
    return f"{{st_mode={file_mode(mode)}, st_size={size}, ...}}"


def statx_struct(call: Call, addr: int) -> str:
    mask, _blksize, attrs_, _nlink, _uid, _gid, mode, _ino, size, _blocks = (
        call.unpack(_statx_head, addr))
    mask_text = STATX_MASK.show(call, mask)
    return (f"{{stx_mask={mask_text}, stx_attributes={c_hex(attrs_)}, "
            f"stx_mode={file_mode(mode)}, stx_size={size}, ...}}")


def timespec(call: Call, addr: int) -> str:
    sec, nsec = call.unpack(_two_i64, addr)
    return f"{{tv_sec={sec}, tv_nsec={nsec}}}"


def timeval(call: Call, addr: int) -> str:
    sec, usec = call.unpack(_two_i64, addr)
    return f"{{tv_sec={sec}, tv_usec={usec}}}"


def _utime_nsec(nsec: int) -> str:
    return {abi.UTIME_NOW: "UTIME_NOW", abi.UTIME_OMIT: "UTIME_OMIT"}.get(
        nsec, str(nsec))


def timespec_pair(call: Call, addr: int) -> str:
    items = []
    for i in range(2):
        sec, nsec = call.unpack(_two_i64, addr + 16 * i)
        if nsec in (abi.UTIME_NOW, abi.UTIME_OMIT):
            items.append(f"{{tv_sec={sec}, tv_nsec={_utime_nsec(nsec)}}}")
        else:
            items.append(f"{{tv_sec={sec}, tv_nsec={nsec}}}")
    return "[" + ", ".join(items) + "]"


def timeval_pair(call: Call, addr: int) -> str:
    return f"[{timeval(call, addr)}, {timeval(call, addr + 16)}]"


def utimbuf(call: Call, addr: int) -> str:
    actime, modtime = call.unpack(_two_i64, addr)
    return f"{{actime={actime}, modtime={modtime}}}"


def flock_struct(call: Call, addr: int) -> str:
    kind, whence, start, length, pid = call.unpack(_flock, addr)
    kinds = {abi.F_RDLCK: "F_RDLCK", abi.F_WRLCK: "F_WRLCK", abi.F_UNLCK: "F_UNLCK"}
    return (f"{{l_type={kinds.get(kind, str(kind))}, "
            f"l_whence={WHENCE.show(call, whence)}, l_start={start}, l_len={length}, "
            f"l_pid={pid}}}")


def int_array(count: int, signed: bool = True) -> Show:
    """``[3, 4]``: a fixed number of ints (pipe descriptors, getresuid)."""
    layout = _i32 if signed else _u32

    def show(call: Call, addr: int) -> str:
        values = [str(call.unpack(layout, addr + 4 * i)[0]) for i in range(count)]
        return "[" + ", ".join(values) + "]"

    return show


def int_ref(call: Call, addr: int) -> str:
    return f"[{call.unpack(_i32, addr)[0]}]"


def _rlim(value: int) -> str:
    if value == abi.RLIM_INFINITY:
        return "RLIM64_INFINITY"
    if value and value % 1024 == 0:
        return f"{value // 1024}*1024"
    return str(value)


def rlimit(call: Call, addr: int) -> str:
    cur, max_ = call.unpack(_two_u64, addr)
    return f"{{rlim_cur={_rlim(cur)}, rlim_max={_rlim(max_)}}}"


def utsname(call: Call, addr: int) -> str:
    raw = call.read(addr, 65 * 2)
    sysname = raw[:65].split(b"\0", 1)[0]
    nodename = raw[65:].split(b"\0", 1)[0]
    return f"{{sysname={quote(sysname)}, nodename={quote(nodename)}, ...}}"


def sigset_text(mask: int, size: int = 8) -> str:
    """``[INT TERM]``; a mostly full set as its complement, ``~[KILL STOP]``."""
    nsig = min(size, 8) * 8
    full = (1 << nsig) - 1
    mask &= full
    prefix = ""
    if bin(mask).count("1") > nsig // 2:
        prefix, mask = "~", ~mask & full
    names = [signal_name(i + 1)[3:] for i in range(nsig) if mask >> i & 1]
    return prefix + "[" + " ".join(names) + "]"


def sigset(size_arg: int | None = None) -> Show:
    def show(call: Call, addr: int) -> str:
        size = 8 if size_arg is None else call.args[size_arg]
        if not 0 < size <= 8:
            return f"{addr:#x}"
        data = call.read(addr, size).ljust(8, b"\0")
        return sigset_text(_u64.unpack(data)[0], size)

    return show


def sigaction(call: Call, addr: int) -> str:
    handler, sa_flags, restorer, mask = call.unpack(_sigaction, addr)
    handler_text = {0: "SIG_DFL", 1: "SIG_IGN"}.get(handler, f"{handler:#x}")
    text = (f"{{sa_handler={handler_text}, sa_mask={sigset_text(mask)}, "
            f"sa_flags={flag_names(sa_flags, SA_FLAGS)}")
    if sa_flags & SA_RESTORER:
        text += f", sa_restorer={restorer:#x}"
    return text + "}"


def stack_t(call: Call, addr: int) -> str:
    sp, ss_flags, size = call.unpack(_stack_t, addr)
    flag_text = flag_names(ss_flags & 0xFFFFFFFF, SS_FLAGS)
    return f"{{ss_sp={hex_or_null(sp)}, ss_flags={flag_text}, ss_size={size}}}"


def siginfo(call: Call, addr: int) -> str:
    signo, _errno, code = struct.unpack("<iii", call.read(addr, 12))
    return f"{{si_signo={signal_name(signo)}, si_code={code}, ...}}"


def wait_status(status: int) -> str:
    """``[{WIFEXITED(s) && WEXITSTATUS(s) == 0}]`` and its relatives."""
    sig = status & 0x7F
    if sig == 0:
        return f"[{{WIFEXITED(s) && WEXITSTATUS(s) == {status >> 8 & 0xFF}}}]"
    if sig == 0x7F:
        stop = signal_name(status >> 8 & 0xFF)
        return f"[{{WIFSTOPPED(s) && WSTOPSIG(s) == {stop}}}]"
    core = " && WCOREDUMP(s)" if status & 0x80 else ""
    return f"[{{WIFSIGNALED(s) && WTERMSIG(s) == {signal_name(sig)}{core}}}]"


def wait_status_ref(call: Call, addr: int) -> str:
    return wait_status(call.unpack(_i32, addr)[0] & 0xFFFF)


def iovec_array(count_arg: int, data_from: int | None) -> Show:
    """``[{iov_base="hi", iov_len=2}, ...]``; data up to ``data_from`` bytes in all."""

    def show(call: Call, addr: int) -> str:
        count = call.args[count_arg]
        left = _length(call, data_from) if data_from is not None else None
        items = []
        for i in range(min(count, call.limit)):
            base, length = call.unpack(_iovec, addr + 16 * i)
            n = length if left is None else min(length, left)
            data = buffer_text(call, base, n)
            items.append(f"{{iov_base={data}, iov_len={length}}}")
            if left is not None:
                left -= n
        more = ", ..." if count > call.limit else ""
        return "[" + ", ".join(items) + more + "]"

    return show


def pollfds(call: Call, addr: int) -> str:
    count = call.args[1]
    items = []
    for i in range(min(count, call.limit)):
        fd, events, _revents = call.unpack(_pollfd, addr + 8 * i)
        events_text = flag_names(events & 0xFFFF, POLL_EVENTS)
        items.append(f"{{fd={fd}, events={events_text}}}")
    return "[" + ", ".join(items) + (", ..." if count > call.limit else "") + "]"


def poll_revents(call: Call) -> str:
    """What a successful poll(2) reports back: the entries with events."""
    addr, count = call.args[0], call.args[1]
    items = []
    for i in range(min(count, 1024)):
        fd, _events, revents = call.unpack(_pollfd, addr + 8 * i)
        if revents:
            events_text = flag_names(revents & 0xFFFF, POLL_EVENTS)
            items.append(f"{{fd={fd}, revents={events_text}}}")
    return "[" + ", ".join(items) + "]"


def fd_set(call: Call, addr: int) -> str:
    nfds = min(s32(call.args[0]), 1024)
    if nfds <= 0:
        return "[]"
    data = call.read(addr, (nfds + 63) // 64 * 8)
    bits = int.from_bytes(data, "little")
    return "[" + " ".join(str(fd) for fd in range(nfds) if bits >> fd & 1) + "]"


def string_array(call: Call, addr: int) -> str:
    """``["ls", "-l"]``: a NULL-terminated array of strings (argv)."""
    pointers = []
    for i in range(call.limit + 1):
        pointer = call.unpack(_u64, addr + 8 * i)[0]
        if pointer == 0:
            break
        pointers.append(pointer)
    items = [_string(call, p) for p in pointers[: call.limit]]
    more = ", ..." if len(pointers) > call.limit else ""
    return "[" + ", ".join(items) + more + "]"


def env_array(call: Call, addr: int) -> str:
    """The environment is long and dull: its address and how many entries."""
    count = len(call.task.mm.read_pointer_array(addr))
    return f"{addr:#x} /* {count} var{'' if count == 1 else 's'} */"


def rusage(call: Call, addr: int) -> str:
    us, uu, ss, su = struct.unpack("<qqqq", call.read(addr, 32))
    return (f"{{ru_utime={{tv_sec={us}, tv_usec={uu}}}, "
            f"ru_stime={{tv_sec={ss}, tv_usec={su}}}, ...}}")


def tms(call: Call, addr: int) -> str:
    u, s, cu, cs = call.unpack(_tms, addr)
    return f"{{tms_utime={u}, tms_stime={s}, tms_cutime={cu}, tms_cstime={cs}}}"


def sysinfo(call: Call, addr: int) -> str:
    fields = call.unpack(_sysinfo, addr)
    uptime, _l1, _l5, _l15, total, free, _shared, _buf, _swap, _fswap, procs = fields
    return (f"{{uptime={uptime}, totalram={total}, freeram={free}, procs={procs}, "
            "...}")


def statfs(call: Call, addr: int) -> str:
    f_type, bsize, blocks, bfree, bavail, files, ffree = call.unpack(_statfs, addr)
    return (f"{{f_type={f_type:#x}, f_bsize={bsize}, f_blocks={blocks}, "
            f"f_bfree={bfree}, f_bavail={bavail}, f_files={files}, "
            f"f_ffree={ffree}, ...}}")


def open_how(call: Call, addr: int) -> str:
    how_flags, mode, resolve = call.unpack(_open_how, addr)
    return (f"{{flags={open_flags(how_flags)}, mode={octal(mode & 0o7777)}, "
            f"resolve={c_hex(resolve)}}}")


def clone_args(call: Call, addr: int) -> str:
    clone_flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size = (
        call.unpack(_clone_args, addr))
    flags_text = flag_names(clone_flags, CLONE_FLAGS)
    return (f"{{flags={flags_text}, exit_signal={signal_name(exit_signal)}, "
            f"stack={hex_or_null(stack)}, stack_size={c_hex(stack_size)}, ...}}")


def epoll_event(call: Call, addr: int) -> str:
    events, data = call.unpack(_epoll_event, addr)
    events_text = flag_names(events, EPOLL_EVENTS)
    return f"{{events={events_text}, data={{u32={data & 0xFFFFFFFF}, u64={data}}}}}"


def epoll_events_out(call: Call, addr: int) -> str:
    assert call.result is not None
    count = min(call.result, call.limit)
    items = [epoll_event(call, addr + 12 * i) for i in range(count)]
    return "[" + ", ".join(items) + (", ..." if call.result > count else "") + "]"


def cpu_mask(call: Call, addr: int) -> str:
    """``[0 1]``: the CPUs set in an affinity mask (the result is its size)."""
    size = call.result if call.result else call.args[1]
    bits = int.from_bytes(call.read(addr, min(size, 128)), "little")
    cpus = [str(i) for i in range(bits.bit_length()) if bits >> i & 1]
    return "[" + " ".join(cpus) + "]"


def id_array(count_from: int) -> Show:
    """``[0, 4, 27]``: a gid_t array whose length comes from an argument or result."""

    def show(call: Call, addr: int) -> str:
        count = _length(call, count_from)
        if count <= 0:
            return "[]"
        shown = min(count, call.limit)
        values = struct.unpack(f"<{shown}I", call.read(addr, 4 * shown))
        more = ", ..." if count > shown else ""
        return "[" + ", ".join(str(v) for v in values) + more + "]"

    return show


def dirents(call: Call, addr: int) -> str:
    """getdents64(2) output is long: its address and the number of entries."""
    assert call.result is not None
    data = call.read(addr, call.result)
    count, pos = 0, 0
    while pos + 19 <= len(data):
        reclen = struct.unpack_from("<H", data, pos + 16)[0]
        if reclen == 0:
            break
        pos += reclen
        count += 1
    return f"{addr:#x} /* {count} entr{'y' if count == 1 else 'ies'} */"


def sockaddr_text(data: bytes) -> str:
    """A socket address by family, as strace spells it."""
    if len(data) < 2:
        return "{...}"
    family = struct.unpack_from("<H", data)[0]
    name = ADDRESS_FAMILIES.get(family, str(family))
    if family == AF_UNIX:
        path = data[2:]
        if path[:1] == b"\0":
            return f"{{sa_family=AF_UNIX, sun_path=@{quote(path[1:])}}}"
        path = path.split(b"\0", 1)[0]
        return f"{{sa_family=AF_UNIX, sun_path={quote(path)}}}"
    if family == AF_INET and len(data) >= 8:
        port = struct.unpack_from(">H", data, 2)[0]
        address = ipaddress.IPv4Address(data[4:8])
        return (f"{{sa_family=AF_INET, sin_port=htons({port}), "
                f'sin_addr=inet_addr("{address}")}}')
    if family == AF_INET6 and len(data) >= 24:
        port, flowinfo = struct.unpack_from(">HI", data, 2)
        address6 = ipaddress.IPv6Address(data[8:24])
        return (f"{{sa_family=AF_INET6, sin6_port=htons({port}), "
                f'sin6_flowinfo=htonl({flowinfo}), inet_pton(AF_INET6, "{address6}", '
                "&sin6_addr), ...}")
    return f"{{sa_family={name}, ...}}"


def sockaddr_in(length_arg: int) -> Show:
    def show(call: Call, addr: int) -> str:
        return sockaddr_text(call.read(addr, min(call.args[length_arg], 128)))

    return show


def sockaddr_out(length_ptr_arg: int) -> Show:
    """An address the kernel fills in; its length is in a socklen_t it updates."""

    def show(call: Call, addr: int) -> str:
        length = call.unpack(_u32, call.args[length_ptr_arg])[0]
        return sockaddr_text(call.read(addr, min(length, 128)))

    return show


def sockopt_value(call: Call, addr: int) -> str:
    length = call.args[4]
    if length == 4:
        return int_ref(call, addr)
    return quote(call.read(addr, min(length, call.limit + 1)), call.limit)


# --- socket messages and option values ---------------------------------------

_msghdr = struct.Struct("<QI4xQQQQi4x")
_cmsghdr = struct.Struct("<Qii")
_iovec = struct.Struct("<QQ")
# How many iovecs and control messages a msghdr shows before "...".
_MSG_ITEMS = 8


def _iovecs_text(call: Call, iov: int, count: int, data_len: int | None) -> str:
    """The iovec array; ``data_len`` bytes of contents (None: every byte)."""
    if not iov:
        return "NULL"
    items = []
    left = data_len
    for i in range(min(count, _MSG_ITEMS)):
        base, length = call.unpack(_iovec, iov + 16 * i)
        take = length if left is None else min(length, left)
        shown = quote(call.read(base, min(take, call.limit + 1)), call.limit)
        if left is not None:
            left -= take
        items.append(f"{{iov_base={shown}, iov_len={length}}}")
    if count > _MSG_ITEMS:
        items.append("...")
    return "[" + ", ".join(items) + "]"


def _cmsg_data(level: int, kind: int, body: bytes) -> str:
    if level == abi.SOL_SOCKET and kind == abi.SCM_RIGHTS:
        fds = [str(v) for (v,) in struct.iter_unpack("<i", body[: len(body) // 4 * 4])]
        return "[" + ", ".join(fds) + "]"
    if level == abi.SOL_SOCKET and kind == abi.SCM_CREDENTIALS and len(body) >= 12:
        pid, uid, gid = struct.unpack_from("<iII", body)
        return f"{{pid={pid}, uid={uid}, gid={gid}}}"
    return quote(body, 32)


def _cmsgs_text(call: Call, control: int, size: int) -> str:
    if not control or size == 0:
        return "NULL"
    raw = call.read(control, min(size, 4096))
    items: list[str] = []
    pos = 0
    while pos + _cmsghdr.size <= len(raw) and len(items) < _MSG_ITEMS:
        length, level, kind = _cmsghdr.unpack_from(raw, pos)
        if length < _cmsghdr.size:
            break
        level_name = SOCKET_LEVELS.get(level, str(level))
        kind_name = SCM_TYPES.get(kind, str(kind)) if level == abi.SOL_SOCKET else str(
            kind)
        body = raw[pos + _cmsghdr.size: pos + length]
        items.append(f"{{cmsg_len={length}, cmsg_level={level_name}, "
                     f"cmsg_type={kind_name}, cmsg_data={_cmsg_data(level, kind, body)}}}")
        pos += (length + 7) & ~7
    return "[" + ", ".join(items) + "]"


def _msghdr_text(call: Call, addr: int, data_len: int | None) -> str:
    name, namelen, iov, iovlen, control, controllen, flags = call.unpack(_msghdr, addr)
    name_text = sockaddr_text(call.read(name, min(namelen, 128))) if (
        name and namelen) else "NULL"
    # strace leaves msg_control out when there is no control data.
    control_text = (f"msg_control={_cmsgs_text(call, control, controllen)}, "
                    if controllen else "")
    return (f"{{msg_name={name_text}, msg_namelen={namelen}, "
            f"msg_iov={_iovecs_text(call, iov, iovlen, data_len)}, "
            f"msg_iovlen={iovlen}, {control_text}"
            f"msg_controllen={controllen}, "
            f"msg_flags={flag_names(flags & 0xFFFFFFFF, MSG_FLAGS)}}}")


def msghdr_in(call: Call, addr: int) -> str:
    """sendmsg(2)'s message: name, data, control messages."""
    return _msghdr_text(call, addr, None)


def msghdr_out(call: Call, addr: int) -> str:
    """recvmsg(2)'s message as the call filled it in (the pointer on failure)."""
    if not call.succeeded:
        return f"{addr:#x}"
    return _msghdr_text(call, addr, call.result)


# struct mmsghdr: a msghdr, then the unsigned int msg_len, padded to 64 bytes.
_MMSGHDR_SIZE = 64


def _mmsghdrs_text(call: Call, addr: int, count: int, received: bool) -> str:
    items: list[str] = []
    for i in range(min(count, _MSG_ITEMS)):
        entry = addr + _MMSGHDR_SIZE * i
        msg_len = call.unpack(_u32, entry + _msghdr.size)[0]
        header = _msghdr_text(call, entry, msg_len if received else None)
        items.append(f"{{msg_hdr={header}, msg_len={msg_len}}}")
    if count > _MSG_ITEMS:
        items.append("...")
    return "[" + ", ".join(items) + "]"


def mmsghdrs_sent(call: Call, addr: int) -> str:
    """sendmmsg(2)'s messages, each with the length it sent (the pointer on
    failure)."""
    if not call.succeeded:
        return f"{addr:#x}"
    return _mmsghdrs_text(call, addr, call.result or 0, False)


def mmsghdrs_received(call: Call, addr: int) -> str:
    """recvmmsg(2)'s messages as the call filled them in (the pointer on
    failure)."""
    if not call.succeeded:
        return f"{addr:#x}"
    return _mmsghdrs_text(call, addr, call.result or 0, True)


def sockopt_out(call: Call, addr: int) -> str:
    """getsockopt(2)'s value: an int, a ucred or struct linger, else bytes."""
    if not call.succeeded:
        return f"{addr:#x}"
    length = call.unpack(_u32, call.args[4])[0]
    level, name = s32(call.args[1]), s32(call.args[2])
    if length == 4:
        return int_ref(call, addr)
    if level == abi.SOL_SOCKET and name == abi.SO_PEERCRED and length >= 12:
        pid, uid, gid = struct.unpack("<iII", call.read(addr, 12))
        return f"{{pid={pid}, uid={uid}, gid={gid}}}"
    if level == abi.SOL_SOCKET and name == abi.SO_LINGER and length >= 8:
        onoff, linger = struct.unpack("<ii", call.read(addr, 8))
        return f"{{l_onoff={onoff}, l_linger={linger}}}"
    return quote(call.read(addr, min(length, call.limit + 1)), call.limit)


_i64 = struct.Struct("<q")


def uint_ref(call: Call, addr: int) -> str:
    return f"[{call.unpack(_u32, addr)[0]}]"


def loff_ref(call: Call, addr: int) -> str:
    return f"[{call.unpack(_i64, addr)[0]}]"


# The futex operations whose fourth argument is a timeout, not a count.
_FUTEX_TIMED = {0, 6, 9, 11, 13}


def _futex_arg4(call: Call, v: int) -> str:
    if s32(call.args[1]) & 0x7F in _FUTEX_TIMED:
        return timespec(call, v) if v else "NULL"
    return str(v & 0xFFFFFFFF)


FUTEX_ARG4 = Kind(_futex_arg4)
