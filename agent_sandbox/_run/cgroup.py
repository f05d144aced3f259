"""Memory/pids/CPU limits without systemd: a cgroup made in a delegated cgroup v2 directory.

Where a cgroup v2 directory is delegated to the caller (it may make cgroups in it and move
its processes into them), the launcher makes ``agent-sandbox-<session>`` there, writes the
limits into it, moves the sandbox in while bwrap still waits on its block fd (before the
command exists, so everything the command starts is born inside), and removes it at the
end: ``rmdir`` only, relative to an open directory, never a recursive delete.

Which directory (the reading in ``probe``, the rules in ``decide``, both pure but for
``probe``):

- ``$AGENT_SANDBOX_CGROUP_PARENT`` if set, and then only it: a directory you named that does
  not work is reported, not silently swapped for another way;
- else your own cgroup, then its parent, skipping a systemd unit's cgroup that systemd did
  not delegate (systemd owns those; ``systemd-run`` is the way there).

cgroup v2's "no internal processes" rule decides most cases: a cgroup other than the root
that holds processes cannot enable memory for child cgroups. So a directory is usable if its
``cgroup.subtree_control`` already has memory, pids and cpu, or if it holds no processes and
you may enable them there. Your own cgroup holds at least the launcher, so it only qualifies
as the root cgroup; the usual setup is an empty delegated parent (docs/configuration.md).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple

from agent_sandbox._errors import SandboxUnavailable
from agent_sandbox._policy.limits import CgroupWay, Limits, cpu_percent
from agent_sandbox._say import say

CGROUP_MOUNT = "/sys/fs/cgroup"
PARENT_VARIABLE = "AGENT_SANDBOX_CGROUP_PARENT"
PREFIX = "agent-sandbox-"
# A directory must offer every controller a limit may need, so that whether it is usable
# does not depend on which limits one launch asks for: --check and every launch agree.
CONTROLLERS = frozenset({"cpu", "memory", "pids"})
NOT_UNIFIED = "cgroup v2 is not mounted at /sys/fs/cgroup (a v1 or hybrid host)"
FIX = (f"set {PARENT_VARIABLE} to a cgroup v2 directory delegated to you that holds no "
       "processes (docs/configuration.md shows how), or run where systemd --user manages a "
       "cgroup v2 tree")
UNIFIED_FIX = ("boot with systemd.unified_cgroup_hierarchy=1 (a kernel command line "
               "parameter)")
CPU_PERIOD = 100_000  # microseconds: systemd's default CPUQuotaPeriodSec=, so both ways agree
_SYSTEMD_UNITS = (".slice", ".scope", ".service")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_REMOVE_TRIES = 50  # x 10 ms: the kernel may still be finishing the last exits


class Mount(NamedTuple):
    fstype: str
    root: str  # the directory of the filesystem mounted there (a cgroup path for cgroup2)


class Setting(NamedTuple):
    """One value written into the sandbox's cgroup."""

    file: str
    value: str
    # memory.swap.max is absent without swap accounting; then it is skipped, as systemd does.
    optional: bool = False


class Probe(NamedTuple):
    """What decides whether a cgroup directory can hold the sandbox's cgroup (see ``probe``)."""

    path: str
    writable: bool  # may make a cgroup in it
    controllers: frozenset[str]  # its cgroup.controllers: what its parent gives it
    subtree_control: frozenset[str]  # what it gives its child cgroups now
    subtree_writable: bool
    has_processes: bool
    # Moving a process between cgroups needs write access to the cgroup.procs of their
    # common ancestor: here, of the launcher's cgroup and this directory.
    ancestor: str
    ancestor_writable: bool
    systemd_unit: bool = False  # a unit's cgroup that systemd did not delegate


class Parent(NamedTuple):
    """The directory to make the sandbox's cgroup in and the controllers to enable there for
    it, or why there is none."""

    path: str = ""
    enable: tuple[str, ...] = ()
    why_not: str = ""


class SandboxCgroup(NamedTuple):
    path: str
    fd: int  # its directory, open: every file is written relative to it


