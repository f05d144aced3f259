"""A root caller's command never runs as host uid 0, and the paths it writes stay writable.

It runs as ``_host.ROOT_COMMAND_UID`` (U below). bwrap is started by a forked child of the
launcher, which, still root:

1. makes a user namespace per owner of the paths bwrap binds (``owner -> U``), in a
   throwaway grandchild whose maps the child writes, and keeps only its fd;
2. enters a private mount namespace of its own (slave: nothing propagates to the host, and
   everything in it is gone once bwrap and the sandbox are, even after a SIGKILL);
3. clones each path bwrap will bind from the host (the project, ``--rw``/``--ro`` paths,
   the work dir, a preset's home, the git identity, ...) with ``open_tree(2)`` and idmaps
   the clone with ``mount_setattr(2)``: on it, the owner's files are U's, and what U
   creates is the owner's on disk;
4. covers ``/tmp`` with an empty tmpfs and attaches the clones there, as ``/tmp/N``: a place
   U can reach even when the path itself is under ``/root`` (0700);
5. drops to U (no groups, no capabilities) and execs bwrap, whose binds now name ``/tmp/N``
   (``stage_map``): bwrap runs unprivileged, exactly as for an ordinary user.

A filesystem or kernel without idmapped mounts refuses step 3: the child reports why on a
close-on-exec pipe and the launcher exits 125 with the fix. Nothing falls back to root.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import stat
import struct
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from agent_sandbox._errors import NoUserNamespace, SandboxUnavailable
from agent_sandbox._policy.identity import ROOT_COMMAND_UID

STAGE = "/tmp"  # covered by a tmpfs in the private mount namespace, holding /tmp/N

_SYS_OPEN_TREE, _SYS_MOVE_MOUNT, _SYS_MOUNT_SETATTR = 428, 429, 442  # same on all 64-bit
_OPEN_TREE_CLONE, _OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
_AT_FDCWD, _AT_EMPTY_PATH, _AT_RECURSIVE = -100, 0x1000, 0x8000
_MOUNT_ATTR_IDMAP = 0x100000
_MOVE_MOUNT_F_EMPTY_PATH = 4
_CLONE_NEWNS, _CLONE_NEWUSER = 0x20000, 0x10000000
_MS_NOSUID, _MS_NODEV, _MS_REC, _MS_SLAVE = 2, 4, 0x4000, 0x80000
_PR_SET_PDEATHSIG = 1


class Staged(NamedTuple):
    """One host path bwrap binds, and where the child attaches its idmapped clone."""

    path: str
    at: str


def stage_map(sources: Sequence[str]) -> tuple[tuple[Staged, ...], dict[str, str]]:
    """The paths to clone (none inside another) and each source's name on the stage. Pure."""
    roots: list[str] = []
    for path in sorted(set(sources), key=lambda p: (p.count("/"), p)):
        if not any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots):
            roots.append(path)
    staged = tuple(Staged(r, f"{STAGE}/{i}") for i, r in enumerate(roots))
    names = {}
    for source in sources:
        root = next(s for s in staged if source == s.path or source.startswith(s.path + "/"))
        names[source] = root.at + source[len(root.path):]
    return staged, names


def check_command_uid(subuid: str = "/etc/subuid", subgid: str = "/etc/subgid") -> None:
    """Refuse ROOT_COMMAND_UID if this host gave it to someone: a user or group (the command
    runs with it as its gid too), or a range of subordinate uids or gids."""
    import grp
    import pwd

    def refuse(held_by: str) -> None:
        raise SandboxUnavailable(
            f"id {ROOT_COMMAND_UID}, which a root caller's command runs as, {held_by}",
            fix="run agent-sandbox as an ordinary user")

    with contextlib.suppress(KeyError):
        refuse(f"belongs to user {pwd.getpwuid(ROOT_COMMAND_UID).pw_name!r} on this host")
    with contextlib.suppress(KeyError):
        refuse(f"belongs to group {grp.getgrgid(ROOT_COMMAND_UID).gr_name!r} on this host")
    for ranges in (subuid, subgid):
        with contextlib.suppress(OSError), open(ranges, encoding="utf-8") as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() \
                        and int(parts[1]) <= ROOT_COMMAND_UID < int(parts[1]) + int(parts[2]):
                    refuse(f"is in {parts[0]}'s subordinate ids ({ranges})")


class _Failed(Exception):
    """A step in the child failed: its message goes to the launcher."""


_NO_USERNS = "unshare(CLONE_NEWUSER): cannot make a user namespace"


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise _Failed(f"{what}: {os.strerror(err)}")
    return result


