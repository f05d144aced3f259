"""A repository's git config, writable inside as a copy; its everyday changes applied to the
host's at exit, the rest held back.

git writes its config as ``config.lock`` and renames it over ``config``, so a file bound
over ``.git/config`` cannot take a write (EBUSY) and the host's own file must not (host git
would run whatever the session put there while it runs). So the launcher copies each
protected config into a directory of its own, under the quarantine directory::

    .<launch id>.git/<n>/config     the copy, bound read-write inside at /run/agent-sandbox/git
    .<launch id>.git/<n>.link       a symlink to /run/agent-sandbox/git/<n>/config

and the launcher's mount namespace child mounts each symlink over the host's config path
(``_run.mountns``). git inside follows the symlink for the lock and the rename, in the
copy's own directory. The host's file is never written while the sandbox runs.

When the sandbox has ended (``settle``, from the quarantine, once), the copy is compared
with the config as it was at launch, key by key as host git lists them: the changes to the
keys of ``_policy.git_keys.EVERYDAY`` are applied to the host's config with ``git config
--file``, unless the host's changed the same key meanwhile; everything else is held back
and quarantined, for ``agent-sandbox quarantine restore`` to apply deliberately.

Host git runs here on data the session wrote, so only as a parser and a writer of one
file: ``git config --file - --list`` on bytes the launcher read itself, never a path the
session controls, includes off, no system or global config, from ``/``, with the host's
``git`` from an absolute ``PATH`` entry outside the project.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import NamedTuple

from agent_sandbox._files import read_regular
from agent_sandbox._plan.build import GIT_COPIES_INSIDE
from agent_sandbox._policy.git_keys import everyday
from agent_sandbox._policy.values import is_under
from agent_sandbox._run.mountns import Link

CONFIG_MAX = 1 << 20  # a git config is a few KB
Values = tuple[str | None, ...]  # a key's values in order; None: set without a value


class Copy(NamedTuple):
    host: str  # the host's config
    copy: str  # the writable copy
    original: bytes  # the host's config at launch


class Copies(NamedTuple):
    directory: str
    copies: tuple[Copy, ...]
    links: tuple[Link, ...]


def prepare(configs: Sequence[str], base: str, launch_id: str) -> Copies | str:
    """Copy each config (see the module); the copies, or why they cannot be made."""
    directory = os.path.join(base, f".{launch_id}.git")
    copies, links = [], []
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
        os.mkdir(directory, 0o700)
    except OSError as e:
        return f"{directory}: {e.strerror}"
    try:
        for n, host in enumerate(configs):
            found = read_regular(host, CONFIG_MAX)
            if found is None:
                raise OSError(0, f"not a regular file of at most {CONFIG_MAX} bytes", host)
            os.mkdir(os.path.join(directory, str(n)), 0o700)
            copy = os.path.join(directory, str(n), "config")
            fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(found[0])
            link = os.path.join(directory, f"{n}.link")
            os.symlink(f"{GIT_COPIES_INSIDE}/{n}/config", link)
            copies.append(Copy(host, copy, found[0]))
            links.append(Link(link, host))
    except OSError as e:
        remove(directory)
        return f"{e.filename}: {e.strerror}"
    return Copies(directory, tuple(copies), tuple(links))


def find_git(environ: Mapping[str, str], project: str) -> str | None:
    """The host's git: from an absolute PATH entry outside the project (a relative entry,
    or one in the project, could name a git the session wrote)."""
    for entry in environ.get("PATH", "").split(":"):
        if not entry.startswith("/") or is_under(os.path.realpath(entry), project):
            continue
        candidate = os.path.join(entry, "git")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": "/nonexistent",
        "LC_ALL": "C", "PATH": "/usr/bin:/bin"}


def _git(git: str, args: Sequence[str], data: bytes | None = None) -> bytes:
    """Host git's output; OSError when it fails (or takes over 30 s)."""
    import subprocess  # only at exit, when a copy changed

    try:
        done = subprocess.run([git, *args], input=data, capture_output=True, cwd="/",
                              env=_ENV, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        raise OSError(f"git {' '.join(args[:3])}: no answer in 30 s") from None
    if done.returncode not in (0, 5):  # 5: --unset-all of a key that is not set
        raise OSError(f"git {' '.join(args[:3])}: "
                      + done.stderr.decode(errors="replace").strip()[:300])
    return done.stdout


def parse(git: str, text: bytes) -> dict[str, Values]:
    """Every key of a config file's text and its values, as ``git config --list`` gives
    them (section and variable lower case, the subsection as written)."""
    found: dict[str, list[str | None]] = {}
    if not text.strip():
        return {}
    out = _git(git, ["config", "--file", "-", "--no-includes", "--list", "--null"], text)
    for entry in out.split(b"\0")[:-1]:
        key, newline, value = entry.decode(errors="surrogateescape").partition("\n")
        found.setdefault(key, []).append(value if newline else None)
    return {key: tuple(values) for key, values in found.items()}


def changes(before: Mapping[str, Values], after: Mapping[str, Values]) -> dict[str, Values]:
    """Each key whose values differ, with its values after (empty: removed), in the order
    of ``after`` (then the removed ones), which is the order git writes new keys in."""
    return {key: after.get(key, ()) for key in dict.fromkeys([*after, *before])
            if before.get(key, ()) != after.get(key, ())}


def apply(git: str, config: str, changed: Mapping[str, Values]) -> None:
    """Set each key of ``config`` (a file of the host's) to its values, in order."""
    for key, values in changed.items():
        _git(git, ["config", "--file", config, "--unset-all", "--", key])
        for value in values:
            _git(git, ["config", "--file", config, "--add", "--", key,
                       "true" if value is None else value])


class Settled(NamedTuple):
    applied: tuple[str, ...] = ()  # keys applied to the host's config
    held: tuple[str, ...] = ()  # changed keys held back: not everyday ones
    conflicts: tuple[str, ...] = ()  # everyday keys the host's config changed meanwhile
    problem: str = ""  # why nothing could be applied
    text: bytes = b""  # the copy as the session left it, if it changed


def settle(copy: Copy, git: str | None) -> Settled:
    """Apply the copy's everyday changes to the host's config; say what was not."""
    found = read_regular(copy.copy, CONFIG_MAX)
    text = b"" if found is None else found[0]
    if found is not None and text == copy.original:
        return Settled()
    if found is None:
        return Settled(problem="the copy was not left a regular file of at most "
                       f"{CONFIG_MAX} bytes")
    if git is None:
        return Settled(problem="no git on PATH to read it with", text=text)
    if _not_a_file(copy.host):
        # git config --file writes through a symlink: never where a session pointed one.
        return Settled(problem=f"{copy.host} is no longer a regular file", text=text)
    try:
        original = parse(git, copy.original)
        changed = changes(original, parse(git, text))
        host_now = parse(git, (read_regular(copy.host, CONFIG_MAX) or (b"",))[0])
    except OSError as e:
        return Settled(problem=f"git could not read it ({e})", text=text)
    applied: dict[str, Values] = {}
    held, conflicts = [], []
    for key, values in changed.items():
        if not everyday(key, values):
            held.append(key)
        elif host_now.get(key, ()) != original.get(key, ()):
            conflicts.append(key)
        else:
            applied[key] = values
    try:
        apply(git, copy.host, applied)
    except OSError as e:
        return Settled(held=tuple(held), conflicts=tuple(conflicts),
                       problem=f"applying it failed ({e})", text=text)
    return Settled(tuple(applied), tuple(held), tuple(conflicts), "", text)


def _not_a_file(path: str) -> bool:
    import stat

    try:
        return not stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return True


def settle_all(copies: Copies, directory: str, number: int, git: str | None,
               ) -> Iterator[tuple[str, str, str, tuple[str, ...]]]:
    """Settle each copy; yield (the host's config, what is kept of what was held back in
    ``directory``, numbered from ``number``: "" if nothing was, why, the keys applied).
    Kept: the session's copy and, beside it as ``.orig``, the config at launch. The
    copies are removed after."""
    try:
        for copy in copies.copies:
            done = settle(copy, git)
            kept = [*done.held, *(f"{k} (changed on the host meanwhile)"
                                  for k in done.conflicts)]
            if not kept and not done.problem:
                yield copy.host, "", "", done.applied
                continue
            stored = f"{number}-config"
            number += 1
            os.makedirs(directory, mode=0o700, exist_ok=True)
            for name, data in ((stored, done.text), (f"{stored}.orig", copy.original)):
                fd = os.open(os.path.join(directory, name), os.O_WRONLY | os.O_CREAT
                             | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            why = (f"git config not applied: {done.problem}" if done.problem else
                   "git config keys not applied (host git would run or trust them): "
                   + ", ".join(kept[:4]) + (", ..." if len(kept) > 4 else ""))
            yield copy.host, stored, why, done.applied
    finally:
        remove(copies.directory)


def restore_held(git: str | None, host: str, original: bytes, kept: bytes) -> list[str]:
    """Apply every change between ``original`` and ``kept`` (a session's copy) to the
    host's config: what ``agent-sandbox quarantine restore`` does for a held-back copy.
    Returns the keys applied."""
    from agent_sandbox._errors import UsageError

    if git is None:
        raise UsageError(f"{host}: no git on PATH to apply the held-back keys with")
    if not kept.strip():
        raise UsageError(f"{host}: the session left no readable copy of it: nothing to apply")
    try:
        changed = changes(parse(git, original), parse(git, kept))
        apply(git, host, changed)
    except OSError as e:
        raise UsageError(f"{host}: {e}") from None
    return list(changed)


def remove(directory: str) -> None:
    """Remove the copies' directory (never following a symlink in it)."""
    from agent_sandbox._run.workdir import UnsafeTree, remove_tree

    with contextlib.suppress(OSError, UnsafeTree):
        fd = os.open(os.path.dirname(directory), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            remove_tree(fd, os.path.basename(directory))
        finally:
            os.close(fd)
