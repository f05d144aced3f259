"""Making, then removing, the protected-file placeholders in the project.

bwrap creates an empty directory or file in the project for each protected path that does
not exist yet (the mount point of its read-only placeholder); the launcher makes the missing
directories on the way to one beforehand, as bwrap must pin them (bind them over themselves)
and only binds what exists. The launcher removes them all when the
sandbox ends; so does a small janitor process, in its own session, that waits for bwrap to
exit: if the launcher is killed (even with SIGKILL), the janitor still cleans up. Removal is
``rmdir`` of an empty directory or ``unlink`` of an empty file, reached from the project
without following a symlink, so it cannot touch the user's files.
"""

from __future__ import annotations

import contextlib
import os
import select
import stat
from collections.abc import Iterator, Sequence

from agent_sandbox._say import say

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _parent_fd(project: str, path: str) -> int | None:
    """An fd of ``path``'s parent, reached from the project one component at a time without
    following a symlink (the agent may have swapped a directory for one): None if any
    component is not a plain directory any more."""
    rel = os.path.relpath(os.path.dirname(path), project)
    fd = os.open(project, _DIR)
    for part in [] if rel == "." else rel.split("/"):
        try:
            child = os.open(part, _DIR, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = child
    return fd


def make_dirs(project: str, paths: Sequence[str]) -> None:
    """Make each missing directory (parents first) without following a symlink on the way;
    one whose parent is no longer a plain directory is left for bwrap to refuse."""
    for path in paths:
        parent = _parent_fd(project, path)
        if parent is None:
            continue
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(os.path.basename(path), 0o755, dir_fd=parent)
        finally:
            os.close(parent)


def remove_placeholders(project: str, paths: Sequence[str]) -> list[str]:
    """Remove each path (deepest first) if it is still what bwrap made: an empty directory
    (rmdir) or an empty regular file (unlink; anything written into it from the host while
    the sandbox ran is kept). Never follows a symlink, in the path or at its end, so nothing
    outside the project can be reached. Returns what could not be removed."""
    left = []
    for path in paths:
        name = os.path.basename(path)
        try:
            parent = _parent_fd(project, path)
        except OSError as e:
            left.append(f"{path} ({e.strerror})")
            continue
        if parent is None:
            continue  # its directory was replaced or removed: nothing of ours is there
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                os.rmdir(name, dir_fd=parent)
            elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                os.unlink(name, dir_fd=parent)
            else:
                left.append(f"{path} (changed on the host: kept)")
        except FileNotFoundError:
            pass
        except OSError as e:
            left.append(f"{path} ({e.strerror})")
        finally:
            os.close(parent)
    return left


def _janitor(pidfd: int, project: str,
             paths: Sequence[str]) -> None:  # pragma: no cover (a child)
    try:
        os.setsid()  # out of the terminal's process group: ^C and hangups do not reach it
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, pidfd)
        os.closerange(pidfd + 1, 1 << 20)
        select.select([pidfd], [], [])  # readable once bwrap has exited
        remove_placeholders(project, paths)
    finally:
        os._exit(0)


@contextlib.contextmanager
def placeholders_removed(project: str, paths: Sequence[str],
                         bwrap_pid: int) -> Iterator[None]:
    if not paths:
        yield
        return
    pidfd = os.pidfd_open(bwrap_pid)
    try:
        if os.fork() == 0:  # pragma: no cover (a child)
            _janitor(pidfd, project, paths)
    finally:
        os.close(pidfd)
    try:
        yield
    finally:
        for left in remove_placeholders(project, paths):
            say(f"warning: placeholder left in the project: {left}")
