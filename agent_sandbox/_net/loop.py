"""The launcher's network I/O loop: generator tasks on one ``selectors`` (epoll) loop.

Why not asyncio: importing it (with the ssl and concurrent.futures it pulls in) took ~30 ms,
most of what a filtered launch added over ``--net none``. The proxy needs little of it:
wait until a socket is readable or writable, with a deadline; run a blocking call (a name
lookup) in a thread; run two tasks until both end. A task is a generator that yields those
waits (``Ready``, ``InThread``, ``Both``); ``yield from`` composes them the way ``await``
does, and ``Loop`` drives them.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import os
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from typing import Any, NamedTuple, TypeAlias, TypeVar

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE
ACCEPT_RETRY = 1.0  # seconds to wait after accept() fails for want of fds or memory
MAX_THREADS = 8  # for blocking calls (name lookups)
_CHUNK = 16 * 1024


class Ready(NamedTuple):
    """Resume the task once ``fd`` is ready for ``event`` (READ or WRITE); TimeoutError at
    ``deadline`` (``time.monotonic()``; None: never). ``fd`` None: just wait for the deadline.
    """

    fd: int | None
    event: int
    deadline: float | None = None


class InThread(NamedTuple):
    """Resume the task with ``call()``'s result, or its exception, run by one of a few
    worker threads (for blocking calls: ``getaddrinfo``)."""

    call: Callable[[], Any]


class Both(NamedTuple):
    """Run both tasks; resume once both have ended (what they raise is dropped)."""

    first: Task[None]
    second: Task[None]


_T = TypeVar("_T")
# A task: yields waits, is resumed with what they produce, returns a _T.
Task: TypeAlias = Generator[Ready | InThread | Both, Any, _T]


class _Running:
    __slots__ = ("gen", "on_done", "wait_no", "waiting")

    def __init__(self, gen: Task[None], on_done: Callable[[], None] | None) -> None:
        self.gen = gen
        self.on_done = on_done
        self.waiting: Ready | InThread | Both | None = None
        self.wait_no = 0  # tells a stale timer or thread result from the current wait


class Loop:
    """Runs tasks until ``stop``. Single-threaded: ``spawn`` only before ``run`` or from a
    task; ``stop`` from any thread."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._tasks: set[_Running] = set()
        self._ready: deque[tuple[_Running, Any, BaseException | None]] = deque()
        self._timers: list[tuple[float, int, _Running, int]] = []
        self._timer_no = 0
        # Threads post their results here and write a byte to the wake-up pipe.
        self._posted: deque[tuple[_Running, int, Any, BaseException | None]] = deque()
        self._calls: deque[tuple[_Running, int, Callable[[], Any]]] = deque()
        self._workers = 0
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_read, READ)
        self._lock = threading.Lock()
        self._stopping = False
        self._closed = False

    def spawn(self, gen: Task[None], on_done: Callable[[], None] | None = None) -> None:
        task = _Running(gen, on_done)
        self._tasks.add(task)
        self._ready.append((task, None, None))

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake()

    def run(self) -> None:
        """Run until ``stop``; then close every task: a generator's ``finally`` clauses (and
        ``with`` blocks) run where it waits, so each task closes its own sockets."""
        try:
            while not self._stopping:
                self._run_ready()
                for key, events in self._selector.select(self._timeout()):
                    self._dispatch(key, events)
                self._expire_timers()
        finally:
            with self._lock:
                self._closed = True
                self._selector.close()
                os.close(self._wake_read)
                os.close(self._wake_write)
            for task in list(self._tasks):
                with contextlib.suppress(Exception):  # one faulty task must not leak the rest
                    task.gen.close()

    def _wake(self) -> None:
        """Make ``select`` return; called with the lock held, so never after ``run`` closed
        the pipe (its fd number may belong to another file by then)."""
        if not self._closed:
            with contextlib.suppress(BlockingIOError):  # full: the loop wakes up anyway
                os.write(self._wake_write, b"\0")

    def _timeout(self) -> float | None:
        if self._ready:
            return 0
        return max(0.0, self._timers[0][0] - time.monotonic()) if self._timers else None

    def _run_ready(self) -> None:
        for _ in range(len(self._ready)):
            task, value, error = self._ready.popleft()
            self._step(task, value, error)

    def _step(self, task: _Running, value: Any, error: BaseException | None) -> None:
        try:
            op = task.gen.throw(error) if error is not None else task.gen.send(value)
        except Exception:  # StopIteration, or a bug: it ends this task, never the loop
            self._tasks.discard(task)
            if task.on_done is not None:
                task.on_done()
            return
        task.waiting = op
        task.wait_no += 1
        try:
            if isinstance(op, Ready):
                self._wait_ready(task, op)
            elif isinstance(op, InThread):
                self._start_thread(task, op.call, task.wait_no)
            else:
                self._wait_both(task, op)
        except Exception as e:  # a closed fd, no thread to be had: the task's error, not ours
            task.waiting = None
            self._ready.append((task, None, e))

    def _resume(self, task: _Running, value: Any = None,
                error: BaseException | None = None) -> None:
        op = task.waiting
        if isinstance(op, Ready) and op.fd is not None:
            key = self._selector.get_key(op.fd)
            del key.data[op.event]
            if key.data:
                self._selector.modify(op.fd, key.events & ~op.event, key.data)
            else:
                self._selector.unregister(op.fd)
        task.waiting = None
        self._ready.append((task, value, error))

    def _wait_ready(self, task: _Running, op: Ready) -> None:
        if op.deadline is not None:
            self._timer_no += 1
            heapq.heappush(self._timers, (op.deadline, self._timer_no, task, task.wait_no))
        if op.fd is None:
            return
        # One registration per fd, with the task waiting for each event: the relay's two
        # directions wait on the same socket, one to read and one to write.
        try:
            key = self._selector.get_key(op.fd)
        except KeyError:
            self._selector.register(op.fd, op.event, {op.event: task})
        else:
            self._selector.modify(op.fd, key.events | op.event, key.data)
            key.data[op.event] = task

    def _start_thread(self, task: _Running, call: Callable[[], Any], wait_no: int) -> None:
        """Queue ``call`` for a few worker threads: one thread per lookup would let the
        sandbox make the launcher start a thousand (random names under a wildcard)."""
        with self._lock:
            self._calls.append((task, wait_no, call))
            if self._workers < MAX_THREADS:
                self._workers += 1
                threading.Thread(target=self._work, name="agent-sandbox-lookup",
                                 daemon=True).start()

    def _work(self) -> None:
        while True:
            with self._lock:
                if not self._calls or self._closed:
                    self._workers -= 1
                    return
                task, wait_no, call = self._calls.popleft()
            try:
                result, error = call(), None
            except Exception as e:
                result, error = None, e
            with self._lock:
                self._posted.append((task, wait_no, result, error))
                self._wake()

    def _wait_both(self, task: _Running, op: Both) -> None:
        running = [2]

        def one_done() -> None:
            running[0] -= 1
            if running[0] == 0:
                self._resume(task)

        self.spawn(op.first, one_done)
        self.spawn(op.second, one_done)

    def _dispatch(self, key: selectors.SelectorKey, events: int) -> None:
        if key.fd == self._wake_read:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_read, 4096)
            while self._posted:
                task, wait_no, result, error = self._posted.popleft()
                if task.wait_no == wait_no and task.waiting is not None:
                    self._resume(task, result, error)
            return
        waiters: dict[int, _Running] = key.data
        for event in (READ, WRITE):
            waiter = waiters.get(event)
            if events & event and waiter is not None:
                self._resume(waiter)

    def _expire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, task, wait_no = heapq.heappop(self._timers)
            if task.wait_no == wait_no and task.waiting is not None:
                self._resume(task, error=TimeoutError())


