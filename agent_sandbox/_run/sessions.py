"""Running sandboxes by name: one small JSON record each, for ps, stop, log and attach.

Every launch has a readable name and a unique id. Without ``--name``, the name is the
preset's or command's and a number that counts up per name across launches (``claude-3``:
the numbers are kept in ``session-numbers.json`` in the state directory), so a name is
not reused for another run until that file is removed; the id is the name and a random
suffix (``claude-3.5f0c2a``), unique even for a ``--name`` given to many runs. The log's
records carry both.

A launch claims its name by creating ``NAME.json`` exclusively (``O_EXCL``) in the sessions
directory, and removes it when it ends. A launcher killed with SIGKILL leaves its record
behind: a record is believed only while its pid still runs with the start time it recorded
(pids are reused), and a stale one is removed by whoever finds it. A detached session's
terminal is a dtach socket next to its record, ``NAME.sock``.

The directory is ``$XDG_RUNTIME_DIR/agent-sandbox`` (a per-user tmpfs) when there is one,
else ``~/.local/state/agent-sandbox/sessions``; either way private to the user (0700).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple

from agent_sandbox._errors import SandboxUnavailable, UsageError
from agent_sandbox._files import move_away, read_input
from agent_sandbox._net.log import state_dir

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
RECORD_MAX = 1 << 16  # a record is a few hundred bytes; the command line is capped below
NAME_RULE = "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
NUMBERS_FILE = "session-numbers.json"
NUMBERS_KEPT = 512  # names counted; the least recently used is forgotten first


class Session(NamedTuple):
    name: str
    pid: int  # the launcher's
    ticks: int  # the launcher's start time, field 22 of /proc/PID/stat
    started: float  # time.time() at launch
    agent: str
    project: str
    net: str  # none, filtered (N hosts), host
    command: tuple[str, ...]
    id: str = ""  # the run's own: NAME.SUFFIX (records of older versions have none)

    def to_json(self) -> str:
        return json.dumps(self._asdict())

    @classmethod
    def from_json(cls, text: str) -> Session | None:
        """The record, or None when it is not one (a partial write, another version)."""
        try:
            data = json.loads(text)
            return cls(**{**data, "command": tuple(data["command"])})
        except (ValueError, TypeError, KeyError):
            return None


def check_name(name: str, flag: str = "--name") -> str:
    if not NAME_RE.match(name):
        raise UsageError(f"{flag} {name!r}: a session name is {NAME_RULE}")
    return name


def new_id(name: str) -> str:
    """A run's id: its name and six random hex digits."""
    return f"{name}.{os.urandom(3).hex()}"


def default_base(agent: str, command: Sequence[str]) -> str:
    """What a session is called without --name: its preset, else its command, plus -N."""
    base = agent or re.sub(r"[^A-Za-z0-9._-]", "", os.path.basename(command[0]))
    return (base.lstrip("._-") or "session")[:60]


def sessions_dir(environ: Mapping[str, str]) -> str:
    runtime = environ.get("XDG_RUNTIME_DIR", "")
    if runtime.startswith("/") and os.path.isdir(runtime):
        return os.path.join(runtime, "agent-sandbox")
    return os.path.join(state_dir(), "sessions")


def _private_dir(path: str) -> str:
    """``path``, made if missing; refused unless it is a real directory only we can use."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    _check_private(path)
    return path


def _check_private(path: str) -> None:
    """Refuse a sessions directory others could write: its records would send ``stop``'s
    signal to any process."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise SandboxUnavailable(f"the sessions directory {path} is not a directory private to "
                                 "you", fix=f"remove {path} if it is not yours")


def _ticks(pid: int) -> int | None:
    """The start time of ``pid`` (clock ticks since boot), None if it is not running (a
    zombie has ended: only its parent has not collected its status yet)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            # The command name (field 2) may hold spaces and parentheses: split after it.
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def alive(session: Session) -> bool:
    return _ticks(session.pid) == session.ticks


def _read(directory: str, name: str) -> Session | None:
    """The record, or None if there is none or it is not one (a FIFO, a symlink, a huge
    file, garbage: read without blocking or following, then removed as stale)."""
    try:
        data = read_input(os.path.join(directory, f"{name}.json"), RECORD_MAX)
    except UsageError:
        return None
    return None if data is None else Session.from_json(data.decode(errors="replace"))


def _stale(directory: str, name: str) -> bool:
    """Whether ``name``'s record exists and its launcher is gone (then the record is removed)."""
    session = _read(directory, name)
    if session is not None and alive(session):
        return False
    path = os.path.join(directory, f"{name}.json")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as e:  # a directory
        raise UsageError(f"{path}: not a session record, and cannot be removed: {e.strerror}",
                         fix=move_away(path)) from None
    return True


