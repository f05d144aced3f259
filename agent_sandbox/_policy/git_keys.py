"""Which keys of a repository's git config a session's changes reach the host with, as data.

Inside, ``.git/config`` is a writable copy (``_run.gitcopy``); when the sandbox ends, the
keys changed there that a user edits in everyday work (``git remote add``, ``git branch
-u``, ``git submodule add``, ``git push -u``, ``git branch -m``) are applied to the host's
config, removals included. Every other change (``core.*``, ``alias.*``, ``include*``,
``filter.*``, ``diff.*.textconv``, ``credential.*``, ``url.*.insteadOf``, ``http.*``, a
remote's ``uploadpack``, ...) can make host git run a program, send credentials elsewhere
or read another file, so it is held back and quarantined (``agent-sandbox quarantine``).

docs/usage.md lists these keys; ``tests/unit/test_gitcopy.py`` checks that it does.
"""

from __future__ import annotations

# (section, variable) of keys with a subsection (the remote's, branch's or submodule's
# name, any text): ``remote.<name>.url``. Sections and variables as git lists them
# (lower case). None of these names a program, a file or a place for credentials.
EVERYDAY = frozenset({
    # git remote add / set-url / rename / remove, git fetch --prune setups
    ("remote", "url"), ("remote", "pushurl"), ("remote", "fetch"), ("remote", "push"),
    ("remote", "tagopt"), ("remote", "prune"), ("remote", "prunetags"),
    ("remote", "mirror"), ("remote", "skipdefaultupdate"), ("remote", "skipfetchall"),
    # git branch -u / --unset-upstream / -m / -d, git push -u, git checkout --track
    ("branch", "remote"), ("branch", "pushremote"), ("branch", "merge"),
    ("branch", "rebase"), ("branch", "description"),
    # git submodule add / init / deinit / set-branch / set-url
    ("submodule", "url"), ("submodule", "active"), ("submodule", "branch"),
    ("submodule", "update"), ("submodule", "fetchrecursesubmodules"),
    ("submodule", "ignore"), ("submodule", "shallow"),
})

# Keys of EVERYDAY that are applied only with one of these values: ``submodule.<name>.update
# = !command`` would run the command on the host's ``git submodule update``.
VALUES = {("submodule", "update"): frozenset({"checkout", "rebase", "merge", "none"})}


def split(key: str) -> tuple[str, str | None, str]:
    """(section, subsection or None, variable) of a key as ``git config --list`` gives it;
    the subsection may hold dots (``branch.feat/x.y.merge``)."""
    section, _, rest = key.partition(".")
    subsection, _, variable = rest.rpartition(".")
    return section, (subsection if _ else None), variable


def everyday(key: str, values: tuple[str | None, ...]) -> bool:
    """Whether a change of ``key`` to ``values`` (empty: removed; None: set without a
    value) may reach the host's config on its own."""
    section, subsection, variable = split(key)
    if subsection is None or (section, variable) not in EVERYDAY:
        return False
    allowed = VALUES.get((section, variable))
    return allowed is None or all(v is not None and v.lower() in allowed for v in values)