def sleep(seconds: float) -> Task[None]:
    with contextlib.suppress(TimeoutError):
        yield Ready(None, 0, time.monotonic() + seconds)


def recv(sock: socket.socket, deadline: float | None = None) -> Task[bytes]:
    """What the peer sent next (b"" at its end of stream)."""
    while True:
        try:
            return sock.recv(_CHUNK)
        except BlockingIOError:
            yield Ready(sock.fileno(), READ, deadline)


def send_all(sock: socket.socket, data: bytes, deadline: float | None = None) -> Task[None]:
    view = memoryview(data)
    while view:
        try:
            view = view[sock.send(view):]
        except BlockingIOError:
            yield Ready(sock.fileno(), WRITE, deadline)


def connect(family: int, address: Any, deadline: float) -> Task[socket.socket]:
    """A non-blocking socket connected to ``address``; OSError or TimeoutError if not."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        yield from connect_socket(sock, address, deadline)
    except BaseException:
        sock.close()
        raise
    return sock


def connect_socket(sock: socket.socket, address: Any, deadline: float) -> Task[None]:
    """Connect ``sock`` (non-blocking) to ``address``."""
    err = sock.connect_ex(address)
    if err == errno.EINPROGRESS:
        yield Ready(sock.fileno(), WRITE, deadline)
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


def accepting(listener: socket.socket, handle: Callable[[socket.socket], Task[None]],
              spawn: Callable[[Task[None]], None]) -> Task[None]:
    """Accept connections on ``listener`` for ever, each handled by a task of its own."""
    listener.setblocking(False)
    while True:
        try:
            client, _ = listener.accept()
        except BlockingIOError:
            yield Ready(listener.fileno(), READ)
            continue
        except ConnectionAbortedError:
            continue  # that client gave up already
        except OSError:
            # Out of fds or memory: retrying at once would spin; the backlog keeps them.
            yield from sleep(ACCEPT_RETRY)
            continue
        client.setblocking(False)
        spawn(handle(client))
