"""Quarantine at exit: what the session made in the project's git directories that host git
would run is set aside, the repository left usable.

Read-only binds and placeholders cover what exists at launch and what a host tool runs on
its own (``_policy.protected``). What git itself lets a session make stays allowed inside,
so git keeps working (``git init``/``clone`` of a nested repository, ``git submodule add``,
``git worktree add``, ``git rebase -i``), and is checked when the sandbox has ended:

- a git directory that was not there at launch (a new nested repository, a new submodule's
  ``.git/modules/<name>``): its hooks and ``config.worktree`` are moved out, and its
  ``config`` is rewritten without the keys ``git init``/``git clone`` would not write
  (``core.fsmonitor``, aliases, ``core.hooksPath``, ...) but the ``core.worktree`` of a
  submodule's own work tree, as ``git submodule add`` writes it; objects and refs stay;
- a new linked worktree's admin directory whose ``commondir`` is not ``../..`` (a forged
  worktree sending host git to another repository's hooks): moved out whole;
- a rebase or sequence left in progress: its todo is rewritten without ``exec`` lines
  (host ``git rebase --continue`` would run them);
- covered names no host tool runs on its own, so no placeholder held them (``.husky``,
  ``.githooks``, ``.claude/commands``, ``*.code-workspace``), when the session made them:
  moved out; a new ``.gitmodules`` loses its ``update = !command`` lines;
- the changes to a repository's git config (a writable copy inside, ``_run.gitcopy``)
  that are not everyday keys: held back, the copy kept; ``restore`` applies them;
- a new linked worktree whose directory is gone (made outside the project, in the
  sandbox's temporary files): its admin directory moved out, so host git lists no stale
  ("prunable") worktree; its branch and commits are in the repository and stay.

What is set aside goes to ``$XDG_STATE_HOME/agent-sandbox/quarantine/<id>/`` with a
manifest; ``agent-sandbox quarantine list|show|restore|drop`` works on it, and ``restore``
puts each file back byte for byte. The launcher does it after the sandbox ends, or its
janitor when the launcher was killed: whoever takes the session's lock first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from agent_sandbox._files import read_regular
from agent_sandbox._plan.protect import (
    PLAIN_CONFIG,
    Protection,
    git_dirs,
    gitdir_of_file,
    work_trees,
)
from agent_sandbox._policy.protected import COVERED

if TYPE_CHECKING:
    from agent_sandbox._run.gitcopy import Copies

_TODOS = ("rebase-merge/git-rebase-todo", "rebase-merge/git-rebase-todo.backup",
          "sequencer/todo")
_EXEC = re.compile(r"^\s*(x|exec)\s", re.IGNORECASE)
_UPDATE_COMMAND = re.compile(r"^\s*update\s*=\s*!", re.IGNORECASE)
# Covered names without a placeholder (``_policy.protected``), and VS Code workspace files
# (their tasks run on folder open once you open the workspace).
WATCHED = tuple(c.path for c in COVERED if c.where == "worktree" and not c.placeholder
                and c.path not in (".gitmodules", ".agent-sandbox.toml"))
WORKSPACE = ".code-workspace"
MANIFEST_MAX = 1 << 20  # a manifest lists a few paths


class Item(NamedTuple):
    """One thing set aside: the path in the project, where it is kept, and how."""

    path: str
    stored: str  # relative to the session's quarantine directory
    # "moved" (gone from the project), "rewritten" (a safe version left) or "held" (a git
    # config's changes not applied; kept: the session's copy, and its original as .orig)
    action: str
    why: str


def quarantine_dir(environ: Mapping[str, str]) -> str:
    base = environ.get("XDG_STATE_HOME", "")
    if not base.startswith("/"):
        base = os.path.join(environ.get("HOME", os.path.expanduser("~")), ".local", "state")
    return os.path.join(base, "agent-sandbox", "quarantine")


class Snapshot(NamedTuple):
    """What was there at launch: git directories, covered paths that existed, and the git
    configs' copies."""

    git_dirs: frozenset[str]
    existing: frozenset[str]
    copies: Copies | None = None


