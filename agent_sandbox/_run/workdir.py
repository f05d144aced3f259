"""The per-launch work dir (the sandbox's /tmp) and its removal, which never follows symlinks.

Layout on the host::

    $TMPDIR/agent-sandbox-<uid>/          0700, owned by the caller, checked before use
        <pid>-<random>.lock               flock()ed by the live launcher for its whole life
        <pid>-<random>/                   bound at /tmp inside, removed at exit

The lock file is created, locked and only then renamed into place, before the directory
exists; it is removed after the directory. So a directory whose lock can be taken (or that
has none) belongs to a launcher that is gone, even after a SIGKILL, and the next launch
reaps it. The kernel drops the lock when the owner dies, so pid reuse cannot fool it.

Removal walks the tree with directory fds: every open uses O_NOFOLLOW, symlinks are unlinked
and never followed, other filesystems are never entered, and going back up through ``..``
is checked against the (device, inode) recorded on the way down.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Iterator
from typing import NamedTuple

from agent_sandbox._errors import SandboxUnavailable
from agent_sandbox._plan.protect import PLACEHOLDER_SOURCES
from agent_sandbox._say import say

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LOCK_SUFFIX = ".lock"
_UNRENAMED_LOCK_GRACE = 60.0  # seconds


class UnsafeTree(Exception):
    """The tree changed under us in a way that removal must not follow."""


class _Frame(NamedTuple):
    name: str
    dev: int
    ino: int
    subdirs: list[str]


def _open_dir(parent_fd: int, name: str, expect: os.stat_result) -> int:
    """Open ``name`` as a directory (never a symlink), make it traversable and writable."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        # A 0000 directory: reach it through an O_PATH handle, chmod that exact inode via
        # its /proc/self/fd link (which names the inode, not a path), then reopen it.
        path_fd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                          dir_fd=parent_fd)
        try:
            st = os.fstat(path_fd)
            if (st.st_dev, st.st_ino) != (expect.st_dev, expect.st_ino):
                raise UnsafeTree(f"{name} changed while being removed") from None
            os.chmod(f"/proc/self/fd/{path_fd}", 0o700)
            fd = os.open(f"/proc/self/fd/{path_fd}", _DIR_FLAGS & ~os.O_NOFOLLOW)
        finally:
            os.close(path_fd)
    st = os.fstat(fd)
    if (st.st_dev, st.st_ino) != (expect.st_dev, expect.st_ino):
        os.close(fd)
        raise UnsafeTree(f"{name} changed while being removed")
    if st.st_mode & 0o700 != 0o700:
        os.fchmod(fd, 0o700)  # unlinking children needs write and search permission
    return fd


def _clear_files(fd: int, dev: int) -> list[str]:
    """Unlink everything in ``fd`` that is not a directory; return the subdirectory names.

    A directory on another filesystem (a mount point) stops the removal before anything in
    this directory is touched.
    """
    with os.scandir(fd) as it:
        entries = [(e.name, e.stat(follow_symlinks=False)) for e in it]
    for name, st in entries:
        if stat.S_ISDIR(st.st_mode) and st.st_dev != dev:
            raise UnsafeTree(f"{name} is on another filesystem")
    for name, st in entries:
        if not stat.S_ISDIR(st.st_mode):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
    return [name for name, st in entries if stat.S_ISDIR(st.st_mode)]


def remove_tree(parent_fd: int, name: str) -> None:
    """Remove ``name`` in the directory ``parent_fd`` and everything below it.

    Depth costs no recursion and holds one fd at a time, so a 10k-deep tree is fine.
    """
    try:
        top = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(top.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    fd = _open_dir(parent_fd, name, top)
    try:
        stack = [_Frame(name, top.st_dev, top.st_ino, _clear_files(fd, top.st_dev))]
        while stack:
            frame = stack[-1]
            if frame.subdirs:
                child = frame.subdirs.pop()
                try:
                    st = os.stat(child, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(child, dir_fd=fd)
                    continue
                child_fd = _open_dir(fd, child, st)
                os.close(fd)
                fd = child_fd
                stack.append(_Frame(child, st.st_dev, st.st_ino, _clear_files(fd, top.st_dev)))
                continue
            stack.pop()
            if not stack:
                break
            parent = stack[-1]
            up = os.open("..", _DIR_FLAGS, dir_fd=fd)
            st = os.fstat(up)
            if (st.st_dev, st.st_ino) != (parent.dev, parent.ino):
                os.close(up)
                raise UnsafeTree(f"the parent of {frame.name} moved while being removed")
            os.close(fd)
            fd = up
            os.rmdir(frame.name, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=parent_fd)


def _base_dir() -> str:
    tmp = os.environ.get("TMPDIR", "")
    if not (tmp.startswith("/") and os.path.isdir(tmp)):
        tmp = "/tmp"
    return os.path.join(tmp, f"agent-sandbox-{os.getuid()}")


def _open_base(path: str) -> int:
    """Open (creating it if needed) the caller's private base dir, refusing impostors."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError as e:
        raise SandboxUnavailable(
            f"cannot use the work dir base {path}: {e.strerror}",
            fix=f"remove {path} if it is not yours, or set TMPDIR to a private directory",
        ) from None
    st = os.fstat(fd)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        os.close(fd)
        raise SandboxUnavailable(
            f"the work dir base {path} is not private to you (owner uid {st.st_uid}, "
            f"mode {stat.S_IMODE(st.st_mode):04o})",
            fix=f"remove {path} (someone else may have created it), or set TMPDIR elsewhere",
        )
    return fd


def _try_lock(base_fd: int, name: str) -> int | None:
    """An fd holding ``name``'s lock, or None while its owner lives."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=base_fd)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def reap_stale(base_fd: int) -> list[str]:
    """Remove the work dirs of launchers that are gone; return what could not be removed."""
    failed = []
    names = set(os.listdir(base_fd))
    for name in sorted(names):
        if name.endswith(_LOCK_SUFFIX):
            continue
        if name.startswith("."):
            # Hidden: a lock a launcher died before renaming, or a placeholder source
            # (shared by every launch: never reaped).
            if name.endswith(_LOCK_SUFFIX + ".tmp"):
                _reap_unrenamed_lock(base_fd, name)
            continue
        lock_name = name + _LOCK_SUFFIX
        lock_fd = _try_lock(base_fd, lock_name) if lock_name in names else None
        if lock_name in names and lock_fd is None:
            continue  # its launcher is alive
        try:
            remove_tree(base_fd, name)
            if lock_fd is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock_name, dir_fd=base_fd)
        except (OSError, UnsafeTree) as e:
            failed.append(f"{name}: {e}")
        finally:
            if lock_fd is not None:
                os.close(lock_fd)
    # Lock files left without a directory (a crash between the two removals).
    for name in names:
        if name.endswith(_LOCK_SUFFIX) and name[: -len(_LOCK_SUFFIX)] not in names:
            lock_fd = _try_lock(base_fd, name)
            if lock_fd is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=base_fd)
                os.close(lock_fd)
    return failed