def running(environ: Mapping[str, str]) -> list[Session]:
    """Live sessions, oldest first; stale records found on the way are removed."""
    directory = sessions_dir(environ)
    try:
        _check_private(directory)
    except FileNotFoundError:
        return []
    names = [n[:-5] for n in os.listdir(directory) if n.endswith(".json")]
    found = []
    for name in names:
        session = _read(directory, name)
        if session is not None and alive(session):
            found.append(session)
        else:
            _stale(directory, name)
    return sorted(found, key=lambda s: s.started)


def find(environ: Mapping[str, str], name: str) -> Session:
    live = running(environ)
    for session in live:
        if name in (session.name, session.id):
            return session
    known = ", ".join(s.name for s in live) or "none"
    raise UsageError(f"no running session named {name!r} (running: {known})",
                     fix="agent-sandbox ps lists them")


def _claim(directory: str, name: str, record: Session) -> Session | None:
    """Put ``name``'s record in place, whole and exclusively (written aside, then linked:
    no one ever reads half a record), with the record's id or a new one for ``name``; None
    if a live session holds the name."""
    claimed = record._replace(name=name, id=record.id or new_id(name))
    path = os.path.join(directory, f"{name}.json")
    aside = os.path.join(directory, f".{name}.{record.pid}.tmp")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(claimed.to_json())
    try:
        while True:
            try:
                os.link(aside, path)
                return claimed
            except FileExistsError:
                if not _stale(directory, name):
                    return None
    finally:
        os.unlink(aside)


def numbered(base: str, take: Callable[[str], bool]) -> str:
    """``base-N`` for the first N after the last one given out for ``base`` that ``take``
    accepts (it claims the name); counted in the state directory, under a lock, so two
    launches never get the same number and a number is not given out again. A counter
    file that cannot be used (unreadable, garbage) only makes the numbers start over."""
    path = os.path.join(state_dir(), NUMBERS_FILE)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                     | os.O_NONBLOCK, 0o600)
    except OSError:
        fd = -1
    try:
        numbers = _numbers(fd)
        n = numbers.pop(base, 0) + 1
        while not take(f"{base}-{n}"):
            n += 1
        numbers[base] = n  # last: the most recently used
        if fd != -1:
            kept = dict(list(numbers.items())[-NUMBERS_KEPT:])
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(kept).encode(), 0)
        return f"{base}-{n}"
    finally:
        if fd != -1:
            os.close(fd)  # and with it the lock


def _numbers(fd: int) -> dict[str, int]:
    """The counters in ``fd``, locked for this process until it is closed ({} if none)."""
    if fd == -1:
        return {}
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > RECORD_MAX:
            return {}
        fcntl.flock(fd, fcntl.LOCK_EX)
        data = json.loads(os.pread(fd, RECORD_MAX, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and type(v) is int and v > 0}


@contextlib.contextmanager
def registered(environ: Mapping[str, str], name: str | None, base: str, *, agent: str,
               project: str, net: str, command: Sequence[str],
               session_id: str | None = None) -> Iterator[Session]:
    """This launch's record, under ``name`` or the next ``base-N``, with ``session_id``
    (made up if not given); removed on exit."""
    directory = _private_dir(sessions_dir(environ))
    pid = os.getpid()
    record = Session("", pid, _ticks(pid) or 0, time.time(), agent, project, net,
                     tuple(command), session_id or "")
    claimed = None
    if name is not None:
        claimed = _claim(directory, name, record)
        if claimed is None:
            raise UsageError(f"a session named {name!r} is already running",
                             fix="choose another --name, or agent-sandbox stop " + name)
    else:
        def take(candidate: str) -> bool:
            nonlocal claimed
            claimed = _claim(directory, candidate, record)
            return claimed is not None

        numbered(base, take)
    assert claimed is not None
    try:
        yield claimed
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(directory, f"{claimed.name}.json"))


def socket_path(environ: Mapping[str, str], name: str) -> str:
    """Where a detached session's terminal is served (dtach's socket)."""
    return os.path.join(_private_dir(sessions_dir(environ)), f"{name}.sock")
