"""Resource limits: what was asked for, parsed; how each is enforced; refusal when it can't be.

- rlimits, always: no core dumps (a core of the agent holds its API key and your code), a
  cap on open files, and a cap on the size of any one file (``yes > f`` fills the disk);
- memory, pids and CPU through a cgroup v2 scope made by ``systemd-run --user --scope``,
  which needs a systemd user manager with cgroup v2 delegation. Asked for where that is not
  available, the launch is refused unless ``--best-effort`` (then a warning says which
  limits are not applied);
- a wall-clock ``--timeout``, enforced by the launcher (exit status 124, like timeout(1)).
"""

from __future__ import annotations

import os
import re
import resource
from collections.abc import Mapping
from typing import NamedTuple

from agent_sandbox._errors import UsageError

DEFAULT_NOFILE = 65536
DEFAULT_FSIZE = 16 * 1024**3  # one file larger than this in a coding project is a runaway
EXIT_TIMEOUT = 124

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\Z", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)?\Z", re.IGNORECASE)


class Limits(NamedTuple):
    memory: int | None = None  # bytes
    pids: int | None = None
    cpus: float | None = None
    timeout: float | None = None  # seconds
    nofile: int = DEFAULT_NOFILE
    fsize: int = DEFAULT_FSIZE
    best_effort: bool = False

    @property
    def cgroup(self) -> bool:
        return any(v is not None for v in (self.memory, self.pids, self.cpus))


def parse_size(raw: str, flag: str) -> int:
    m = _SIZE.match(raw.strip())
    if not m:
        raise UsageError(f"{flag} {raw!r}: expected a size like 512M, 4G or 1048576")
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[m.group(2).lower()]
    value = int(float(m.group(1)) * scale)
    if value <= 0:
        raise UsageError(f"{flag} {raw!r}: must be more than 0")
    return value


def parse_duration(raw: str, flag: str) -> float:
    m = _DURATION.match(raw.strip())
    if not m:
        raise UsageError(f"{flag} {raw!r}: expected a duration like 90, 90s, 30m or 2h")
    scale = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[(m.group(2) or "").lower()]
    value = float(m.group(1)) * scale
    if value <= 0:
        raise UsageError(f"{flag} {raw!r}: must be more than 0")
    return value


def parse_positive(raw: str, flag: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(raw)
    except ValueError:
        raise UsageError(f"{flag} {raw!r}: expected a {'whole ' if kind is int else ''}"
                         "number") from None
    if value <= 0:
        raise UsageError(f"{flag} {raw!r}: must be more than 0")
    return value


def systemd_scope_argv(systemd_run: str, limits: Limits) -> tuple[str, ...]:
    """The ``systemd-run`` prefix that puts bwrap in a limited cgroup v2 scope (pure)."""
    props = []
    if limits.memory is not None:
        props += ["-p", f"MemoryMax={limits.memory}", "-p", "MemorySwapMax=0"]
    if limits.pids is not None:
        props += ["-p", f"TasksMax={limits.pids}"]
    if limits.cpus is not None:
        props += ["-p", f"CPUQuota={round(limits.cpus * 100)}%"]
    return (systemd_run, "--user", "--scope", "--quiet", "--collect", *props, "--")


def find_systemd_run(environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(systemd-run's path, None) where memory/pids/CPU limits can be enforced, else
    ("", why not)."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            unified = any(line.split(" - ")[1].startswith("cgroup2 ")
                          and line.split()[4] == "/sys/fs/cgroup" for line in f)
    except (OSError, IndexError):
        unified = False
    if not unified:
        return "", "cgroup v2 is not mounted at /sys/fs/cgroup (a v1 or hybrid host)"
    runtime = environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    if not os.path.exists(os.path.join(runtime, "systemd", "private")) and not \
            os.path.exists(os.path.join(runtime, "bus")):
        return "", "no systemd user manager (systemd-run --user) for this user"
    for directory in ("/usr/bin", "/bin", "/run/current-system/sw/bin"):
        path = os.path.join(directory, "systemd-run")
        if os.access(path, os.X_OK):
            return path, None
    return "", "systemd-run is not installed"


def apply_rlimits(limits: Limits) -> None:
    """Set the launcher's rlimits, which bwrap and the command inherit."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for which, value in ((resource.RLIMIT_NOFILE, limits.nofile),
                         (resource.RLIMIT_FSIZE, limits.fsize)):
        _soft, hard = resource.getrlimit(which)
        capped = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (capped, capped))