def parse_mountinfo(text: str) -> dict[str, Mount]:
    """Mount point -> the filesystem on top there (a later line was mounted later)."""
    mounts = {}
    for line in text.splitlines():
        fields, _, tail = line.partition(" - ")
        words, kind = fields.split(), tail.split()
        if len(words) >= 5 and kind:
            mounts[_unescape(words[4])] = Mount(kind[0], _unescape(words[3]))
    return mounts


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def hierarchy(mounts: Mapping[str, Mount]) -> str:
    top = mounts.get(CGROUP_MOUNT)
    if top is not None and top.fstype == "cgroup2":
        return "unified (v2)"
    return "hybrid (v1 + v2)" if any(m.fstype == "cgroup2" for m in mounts.values()) \
        else "v1 only"


def own_cgroup(text: str) -> str | None:
    """The cgroup v2 path in /proc/self/cgroup's ``0::/path`` line."""
    return next((line[3:] for line in text.splitlines() if line.startswith("0::")), None)


def cgroup_dir(path: str, mount_root: str, mount: str = CGROUP_MOUNT) -> str | None:
    """The directory of cgroup ``path`` under a cgroup2 ``mount`` of ``mount_root``; None if
    the mount does not show it (e.g. ``/../x``: outside this cgroup namespace)."""
    if not path.startswith("/") or ".." in path.split("/"):
        return None
    if mount_root != "/":
        if path != mount_root and not path.startswith(mount_root + "/"):
            return None
        path = path[len(mount_root):]
    return (mount + path).rstrip("/")


def needed(limits: Limits) -> frozenset[str]:
    """The controllers the asked limits use."""
    asked = {"memory": limits.memory, "pids": limits.pids, "cpu": limits.cpus}
    return frozenset(name for name, value in asked.items() if value is not None)


def settings(limits: Limits) -> tuple[Setting, ...]:
    """What to write, matching the systemd scope's MemoryMax, MemorySwapMax=0, TasksMax and
    CPUQuota (``_limits.systemd_scope_argv``)."""
    found = []
    if limits.memory is not None:
        found += [Setting("memory.max", str(limits.memory)),
                  Setting("memory.swap.max", "0", optional=True)]
    if limits.pids is not None:
        found.append(Setting("pids.max", str(limits.pids)))
    if limits.cpus is not None:
        quota = cpu_percent(limits.cpus) * CPU_PERIOD // 100
        found.append(Setting("cpu.max", f"{quota} {CPU_PERIOD}"))
    return tuple(found)


def decide(probe: Probe, wanted: Iterable[str]) -> Parent:
    """Whether the probed directory can hold the sandbox's cgroup with ``wanted``
    controllers, and which of them to enable in it first."""
    where = probe.path
    if probe.systemd_unit:
        return Parent(why_not=f"{where} is a systemd unit's cgroup, not delegated to you")
    if not probe.writable:
        return Parent(why_not=f"{where} is not writable by you (not delegated to you)")
    missing = sorted(set(wanted) - probe.controllers)
    if missing:
        offered = " ".join(sorted(probe.controllers)) or "none"
        return Parent(why_not=f"{where} is not given {', '.join(missing)} by its parent "
                      f"(its cgroup.controllers: {offered})")
    enable = tuple(sorted(set(wanted) - probe.subtree_control))
    if enable and probe.has_processes:
        return Parent(why_not=f"{where} holds processes, so cgroup v2 does not let it enable "
                      f"{', '.join(enable)} for child cgroups (the no-internal-processes "
                      "rule)")
    if enable and not probe.subtree_writable:
        return Parent(why_not=f"{where}/cgroup.subtree_control is not writable by you, and "
                      f"{', '.join(enable)} are not enabled in it")
    if not probe.ancestor_writable:
        return Parent(why_not=f"{probe.ancestor}/cgroup.procs is not writable by you: moving "
                      f"the sandbox from your cgroup to one under {where} needs it")
    return Parent(where, enable)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _delegated_by_systemd(path: str) -> bool:
    """systemd marks the cgroups it delegates (Delegate=yes) with this extended attribute."""
    for name in ("user.delegate", "trusted.delegate"):
        with contextlib.suppress(OSError):
            if os.getxattr(path, name) == b"1":
                return True
    return False


