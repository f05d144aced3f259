"""An agent preset's home: one per (agent, project), and the login an agent's projects share.

On disk, under ``$XDG_DATA_HOME/agent-sandbox/`` (default ``~/.local/share``)::

    agents/<agent>/<key>/          the agent's home in one project, kept between sessions
    agents/<agent>/<key>.json      the launcher's record of it (the project's path)
    logins/<agent>/<seed files>    the login all of the agent's projects get and refresh
    set-aside/<agent>-<time>/      a home from before homes were per project

``<key>`` names the project's real path: its base name and a hash of the path. A project
that moves gets a new home (with the shared login); the old one stays, listed by
``agent-sandbox state`` as gone, until ``agent-sandbox state rm``.

Inside, ``$HOME`` is a tmpfs of ``agent_home_size`` (bwrap ``--size``), so writes past the
cap fail with ENOSPC there and never reach the host disk. While bwrap waits on its block
pipe, the launcher fills it from the saved home through ``/proc/<pid>/root`` and keeps a
directory fd on it; after the sandbox ends it writes it back (a new tree, swapped in with
``RENAME_EXCHANGE``). A launcher killed with SIGKILL loses that session's changes to the
home, never the project.

The login: only the preset's ``seed`` files (and of ``seed_json`` files, only the listed
keys) cross between ``logins/<agent>`` and a home, copied by the launcher as regular files of
at most ``LOGIN_MAX`` bytes, JSON ones only when they parse, written by rename under a lock.
So a sandbox can replace its agent's login and nothing else, and two sandboxes refreshing at
once leave one whole login (the later one). The host's login is copied in when the shared
one is missing, or has expired and the host's is newer.

Every walk uses directory fds and ``O_NOFOLLOW``: a symlink in a home is copied as a
symlink and never followed; nothing outside the data directory is created, written or
removed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping

from agent_sandbox._errors import SandboxUnavailable, UsageError
from agent_sandbox._files import move_away, read_regular
from agent_sandbox._policy.login import expired, login_part
from agent_sandbox._policy.presets import Preset, data_dir, login_files, project_key
from agent_sandbox._run.dirfd import (
    LOGIN_MAX,
    UnsafePath,
    copy_tree,
    exchange,
    mtime,
    open_dirs,
    read_file,
    tree_size,
    write_file,
)
from agent_sandbox._run.workdir import UnsafeTree, remove_tree

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _read_host(home: str, rel: str) -> tuple[bytes | None, float]:
    """A login file of the user's real home and its mtime: the home is theirs (its
    directories may be symlinks of their own); the file itself must not be one."""
    found = read_regular(os.path.join(home, rel), LOGIN_MAX)
    if found is None or not found[0]:
        return None, 0
    return found[0], found[1].st_mtime



@contextlib.contextmanager
def _locked(fd: int) -> Iterator[None]:
    lock = os.open(".lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                   dir_fd=fd)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)


# --- a session's home ----------------------------------------------------------------------


class AgentHome:
    """One session's agent home: ``prepare`` before bwrap starts, ``fill`` while it waits
    on the block pipe, ``save`` after the sandbox has ended."""

    def __init__(self, preset: Preset, project: str, cap: int, real_home: str,
                 environ: Mapping[str, str], owner: int | None = None) -> None:
        self.preset = preset
        # A root caller's command uid: what it reads on disk is made its own.
        self.owner = owner
        self.project = project
        self.cap = cap
        self.real_home = real_home
        self.data = data_dir(environ)
        self.key = project_key(project)
        self._home_fd = -1
        self._copied_in: dict[str, bytes] = {}

    # The places, as directory fds opened without following symlinks.
    def _agents(self) -> int:
        return open_dirs(self.data, f"agents/{self.preset.name}", create=True)

    def _logins(self) -> int:
        fd = open_dirs(self.data, f"logins/{self.preset.name}", create=True)
        if self.owner is not None and os.fstat(fd).st_uid != self.owner:
            os.fchown(fd, self.owner, self.owner)  # looked into by the filling child
        return fd

    def prepare(self) -> list[str]:
        """Migrate a home from before homes were per project, bring the host's login in
        when the shared one is missing or expired, make this project's home and its
        record; refuse a saved home larger than the cap. Returns notes for the start line."""
        notes = []
        os.makedirs(self.data, mode=0o700, exist_ok=True)
        moved = self._migrate()
        if moved:
            notes.append(moved)
        seeded = self._seed_from_host()
        if seeded:
            notes.append(seeded)
        agents = self._agents()
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(self.key, 0o700, dir_fd=agents)
            home = os.open(self.key, _DIR, dir_fd=agents)
            try:
                size = tree_size(home)
            finally:
                os.close(home)
            if self.owner is not None:
                os.chown(self.key, self.owner, self.owner, dir_fd=agents, follow_symlinks=False)
            record = json.dumps({"project": self.project, "used": time.time()}).encode()
            try:
                write_file(agents, f"{self.key}.json", record)
            except OSError as e:  # a directory in its place
                path = os.path.join(self.data, "agents", self.preset.name, f"{self.key}.json")
                raise UsageError(f"{path}: cannot write this home's record there: "
                                 f"{e.strerror}", fix=move_away(path)) from None
        finally:
            os.close(agents)
        if size > self.cap:
            raise SandboxUnavailable(
                f"the {self.preset.name} home of this project holds {size >> 20} MiB, more "
                f"than agent_home_size ({self.cap >> 20} MiB)",
                fix=f"raise it (--agent-home-size {(size >> 20) + 64}M), or start afresh: "
                    f"agent-sandbox state rm {self.preset.name}/{self.key}")
        return notes

    def _migrate(self) -> str:
        """A home shared by all projects (``homes/<agent>``): its login moves to the shared
        place (unless one is there), the rest is set aside where the user can find it."""
        try:
            homes = open_dirs(self.data, "homes")
        except (FileNotFoundError, UnsafePath):
            return ""
        try:
            try:
                st = os.stat(self.preset.name, dir_fd=homes, follow_symlinks=False)
            except FileNotFoundError:
                return ""
            if stat.S_ISDIR(st.st_mode):
                old = os.open(self.preset.name, _DIR, dir_fd=homes)
                try:
                    self._take_login(old)
                finally:
                    os.close(old)
            aside = open_dirs(self.data, "set-aside", create=True)
            name = f"{self.preset.name}-{time.strftime('%Y%m%d-%H%M%S')}"
            try:
                os.rename(self.preset.name, name, src_dir_fd=homes, dst_dir_fd=aside)
            finally:
                os.close(aside)
        finally:
            os.close(homes)
        where = os.path.join(self.data, "set-aside", name)
        return (f"the {self.preset.name} home all projects shared is set aside in {where}: "
                "its login was kept; each project now has a home of its own")

    def _take_login(self, source: int) -> None:
        logins = self._logins()
        try:
            with _locked(logins):
                for rel in login_files(self.preset):
                    if read_file(logins, rel) is None:
                        data = login_part(self.preset, rel, read_file(source, rel))
                        if data is not None:
                            write_file(logins, rel, data, self.owner)
        finally:
            os.close(logins)

    def _seed_from_host(self) -> str:
        logins = self._logins()
        copied = []
        try:
            with _locked(logins):
                for rel in login_files(self.preset):
                    ours = read_file(logins, rel)
                    data, changed = _read_host(self.real_home, rel)
                    theirs = login_part(self.preset, rel, data)
                    if theirs is None or theirs == ours:
                        continue
                    if ours is None or (changed > mtime(logins, rel) and expired(ours)):
                        write_file(logins, rel, theirs, self.owner)
                        copied.append((rel, "missing" if ours is None else "expired"))
        finally:
            os.close(logins)
        if not copied:
            return ""
        return "login: copied from your " + ", ".join(
            f"~/{rel} (the sandbox's was {why})" for rel, why in copied)

    def fill(self, init_pid: int, inside_home: str) -> None:
        """Fill the sandbox's (still empty) tmpfs home: the saved home, then the shared
        login over it. Keeps a directory fd on it for ``save``. For a root caller the
        writing is done by a child running as the command's uid: the tmpfs belongs to the
        sandbox's user namespace, where host root has no uid to create files as."""
        self._home_fd = self._sandbox_home(init_pid, inside_home)
        agents = self._agents()
        try:
            saved = os.open(self.key, _DIR, dir_fd=agents)
        finally:
            os.close(agents)
        logins = self._logins()
        try:
            if self.owner is None:
                self._fill_from(saved, logins)
            else:
                _as_uid(self.owner, lambda: self._fill_from(saved, logins))
        finally:
            os.close(saved)
            os.close(logins)
        for rel in login_files(self.preset):
            part = login_part(self.preset, rel, read_file(self._home_fd, rel))
            if part is not None:
                self._copied_in[rel] = part

    def _sandbox_home(self, init_pid: int, inside_home: str) -> int:
        """The sandbox's home tmpfs, once bwrap has set it up. bwrap reports its child's
        pid before that child has built the new root, so the home is waited for: the
        directory at the path inside whose filesystem has exactly the cap's size."""
        path = f"/proc/{init_pid}/root{inside_home}"
        pages = -(-self.cap // _PAGE) * _PAGE
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                fd = os.open(path, _DIR)
                st = os.fstatvfs(fd)
                if st.f_blocks * st.f_frsize == pages:
                    return fd
                os.close(fd)
            if time.monotonic() > deadline or not os.path.exists(f"/proc/{init_pid}"):
                raise SandboxUnavailable(f"the sandbox's home {inside_home} never appeared")
            time.sleep(0.002)

    def _fill_from(self, saved: int, logins: int) -> None:
        copy_tree(saved, self._home_fd)
        for rel in login_files(self.preset):
            shared = read_file(logins, rel)
            if shared is None:
                continue
            _clear_links(self._home_fd, rel)
            if rel in dict(self.preset.seed_json):
                # The home's own file (its projects, history), with the login updated.
                try:
                    current = json.loads(read_file(self._home_fd, rel) or b"{}")
                except ValueError:
                    current = {}
                merged = current if isinstance(current, dict) else {}
                merged.update(json.loads(shared))
                shared = json.dumps(merged).encode()
            write_file(self._home_fd, rel, shared)

    def close(self) -> None:
        if self._home_fd != -1:
            os.close(self._home_fd)
            self._home_fd = -1

    def save(self) -> list[str]:
        """After the sandbox: the home written back (at most the cap: it was a capped
        tmpfs), and a login the session refreshed given to the shared place. Returns
        notes."""
        if self._home_fd == -1:
            return []
        notes = []
        try:
            logins = self._logins()
            try:
                with _locked(logins):
                    for rel in login_files(self.preset):
                        now = login_part(self.preset, rel, read_file(self._home_fd, rel))
                        if now is not None and now != self._copied_in.get(rel):
                            write_file(logins, rel, now, self.owner)
                            notes.append(f"login refreshed in this session: ~/{rel}")
            finally:
                os.close(logins)
            self._write_back()
        finally:
            self.close()
        return notes

    def _write_back(self) -> None:
        agents = self._agents()
        new = f".{self.key}.{os.getpid()}.new"
        try:
            with contextlib.suppress(FileNotFoundError):
                remove_tree(agents, new)
            os.mkdir(new, 0o700, dir_fd=agents)
            target = os.open(new, _DIR, dir_fd=agents)
            try:
                if self.owner is not None:
                    os.fchown(target, self.owner, self.owner)
                copy_tree(self._home_fd, target, self.owner)
            finally:
                os.close(target)
            try:
                exchange(agents, new, self.key)
                remove_tree(agents, new)
            except FileNotFoundError:  # removed meanwhile (agent-sandbox state rm)
                os.rename(new, self.key, src_dir_fd=agents, dst_dir_fd=agents)
        except UnsafeTree as e:
            raise UnsafePath(f"saving the {self.preset.name} home: {e}") from None
        finally:
            os.close(agents)


def _clear_links(home: int, rel: str) -> None:
    """Unlink symlinks the session left on the way to a login file in the fresh tmpfs
    home (a planted ``~/.claude -> /elsewhere``): the login goes into a real directory
    there, and the host path the link named is never touched."""
    fd = os.dup(home)
    try:
        for part in [p for p in rel.split("/") if p][:-1]:
            try:
                st = os.stat(part, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
                os.unlink(part, dir_fd=fd)
                return
            child = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)


def _as_uid(uid: int, work: Callable[[], None]) -> None:
    """Run ``work`` in a forked child that has become ``uid`` (and gid), with the fds this
    process has open; raise if it failed."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            work()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SandboxUnavailable(f"could not fill the agent's home as uid {uid}")
