"""The policy: what the user asked for, validated and frozen. Pure data, no side effects."""

from __future__ import annotations

import enum
import posixpath
import re
from typing import Any

from attrs import field, frozen

# An empty tmpfs $HOME; agents fill it with caches, so leave room, but cap it (disk-fill DoS).
DEFAULT_HOME_SIZE = 512 * 1024 * 1024

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class NetMode(enum.Enum):
    NONE = "none"
    FILTERED = "filtered"
    HOST = "host"


class MountMode(enum.Enum):
    RO = "ro"
    RW = "rw"
    HIDE = "hide"


def _absolute_normal(_inst: Any, attribute: Any, value: str) -> None:
    if not value.startswith("/") or posixpath.normpath(value) != value:
        raise ValueError(f"{attribute.name} must be an absolute, normalised path: {value!r}")


@frozen
class Mount:
    """An extra bind asked for by the user (``--ro``/``--rw``/``--hide``)."""

    mode: MountMode
    path: str = field(validator=_absolute_normal)
    origin: str
    # For HIDE: a directory is covered by an empty tmpfs, a file by /dev/null.
    is_dir: bool = True


@frozen
class EnvRequest:
    """``--env NAME`` (pass the host value) or ``--env NAME=VALUE`` (set it)."""

    name: str = field()
    value: str | None = None
    origin: str = "--env"

    @name.validator
    def _check_name(self, _attribute: Any, value: str) -> None:
        if not _ENV_NAME.match(value):
            raise ValueError(f"not a valid variable name: {value!r}")


@frozen
class Policy:
    """Everything that decides what the sandbox looks like, already resolved to real paths."""

    project: str = field(validator=_absolute_normal)
    cwd: str = field(validator=_absolute_normal)
    command: tuple[str, ...] = field()
    net: NetMode = NetMode.NONE
    mounts: tuple[Mount, ...] = ()
    env: tuple[EnvRequest, ...] = ()
    home_size: int = DEFAULT_HOME_SIZE

    @command.validator
    def _check_command(self, _attribute: Any, value: tuple[str, ...]) -> None:
        if not value or not value[0]:
            raise ValueError("a command is required")
