"""What the command wrote outside the project that is gone with the sandbox, said at exit.

The sandbox keeps the project (and ``--rw`` paths); its own filesystems go when it ends.
The root bwrap builds everything on is read-only (the plan's "read-only skeleton": a write
next to the project or in ``/var`` fails instead of vanishing), ``/tmp`` and ``/dev/shm``
are scratch space by name: what is left to report is the temporary ``$HOME`` (a tmpfs; an
agent preset's home is saved instead).

While bwrap waits on its block pipe, everything it made exists (``READY`` is the last
thing it makes): the launcher opens a directory fd on that home through
``/proc/PID/root`` then, and holds it. Once the sandbox has ended, a walk from that fd
that stays on its device (a mount point still attached shows another) sees what is there
that bwrap did not make (``Plan.made_paths``): the command wrote it. The walk never
follows a symlink and stops at ``LIMIT`` entries; disposable things in ``$HOME``
(``DISPOSABLE``) are not reported.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from typing import NamedTuple

from agent_sandbox._plan.build import READY

LIMIT = 20_000  # entries walked at most, per filesystem
SHOWN = 3  # paths named in a line
# In $HOME: caches and shell histories, which nobody misses.
DISPOSABLE = frozenset({".cache", ".bash_history", ".zsh_history", ".python_history",
                        ".node_repl_history", ".lesshst", ".wget-hsts", ".sqlite_history",
                        ".psql_history", ".npm", ".sudo_as_admin_successful"})
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def wait_ready(init_pid: int, timeout: float = 30.0) -> bool:
    """Wait until bwrap has made everything (its last operation made ``READY``, and the
    process's root is no longer the host's); False if the sandbox went away first."""
    root = f"/proc/{init_pid}/root"
    host = os.stat("/")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            st = os.stat(root + "/")
            if (st.st_dev, st.st_ino) != (host.st_dev, host.st_ino) \
                    and os.path.isdir(root + READY):
                return True
        except PermissionError:
            return False  # /proc/PID/root is not ours to see here: nothing to say at exit
        except OSError:
            if not os.path.exists(f"/proc/{init_pid}"):
                return False
        time.sleep(0.0005)
    return False


class Place(NamedTuple):
    """A filesystem of the sandbox's, held open: where it is inside, and what bwrap made
    in it (relative paths)."""

    inside: str
    fd: int
    made: frozenset[str]
    label: str


def open_places(init_pid: int, home: str | None,
                made: frozenset[str]) -> list[Place]:
    """The temporary home (unless None), held open; nothing if it cannot be."""
    if home is None:
        return []
    with contextlib.suppress(OSError):
        fd = os.open(f"/proc/{init_pid}/root{home}", _DIR)
        prefix = home.rstrip("/") + "/"
        return [Place(home, fd, frozenset(p[len(prefix):] for p in made
                                          if p.startswith(prefix)), "in the temporary $HOME")]
    return []


def _entries(fd: int, budget: list[int], dev: int) -> list[tuple[str, os.stat_result]]:
    """A directory's entries on the filesystem ``dev``, as many as ``budget[0]`` still
    allows (it is spent). A mount point still attached (the kernel may tear the sandbox's
    mounts down after bwrap has gone) shows what is mounted there: another device."""
    found: list[tuple[str, os.stat_result]] = []
    with contextlib.suppress(OSError), os.scandir(fd) as it:
        for entry in it:
            budget[0] -= 1
            if budget[0] < 0:
                break
            st = entry.stat(follow_symlinks=False)
            if st.st_dev == dev:
                found.append((entry.name, st))
    return found


def _walk(fd: int, budget: list[int], dev: int) -> Iterator[str]:
    """The non-directories under ``fd`` (relative) on ``dev``, within ``budget[0]``
    entries."""
    stack = [(fd, "")]
    try:
        while stack:
            current, rel = stack.pop()
            for name, st in _entries(current, budget, dev):
                path = f"{rel}{name}"
                if not stat.S_ISDIR(st.st_mode):
                    yield path
                    continue
                with contextlib.suppress(OSError):
                    stack.append((os.open(name, _DIR, dir_fd=current), path + "/"))
            if current != fd:
                os.close(current)
    finally:
        for current, _ in stack:
            if current != fd:
                os.close(current)


class Found(NamedTuple):
    label: str
    roots: list[tuple[str, int]]  # (path inside, files under it) of each new thing
    files: int
    more: bool  # the walk stopped at LIMIT


def written(place: Place) -> Found:
    """What the command left on ``place``: each new file, or new directory with files in
    it, and the count of files. Only once the sandbox has ended."""
    budget = [LIMIT]
    dev = os.fstat(place.fd).st_dev
    roots: list[tuple[str, int]] = []
    stack = [(place.fd, "")]
    while stack:
        fd, rel = stack.pop()
        for name, st in _entries(fd, budget, dev):
            path = f"{rel}{name}"
            if path in place.made:
                if stat.S_ISDIR(st.st_mode):
                    with contextlib.suppress(OSError):
                        stack.append((os.open(name, _DIR, dir_fd=fd), path + "/"))
                continue
            if not rel and name in DISPOSABLE:
                continue
            if not stat.S_ISDIR(st.st_mode):
                roots.append((path, 1))
                continue
            with contextlib.suppress(OSError):
                sub = os.open(name, _DIR, dir_fd=fd)
                try:
                    count = sum(1 for _ in _walk(sub, budget, dev))
                finally:
                    os.close(sub)
                if count:
                    roots.append((path + "/", count))
        if fd != place.fd:
            os.close(fd)
        if budget[0] < 0:
            for left, _ in stack:
                os.close(left)
            break
    prefix = place.inside.rstrip("/") + "/"
    return Found(place.label, [(prefix + r, n) for r, n in roots],
                 sum(n for _, n in roots), budget[0] < 0)


def line(found: Found, home: str) -> str:
    """One line naming a few of what is gone, and how much; "" when nothing is."""
    if not found.files:
        return ""
    from agent_sandbox._say import home_relative

    biggest = sorted(found.roots, key=lambda r: (-r[1], r[0]))[:SHOWN]
    named = ", ".join(home_relative(path, home) + (f" ({n} files)" if n > 1 else "")
                      for path, n in biggest)
    count = f"{'at least ' if found.more else ''}{found.files} file" \
        + ("" if found.files == 1 and not found.more else "s")
    rest = "" if len(found.roots) <= SHOWN else f", and {len(found.roots) - SHOWN} more"
    return (f"not kept: {count} the command wrote {found.label}, gone with the sandbox: "
            f"{named}{rest}")


def close(places: list[Place]) -> None:
    for place in places:
        with contextlib.suppress(OSError):
            os.close(place.fd)
