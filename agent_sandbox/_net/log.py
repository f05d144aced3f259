"""The network decision log: one JSON line per allowed or denied connection.

Under ``$XDG_STATE_HOME/agent-sandbox/`` (default ``~/.local/state``), appended by every
launch, each line tagged with the launch's session name and id, so ``grep``, ``jq`` and the
summary printed at exit can say what was blocked and which flag would allow it.
"""

from __future__ import annotations

import _thread  # a lock without importing threading on every launch
import contextlib
import fcntl
import json
import os
import time
from typing import IO


def state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME", "")
    if not base.startswith("/"):
        base = os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "agent-sandbox")


def log_path() -> str:
    return os.path.join(state_dir(), "decisions.jsonl")


def log_paths() -> tuple[str, str]:
    """The rotated file, then the current one: together, the whole log in time order."""
    path = log_path()
    return path + ".1", path


# Bounds (docs/network.md, "The decision log"): a field is cut to FIELD_MAX characters (a
# list to LIST_MAX items); a denial repeated within a session is written once, then counted
# and written again at the end with its count and first and last time; at most
# DENIED_KEYS distinct denials per session are written, the rest only counted; the file
# is rotated (to decisions.jsonl.1) when a launch finds it over ROTATE_AT bytes.
FIELD_MAX = 256
LIST_MAX = 32
DENIED_KEYS = 200
ROTATE_AT = 8 << 20


def _capped(value: object) -> object:
    if isinstance(value, str):
        return value if len(value) <= FIELD_MAX else value[:FIELD_MAX] + "..."
    if isinstance(value, list | tuple):
        items = [_capped(v) for v in value[:LIST_MAX]]
        return [*items, "..."] if len(value) > LIST_MAX else items
    return value


def _open_append(path: str) -> int:
    # Never blocks: a FIFO there is refused (ENXIO) instead of waiting for a reader.
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
                   | os.O_NONBLOCK, 0o600)


def _rotated(path: str, fd: int) -> int:
    """``fd`` (``path``, open for appending), or, if the file is over ROTATE_AT, a new
    file's after moving it to ``path.1`` (the previous ``.1`` is replaced). Under the old
    file's lock, and only if ``path`` still is that file: two launches that both found it
    large rotate it once, and never move the other's new file over the old log."""
    st = os.fstat(fd)
    if st.st_size <= ROTATE_AT:
        return fd
    fcntl.flock(fd, fcntl.LOCK_EX)
    with contextlib.suppress(OSError):
        now = os.stat(path, follow_symlinks=False)
        if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):
            os.replace(path, path + ".1")
    os.close(fd)  # and with it the lock
    return _open_append(path)


class DecisionLog:
    def __init__(self, session: str, path: str | None = None, session_id: str = "") -> None:
        self.session = session
        self.session_id = session_id
        self.path = path or log_path()
        self._lock = _thread.allocate_lock()
        self._file: IO[str] | None = None
        # (path, host, port, reason) -> [count, first time, last time]
        self._denied: dict[tuple[object, ...], list[float]] = {}
        self._unlisted = 0
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            fd = _rotated(self.path, _open_append(self.path))
            self._file = os.fdopen(fd, "a", buffering=1, encoding="utf-8")
        except OSError:
            self._file = None  # a log that cannot be written must not stop the sandbox

    def _tag(self) -> dict[str, object]:
        tag: dict[str, object] = {"session": self.session}
        if self.session_id:
            tag["id"] = self.session_id
        return tag

    def record(self, decision: str, **fields: object) -> None:
        now = round(time.time(), 3)
        fields = {k: _capped(v) for k, v in fields.items()}
        with self._lock:
            if decision == "deny":
                key = tuple(fields.get(k) for k in ("path", "host", "port", "reason"))
                seen = self._denied.get(key)
                if seen is not None:
                    seen[0] += 1
                    seen[2] = now
                    return
                if len(self._denied) >= DENIED_KEYS:
                    self._unlisted += 1
                    return
                self._denied[key] = [1, now, now]
            self._write({"time": now, **self._tag(), "decision": decision, **fields})

    def _write(self, record: dict[str, object]) -> None:
        if self._file is not None:
            self._file.write(json.dumps(record) + "\n")

    def close(self) -> None:
        with self._lock:
            for (path, host, port, reason), (count, first, last) in self._denied.items():
                if count > 1:
                    self._write({"time": last, **self._tag(), "decision": "deny",
                                 "path": path, "host": host, "port": port, "reason": reason,
                                 "count": int(count), "first": first, "last": last})
            if self._unlisted:
                self._write({"time": round(time.time(), 3), **self._tag(),
                             "decision": "deny", "path": "many", "host": "",
                             "reason": f"more than {DENIED_KEYS} different denials",
                             "count": self._unlisted})
            self._denied.clear()
            self._unlisted = 0
            if self._file is not None:
                self._file.close()
                self._file = None