def _userns(libc: ctypes.CDLL, owner: tuple[int, int]) -> int:
    """A user namespace mapping ``owner`` to ROOT_COMMAND_UID, as an fd (made in a grandchild)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (seen through the maps the parent writes)
        os.close(ready_r)
        os.close(done_w)
        ok = libc.unshare(_CLONE_NEWUSER) == 0
        os.write(ready_w, b"." if ok else b"!")
        os.read(done_r, 1)
        os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b".":
            raise _Failed(_NO_USERNS)
        for name, inside in (("uid_map", owner[0]), ("gid_map", owner[1])):
            with open(f"/proc/{pid}/{name}", "w", encoding="ascii") as f:
                f.write(f"{inside} {ROOT_COMMAND_UID} 1\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(done_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def _idmapped_clone(libc: ctypes.CDLL, path: str, userns: int) -> int:
    fd = _check(libc.syscall(_SYS_OPEN_TREE, _AT_FDCWD, path.encode(),
                             _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_RECURSIVE),
                f"open_tree({path})")
    attr = struct.pack("QQQQ", _MOUNT_ATTR_IDMAP, 0, 0, userns)
    buf = ctypes.create_string_buffer(attr, len(attr))
    if libc.syscall(_SYS_MOUNT_SETATTR, fd, b"", _AT_EMPTY_PATH | _AT_RECURSIVE, buf,
                    len(attr)) < 0:
        err = ctypes.get_errno()
        why = (": its filesystem (or one mounted below it) cannot do idmapped mounts"
               if err in (errno.EINVAL, errno.EPERM) else "")
        raise _Failed(f"idmapped mount of {path} (mount_setattr): {os.strerror(err)}{why}")
    return fd


def _stage(libc: ctypes.CDLL, staged: Sequence[Staged]) -> None:
    """Steps 1-4 of the module docstring, in the calling (child) process."""
    owners: dict[tuple[int, int], int] = {}
    clones = []
    for item in staged:
        try:
            st = os.stat(item.path)
        except OSError as e:
            raise _Failed(f"{item.path}: {e.strerror}") from None
        owner = (st.st_uid, st.st_gid)
        if owner not in owners:
            owners[owner] = _userns(libc, owner)
        clones.append((item, stat.S_ISDIR(st.st_mode), owners[owner]))
    _check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_SLAVE, None), "mount --make-rslave /")
    fds = [(item, is_dir, _idmapped_clone(libc, item.path, userns))
           for item, is_dir, userns in clones]
    _check(libc.mount(b"tmpfs", STAGE.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                      b"mode=0755,size=64k"), f"tmpfs on {STAGE}")
    for item, is_dir, fd in fds:
        if is_dir:
            os.mkdir(item.at, 0o755)
        else:
            os.close(os.open(item.at, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        _check(libc.syscall(_SYS_MOVE_MOUNT, fd, b"", _AT_FDCWD, item.at.encode(),
                            _MOVE_MOUNT_F_EMPTY_PATH), f"move_mount({item.path})")
        os.close(fd)
    for fd in owners.values():
        os.close(fd)


def _drop(libc: ctypes.CDLL) -> None:
    os.setgroups([])
    os.setresgid(ROOT_COMMAND_UID, ROOT_COMMAND_UID, ROOT_COMMAND_UID)
    os.setresuid(ROOT_COMMAND_UID, ROOT_COMMAND_UID, ROOT_COMMAND_UID)
    if os.getresuid() != (ROOT_COMMAND_UID,) * 3 or os.getresgid() != (ROOT_COMMAND_UID,) * 3:
        raise _Failed("setresuid: the uid did not change")
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


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


def spawn_as_command_uid(spawn: Spawn, staged: Sequence[Staged]) -> int:
    """Start ``spawn.argv`` (bwrap) as ROOT_COMMAND_UID with ``staged`` attached; its pid.

    Raises SandboxUnavailable, with the reason, when any step fails (nothing is started).
    """
    error_r, error_w = os.pipe()  # both close-on-exec: EOF means bwrap was exec'd
    # A bwrap under the stage (an AGENT_SANDBOX_BWRAP in /tmp) is covered by then: it is
    # exec'd through an fd opened now, left open so that a script's interpreter can read it.
    program: int | str = spawn.argv[0]
    if spawn.argv[0].startswith(STAGE + "/"):
        program = os.open(spawn.argv[0], os.O_RDONLY)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (a forked child: seen through what bwrap does)
        try:
            os.close(error_r)
            libc = _libc()
            os.setsid()
            if spawn.tty is not None:  # opened before the uid drop: root's pty
                path, fds = spawn.tty
                tty_fd = os.open(path, os.O_RDWR)
                for fd in fds:
                    os.dup2(tty_fd, fd)
                if tty_fd not in fds:
                    os.close(tty_fd)
            _stage(libc, staged)
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
            _drop(libc)
            os.execve(program, spawn.argv, dict(spawn.env))
        except BaseException as e:
            message = str(e) if isinstance(e, _Failed | OSError) else repr(e)
            with contextlib.suppress(OSError):
                os.write(error_w, message.encode(errors="replace")[:4000])
        os._exit(125)
    os.close(error_w)
    if isinstance(program, int):
        os.close(program)
    why = _read_to_end(error_r)
    if why:
        os.waitpid(pid, 0)
        kind = NoUserNamespace if why == _NO_USERNS else SandboxUnavailable
        raise kind(f"a root caller's command runs as uid {ROOT_COMMAND_UID}, with the paths "
                   f"it writes idmapped to it, and that failed: {why}")
    return pid


def probe(path: str) -> str:
    """Whether an idmapped clone of ``path`` can be made here, by really making one (and
    dropping it) in a throwaway child: "" if so, else the reason. For ``--check``."""
    error_r, error_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (seen through its answer)
        message = ""
        try:
            os.close(error_r)
            libc = _libc()
            st = os.stat(path)
            userns = _userns(libc, (st.st_uid, st.st_gid))
            _check(libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
            os.close(_idmapped_clone(libc, path, userns))
        except (_Failed, OSError) as e:
            message = str(e)
        except BaseException as e:
            message = repr(e)
        with contextlib.suppress(OSError):
            os.write(error_w, message.encode(errors="replace")[:4000])
        os._exit(0)
    os.close(error_w)
    try:
        return _read_to_end(error_r)
    finally:
        os.waitpid(pid, 0)


def _read_to_end(fd: int) -> str:
    """What a child wrote to the pipe ``fd`` before it exec'd or exited; closes ``fd``."""
    try:
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode(errors="replace")
