"""Reading a launcher input from a place the command can write (the project's config file,
an agent home, a quarantined tree): never blocking, never through a symlink, never more
than a cap. A FIFO, a device, a directory, a symlink or an oversized file planted there is
an error naming the file and the fix (exit 2), not a hang or a traceback."""

from __future__ import annotations

import errno
import os
import stat

from agent_sandbox._errors import UsageError

# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device",
          stat.S_IFBLK: "a device", stat.S_IFDIR: "a directory"}


def read_input(path: str, limit: int, follow: bool = False,
               dir_fd: int | None = None) -> bytes | None:
    """The bytes of ``path`` (None if it does not exist): a regular file of at most
    ``limit`` bytes. ``follow``: the last component may be a symlink (a file of the user's
    own, such as their config); never for a place the command can write."""
    flags = READ_FLAGS & ~os.O_NOFOLLOW if follow else READ_FLAGS
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        fix = move_away(path)
        if e.errno == errno.ELOOP:
            raise UsageError(f"{path}: a symlink, which is not followed here", fix=fix) from None
        if e.errno == errno.ENXIO:  # a socket
            raise UsageError(f"{path}: not a regular file (a socket)", fix=fix) from None
        raise UsageError(f"{path}: cannot read it: {e.strerror}", fix=fix) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise UsageError(f"{path}: not a regular file ({kind})", fix=move_away(path))
        size = st.st_size
        data = os.read(fd, limit + 1) if size <= limit else b""
    finally:
        os.close(fd)
    if size > limit or len(data) > limit:
        raise UsageError(f"{path}: {size} bytes, more than the {limit} it may have",
                         fix=move_away(path))
    return data


def read_regular(path: str, limit: int,
                 dir_fd: int | None = None) -> tuple[bytes, os.stat_result] | None:
    """The bytes and status of a regular file of at most ``limit`` bytes, reached without
    blocking or following its last component; None for anything else (missing, a FIFO, a
    directory, a link, unreadable, too big): for files a session may have left, which are
    then treated as absent."""
    try:
        fd = os.open(path, READ_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        data = os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return (data, st) if len(data) <= limit else None


def move_away(path: str) -> str:
    """The fix for a bad input: a command moving it aside."""
    import shlex  # only for an error

    return f"move it away: mv {shlex.quote(path)} {shlex.quote(path + '.bad')}"
