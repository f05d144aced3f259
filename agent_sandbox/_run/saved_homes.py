"""The saved agent homes, as ``agent-sandbox state`` lists and removes them: read through
directory fds, removed without following symlinks, never while a session uses one."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from typing import NamedTuple

from agent_sandbox._errors import UsageError
from agent_sandbox._policy.presets import data_dir, project_key
from agent_sandbox._run.dirfd import UnsafePath, open_dirs, read_file, tree_size
from agent_sandbox._run.workdir import UnsafeTree, remove_tree

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Saved(NamedTuple):
    """A saved home, as ``agent-sandbox state`` lists it."""

    name: str  # AGENT/KEY
    project: str  # as the launcher recorded it ("" if the record is missing)
    size: int  # bytes
    used: float  # when a session last started there


def homes(environ: Mapping[str, str]) -> list[Saved]:
    """Every saved home, by agent then key; nothing is followed or changed."""
    found: list[Saved] = []
    try:
        agents = open_dirs(data_dir(environ), "agents")
    except (FileNotFoundError, UnsafePath):
        return found
    try:
        for agent in sorted(os.listdir(agents)):
            try:
                fd = os.open(agent, _DIR, dir_fd=agents)
            except OSError:
                continue
            try:
                for key in sorted(n for n in os.listdir(fd) if not n.startswith(".")
                                  and not n.endswith(".json")):
                    try:
                        home = os.open(key, _DIR, dir_fd=fd)
                    except OSError:
                        continue
                    try:
                        size = tree_size(home)
                    finally:
                        os.close(home)
                    project, used = _record(read_file(fd, f"{key}.json"))
                    found.append(Saved(f"{agent}/{key}", project, size, used))
            finally:
                os.close(fd)
    finally:
        os.close(agents)
    return found


def _record(raw: bytes | None) -> tuple[str, float]:
    """(project, last used) from a home's record; unknown ("", 0) for one that is missing
    or not a record (read_file already refused a FIFO, a link or a huge file)."""
    try:
        record = json.loads(raw or b"{}")
        project, used = record.get("project", ""), record.get("used", 0)
    except (ValueError, AttributeError):
        return "", 0.0
    ok = isinstance(project, str) and isinstance(used, int | float)
    return (project, float(used)) if ok else ("", 0.0)


def remove_home(environ: Mapping[str, str], name: str) -> str:
    """Remove AGENT/KEY (and its record) without following symlinks; refused while a
    session of that agent runs in that project."""
    from agent_sandbox._run.sessions import running

    agent, sep, key = name.partition("/")
    if not sep or not agent or not key or "/" in key or agent.startswith(".") \
            or key.startswith("."):
        raise UsageError(f"state rm {name!r}: expected AGENT/KEY as `agent-sandbox state` "
                         "lists it")
    for session in running(environ):
        if session.agent == agent and project_key(session.project) == key:
            raise UsageError(f"state rm {name}: session {session.name} is using it",
                             fix=f"agent-sandbox stop {session.name}")
    try:
        fd = open_dirs(data_dir(environ), f"agents/{agent}")
    except (FileNotFoundError, UnsafePath):
        raise UsageError(f"state rm {name}: no such home (agent-sandbox state lists "
                         "them)") from None
    try:
        try:
            remove_tree(fd, key)
        except FileNotFoundError:
            raise UsageError(f"state rm {name}: no such home (agent-sandbox state lists "
                             "them)") from None
        except UnsafeTree as e:
            raise UnsafePath(f"state rm {name}: {e}") from None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{key}.json", dir_fd=fd)
    finally:
        os.close(fd)
    return os.path.join(data_dir(environ), "agents", agent, key)
