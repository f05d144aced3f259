"""The policy: what the user asked for, resolved and frozen. Pure data, no side effects.

Value objects here and in the plan are ``typing.NamedTuple``s: immutable, typed and cheap.
(attrs was the first choice; measured here it adds ~22 ms of import and ~1 ms per class to
every launch, a whole ``python -c pass``. Inputs are validated where they arrive, in
``_request``, which turns each bad value into an error naming the flag.)
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, NamedTuple

from agent_sandbox._policy.limits import Limits

if TYPE_CHECKING:
    from agent_sandbox._net.allow import AllowEntry, Forward

# An empty tmpfs $HOME; agents fill it with caches, so leave room, but cap it (disk-fill DoS).
DEFAULT_HOME_SIZE = 512 * 1024 * 1024
# An agent preset's home for one project (kept between sessions, in memory during one).
DEFAULT_AGENT_HOME_SIZE = 1024 * 1024 * 1024
# /tmp: a tmpfs this large (in memory, and in the memory cgroup where there is one), or,
# asked for, a work dir on the host disk without a cap.
DEFAULT_TMP_SIZE = 2 * 1024 * 1024 * 1024


class NetMode(enum.Enum):
    NONE = "none"
    FILTERED = "filtered"
    HOST = "host"


class MountMode(enum.Enum):
    RO = "ro"
    RW = "rw"
    HIDE = "hide"


class Mount(NamedTuple):
    """An extra path asked for by the user (``--ro``/``--rw``/``--hide``), resolved."""

    mode: MountMode
    path: str
    origin: str
    # For HIDE: a directory is covered by an empty tmpfs, a file by /dev/null.
    is_dir: bool = True


def is_env_name(name: str) -> bool:
    return (
        name.isascii()
        and bool(name)
        and not name[0].isdigit()
        and name.replace("_", "a").isalnum()
    )


class EnvRequest(NamedTuple):
    """``--env NAME`` (pass the host value) or ``--env NAME=VALUE`` (set it)."""

    name: str
    value: str | None = None
    origin: str = "--env"


class Policy(NamedTuple):
    """Everything that decides what the sandbox looks like, already resolved to real paths."""

    project: str
    cwd: str
    command: tuple[str, ...]
    net: NetMode = NetMode.NONE
    mounts: tuple[Mount, ...] = ()
    env: tuple[EnvRequest, ...] = ()
    home_size: int = DEFAULT_HOME_SIZE
    agent_home_size: int = DEFAULT_AGENT_HOME_SIZE
    tmp_size: int = DEFAULT_TMP_SIZE
    tmp_on_disk: bool = False
    # Let the command create user namespaces (an agent's own inner sandbox). Off: a nested
    # user namespace + pivot_root can undo the read-only binds.
    allow_nested_userns: bool = False
    # --net filtered: the allow-list and --resolve pins; forwards and published ports work
    # with --net none too.
    allow: tuple[AllowEntry, ...] = ()
    pins: tuple[tuple[str, str], ...] = ()
    forwards: tuple[Forward, ...] = ()
    publish: tuple[int, ...] = ()
    limits: Limits = Limits()
    # How memory/pids/CPU limits are enforced, when asked for: a cgroup the launcher makes
    # in this delegated directory, or else a scope made by this systemd-run.
    cgroup_parent: str = ""
    systemd_run: str = ""
    gpu: bool = False
    # The agent preset in use ("" for none), its saved home for this project, shown at
    # $HOME as a tmpfs of agent_home_size the launcher fills and saves back (or "": an
    # empty tmpfs), and, with --share-agent-state, the real state paths bound read-write
    # instead.
    git_token_file: str = ""  # a token file for HTTPS git pushes (read-only inside)
    agent: str = ""
    agent_home: str = ""
    shared_state: tuple[str, ...] = ()
    # A root caller's command keeps host uid 0 (no idmapped mounts); announced every launch.
    root_stays_root: bool = False


def is_under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")
