"""Files inside the writable project that the host executes later: found here, made
read-only by the plan.

An agent that can write ``.git/hooks/pre-commit``, ``.envrc`` or ``.vscode/tasks.json`` runs
code on the host the next time you commit, ``cd`` or open the editor, outside any sandbox. So
they are read-only inside, in the project and in every repository nested in it:

- existing ones are bound read-only over themselves (a mount point cannot be renamed,
  removed or swapped for a symlink: EBUSY); an existing git config ("copy") instead gets
  a symlink mounted over it, to a writable copy (``_run.gitcopy``);
- the missing ones a host tool would run or trust on its own (PLACEHOLDER_NAMES) get
  a read-only placeholder (an empty directory, an empty file, or ``{}`` for JSON settings,
  so tools inside read "nothing configured"), so they cannot be created either; git
  inside ignores them, and the placeholders (and the parents bwrap made for them) are
  removed when the sandbox ends, also when the launcher was killed (see ``_janitor``);
- each ``.git`` directory is bound over itself, so it cannot be renamed away and replaced;
  a ``.git`` file (worktree, submodule) is read-only and its real git directory is bound
  read-write with its own hooks and config read-only.

This module only reads the filesystem (lstat, readlink, small files); it never follows a
symlink out of the project for a protected path.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from agent_sandbox._plan.envrc import envrc_targets
from agent_sandbox._policy.protected import COVERED, PROTECTED

# Relative to a git directory (the common one, for worktrees).
GIT_PROTECTED = tuple(c.path for c in COVERED if c.where == "git")
# Missing names that get a placeholder, so they cannot be created: the ones a host tool runs
# or trusts on its own (see COVERED). Each placeholder is one more mount, ~0.5-0.8 ms of
# every launch (measured); the other names are protected when they exist.
PLACEHOLDER_NAMES = frozenset(c.path for c in COVERED if c.placeholder)
_KINDS = {c.path: c.kind for c in COVERED}
# Not searched for nested repositories: caches and package trees (never a repository one
# edits, and walking them would cost every launch).
SKIP_DIRS = frozenset({"node_modules", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache",
                       ".pytest_cache", ".ruff_cache", ".cache", ".direnv"})


class Protection(NamedTuple):
    path: str  # absolute
    # "ro": read-only bind over it; "rw": bind over itself (a pin); "pin": a directory on
    # the way to a protected path, bound over itself (the launcher makes it if missing);
    # "placeholder":
    # an empty read-only directory or file where nothing exists yet; "symlink": a protected
    # name that is a symlink, which cannot be pinned (the launcher warns); "copy": a git
    # config, writable inside as a copy under a symlink mounted over it, else read-only
    mode: str
    why: str
    kind: str = "dir"  # a placeholder's kind: "dir", "file", "json", "mcp" or "commondir"
    rel: str = ""  # relative to its work tree, for a name found there (git's ignore pattern)


def _kind(rel: str) -> str:
    return _KINDS.get(rel, "dir")


def _lexists(path: str) -> bool:
    return os.path.lexists(path)


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def core_value(git_config: str, key: str) -> str | None:
    """The last ``core.<key>`` a git config file sets (quotes removed), or None."""
    pattern = re.compile(rf"^\s*{key}\s*=\s*(.+?)\s*$", re.IGNORECASE)
    found = None
    try:
        with open(git_config, encoding="utf-8", errors="replace") as f:
            section = ""
            for line in f:
                stripped = line.strip()
                if stripped.startswith("["):
                    inner = stripped.strip("[]")
                    section = inner.split()[0].lower() if inner else ""
                elif section == "core" and (m := pattern.match(stripped)):
                    found = m.group(1).strip('"')
    except OSError:
        return None
    return found


def _hooks_path(git_config: str, worktree: str, default: str | None) -> str | None:
    """core.hooksPath from a repository's config, else the user's global one (``default``),
    made absolute: a relative one is taken from the work tree, so a global
    ``hooksPath = .githooks`` names a directory in every project."""
    value = core_value(git_config, "hookspath") or default
    if not value or value.startswith("~"):
        return None  # in $HOME: not visible inside anyway
    return os.path.normpath(os.path.join(worktree, value))


def gitdir_of_file(dotgit: str) -> str | None:
    try:
        with open(dotgit, encoding="utf-8", errors="replace") as f:
            first = f.readline().strip()
    except OSError:
        return None
    if not first.startswith("gitdir:"):
        return None
    target = first[len("gitdir:"):].strip()
    return os.path.normpath(os.path.join(os.path.dirname(dotgit), target))


def _common_dir(gitdir: str) -> str:
    try:
        with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as f:
            return os.path.normpath(os.path.join(gitdir, f.read().strip()))
    except OSError:
        return gitdir


def _git_dir_protections(gitdir: str, worktree: str,
                         global_hooks: str | None) -> Iterator[Protection]:
    common = _common_dir(gitdir)
    for name in GIT_PROTECTED:
        path = os.path.join(common, name)
        mode = "ro" if _lexists(path) else "placeholder"
        if name == "config" and _is_regular(path):
            mode = "copy"  # writable inside as a copy (_run.gitcopy)
        yield Protection(path, mode, f"git {name}: run or read by git on the host",
                         _kind(name))
    # git reads $GIT_DIR/commondir in every repository: written, it would send host git to
    # a config (and hooks) the agent made. Missing, it is held by a file saying "." (the
    # git dir itself), which is what its absence means; an empty one would break git.
    commondir = os.path.join(gitdir, "commondir")
    yield Protection(commondir, "ro" if _lexists(commondir) else "placeholder",
                     "git commondir: where host git finds config and hooks", "commondir")
    worktree_config = os.path.join(gitdir, "config.worktree")
    if _lexists(worktree_config):
        yield Protection(worktree_config, "ro", "per-worktree git config")
    elif _mentions(os.path.join(common, "config"), "worktreeconfig"):
        yield Protection(worktree_config, "placeholder", "per-worktree git config", "file")
    hooks = _hooks_path(os.path.join(common, "config"), worktree, global_hooks)
    if hooks:
        yield Protection(hooks, "ro" if _lexists(hooks) else "placeholder",
                         "core.hooksPath: hooks git runs on the host")
    modules = os.path.join(common, "modules")
    for sub_gitdir in _module_gitdirs(modules):
        yield from _git_dir_protections(sub_gitdir, worktree, global_hooks)


def _mentions(path: str, word: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return word in f.read().lower()
    except OSError:
        return False


def _module_gitdirs(modules: str) -> Iterator[str]:
    """Submodules' git directories under .git/modules (nested at any depth)."""
    try:
        entries = list(os.scandir(modules))
    except OSError:
        return
    for entry in entries:
        if not entry.is_dir(follow_symlinks=False):
            continue
        if os.path.isfile(os.path.join(entry.path, "HEAD")):
            yield entry.path
        else:
            yield from _module_gitdirs(entry.path)


