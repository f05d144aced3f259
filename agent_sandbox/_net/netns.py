"""Sockets that live in the sandbox's network namespace, made by a child that joins it.

A socket belongs to the namespace it was created in, for its whole life. So a short-lived,
single-threaded child enters the sandbox's user namespace (which the caller owns, so it gets
capabilities there) and then its network namespace, creates the sockets, and hands the fds
back over SCM_RIGHTS. The launcher never changes namespace itself and serves those sockets
from outside, where the sandboxed command can neither see nor kill the server.

bwrap may stack two user namespaces (``--disable-userns``), so the one to enter is the owner
of the network namespace (``NS_GET_USERNS`` on its fd), not ``/proc/PID/ns/user``.

No netlink configuration is needed: bwrap brings ``lo`` up with 127.0.0.1/8, and all of
127.0.0.0/8 is local on Linux, so listeners bind per-name loopback addresses directly.

The child stays alive while the sandbox runs, to make more sockets on request (``--publish``
dials into the sandbox with a socket created inside), and exits when the launcher closes
the channel or dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import socket
import time
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from agent_sandbox._errors import SandboxUnavailable

NS_GET_USERNS = 0xB701
PR_SET_PDEATHSIG = 1
_MAX_FDS = 64


class SocketSpec(NamedTuple):
    """A socket to create inside: TCP listeners (``listen=True``) or UDP, bound to
    ``address``; or an unbound TCP socket to dial out with (``bind=False``)."""

    kind: str  # "tcp" or "udp"
    address: tuple[str, int] = ("127.0.0.1", 0)
    bind: bool = True


def _make(spec: SocketSpec) -> socket.socket:
    family = socket.AF_INET6 if ":" in spec.address[0] else socket.AF_INET
    kind = socket.SOCK_STREAM if spec.kind == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    if spec.bind:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # bwrap reports the sandbox's pid before it has brought lo up: until then the
        # loopback addresses do not exist yet (EADDRNOTAVAIL). Give it a moment.
        for _ in range(200):
            try:
                sock.bind(spec.address)
                break
            except OSError as e:
                if e.errno != errno.EADDRNOTAVAIL:
                    raise
                time.sleep(0.005)
        else:
            sock.bind(spec.address)
        if spec.kind == "tcp":
            sock.listen(1024)
    return sock


def _encode(specs: Sequence[SocketSpec]) -> bytes:
    return ";".join(f"{s.kind},{s.address[0]},{s.address[1]},{int(s.bind)}"
                    for s in specs).encode()


def _decode(data: bytes) -> list[SocketSpec]:
    specs = []
    for item in data.decode().split(";"):
        kind, host, port, bind = item.split(",")
        specs.append(SocketSpec(kind, (host, int(port)), bind == "1"))
    return specs


def _child(channel: socket.socket, userns_fd: int, netns_fd: int) -> None:
    """Runs in the forked child: join the namespaces, then serve socket requests."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    for fd in (userns_fd, netns_fd):
        if libc.setns(fd, 0) != 0:
            err = ctypes.get_errno()
            channel.send(f"error: setns: {os.strerror(err)}".encode())
            return
        os.close(fd)
    while True:
        request = channel.recv(65536)
        if not request:
            return  # the launcher is done
        try:
            made = [_make(spec) for spec in _decode(request)]
        except OSError as e:
            channel.send(f"error: {e}".encode())
            continue
        socket.send_fds(channel, [b"ok"], [s.fileno() for s in made])
        for s in made:
            s.close()


class NamespaceSockets:
    """The launcher's handle on the child: ask it for sockets made inside the namespace."""

    def __init__(self, channel: socket.socket) -> None:
        self._channel = channel

    def make(self, specs: Sequence[SocketSpec]) -> list[socket.socket]:
        if len(specs) > _MAX_FDS:
            raise ValueError("too many sockets in one request")
        self._channel.send(_encode(specs))
        message, fds, _flags, _addr = socket.recv_fds(self._channel, 4096, _MAX_FDS)
        if message != b"ok":
            for fd in fds:
                os.close(fd)
            raise OSError(message.decode(errors="replace"))
        return [socket.socket(fileno=fd) for fd in fds]


@contextlib.contextmanager
def namespace_sockets(init_pid: int) -> Iterator[NamespaceSockets]:
    """Fork the namespace child for the sandbox whose pid 1 is ``init_pid``."""
    try:
        netns_fd = os.open(f"/proc/{init_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        userns_fd = fcntl.ioctl(netns_fd, NS_GET_USERNS)
    except OSError as e:
        raise SandboxUnavailable(f"cannot reach the sandbox's network namespace: {e}") from None
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child's work is seen through the parent)
        status = 0
        try:
            parent_end.close()
            _child(child_end, userns_fd, netns_fd)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(netns_fd)
    os.close(userns_fd)
    child_end.close()
    try:
        yield NamespaceSockets(parent_end)
    finally:
        parent_end.close()
        os.waitpid(pid, 0)