def probe(path: str, own_dir: str, named: bool) -> Probe | str:
    """Read what ``decide`` needs about the directory ``path``, or say why it is no cgroup.

    ``named``: the user chose it, so a systemd-looking name is taken as delegated.
    """
    files = {name: _read(posixpath.join(path, f"cgroup.{name}"))
             for name in ("controllers", "subtree_control", "procs")}
    if None in files.values():
        return f"{path} is not a cgroup v2 directory you can read"
    ancestor = posixpath.commonpath([own_dir, path])
    return Probe(
        path=path,
        writable=os.access(path, os.W_OK | os.X_OK),
        controllers=frozenset((files["controllers"] or "").split()),
        subtree_control=frozenset((files["subtree_control"] or "").split()),
        subtree_writable=os.access(posixpath.join(path, "cgroup.subtree_control"), os.W_OK),
        has_processes=bool((files["procs"] or "").strip()),
        ancestor=ancestor,
        ancestor_writable=os.access(posixpath.join(ancestor, "cgroup.procs"), os.W_OK),
        systemd_unit=not named and path.endswith(_SYSTEMD_UNITS)
        and not _delegated_by_systemd(path),
    )


def _named(value: str, root: str) -> str | None:
    """The directory ``$AGENT_SANDBOX_CGROUP_PARENT`` names, if it is a plain path in the
    cgroup2 mount: absolute, normalised, no symlink on the way."""
    path = root + value
    inside = value == CGROUP_MOUNT or value.startswith(CGROUP_MOUNT + "/")
    plain = posixpath.normpath(value) == value and os.path.realpath(path) == path
    return path if inside and plain else None


def find_parent(environ: Mapping[str, str], wanted: Iterable[str] = CONTROLLERS,
                root: str = "") -> Parent:
    """The delegated directory to make the sandbox's cgroup in (reads /proc and the cgroup
    tree, writes nothing). ``root`` lets tests point it at a fake tree."""
    wanted = frozenset(wanted)
    top = parse_mountinfo(_read(f"{root}/proc/self/mountinfo") or "").get(CGROUP_MOUNT)
    if top is None or top.fstype != "cgroup2":
        return Parent(why_not=NOT_UNIFIED)
    mount = root + CGROUP_MOUNT
    own = own_cgroup(_read(f"{root}/proc/self/cgroup") or "")
    own_dir = cgroup_dir(own, top.root, mount) if own else None
    if own_dir is None:
        return Parent(why_not=f"your cgroup ({own or 'none'}) is not visible in "
                      f"{CGROUP_MOUNT}")
    value = environ.get(PARENT_VARIABLE, "")
    if value:
        path = _named(value, root)
        if path is None:
            return Parent(why_not=f"{PARENT_VARIABLE}={value}: not a directory under "
                          f"{CGROUP_MOUNT} given as a plain absolute path (no symlinks, "
                          "no ..)")
        candidates = [(path, True)]
    else:
        candidates = [(own_dir, False)]
        if own_dir != mount:
            candidates.append((posixpath.dirname(own_dir), False))
    reasons = []
    for path, named in candidates:
        found = probe(path, own_dir, named)
        verdict = Parent(why_not=found) if isinstance(found, str) else decide(found, wanted)
        if not verdict.why_not:
            return verdict
        reasons.append(verdict.why_not)
    return Parent(why_not="; ".join(reasons))


def _write(dir_fd: int, name: str, value: str, where: str, optional: bool = False) -> None:
    try:
        fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        if optional:
            return
        raise SandboxUnavailable(f"cannot set up the sandbox's cgroup: {where}/{name} does "
                                 "not exist", fix=FIX) from None
    except OSError as e:
        raise SandboxUnavailable(f"cannot set up the sandbox's cgroup: {where}/{name}: "
                                 f"{e.strerror}", fix=FIX) from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise SandboxUnavailable(f"cannot write {value!r} to {where}/{name}: {e.strerror}",
                                 fix=FIX) from None
    finally:
        os.close(fd)


