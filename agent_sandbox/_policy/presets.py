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


def data_dir(environ: Mapping[str, str]) -> str:
    """Where agent homes and logins live: ``$XDG_DATA_HOME/agent-sandbox``."""
    base = environ.get("XDG_DATA_HOME", "")
    if not base.startswith("/"):
        base = os.path.join(environ.get("HOME", os.path.expanduser("~")), ".local", "share")
    return os.path.join(base, "agent-sandbox")


def project_key(project: str) -> str:
    """``<base name>-<16 hex of the path's SHA-256>``: readable, and unique per path."""
    import hashlib

    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in os.path.basename(project))
    digest = hashlib.sha256(project.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{name[:40] or 'root'}-{digest}"


def saved_home(agent: str, project: str, environ: Mapping[str, str]) -> str:
    """The agent's home for ``project`` on the host (see ``_run.agent_home``)."""
    return os.path.join(data_dir(environ), "agents", agent, project_key(project))


def login_files(preset: Preset) -> tuple[str, ...]:
    """The files that are the agent's login: shared by its projects."""
    return (*preset.seed, *(rel for rel, _ in preset.seed_json))