def _repository(worktree: str, project: str,
                global_hooks: str | None) -> Iterator[Protection]:
    dotgit = os.path.join(worktree, ".git")
    try:
        st = os.lstat(dotgit)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        yield Protection(dotgit, "rw", "pinned: .git cannot be renamed away and replaced")
        yield from _git_dir_protections(dotgit, worktree, global_hooks)
    elif stat.S_ISREG(st.st_mode):
        yield Protection(dotgit, "ro", "a .git file says where the repository is")
        gitdir = gitdir_of_file(dotgit)
        if not gitdir or not os.path.isdir(gitdir):
            return
        # A .git file, and anything else in the project, is text the agent may have
        # written: a directory outside the project is shown (read-write) only if it is the
        # real git directory of this very worktree (see _linked_worktree). Otherwise nothing
        # outside is bound; what lies inside is still protected.
        if not _is_under(gitdir, project) and _linked_worktree(gitdir, dotgit):
            yield Protection(gitdir, "rw", "the git directory of this worktree")
            yield Protection(_common_dir(gitdir), "rw", "the repository of this worktree")
        yield from _git_dir_protections(gitdir, worktree, global_hooks)


def _linked_worktree(gitdir: str, dotgit: str) -> bool:
    """Whether ``gitdir`` (outside the project) is what ``git worktree add`` made for
    ``dotgit``: ``<common>/worktrees/<name>`` with a ``commondir`` of ``../..`` and a
    ``gitdir`` file naming that .git file. Every file checked here lives outside the
    project, so nothing the agent wrote can make an arbitrary host directory qualify."""
    try:
        with open(os.path.join(gitdir, "gitdir"), encoding="utf-8") as f:
            recorded = f.read().strip()
    except OSError:
        return False
    worktrees = os.path.dirname(gitdir)
    return (os.path.basename(worktrees) == "worktrees"
            and _common_dir(gitdir) == os.path.dirname(worktrees)
            and os.path.realpath(recorded) == os.path.realpath(dotgit)
            and os.path.isfile(os.path.join(gitdir, "HEAD")))