def snapshot(project: str, protections: Sequence[Protection]) -> Snapshot:
    """From the launch's protections (every git directory has its ``hooks`` protected, and
    every covered path that exists is one), with linked worktrees' admin directories and
    the project's workspace files: no second walk of the project."""
    found = {os.path.dirname(p.path) for p in protections
             if os.path.basename(p.path) == "hooks" and "/.git" in p.path}
    for gitdir in list(found):
        with contextlib.suppress(OSError):
            found.update(e.path for e in os.scandir(os.path.join(gitdir, "worktrees"))
                         if e.is_dir(follow_symlinks=False))
    existing = {p.path for p in protections if p.mode in ("ro", "symlink", "copy")}
    existing.update(_workspaces(project))
    return Snapshot(frozenset(os.path.realpath(g) for g in found), frozenset(existing))


def _workspaces(worktree: str) -> list[str]:
    with contextlib.suppress(OSError):
        return [e.path for e in os.scandir(worktree) if e.name.endswith(WORKSPACE)]
    return []


def _findings(project: str, before: Snapshot) -> Iterator[tuple[str, str, bytes | None]]:
    """(path, why, safe content or None to move it out) for everything to set aside."""
    yield from _new_names(project, before)
    for gitdir in git_dirs(project):
        real = os.path.realpath(gitdir)
        new = real not in before.git_dirs
        parent = os.path.basename(os.path.dirname(gitdir))
        forged = _read(os.path.join(gitdir, "commondir")).strip() not in (b"../..", b"../../")
        if new and parent == "worktrees" and forged:
            yield gitdir, "a linked worktree pointing git at another repository", None
            continue
        if new and parent == "worktrees" and (gone := _gone_worktree(gitdir)):
            yield gitdir, gone, None
            continue
        for name in _TODOS:
            todo = os.path.join(gitdir, name)
            text = _read(todo)
            lines = text.decode(errors="replace").splitlines(keepends=True)
            if any(_EXEC.match(line) for line in lines):
                kept = "".join(line for line in lines if not _EXEC.match(line))
                yield todo, "exec lines host git rebase --continue would run", kept.encode()
        if not new:
            continue
        hooks = os.path.join(gitdir, "hooks")
        with contextlib.suppress(OSError):
            for entry in os.scandir(hooks):
                if not entry.name.endswith(".sample"):
                    yield entry.path, "a hook in a repository the session made", None
        if os.path.lexists(os.path.join(gitdir, "config.worktree")):
            yield os.path.join(gitdir, "config.worktree"), "per-worktree git config", None
        config = os.path.join(gitdir, "config")
        lines = _read(config).decode(errors="replace").splitlines(keepends=True)
        risky = [line for line in lines if line.strip()
                 and not line.lstrip().startswith(("#", ";")) and not PLAIN_CONFIG.match(line)
                 and not _own_worktree(line, gitdir, project)]
        if risky:
            plain = "".join(line for line in lines if line not in risky)
            yield config, "git config host git would run (" + "; ".join(
                r.strip() for r in risky[:3]) + ")", plain.encode()


_WORKTREE = re.compile(r"^\s*worktree\s*=\s*(.+?)\s*$", re.IGNORECASE)


def _own_worktree(line: str, gitdir: str, project: str) -> bool:
    """Whether ``line`` is the ``core.worktree`` git submodule add writes in a new
    submodule's config: its work tree in the project, whose .git file names this gitdir
    (any other work tree would have host git check files out elsewhere)."""
    m = _WORKTREE.match(line)
    if m is None:
        return False
    tree = os.path.normpath(os.path.join(gitdir, m.group(1).strip('"')))
    named = gitdir_of_file(os.path.join(tree, ".git"))
    return (tree.startswith(project.rstrip("/") + "/") and named is not None
            and os.path.realpath(named) == os.path.realpath(gitdir))


WORKTREE_GONE = "made outside the project, gone with the sandbox"


