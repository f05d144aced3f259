"""Making, then removing, the protected-file placeholders in the project.

Each protected path that does not exist yet needs a mount point in the project for its
read-only placeholder. The launcher makes them beforehand: the missing directories on the
way (bwrap must pin them, binding them over themselves, and only binds what exists), and
each file with its placeholder's content, so host tools that read it meanwhile see what
the sandbox shows (an empty ``.git/commondir`` breaks host git); bwrap makes the missing
placeholder directories. The launcher removes them all when the sandbox ends; so does a
small janitor process, in its own session, that waits for bwrap to exit: if the launcher
is killed (even with SIGKILL), the janitor still cleans up. Removal is ``rmdir`` of an
empty directory or ``unlink`` of a file still holding what the launcher wrote, reached
from the project without following a symlink, so it cannot touch the user's files.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NamedTuple

from agent_sandbox._say import say

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


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


class Made(NamedTuple):
    """A file the launcher made: which one (a file of the same name made by anyone else is
    not it), and what it wrote."""

    dev: int
    ino: int
    content: bytes


def make_files(project: str, files: Sequence[tuple[str, bytes]]) -> dict[str, Made]:
    """Create each missing file with its content, only where nothing is (``O_EXCL``) and
    without following a symlink; one whose directory changed is left for bwrap to make."""
    made = {}
    for path, content in files:
        parent = _parent_fd(project, path)
        if parent is None:
            continue
        try:
            fd = os.open(os.path.basename(path), _NEW_FILE, 0o644, dir_fd=parent)
        except FileExistsError:
            continue
        finally:
            os.close(parent)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            st = os.fstat(f.fileno())
        made[path] = Made(st.st_dev, st.st_ino, content)
    return made


def _still_made(name: str, parent: int, st: os.stat_result, made: Made | None) -> bool:
    """Whether the file is as made: by bwrap (empty), or by the launcher (same file, same
    content)."""
    if made is None:
        return st.st_size == 0
    if (st.st_dev, st.st_ino) != (made.dev, made.ino):
        return False
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    with os.fdopen(fd, "rb") as f:
        return f.read(len(made.content) + 1) == made.content


def remove_placeholders(project: str, paths: Sequence[str],
                        made: Mapping[str, Made]) -> list[str]:
    """Remove each path (deepest first) if it is still what was made: an empty directory
    (rmdir), or a regular file still as made (``_still_made``; unlink: anything written
    into it from the host while the sandbox ran is kept). Never follows a symlink, in the
    path or at its end, so nothing outside the project can be reached. Returns what could
    not be removed."""
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
            elif stat.S_ISREG(st.st_mode) and _still_made(name, parent, st, made.get(path)):
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


Blocks = Sequence[tuple[str, Sequence[str]]]


def _markers(tag: str) -> tuple[str, str]:
    return (f"# agent-sandbox {tag}: its placeholders, while it runs\n",
            f"# end agent-sandbox {tag}\n")


def add_exclude_blocks(blocks: Blocks, tag: str) -> None:
    """Host git lists no placeholder while the sandbox runs: each repository's
    info/exclude gets a block of them, marked with the launch's tag (removed at the end,
    also by the janitor). Never through a symlink; a file that cannot be written is
    skipped (host git then lists them, as before)."""
    begin, end = _markers(tag)
    for path, patterns in blocks:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                f.write(begin + "".join(f"{p}\n" for p in patterns) + end)


def remove_exclude_blocks(blocks: Blocks, tag: str) -> None:
    """Take the launch's block out of each info/exclude again; a file left empty is
    removed (it was made for the block)."""
    begin, end = _markers(tag)
    for path, _ in blocks:
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "r+", encoding="utf-8") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                lines = f.readlines()
                if begin not in lines:
                    continue
                start = lines.index(begin)
                stop = lines.index(end, start) + 1 if end in lines[start:] else len(lines)
                kept = lines[:start] + lines[stop:]
                f.seek(0)
                f.truncate()
                f.write("".join(kept))
                if not kept:
                    os.unlink(path)


def _janitor(pidfd: int, launcher: int, project: str, paths: Sequence[str],
             made: Mapping[str, Made], blocks: Blocks, tag: str,
             after: Callable[[], object] | None) -> None:  # pragma: no cover (a child)
    try:
        os.setsid()  # out of the terminal's process group: ^C and hangups do not reach it
        devnull = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        kept = {pidfd, launcher}
        for fd in range(3, max(kept) + 1):
            if fd not in kept:
                with contextlib.suppress(OSError):
                    os.close(fd)
        os.closerange(max(kept) + 1, 1 << 20)
        select.select([pidfd], [], [])  # readable once bwrap has exited
        remove_placeholders(project, paths, made)
        remove_exclude_blocks(blocks, tag)
        if after is not None:
            # The launcher does it itself right after the sandbox; here only once it is
            # gone (then a second call finds it done), so that a late janitor never acts
            # on the project while the launcher, or a later session, is using it.
            select.select([launcher], [], [])
            after()
    finally:
        os._exit(0)


@contextlib.contextmanager
def placeholders_removed(project: str, paths: Sequence[str], made: Mapping[str, Made],
                         bwrap_pid: int, blocks: Blocks = (), tag: str = "",
                         after: Callable[[], object] | None = None) -> Iterator[None]:
    """Remove the placeholders (and exclude blocks) when the sandbox ends, and run
    ``after`` (the quarantine): here when the launcher lives on, else by the janitor."""
    if not paths and after is None:
        yield
        return
    pidfd = os.pidfd_open(bwrap_pid)
    launcher = os.pidfd_open(os.getpid())
    try:
        if os.fork() == 0:  # pragma: no cover (a child)
            _janitor(pidfd, launcher, project, paths, made, blocks, tag, after)
    finally:
        os.close(pidfd)
        os.close(launcher)
    try:
        yield
    finally:
        remove_exclude_blocks(blocks, tag)
        for left in remove_placeholders(project, paths, made):
            say(f"warning: placeholder left in the project: {left}")