def _is_under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def work_trees(project: str) -> Iterator[str]:
    """The project and every directory in it holding a .git (nested repositories), without
    following symlinks or entering .git directories and caches."""
    stack = [project]
    while stack:
        current = stack.pop()
        yield_it = False
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            if entry.name == ".git":
                yield_it = True
            elif entry.name not in SKIP_DIRS and entry.is_dir(follow_symlinks=False):
                stack.append(entry.path)
        if yield_it or current == project:
            yield current


def scan(project: str, extra: Sequence[str] = (), relax: Sequence[str] = (),
         global_hooks: str | None = None) -> tuple[Protection, ...]:
    """Every protection the project needs, parents before children, each path once.

    ``extra``: more names to protect (from any config layer); ``relax``: PROTECTED names not
    to protect (from the user's own configuration only, never the project's);
    ``global_hooks``: core.hooksPath of the user's global git config."""
    found: dict[str, Protection] = {}
    names = [rel for rel in (*PROTECTED, *extra) if rel not in relax]
    for worktree in sorted(work_trees(project)):
        for rel in names:
            path = os.path.normpath(os.path.join(worktree, rel))
            if not _is_under(path, project) or path in found:
                continue
            if _lexists(path):
                mode = "ro"
            elif rel in PLACEHOLDER_NAMES or rel in extra:
                mode = "placeholder"
            else:
                continue
            found[path] = Protection(
                path, mode, "executed or trusted by host tools" if rel in PROTECTED
                else "protect", _kind(rel), rel)
        for rel, kind in envrc_targets(worktree):
            path = os.path.normpath(os.path.join(worktree, rel))
            if _is_under(path, project) and path not in found:
                found[path] = Protection(path, "ro" if _lexists(path) else "placeholder",
                                         "loaded by the .envrc: direnv runs it on cd", kind,
                                         rel)
        repository = list(_repository(worktree, project, global_hooks))
        # Only paths in the project or in a repository directory vetted above: a
        # core.hooksPath pointing elsewhere must not bind (or create) host paths.
        shown = [p.path for p in repository if p.mode == "rw" and not _is_under(p.path, project)]
        for p in repository:
            if _is_under(p.path, project) or any(_is_under(p.path, d) for d in shown):
                found.setdefault(p.path, p)
    # A bind follows symlinks: a path under a symlinked directory is left out (its real
    # place is protected where it lives, if inside the project), and a protected name that
    # is itself a symlink is reported instead of bound.
    kept = {}
    for path, protection in found.items():
        if _under_symlinked_dir(path, project):
            continue
        if os.path.islink(path):
            protection = protection._replace(mode="symlink")
        kept[path] = protection
    # A mount point cannot be renamed, but its parent can: every directory between the
    # project and a protected path is pinned too, or `mv .claude x && mkdir .claude` would
    # leave the protection behind in x.
    for path in list(kept):
        for parent in _parents_in(path, project):
            kept.setdefault(parent, Protection(
                parent, "pin", "pinned: a protected path's parent cannot be renamed away"))
    return tuple(sorted(kept.values(), key=lambda p: (p.path.count("/"), p.path)))