def _gone_worktree(gitdir: str) -> str:
    """Why a new worktree's admin directory is stale (its work tree is gone), or ""."""
    recorded = _read(os.path.join(gitdir, "gitdir")).decode(errors="replace").strip()
    if not recorded.startswith("/") or os.path.lexists(recorded):
        return ""
    head = _read(os.path.join(gitdir, "HEAD")).decode(errors="replace").strip()
    kept = (f"its branch {head[len('ref: refs/heads/'):]} and commits are kept"
            if head.startswith("ref: refs/heads/") else f"its HEAD was {head[:12]}")
    return f"worktree {os.path.dirname(recorded)}: {WORKTREE_GONE}; {kept}"


def _new_names(project: str, before: Snapshot) -> Iterator[tuple[str, str, bytes | None]]:
    """Covered names no host tool runs on its own (so no placeholder held them) that the
    session created: moved out; a new ``.gitmodules`` keeps all but ``update = !command``
    lines (host ``git submodule update`` runs those)."""
    for worktree in sorted(work_trees(project)):
        paths = [os.path.join(worktree, rel) for rel in WATCHED] + _workspaces(worktree)
        for path in paths:
            if os.path.lexists(path) and path not in before.existing:
                yield path, "created by the session; run by host tools when you use them", None
        gitmodules = os.path.join(worktree, ".gitmodules")
        if gitmodules not in before.existing:
            lines = _read(gitmodules).decode(errors="replace").splitlines(keepends=True)
            if any(_UPDATE_COMMAND.match(line) for line in lines):
                yield gitmodules, "a submodule update command host git would run", "".join(
                    line for line in lines if not _UPDATE_COMMAND.match(line)).encode()


def _read(path: str) -> bytes:
    found = read_regular(path, 1 << 20)
    return b"" if found is None else found[0]


def _store(path: str, target: str, move: bool) -> None:
    """Keep ``path`` at ``target``: moved there (rename, else copy and remove), or copied."""
    import shutil  # only when something is set aside: not on every launch

    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
    if move:
        try:
            os.rename(path, target)
            return
        except OSError:
            pass
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.copytree(path, target, symlinks=True)
        if move:
            from agent_sandbox._run.workdir import remove_tree

            fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                remove_tree(fd, os.path.basename(path))
            finally:
                os.close(fd)
    else:
        shutil.copy2(path, target, follow_symlinks=False)
        if move:
            os.unlink(path)


class Outcome(NamedTuple):
    """What the end of a session did: set aside (``items``), and the git config keys
    applied to the host, per config."""

    items: list[Item]
    applied: list[tuple[str, tuple[str, ...]]]


def run(project: str, before: Snapshot, session: str,
        environ: Mapping[str, str]) -> Outcome:
    """Settle the git config copies and set aside what the session made that host git would
    run (see the module); returns what was done. Under the session's lock, once: the
    launcher and its janitor may both call it (the second finds it done)."""
    base = quarantine_dir(environ)
    os.makedirs(base, mode=0o700, exist_ok=True)
    directory = os.path.join(base, session)
    lock = os.open(os.path.join(base, f".{session}.lock"),
                   os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = os.path.join(directory, "manifest.json")
        if os.path.exists(os.path.join(base, f".{session}.none")):
            return Outcome([], [])  # already done (by the janitor, or the launcher)
        if os.path.exists(manifest):
            return Outcome(load(environ, session)[1], [])
        items, applied = [], []
        for number, (path, why, safe) in enumerate(_findings(project, before)):
            stored = f"{number}-{os.path.basename(path)}"
            _store(path, os.path.join(directory, stored), move=safe is None)
            if safe is not None:
                with open(path, "wb") as f:
                    f.write(safe)
            items.append(Item(path, stored, "moved" if safe is None else "rewritten", why))
        if before.copies is not None:
            from agent_sandbox._run.gitcopy import find_git, settle_all

            git = find_git(environ, project)
            for path, stored, why, keys in settle_all(before.copies, directory, len(items),
                                                      git):
                applied += [(path, keys)] if keys else []
                items += [Item(path, stored, "held", why)] if stored else []
        if items:
            with open(manifest, "w", encoding="utf-8") as f:
                json.dump({"project": project, "time": time.time(),
                           "items": [i._asdict() for i in items]}, f, indent=1)
        else:
            open(os.path.join(base, f".{session}.none"), "w").close()
        return Outcome(items, applied)
    finally:
        os.close(lock)


def exit_lines(outcome: Outcome, session: str, quiet: bool) -> list[str]:
    """What the launcher says about a session's end: the git config keys applied (unless
    ``quiet``), and what was set aside, each kind on its line, with the command that
    shows it."""
    lines = [] if quiet else [
        f"git config: applied {', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''} to "
        f"{path}" for path, keys in outcome.applied]
    show = f"agent-sandbox quarantine show {session}"
    held = [i for i in outcome.items if i.action == "held"]
    gone = [i for i in outcome.items if WORKTREE_GONE in i.why and i.action == "moved"]
    other = [i for i in outcome.items if i not in held and i not in gone]
    lines += [f"{i.path}: {i.why}. Review: {show}; apply them: agent-sandbox quarantine "
              f"restore {session} {_quote(i.path)}" for i in held]
    lines += [f"{i.why}. Its entry is set aside ({show}), so host git lists no stale "
              "worktree. Make worktrees inside the project (git worktree add ./wt) or in a "
              "directory given with --rw" for i in gone]
    if other:
        lines.append(f"quarantined {len(other)} thing(s) the session made that host git "
                     "would run: " + "; ".join(f"{i.path} ({i.why})" for i in other[:3])
                     + ("; ..." if len(other) > 3 else "") + f". Review: {show}")
    return lines


def _quote(path: str) -> str:
    import shlex

    return shlex.quote(path)


def sessions(environ: Mapping[str, str]) -> list[str]:
    base = quarantine_dir(environ)
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.isfile(os.path.join(base, n, "manifest.json")))