def _reap_unrenamed_lock(base_fd: int, name: str) -> None:
    """A lock file a launcher died before renaming; a young one may be mid-creation."""
    try:
        st = os.stat(name, dir_fd=base_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if time.time() - st.st_mtime > _UNRENAMED_LOCK_GRACE and stat.S_ISREG(st.st_mode):
        lock_fd = _try_lock(base_fd, name)
        if lock_fd is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=base_fd)
            os.close(lock_fd)


def placeholder_sources() -> dict[str, str]:
    """The read-only sources bound over protected paths that do not exist yet, kept in the
    private base dir: kind (see PLACEHOLDER_SOURCES) -> path. Checked before every use."""
    base = _base_dir()
    base_fd = _open_base(base)
    try:
        # Work dirs (--tmp-on-disk) a killed launcher left are reaped here too: most
        # launches have placeholders, few have a work dir.
        for problem in reap_stale(base_fd):
            say(f"warning: stale work dir left in {base}: {problem}")
        for name, content in PLACEHOLDER_SOURCES.values():
            if content is None:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o555, dir_fd=base_fd)
            elif not os.path.lexists(os.path.join(base, name)):
                # Written whole under a name of its own, then linked into place: a launch
                # starting at the same moment never reads it half-written.
                tmp = f".{name}.{os.getpid()}-{os.urandom(4).hex()}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o444, dir_fd=base_fd)
                try:
                    with os.fdopen(fd, "wb") as f:
                        f.write(content)
                    with contextlib.suppress(FileExistsError):
                        os.link(tmp, name, src_dir_fd=base_fd, dst_dir_fd=base_fd,
                                follow_symlinks=False)
                finally:
                    os.unlink(tmp, dir_fd=base_fd)
            st = os.stat(name, dir_fd=base_fd, follow_symlinks=False)
            if content is None:
                ok = stat.S_ISDIR(st.st_mode) and not os.listdir(os.path.join(base, name))
            else:
                with open(os.path.join(base, name), "rb") as f:
                    ok = stat.S_ISREG(st.st_mode) and f.read(64) == content
            if not ok or st.st_mode & 0o222 or st.st_uid != os.getuid():
                raise SandboxUnavailable(f"{base}/{name} is not the placeholder it should be",
                                         fix=f"remove {base}/{name}")
    finally:
        os.close(base_fd)
    return {kind: os.path.join(base, name) for kind, (name, _) in PLACEHOLDER_SOURCES.items()}


@contextlib.contextmanager
def work_dir() -> Iterator[str]:
    """Create this launch's work dir (reaping stale ones first); remove it on exit."""
    base = _base_dir()
    base_fd = _open_base(base)
    try:
        for problem in reap_stale(base_fd):
            say(f"warning: stale work dir left in {base}: {problem}")
        name = f"{os.getpid()}-{os.urandom(6).hex()}"
        lock_tmp = f".{name}{_LOCK_SUFFIX}.tmp"
        lock_fd = os.open(
            lock_tmp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=base_fd,
        )
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            os.rename(lock_tmp, name + _LOCK_SUFFIX, src_dir_fd=base_fd, dst_dir_fd=base_fd)
            os.mkdir(name, 0o700, dir_fd=base_fd)
            try:
                yield os.path.join(base, name)
            finally:
                try:
                    remove_tree(base_fd, name)
                    os.unlink(name + _LOCK_SUFFIX, dir_fd=base_fd)
                except (OSError, UnsafeTree) as e:
                    say(f"warning: could not remove the work dir "
                        f"{os.path.join(base, name)}: {e}")
        finally:
            os.close(lock_fd)
    finally:
        os.close(base_fd)