# What `git init` and `git clone` write in a repository's config: anything else in one the
# command made may be a program host git would run (core.fsmonitor, core.sshCommand, ...).
PLAIN_CONFIG = re.compile(
    r"^\s*(\[(core|remote \"[^\"]*\"|branch \"[^\"]*\"|extensions)\]|repositoryformatversion|"
    r"filemode|bare|logallrefupdates|ignorecase|precomposeunicode|symlinks|url|fetch|remote|"
    r"merge|objectformat)\s*(=|$)", re.IGNORECASE)


def git_dirs(project: str) -> Iterator[str]:
    """Every git directory of the project as it is now: each work tree's (a ``.git``
    directory, or the one a ``.git`` file names inside the project), the submodules' under
    ``modules``, and the linked worktrees' admin directories under ``worktrees``."""
    seen = set()
    for worktree in sorted(work_trees(project)):
        dotgit = os.path.join(worktree, ".git")
        if os.path.islink(dotgit):
            continue
        gitdir = dotgit if os.path.isdir(dotgit) else gitdir_of_file(dotgit)
        if not gitdir or not _is_under(gitdir, project) or not os.path.isdir(gitdir):
            continue
        stack = [gitdir]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            yield current
            stack += list(_module_gitdirs(os.path.join(current, "modules")))
            with contextlib.suppress(OSError):
                stack += [e.path for e in os.scandir(os.path.join(current, "worktrees"))
                          if e.is_dir(follow_symlinks=False)]


def host_excludes(project: str, protections: Sequence[Protection],
                  ) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """For host git while a sandbox runs: each repository's ``info/exclude`` file and the
    placeholders in its work tree, as anchored patterns (``/.envrc``). Only repositories
    whose ``info`` directory exists (``git init`` makes it) and is not a symlink."""
    blocks: dict[str, list[str]] = {}
    for p in protections:
        if p.mode != "placeholder" or "/.git/" in p.path + "/":
            continue
        worktree = os.path.dirname(p.path)
        while _is_under(worktree, project) and not _lexists(os.path.join(worktree, ".git")):
            worktree = os.path.dirname(worktree)
        dotgit = os.path.join(worktree, ".git")
        if not _is_under(worktree, project) or os.path.islink(dotgit):
            continue
        gitdir = dotgit if os.path.isdir(dotgit) else gitdir_of_file(dotgit)
        if gitdir is None:
            continue
        info = os.path.join(_common_dir(gitdir), "info")
        if os.path.isdir(info) and not os.path.islink(info):
            blocks.setdefault(os.path.join(info, "exclude"), []).append(
                "/" + os.path.relpath(p.path, worktree))
    return tuple((path, tuple(sorted(patterns))) for path, patterns in sorted(blocks.items()))


def _parents_in(path: str, project: str) -> Iterator[str]:
    current = os.path.dirname(path)
    while _is_under(current, project) and current != project:
        yield current
        current = os.path.dirname(current)


def _under_symlinked_dir(path: str, project: str) -> bool:
    return any(os.path.islink(parent) for parent in _parents_in(path, project))


def created_parents(placeholder: str, project: str) -> list[str]:
    """The missing directories on the way to a placeholder (deepest first), which the
    launcher makes and pins."""
    missing = []
    for parent in _parents_in(placeholder, project):
        if _lexists(parent):
            break
        missing.append(parent)
    return missing


# The read-only sources bound over missing protected paths, by kind: a name in the work
# dir base, and the content (None: an empty directory).
PLACEHOLDER_SOURCES = {"dir": (".empty", None), "file": (".empty-file", b""),
                       "json": (".empty.json", b"{}\n"),
                       "mcp": (".empty-mcp.json", b'{"mcpServers": {}}\n'),
                       "commondir": (".git-commondir", b".\n")}