def load(environ: Mapping[str, str], session: str) -> tuple[str, list[Item]]:
    """(project, items) of a quarantined session."""
    from agent_sandbox._errors import UsageError

    if "/" in session or session.startswith("."):
        raise UsageError(f"quarantine {session!r}: not a quarantine id "
                         "(agent-sandbox quarantine list shows them)")
    import shlex

    from agent_sandbox._files import read_input

    directory = os.path.join(quarantine_dir(environ), session)
    raw = read_input(os.path.join(directory, "manifest.json"), MANIFEST_MAX) \
        if os.path.isdir(directory) else None
    if raw is None:
        raise UsageError(f"quarantine {session}: nothing is quarantined under that id "
                         "(agent-sandbox quarantine list shows them)")
    try:
        data = json.loads(raw)
        project, items = data["project"], [Item(**i) for i in data["items"]]
    except (ValueError, TypeError, KeyError):
        project, items = None, []
    if not isinstance(project, str) or not all(isinstance(v, str) for i in items for v in i):
        raise UsageError(f"{directory}/manifest.json: not a quarantine manifest (it was not "
                         "written by agent-sandbox)",
                         fix=f"remove it: rm -r -- {shlex.quote(directory)}")
    return project, items


def restore(environ: Mapping[str, str], session: str, only: Sequence[str] = ()) -> list[str]:
    """Put quarantined paths back byte for byte (all, or those in ``only``); a moved one is
    restored only where nothing is now. Returns what was restored."""
    project, items = load(environ, session)
    directory = os.path.join(quarantine_dir(environ), session)
    done = []
    for item in items:
        if only and item.path not in only:
            continue
        kept = os.path.join(directory, item.stored)
        if item.action == "held":
            from agent_sandbox._run.gitcopy import find_git, restore_held

            original, text = _read(kept + ".orig"), _read(kept)
            keys = restore_held(find_git(environ, project), item.path, original, text)
            done.append(f"{item.path} ({', '.join(keys) or 'no change left'})")
            continue
        if item.action == "moved" and os.path.lexists(item.path):
            continue
        if item.action == "rewritten":
            os.unlink(item.path)
        _store(kept, item.path, move=False)
        done.append(item.path)
    return done


def drop(environ: Mapping[str, str], session: str) -> None:
    load(environ, session)  # refuses an unknown id
    base = quarantine_dir(environ)
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        from agent_sandbox._run.workdir import remove_tree

        remove_tree(fd, session)
    finally:
        os.close(fd)
