"""What a ``.envrc`` makes direnv load or put on PATH: the files and directories the host
runs on cd besides the ``.envrc`` itself (``_plan.protect`` covers them). Reads the file."""

from __future__ import annotations

import os

# direnv's stdlib functions whose arguments name files it loads, or directories it puts on
# PATH, relative to the .envrc (with the file loaded when none is given).
_ENVRC_FILES = {"source_env": None, "source_env_if_exists": None, "dotenv": ".env",
                "dotenv_if_exists": ".env"}
_ENVRC_DIRS = ("PATH_add", "path_add")


def envrc_targets(worktree: str) -> list[tuple[str, str]]:
    """What a work tree's ``.envrc`` makes direnv load or put on PATH, as (path relative to
    the work tree, "file" or "dir"): ``source_env[_if_exists] X``, ``dotenv[_if_exists]
    [X]``, ``PATH_add X...``. Arguments with expansions cannot be known and are skipped."""
    import shlex

    try:
        with open(os.path.join(worktree, ".envrc"), encoding="utf-8", errors="replace") as f:
            text = f.read(1 << 20)
    except OSError:
        return []
    found: list[tuple[str, str]] = []
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        if not words:
            continue
        command, args = words[0], words[1:]
        if command in _ENVRC_FILES:
            default = _ENVRC_FILES[command]
            targets = args[:1] or ([default] if default else [])
            for target in targets:
                path = os.path.join(worktree, target)
                found.append((os.path.join(target, ".envrc") if os.path.isdir(path)
                              else target, "file"))
        elif command in _ENVRC_DIRS:
            found += [(a, "dir") for a in args[1 if command == "path_add" else 0:]]
    return [(os.path.normpath(rel), kind) for rel, kind in found
            if "$" not in rel and "`" not in rel and not rel.startswith(("/", "~"))]
