"""Host groups (``@pypi``, ``@github``...): names for the hosts a package tool needs, usable
wherever a host is (``--allow``, ``--allow-private``, ``allow`` lists, presets). The groups
are data, ``host_groups.toml``, each with its source."""

from __future__ import annotations

import functools
import os

from agent_sandbox._errors import UsageError

GROUPS_FILE = os.path.join(os.path.dirname(__file__), "host_groups.toml")


@functools.cache
def groups() -> dict[str, tuple[str, ...]]:
    import tomllib

    with open(GROUPS_FILE, "rb") as f:
        return {name: tuple(hosts) for name, hosts in tomllib.load(f).items()}


def group_of(name: str) -> str | None:
    """``@NAME`` of the group holding the host ``name`` (for a printed fix), or None."""
    return next((f"@{group}" for group, hosts in groups().items()
                 if any(host.partition(":")[0] == name for host in hosts)), None)


def is_group(item: str) -> bool:
    return item.startswith("@")


def expand(item: str, origin: str = "--allow") -> tuple[str, ...]:
    """``@NAME`` or ``@NAME:PORT`` -> the group's hosts (each with ``:PORT``); any other
    item -> itself. An unknown group is a UsageError listing the known ones."""
    if not is_group(item):
        return (item,)
    name, sep, port = item[1:].partition(":")
    known = groups()
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean @{close[0]}?)" if close else ""
        prefix = f"{origin} " if origin else ""
        raise UsageError(f"{prefix}{item}: no such host group{hint}; the groups are: "
                         + ", ".join(f"@{g}" for g in sorted(known)))
    return tuple(f"{host}{sep}{port}" for host in known[name])