def _make_cgroup(parent_fd: int, name: str) -> None:
    """mkdir in cgroupfs: the kernel makes the interface files (a seam for the unit tests)."""
    os.mkdir(name, 0o755, dir_fd=parent_fd)


def _remove(parent_fd: int, name: str, where: str) -> None:
    """rmdir only, which the kernel refuses while processes are left: never a recursive
    delete. bwrap has exited, so it is empty or about to be."""
    problem = ""
    for _ in range(_REMOVE_TRIES):
        try:
            os.rmdir(name, dir_fd=parent_fd)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            problem = e.strerror or str(e)
            if e.errno != errno.EBUSY:
                break
            time.sleep(0.01)
    say(f"warning: cannot remove the cgroup {where}/{name}: {problem}; "
        "rmdir it once its processes are gone")


@contextlib.contextmanager
def sandbox_cgroup(limits: Limits, environ: Mapping[str, str], session: str,
                   root: str = "") -> Iterator[SandboxCgroup]:
    """Make the sandbox's cgroup with ``limits`` written in it; remove it on exit."""
    parent = find_parent(environ, needed(limits), root)
    if parent.why_not:
        raise SandboxUnavailable(f"no delegated cgroup for the limits: {parent.why_not}",
                                 fix=FIX)
    parent_fd = os.open(parent.path, _DIR_FLAGS)
    try:
        if parent.enable:
            # Left enabled afterwards: other sandboxes may be using them by then.
            _write(parent_fd, "cgroup.subtree_control",
                   " ".join(f"+{c}" for c in parent.enable), parent.path)
        name = PREFIX + session
        try:
            _make_cgroup(parent_fd, name)
        except OSError as e:
            raise SandboxUnavailable(f"cannot make the cgroup {parent.path}/{name}: "
                                     f"{e.strerror}", fix=FIX) from None
        try:
            path = posixpath.join(parent.path, name)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
            try:
                for s in settings(limits):
                    _write(fd, s.file, s.value, path, s.optional)
                yield SandboxCgroup(path, fd)
            finally:
                os.close(fd)
        finally:
            _remove(parent_fd, name, parent.path)
    finally:
        os.close(parent_fd)


def add_process(cgroup: SandboxCgroup, pid: int) -> None:
    """Move ``pid`` into the cgroup: the sandbox's first process, still blocked before it
    starts anything, so all it starts is born inside."""
    _write(cgroup.fd, "cgroup.procs", str(pid), cgroup.path)


def how_to_cap(why_not: str) -> str:
    """The fix for a host where ``cgroup_way`` found no way (its ``why_not``)."""
    return UNIFIED_FIX if why_not == NOT_UNIFIED else FIX


def cgroup_way(environ: Mapping[str, str]) -> CgroupWay:
    """Prefer a delegated cgroup (no D-Bus round trip, works without systemd) to a systemd
    scope. Reads /proc, the cgroup tree and the runtime dir; writes nothing."""
    found = find_parent(environ)
    if not found.why_not:
        return CgroupWay(parent=found.path)
    if found.why_not == NOT_UNIFIED or environ.get(PARENT_VARIABLE):
        # systemd needs cgroup v2 just as much; and a directory you named must be the one
        # used, not silently replaced by another way.
        return CgroupWay(why_not=found.why_not)
    systemd_run, why_not = _systemd_scope(environ)
    if why_not is None:
        return CgroupWay(systemd_run=systemd_run)
    return CgroupWay(why_not=f"no delegated cgroup ({found.why_not}) and no systemd scope "
                     f"({why_not})")


def _systemd_scope(environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(systemd-run's path, None) on a cgroup v2 host with a systemd user manager, else
    ("", why not)."""
    runtime = environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    if not os.path.exists(os.path.join(runtime, "systemd", "private")) and not \
            os.path.exists(os.path.join(runtime, "bus")):
        return "", "no systemd user manager (systemd-run --user) for this user"
    for directory in ("/usr/bin", "/bin", "/run/current-system/sw/bin"):
        path = os.path.join(directory, "systemd-run")
        if os.access(path, os.X_OK):
            return path, None
    return "", "systemd-run is not installed"
