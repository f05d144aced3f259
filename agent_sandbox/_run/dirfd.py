"""Files and trees reached through directory fds, never following a symlink: what the agent
homes are made of (``_run.agent_home``). A symlink met on the way is an error or is copied as
a link; nothing outside the directory an fd names is created, written or removed."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat

from agent_sandbox._errors import SandboxUnavailable
from agent_sandbox._files import READ_FLAGS, read_regular

LOGIN_MAX = 1 << 20
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = READ_FLAGS  # never blocks on a FIFO planted in a home
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_RENAME_EXCHANGE = 2


class UnsafePath(SandboxUnavailable):
    """A path to walk has a symlink (or a file) where a directory should be."""


def open_dirs(base: int | str, rel: str, create: bool = False) -> int:
    """A directory fd for ``rel`` under ``base`` (a directory fd, or a path: the data
    directory, which is the user's and may sit behind their own symlinks), opening each
    component of ``rel`` with O_NOFOLLOW; ``create`` makes missing ones (0700). A symlink
    on the way: UnsafePath."""
    parts = [p for p in rel.split("/") if p]
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) if isinstance(base, str) \
        else os.dup(base)
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
            try:
                child = os.open(part, _DIR, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(f"{part} in {rel} is not a directory (a symlink?): "
                                     "not followed") from None
                raise
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def read_file(dir_fd: int, rel: str, limit: int = LOGIN_MAX) -> bytes | None:
    """A regular file's bytes (at most ``limit``), reached without following symlinks; None
    when it is missing, a symlink, not regular or too big."""
    head, _, name = rel.rpartition("/")
    try:
        parent = open_dirs(dir_fd, head) if head else os.dup(dir_fd)
    except (OSError, UnsafePath):
        return None
    try:
        found = read_regular(name, limit, dir_fd=parent)
    finally:
        os.close(parent)
    return None if found is None else found[0]


def mtime(dir_fd: int, rel: str) -> float:
    """A regular file's mtime, 0 if there is none (the last component not followed)."""
    head, _, name = rel.rpartition("/")
    try:
        parent = open_dirs(dir_fd, head) if head else os.dup(dir_fd)
    except (OSError, UnsafePath):
        return 0
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return 0
    finally:
        os.close(parent)
    return st.st_mtime if stat.S_ISREG(st.st_mode) else 0


def write_file(dir_fd: int, rel: str, data: bytes, owner: int | None = None) -> None:
    """Replace ``rel`` by a new file (mode 0600) holding ``data``: written aside, then
    renamed over it (a symlink there is replaced, never followed)."""
    head, _, name = rel.rpartition("/")
    parent = open_dirs(dir_fd, head, create=True) if head else os.dup(dir_fd)
    try:
        if owner is not None:
            _chown_new_dirs(dir_fd, head, owner)
        temp = f".{name}.{os.getpid()}.new"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=parent)
        fd = os.open(temp, _CREATE, 0o600, dir_fd=parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if owner is not None:
                os.fchown(f.fileno(), owner, owner)
        try:
            os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except OSError:
            os.unlink(temp, dir_fd=parent)
            raise
    finally:
        os.close(parent)


def _chown_new_dirs(dir_fd: int, head: str, owner: int) -> None:
    fd = os.dup(dir_fd)
    try:
        for part in [p for p in head.split("/") if p]:
            child = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = child
            if os.fstat(fd).st_uid != owner:
                os.fchown(fd, owner, owner)
    finally:
        os.close(fd)


def copy_tree(src: int, dst: int, owner: int | None = None) -> int:
    """Copy the tree under directory fd ``src`` into ``dst``: regular files, directories
    and symlinks (as links: never followed); anything else is skipped, and so is anything
    on another filesystem on either side (a mount point: the sandbox's binds into the
    home). Returns the bytes copied. ``owner``: chown what is made (a root caller's
    command)."""
    total = 0
    src_dev, dst_dev = os.fstat(src).st_dev, os.fstat(dst).st_dev
    stack = [(os.dup(src), os.dup(dst))]
    try:
        while stack:
            s, d = stack.pop()
            try:
                for entry in os.scandir(s):
                    st = entry.stat(follow_symlinks=False)
                    try:
                        there = os.stat(entry.name, dir_fd=d, follow_symlinks=False)
                    except FileNotFoundError:
                        there = None
                    if st.st_dev != src_dev or (there is not None and there.st_dev != dst_dev):
                        continue
                    if stat.S_ISLNK(st.st_mode):
                        target = os.readlink(entry.name, dir_fd=s)
                        with contextlib.suppress(FileExistsError):
                            os.symlink(target, entry.name, dir_fd=d)
                            if owner is not None:
                                os.chown(entry.name, owner, owner, dir_fd=d,
                                         follow_symlinks=False)
                    elif stat.S_ISDIR(st.st_mode):
                        with contextlib.suppress(FileExistsError):
                            os.mkdir(entry.name, st.st_mode & 0o7777 | 0o700, dir_fd=d)
                        child_s = os.open(entry.name, _DIR, dir_fd=s)
                        child_d = os.open(entry.name, _DIR, dir_fd=d)
                        if owner is not None:
                            os.fchown(child_d, owner, owner)
                        stack.append((child_s, child_d))
                    elif stat.S_ISREG(st.st_mode):
                        total += _copy_file(s, d, entry.name, st, owner)
            finally:
                os.close(s)
                os.close(d)
    finally:
        for s, d in stack:
            os.close(s)
            os.close(d)
    return total


def _copy_file(s: int, d: int, name: str, st: os.stat_result, owner: int | None) -> int:
    fd_in = os.open(name, _READ, dir_fd=s)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=d)
        fd_out = os.open(name, _CREATE, st.st_mode & 0o777, dir_fd=d)
        try:
            copied = _copy_data(fd_in, fd_out, st.st_size)
            if owner is not None:
                os.fchown(fd_out, owner, owner)
            os.utime(fd_out, ns=(st.st_atime_ns, st.st_mtime_ns))
            return copied
        finally:
            os.close(fd_out)
    finally:
        os.close(fd_in)


def _copy_data(fd_in: int, fd_out: int, size: int) -> int:
    """Copy the data of a file, leaving its holes holes: a sparse file of any apparent size
    costs the target what it cost the source (a capped tmpfs), not its size in zeros."""
    copied = offset = 0
    while offset < size:
        try:
            start = os.lseek(fd_in, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole is left
            break
        end = os.lseek(fd_in, start, os.SEEK_HOLE)
        os.lseek(fd_out, start, os.SEEK_SET)
        while start < end:
            # sendfile: copy_file_range refuses to cross filesystems on many kernels.
            n = os.sendfile(fd_out, fd_in, start, min(end - start, 1 << 24))
            if n == 0:
                break
            start += n
            copied += n
        offset = end
    os.ftruncate(fd_out, size)
    return copied


def tree_size(fd: int) -> int:
    """Bytes in the regular files under ``fd`` (symlinks not followed)."""
    total = 0
    stack = [os.dup(fd)]
    while stack:
        current = stack.pop()
        try:
            for entry in os.scandir(current):
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode):
                    total += st.st_blocks * 512
                elif stat.S_ISDIR(st.st_mode):
                    stack.append(os.open(entry.name, _DIR, dir_fd=current))
        finally:
            os.close(current)
    return total


def exchange(dir_fd: int, a: str, b: str) -> None:
    """Swap two names in one directory atomically (renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(dir_fd, a.encode(), dir_fd, b.encode(), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), b)
