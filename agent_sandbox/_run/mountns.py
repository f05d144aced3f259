"""bwrap started by a forked child of the launcher, in a private mount namespace the child
prepares first: a root caller's idmapped clones (``_run.idmap``), and the git config
copies' symlinks (``_run.gitcopy``) for every caller.

bwrap binds what it finds at a path, and cannot put a symlink over an existing file (its
binds follow symlinks). The child can: ``open_tree(2)`` of a symlink with
``AT_SYMLINK_NOFOLLOW`` and ``move_mount(2)`` onto the file. bwrap's recursive binds carry
such a mount into the sandbox, where it cannot be removed or renamed (EBUSY), and what
is written through it lands where the symlink points. Nothing of it reaches the host's
mount namespace: the child's is a slave copy, gone with bwrap and the sandbox.

An ordinary caller's child first makes a user namespace of its own (its uid mapped to
itself) to be allowed to mount there; bwrap's own user namespace nests in it.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # ctypes costs ~5 ms to import: only the child that mounts loads it
    import ctypes

_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_MOUNT_SETATTR = 428, 429, 442  # same on all 64-bit
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE, AT_SYMLINK_NOFOLLOW = -100, 0x1000, 0x8000, 0x100
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV = 0x1, 0x2, 0x4
MOUNT_ATTR_IDMAP = 0x100000
MOVE_MOUNT_F_EMPTY_PATH = 4
CLONE_NEWNS, CLONE_NEWUSER = 0x20000, 0x10000000
MS_NOSUID, MS_NODEV, MS_REC, MS_SLAVE = 2, 4, 0x4000, 0x80000
PR_SET_PDEATHSIG = 1
LINKS_FAILED = "links: "  # the start of a child's report when only the links failed


class Failed(Exception):
    """A step in the child failed: its message goes to the launcher."""


def libc() -> ctypes.CDLL:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> int:
    if result < 0:
        import ctypes

        err = ctypes.get_errno()
        raise Failed(f"{what}: {os.strerror(err)}")
    return result


def open_tree(lib: ctypes.CDLL, path: str, flags: int) -> int:
    return check(lib.syscall(_SYS_OPEN_TREE, AT_FDCWD, path.encode(), flags),
                 f"open_tree({path})")


def mount_setattr(lib: ctypes.CDLL, fd: int, attr_set: int, userns: int = 0,
                  recursive: bool = False) -> int:
    """``mount_setattr(2)`` on the detached mount ``fd``; the raw result (errno is left)."""
    import ctypes
    import struct

    attr = struct.pack("QQQQ", attr_set, 0, 0, userns)
    buf = ctypes.create_string_buffer(attr, len(attr))
    flags = AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0)
    return int(lib.syscall(_SYS_MOUNT_SETATTR, fd, b"", flags, buf, len(attr)))


def move_mount(lib: ctypes.CDLL, fd: int, target: str, what: str) -> None:
    check(lib.syscall(_SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, target.encode(),
                      MOVE_MOUNT_F_EMPTY_PATH), f"move_mount({what})")


class Link(NamedTuple):
    """A symlink (made by the launcher) to mount over a file bwrap will bind."""

    source: str  # the symlink, on the host
    target: str  # the file it covers, as the child sees it


def clone_links(lib: ctypes.CDLL, links: Sequence[Link]) -> list[tuple[Link, int]]:
    """Each link as a detached, read-only mount (bwrap then never remounts it: a remount
    through its path would follow the symlink). Before anything covers their sources."""
    clones = []
    for link in links:
        try:
            fd = open_tree(lib, link.source,
                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_SYMLINK_NOFOLLOW)
            check(mount_setattr(lib, fd, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID
                                | MOUNT_ATTR_NODEV), f"mount_setattr({link.source})")
        except Failed as e:
            raise Failed(f"{LINKS_FAILED}{e}") from None
        clones.append((link, fd))
    return clones


def attach_links(lib: ctypes.CDLL, clones: Sequence[tuple[Link, int]]) -> None:
    for link, fd in clones:
        try:
            move_mount(lib, fd, link.target, link.target)
        except Failed as e:
            raise Failed(f"{LINKS_FAILED}{e}") from None
        os.close(fd)


class Spawn(NamedTuple):
    """What posix_spawn would be given: the child replays it before exec."""

    argv: list[str]
    env: Mapping[str, str]
    moves: tuple[tuple[int, int], ...]  # (fd, number it gets)
    keep: tuple[int, ...]  # fds kept at their number
    close: tuple[int, ...]  # everything else open
    default_signals: tuple[int, ...]
    # The pty that becomes the new session's controlling terminal, and the standard fds
    # it is (``_run.terminal``), or None: a new session without one.
    tty: tuple[str, tuple[int, ...]] | None = None


def spawn_prepared(spawn: Spawn, prepare: Callable[[ctypes.CDLL], None],
                   last: Callable[[ctypes.CDLL], None] = lambda lib: None,
                   program: int | str = "") -> tuple[int, str]:
    """Fork a child that starts a new session (with ``spawn.tty`` as its terminal), runs
    ``prepare``, sets up fds and signals as posix_spawn would, runs ``last`` (dropping
    privileges) and execs ``spawn.argv`` (by ``program``, an fd or a path, if given).
    Returns (pid, "") once it exec'd, or (0, why) if a step failed (the child is reaped;
    nothing was started)."""
    error_r, error_w = os.pipe()  # both close-on-exec: EOF means bwrap was exec'd
    pid = os.fork()
    if pid == 0:  # pragma: no cover (a forked child: seen through what bwrap does)
        try:
            os.close(error_r)
            lib = libc()
            os.setsid()
            if spawn.tty is not None:  # opened by the caller's uid, without O_NOCTTY
                path, fds = spawn.tty
                tty_fd = os.open(path, os.O_RDWR)
                for fd in fds:
                    os.dup2(tty_fd, fd)
                if tty_fd not in fds:
                    os.close(tty_fd)
            prepare(lib)
            for fd, number in spawn.moves:
                os.dup2(fd, number)
            for fd in spawn.close:
                if fd == program:
                    continue  # opened after the list was made, on a number it names
                with contextlib.suppress(OSError):
                    os.close(fd)
            for fd in (*spawn.keep, *(n for _, n in spawn.moves)):
                os.set_inheritable(fd, True)
            if isinstance(program, int):
                os.set_inheritable(program, True)
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            for signo in spawn.default_signals:
                signal.signal(signo, signal.SIG_DFL)
            last(lib)
            os.execve(program or spawn.argv[0], spawn.argv, dict(spawn.env))
        except BaseException as e:
            message = str(e) if isinstance(e, Failed | OSError) else repr(e)
            with contextlib.suppress(OSError):
                os.write(error_w, message.encode(errors="replace")[:4000])
        os._exit(125)
    os.close(error_w)
    why = read_to_end(error_r)
    if why:
        os.waitpid(pid, 0)
        return 0, why
    return pid, ""


def own_namespace(links: Sequence[Link]) -> Callable[[ctypes.CDLL], None]:
    """An ordinary caller's preparation: a user namespace mapping its own uid and gid,
    a private mount namespace, the links mounted."""
    uid, gid, launcher = os.getuid(), os.getgid(), os.getpid()

    def prepare(lib: ctypes.CDLL) -> None:
        # As bwrap's --die-with-parent, from now: a launcher gone before the exec must
        # not leave a sandbox behind.
        lib.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != launcher:
            os._exit(125)
        try:
            check(lib.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare")
            for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1\n"),
                               ("gid_map", f"{gid} {gid} 1\n")):
                with open(f"/proc/self/{name}", "w", encoding="ascii") as f:
                    f.write(text)
            check(lib.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None),
                  "mount --make-rslave /")
        except (Failed, OSError) as e:
            raise Failed(f"{LINKS_FAILED}{e}") from None
        attach_links(lib, clone_links(lib, links))

    return prepare


def read_to_end(fd: int) -> str:
    """What a child wrote to the pipe ``fd`` before it exec'd or exited; closes ``fd``."""
    try:
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")
