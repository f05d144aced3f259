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
from collections.abc import Sequence
from typing import NamedTuple

from agent_sandbox._errors import LinksFailed, NoUserNamespace, SandboxUnavailable
from agent_sandbox._policy.identity import ROOT_COMMAND_UID
from agent_sandbox._run.mountns import (
    AT_RECURSIVE,
    CLONE_NEWNS,
    CLONE_NEWUSER,
    LINKS_FAILED,
    MOUNT_ATTR_IDMAP,
    MS_NODEV,
    MS_NOSUID,
    MS_REC,
    MS_SLAVE,
    OPEN_TREE_CLOEXEC,
    OPEN_TREE_CLONE,
    PR_SET_PDEATHSIG,
    Failed,
    Link,
    Spawn,
    attach_links,
    check,
    clone_links,
    libc,
    mount_setattr,
    move_mount,
    open_tree,
    read_to_end,
    spawn_prepared,
)

STAGE = "/tmp"  # covered by a tmpfs in the private mount namespace, holding /tmp/N

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


_NO_USERNS = "unshare(CLONE_NEWUSER): cannot make a user namespace"


def _userns(lib: ctypes.CDLL, owner: tuple[int, int]) -> int:
    """A user namespace mapping ``owner`` to ROOT_COMMAND_UID, as an fd (made in a grandchild)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (seen through the maps the parent writes)
        os.close(ready_r)
        os.close(done_w)
        ok = lib.unshare(CLONE_NEWUSER) == 0
        os.write(ready_w, b"." if ok else b"!")
        os.read(done_r, 1)
        os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b".":
            raise Failed(_NO_USERNS)
        for name, inside in (("uid_map", owner[0]), ("gid_map", owner[1])):
            with open(f"/proc/{pid}/{name}", "w", encoding="ascii") as f:
                f.write(f"{inside} {ROOT_COMMAND_UID} 1\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(done_w)
        os.close(ready_r)
        os.waitpid(pid, 0)


def _idmapped_clone(lib: ctypes.CDLL, path: str, userns: int) -> int:
    fd = open_tree(lib, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE)
    if mount_setattr(lib, fd, MOUNT_ATTR_IDMAP, userns, recursive=True) < 0:
        err = ctypes.get_errno()
        why = (": its filesystem (or one mounted below it) cannot do idmapped mounts"
               if err in (errno.EINVAL, errno.EPERM) else "")
        raise Failed(f"idmapped mount of {path} (mount_setattr): {os.strerror(err)}{why}")
    return fd


def staged_path(path: str, staged: Sequence[Staged]) -> str | None:
    """Where a host path under one of the staged paths is on the stage."""
    for item in staged:
        if path.startswith(item.path.rstrip("/") + "/"):
            return item.at + path[len(item.path):]
    return None


def _stage(lib: ctypes.CDLL, staged: Sequence[Staged], links: Sequence[Link]) -> None:
    """Steps 1-4 of the module docstring, in the calling (child) process, then the git
    config copies' links over the staged files (``_run.mountns``)."""
    owners: dict[tuple[int, int], int] = {}
    clones = []
    for item in staged:
        try:
            st = os.stat(item.path)
        except OSError as e:
            raise Failed(f"{item.path}: {e.strerror}") from None
        owner = (st.st_uid, st.st_gid)
        if owner not in owners:
            owners[owner] = _userns(lib, owner)
        clones.append((item, stat.S_ISDIR(st.st_mode), owners[owner]))
    check(lib.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    check(lib.mount(b"none", b"/", None, MS_REC | MS_SLAVE, None), "mount --make-rslave /")
    fds = [(item, is_dir, _idmapped_clone(lib, item.path, userns))
           for item, is_dir, userns in clones]
    # The links' sources may be under the stage, which the tmpfs is about to cover.
    link_clones = clone_links(lib, links)
    check(lib.mount(b"tmpfs", STAGE.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                    b"mode=0755,size=64k"), f"tmpfs on {STAGE}")
    for item, is_dir, fd in fds:
        if is_dir:
            os.mkdir(item.at, 0o755)
        else:
            os.close(os.open(item.at, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        move_mount(lib, fd, item.at, item.path)
        os.close(fd)
    for fd in owners.values():
        os.close(fd)
    attach_links(lib, link_clones)


def _drop(lib: ctypes.CDLL) -> None:
    os.setgroups([])
    os.setresgid(ROOT_COMMAND_UID, ROOT_COMMAND_UID, ROOT_COMMAND_UID)
    os.setresuid(ROOT_COMMAND_UID, ROOT_COMMAND_UID, ROOT_COMMAND_UID)
    if os.getresuid() != (ROOT_COMMAND_UID,) * 3 or os.getresgid() != (ROOT_COMMAND_UID,) * 3:
        raise Failed("setresuid: the uid did not change")
    lib.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def spawn_as_command_uid(spawn: Spawn, staged: Sequence[Staged],
                         links: Sequence[Link] = ()) -> int:
    """Start ``spawn.argv`` (bwrap) as ROOT_COMMAND_UID with ``staged`` attached (and
    ``links``, whose targets are staged paths); its pid.

    Raises SandboxUnavailable, with the reason, when any step fails (nothing is started),
    LinksFailed when only the links did.
    """
    # A bwrap under the stage (an AGENT_SANDBOX_BWRAP in /tmp) is covered by then: it is
    # exec'd through an fd opened now, left open so that a script's interpreter can read it.
    program: int | str = spawn.argv[0]
    if spawn.argv[0].startswith(STAGE + "/"):
        program = os.open(spawn.argv[0], os.O_RDONLY)
    try:
        pid, why = spawn_prepared(spawn, lambda lib: _stage(lib, staged, links), _drop,
                                  program)
    finally:
        if isinstance(program, int):
            os.close(program)
    if why.startswith(LINKS_FAILED):
        raise LinksFailed(why[len(LINKS_FAILED):])
    if why:
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
            lib = libc()
            st = os.stat(path)
            userns = _userns(lib, (st.st_uid, st.st_gid))
            check(lib.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
            os.close(_idmapped_clone(lib, path, userns))
        except (Failed, OSError) as e:
            message = str(e)
        except BaseException as e:
            message = repr(e)
        with contextlib.suppress(OSError):
            os.write(error_w, message.encode(errors="replace")[:4000])
        os._exit(0)
    os.close(error_w)
    try:
        return read_to_end(error_r)
    finally:
        os.waitpid(pid, 0)
