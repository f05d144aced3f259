"""Agent presets: what each known agent needs, as data (``presets/<name>.toml``).

A preset is chosen by the command's basename (``agent-sandbox claude``) or ``--agent NAME``
and adds a configuration layer just above the built-in one: the hosts the agent talks to
(which makes the network ``filtered``), the environment variables it may receive, and its
state paths. Its state lives in a home of its own, ``$XDG_DATA_HOME/agent-sandbox/homes/
<name>/``, bound at ``$HOME`` inside: settings, history and caches persist between runs but
never touch your real home, and files the agent replaces by atomic rename (Claude Code's
``~/.claude.json``) keep working. On first use only the login is copied in (``seed``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from agent_sandbox._errors import UsageError

PRESET_DIR = os.path.join(os.path.dirname(__file__), "preset_data")


class Preset(NamedTuple):
    name: str
    description: str
    allow: tuple[str, ...]
    env: tuple[str, ...]
    state: tuple[str, ...]  # relative to $HOME
    seed: tuple[str, ...]  # files copied from the real home on first use (the login)
    seed_json: tuple[tuple[str, tuple[str, ...]], ...]  # file -> keys kept from it
    # How to run the agent when its own sandbox cannot nest here (said at launch), or "".
    inner_sandbox: str = ""


def names() -> tuple[str, ...]:
    return tuple(sorted(f[:-5] for f in os.listdir(PRESET_DIR) if f.endswith(".toml")))


def detect(command: str) -> str | None:
    """The preset named like the command's basename, if there is one."""
    name = os.path.basename(command)
    return name if os.path.isfile(os.path.join(PRESET_DIR, f"{name}.toml")) else None


def load(name: str) -> Preset:
    import tomllib

    path = os.path.join(PRESET_DIR, f"{name}.toml")
    if not os.path.isfile(path):
        raise UsageError(f"--agent {name!r}: no such preset; known: {', '.join(names())}, "
                         "or none")
    with open(path, "rb") as f:
        data: dict[str, Any] = tomllib.load(f)
    return Preset(
        name=name,
        description=str(data.get("description", name)),
        allow=tuple(data.get("allow", ())),
        env=tuple(data.get("env", ())),
        state=tuple(data.get("state", ())),
        seed=tuple(data.get("seed", ())),
        seed_json=tuple((k, tuple(v)) for k, v in data.get("seed_json", {}).items()),
        inner_sandbox=str(data.get("inner_sandbox", "")),
    )


def agent_home(name: str, environ: Mapping[str, str]) -> str:
    base = environ.get("XDG_DATA_HOME", "")
    if not base.startswith("/"):
        base = os.path.join(environ.get("HOME", os.path.expanduser("~")), ".local", "share")
    return os.path.join(base, "agent-sandbox", "homes", name)


def prepare_home(preset: Preset, home: str, real_home: str) -> None:
    """Create the agent's home on first use, with only the login copied from the real one.

    Files are copied, never linked, and symlinks in the real home are not followed: the
    agent's home holds nothing that points back into yours.
    """
    if os.path.isdir(home):
        return
    os.makedirs(home, mode=0o700)
    for rel in preset.seed:
        source = os.path.join(real_home, rel)
        if os.path.isfile(source) and not os.path.islink(source):
            target = os.path.join(home, rel)
            os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
            import shutil  # only when a home is first made: not on every launch

            shutil.copyfile(source, target)
            os.chmod(target, 0o600)
    for rel, keys in preset.seed_json:
        source = os.path.join(real_home, rel)
        try:
            with open(source, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            kept = {k: data[k] for k in keys if k in data}
            target = os.path.join(home, rel)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(kept, f)
