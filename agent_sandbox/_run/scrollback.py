"""What a detached session printed, kept after it ends: ``attach`` on it shows the last MiB
and its exit status.

A detached launch runs under a recorder: the launcher is started on a terminal of the
recorder's own (a pty), and the recorder passes everything between that terminal and
dtach's, as ``script(1)`` does, writing what the command prints to
``$XDG_STATE_HOME/agent-sandbox/scrollback/ID.out``. That file is cut at SEGMENT bytes
(moved to ``ID.out.1``, replacing the previous one), so a session keeps between one and two
segments on disk and ``attach`` shows the last SEGMENT bytes. ``ID.json`` says whose it is
and, once it ended, its status. The newest KEEP sessions' scrollbacks are kept; older ones
are removed when a detached session starts.

What was recorded is the command's own output, escape sequences included; printed after the
fact it goes through :func:`terminal_safe`, which keeps colours and drops everything else a
terminal would act on (titles, clipboard writes, queries, cursor movement, modes). Not the
terminal firewall's filter (``_run.ttyfilter``): that one keeps what a TUI needs live, modes
included, and replayed out of context from the middle of a session a mode switched on and
never off there (mouse reporting, the alternate screen) would stay on in your terminal.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import select
import signal
import stat
import sys
import termios
import time
import tty
from collections.abc import Iterator
from typing import NamedTuple

from agent_sandbox._errors import SandboxUnavailable
from agent_sandbox._files import read_regular
from agent_sandbox._net.log import state_dir

SEGMENT = 1 << 20  # bytes shown at attach; at most twice this on disk per session
KEEP = 20  # ended sessions' scrollbacks kept
META_MAX = 1 << 16
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}\Z")
_FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Ended(NamedTuple):
    """A recorded session, from its ``ID.json``."""

    id: str
    name: str
    started: float
    status: int | None  # None: still running, or its recorder was killed
    ended: float | None


def scrollback_dir() -> str:
    return os.path.join(state_dir(), "scrollback")


def private_dir() -> str:
    """The scrollback directory, made if missing; refused unless it is a real directory
    only this user can use (what sessions printed may hold secrets)."""
    directory = scrollback_dir()
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        st = os.lstat(directory)
    except OSError as e:
        raise SandboxUnavailable(f"cannot make {directory}: {e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise SandboxUnavailable(f"{directory}, where detached sessions' output is kept, is "
                                 "not a directory private to you",
                                 fix=f"remove {directory} if it is not yours")
    return directory


def _write_meta(directory: str, meta: Ended) -> None:
    """``ID.json``, replaced whole (written aside, then renamed)."""
    path = os.path.join(directory, f"{meta.id}.json")
    aside = f"{path}.{os.getpid()}.tmp"
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(meta._asdict()))
    os.replace(aside, path)


def recordings(directory: str | None = None) -> list[Ended]:
    """Every recorded session, oldest first (files that are not records are skipped)."""
    directory = directory or scrollback_dir()
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    found = []
    for name in names:
        if not name.endswith(".json") or not _ID.match(name[:-5]):
            continue
        read = read_regular(os.path.join(directory, name), META_MAX)
        try:
            data = json.loads(read[0]) if read else None
            meta = Ended(**data) if isinstance(data, dict) else None
        except (ValueError, TypeError):
            meta = None
        if meta is not None and _valid(meta) and meta.id == name[:-5]:
            found.append(meta)
    return sorted(found, key=lambda m: m.started)


def _valid(meta: Ended) -> bool:
    def number(value: object) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    return isinstance(meta.name, str) and number(meta.started) \
        and (meta.status is None or type(meta.status) is int) \
        and (meta.ended is None or number(meta.ended))


def _prune(directory: str) -> None:
    """Remove the scrollbacks of all but the newest KEEP ended sessions (unlink: a link
    is removed, never followed)."""
    ended = [m for m in recordings(directory) if m.status is not None]
    for meta in ended[:-KEEP] if len(ended) > KEEP else []:
        for suffix in (".out.1", ".out", ".json"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(directory, meta.id + suffix))


def tail(session_id: str, directory: str | None = None) -> bytes:
    """The last SEGMENT bytes a session printed."""
    directory = directory or scrollback_dir()
    data = b""
    for suffix in (".out.1", ".out"):
        read = read_regular(os.path.join(directory, session_id + suffix), 2 * SEGMENT)
        data += read[0] if read else b""
    return data[-SEGMENT:]


class _Segments:
    """``ID.out``, cut at SEGMENT bytes into ``ID.out.1``."""

    def __init__(self, directory: str, session_id: str) -> None:
        self.path = os.path.join(directory, f"{session_id}.out")
        self._fd = self._open()
        self._size = 0

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                       | os.O_CLOEXEC, 0o600)

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # a full disk costs the scrollback, not the session
            if self._size + len(data) > SEGMENT and self._size:
                os.close(self._fd)
                os.replace(self.path, self.path + ".1")
                self._fd, self._size = self._open(), 0
            os.write(self._fd, data)
            self._size += len(data)

    def close(self) -> None:
        os.close(self._fd)


def _copy_size(source: int, target: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(target, termios.TIOCSWINSZ, fcntl.ioctl(source, termios.TIOCGWINSZ,
                                                            b"\0" * 8))


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    """The outer terminal in raw mode: ^C and the rest reach the inner one as bytes, and
    its line discipline (the command's) acts on them."""
    try:
        saved = termios.tcgetattr(fd)
    except termios.error:
        yield  # not a terminal
        return
    tty.setraw(fd)
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


def recorded(session_id: str) -> int | None:
    """Start recording session ``session_id`` (its name, and a suffix): fork; the child
    (None returned) goes on to launch on a new terminal; this process relays and records
    until that terminal closes, and returns the child's exit status."""
    directory = private_dir()
    _prune(directory)
    started = time.time()
    meta = Ended(session_id, session_id.rsplit(".", 1)[0], started, None, None)
    _write_meta(directory, meta)
    segments = _Segments(directory, session_id)
    master, slave = os.openpty()
    _copy_size(0, slave)
    pid = os.fork()
    if pid == 0:
        segments.close()
        os.close(master)
        os.login_tty(slave)
        return None
    os.close(slave)
    for signo in _FORWARDED:
        signal.signal(signo, lambda signo, _frame: os.kill(pid, signo))
    signal.signal(signal.SIGWINCH, lambda _signo, _frame: _copy_size(0, master))
    with _raw(0):
        wait_status = _relay(master, pid, segments)
    segments.close()
    os.close(master)
    if wait_status is None:
        wait_status = os.waitpid(pid, 0)[1]
    status = os.waitstatus_to_exitcode(wait_status)
    status = 128 - status if status < 0 else status
    _write_meta(directory, meta._replace(status=status, ended=time.time()))
    return status


def _relay(master: int, pid: int, segments: _Segments) -> int | None:
    """Terminal input to the command's terminal; its output to dtach's and the scrollback;
    until its terminal closes (every process on it gone). Returns the child's wait status
    if it was collected on the way."""
    os.set_blocking(master, False)
    pending = b""  # input the command has not taken yet
    reading_input = True
    while True:
        readers = [master, 0] if reading_input and len(pending) < 65536 else [master]
        try:
            ready, writable, _ = select.select(readers, [master] if pending else [], [], 1.0)
        except InterruptedError:
            continue
        if not ready and not writable:
            done, wait_status = os.waitpid(pid, os.WNOHANG)
            if done:
                return wait_status  # the launcher ended, and its terminal is quiet
            continue
        if master in ready:
            output = _output(master)
            if output is None:
                return None
            segments.write(output)
            with contextlib.suppress(OSError):  # dtach gone: the scrollback still has it
                _write_all(1, output)
        if 0 in ready:
            try:
                data = os.read(0, 65536)
            except OSError:
                data = b""
            pending += data
            reading_input = bool(data)  # dtach's terminal closed: keep recording
        if master in writable:
            with contextlib.suppress(BlockingIOError):
                pending = pending[os.write(master, pending):]


def _output(master: int) -> bytes | None:
    """What the command's terminal has (maybe nothing yet), or None once it is closed (EIO:
    no process holds it any more)."""
    try:
        return os.read(master, 65536) or None
    except BlockingIOError:
        return b""
    except OSError:
        return None


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


# A CSI sequence that sets colours and text attributes (SGR), and everything else a
# terminal acts on: CSI, OSC (titles, clipboard: BEL or ST ends it), DCS/SOS/PM/APC (ST
# ends them), other escapes, C0 controls but newline, carriage return, tab and backspace,
# and C1 controls.
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]?"
    r"|[\x00-\x07\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]")


def terminal_safe(data: bytes) -> str:
    """Recorded output as text a terminal can be given: colours kept, nothing else that
    drives it (a command's OSC 52 clipboard write, title or query never replays)."""
    text = data.decode("utf-8", "replace")
    return _CONTROL.sub(lambda m: m.group(0) if _SGR.fullmatch(m.group(0)) else "", text)


def find_ended(name: str) -> Ended | None:
    """The newest recorded session with this name or id (the caller knows that none with
    it is running)."""
    matches = [m for m in recordings() if name in (m.name, m.id)]
    return matches[-1] if matches else None


def show(meta: Ended) -> None:
    """Print a session's last output (made terminal-safe) on stdout."""
    text = terminal_safe(tail(meta.id))
    sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
    sys.stdout.flush()
