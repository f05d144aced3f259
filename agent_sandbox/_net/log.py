"""The network decision log: one JSON line per allowed or denied connection.

Under ``$XDG_STATE_HOME/agent-sandbox/`` (default ``~/.local/state``), appended by every
launch, each line tagged with the launch's session id, so ``grep``, ``jq`` and the summary
printed at exit can say what was blocked and which flag would allow it.
"""

from __future__ import annotations

import _thread  # a lock without importing threading on every launch
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


class DecisionLog:
    def __init__(self, session: str, path: str | None = None) -> None:
        self.session = session
        self.path = path or log_path()
        self._lock = _thread.allocate_lock()
        self._file: IO[str] | None = None
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            self._file = os.fdopen(fd, "a", buffering=1, encoding="utf-8")
        except OSError:
            self._file = None  # a log that cannot be written must not stop the sandbox

    def record(self, decision: str, **fields: object) -> None:
        line = json.dumps({"time": round(time.time(), 3), "session": self.session,
                           "decision": decision, **fields})
        with self._lock:
            if self._file is not None:
                self._file.write(line + "\n")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
