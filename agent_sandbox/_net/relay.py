"""Moving a vetted tunnel's bytes both ways, off Python's heap.

Once the proxy has checked a connection (SNI or Host) and dialled the upstream, each
direction is moved by splice(2), from one socket into a pipe and from the pipe into the
other socket: the bytes never enter Python (copying them through asyncio streams ran at
about a third of loopback speed, bench/bench_network.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket

from agent_sandbox._net.loop import READ, WRITE, Both, Ready, Task, send_all

_PIPE_SIZE = 256 * 1024  # per direction; the kernel keeps the default if over the user's cap
_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK


def _one_way(src: socket.socket, dst: socket.socket, limit: int | None = None) -> Task[None]:
    """``src`` to ``dst`` until ``src`` ends, then a half-close of ``dst`` (the peer sees
    the end of this direction; the other one goes on). With ``limit``, at most that many
    bytes, then the half-close: nothing more from ``src`` is forwarded. On an
    error both sockets are shut down, so the other direction ends too instead of waiting on
    a peer that may never close."""
    try:
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        _shut_both(src, dst)
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        while limit is None or limit > 0:
            try:
                pending = os.splice(src.fileno(), write_end,
                                    _PIPE_SIZE if limit is None else min(_PIPE_SIZE, limit),
                                    flags=_FLAGS)
            except BlockingIOError:
                yield Ready(src.fileno(), READ)
                continue
            if pending == 0:
                break
            if limit is not None:
                limit -= pending
            while pending:
                try:
                    pending -= os.splice(read_end, dst.fileno(), pending, flags=_FLAGS)
                except BlockingIOError:
                    yield Ready(dst.fileno(), WRITE)
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        _shut_both(src, dst)  # reset or gone
    finally:
        os.close(read_end)
        os.close(write_end)


def _shut_both(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def relay(client: socket.socket, upstream: socket.socket, first: bytes,
          client_limit: int | None = None) -> Task[None]:
    """Send ``first`` upstream, then move bytes both ways until both directions end; with
    ``client_limit``, at most that many more from the client (the rest of one request)."""
    yield from send_all(upstream, first)
    yield Both(_one_way(client, upstream, client_limit), _one_way(upstream, client))
