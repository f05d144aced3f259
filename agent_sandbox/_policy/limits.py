"""Resource limits: what was asked for, parsed; how each is enforced; refusal when it can't be.

- rlimits, always: no core dumps (a core of the agent holds its API key and your code), a
  cap on open files, and a cap on the size of any one file (``yes > f`` fills the disk);
- memory, pids and CPU through cgroup v2, the first way that works (``cgroup_way``): a
  cgroup the launcher makes in a delegated cgroup directory (``_cgroup``), else a scope
  made by ``systemd-run --user --scope``, which needs a systemd user manager with cgroup v2
  delegation. Asked for where neither works, the launch is refused unless ``--best-effort``
  (then a warning says which limits are not applied). Not asked for, memory and pids get
  default caps where a way works, and the launch says memory is not capped where none
  does; ``none`` turns a default off;
- a wall-clock ``--timeout``, enforced by the launcher (exit status 124, like timeout(1)).
"""

from __future__ import annotations

import os
import re
import resource
from typing import NamedTuple

from agent_sandbox._errors import UsageError

DEFAULT_NOFILE = 65536
# Processes and threads of one sandbox, without a cgroup: RLIMIT_NPROC set on the sandbox's
# first process counts in its own user namespace (a fork bomb stops there; the user's other
# processes do not count). A build running make -j on many cores stays well under it.
DEFAULT_NPROC = 4096
DEFAULT_FSIZE = 16 * 1024**3  # one file larger than this in a coding project is a runaway
# Where cgroup v2 is usable and no value is given: the same task cap as RLIMIT_NPROC (which
# the cgroup's pids.max makes hold for a root caller's threads too), and half the host's
# RAM (``default_memory``): a runaway cannot push the host into swap or its OOM killer,
# while builds and the agent's own tools keep room.
DEFAULT_PIDS = DEFAULT_NPROC
CAPPED_BY_DEFAULT = ("memory", "pids")
NO_CAP = "none"  # the value that turns a default cap off
EXIT_TIMEOUT = 124

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\Z", re.IGNORECASE)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d)?\Z", re.IGNORECASE)


class Limits(NamedTuple):
    memory: int | None = None  # bytes
    pids: int | None = None
    cpus: float | None = None
    timeout: float | None = None  # seconds
    nofile: int = DEFAULT_NOFILE
    nproc: int = DEFAULT_NPROC
    fsize: int = DEFAULT_FSIZE
    best_effort: bool = False
    # Why memory is not capped although nothing turned its default off ("" if it is, or if
    # it was turned off): said at launch.
    uncapped: str = ""

    @property
    def cgroup(self) -> bool:
        return any(v is not None for v in (self.memory, self.pids, self.cpus))


def parse_size(raw: str, flag: str) -> int:
    m = _SIZE.match(raw.strip())
    if not m:
        raise UsageError(f"{flag} {raw!r}: expected a size like 512M, 4G or 1048576"
                         + _or_none(flag))
    scale = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[m.group(2).lower()]
    value = int(float(m.group(1)) * scale)
    if value <= 0:
        raise UsageError(f"{flag} {raw!r}: must be more than 0")
    return value


def is_no_cap(raw: str, key: str) -> bool:
    """``none`` for a limit capped by default: no cap (and no word about it at launch)."""
    return key in CAPPED_BY_DEFAULT and raw.strip().lower() == NO_CAP


def _or_none(flag: str) -> str:
    return f", or {NO_CAP} for no cap" if flag.lstrip("-") in CAPPED_BY_DEFAULT else ""


def default_memory() -> int:
    """Half the host's RAM (its physical pages, not what is free now)."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


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
                         "number" + _or_none(flag)) from None
    if value <= 0:
        raise UsageError(f"{flag} {raw!r}: must be more than 0")
    return value


def cpu_percent(cpus: float) -> int:
    """``--cpus`` as the whole percent of one CPU both ways enforce (at least 1)."""
    return max(1, round(cpus * 100))


def systemd_scope_argv(systemd_run: str, limits: Limits) -> tuple[str, ...]:
    """The ``systemd-run`` prefix that puts bwrap in a limited cgroup v2 scope (pure)."""
    props = []
    if limits.memory is not None:
        props += ["-p", f"MemoryMax={limits.memory}", "-p", "MemorySwapMax=0"]
    if limits.pids is not None:
        props += ["-p", f"TasksMax={limits.pids}"]
    if limits.cpus is not None:
        props += ["-p", f"CPUQuota={cpu_percent(limits.cpus)}%"]
    return (systemd_run, "--user", "--scope", "--quiet", "--collect", *props, "--")


class CgroupWay(NamedTuple):
    """How memory/pids/CPU limits are enforced here: the first of these that is set."""

    parent: str = ""  # a delegated cgroup directory; the launcher makes the cgroup in it
    systemd_run: str = ""  # systemd-run, making a scope
    why_not: str = ""  # neither works, and why


def limit_processes(init_pid: int, limits: Limits) -> None:
    """RLIMIT_NPROC on the sandbox's first process, before the command starts: set after
    its user namespace exists, it counts that namespace's processes only (set on the
    launcher, it would count all of the user's)."""
    _soft, hard = resource.prlimit(init_pid, resource.RLIMIT_NPROC)
    value = limits.nproc if hard == resource.RLIM_INFINITY else min(limits.nproc, hard)
    resource.prlimit(init_pid, resource.RLIMIT_NPROC, (value, value))


def apply_rlimits(limits: Limits, processes: bool = False) -> None:
    """Set the launcher's rlimits, which bwrap and the command inherit. ``processes``: also
    RLIMIT_NPROC, for a root caller, whose launcher the kernel exempts (host uid 0) while
    the command's dropped uid counts; an ordinary caller's cap is ``limit_processes``."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    rlimits = [(resource.RLIMIT_NOFILE, limits.nofile), (resource.RLIMIT_FSIZE, limits.fsize)]
    if processes:
        rlimits.append((resource.RLIMIT_NPROC, limits.nproc))
    for which, value in rlimits:
        _soft, hard = resource.getrlimit(which)
        capped = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (capped, capped))
