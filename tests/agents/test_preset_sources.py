"""Each preset names only what its agent still uses: every host, variable it passes and
variable it sets occurs in the files of the agent's pinned version (tests/conftest.py),
installed as users install it. A host an agent dropped (Claude Code 2.1's
console.anthropic.com) fails here, naming the preset and the version to update."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from agent_sandbox._policy.presets import Preset, load
from tests.conftest import AIDER, NPM_AGENTS

pytestmark = [pytest.mark.integration, pytest.mark.agents]

PACKAGES = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex",
            "gemini": "@google/gemini-cli", "opencode": "opencode-ai"}


def _needles(preset: Preset) -> set[str]:
    """What must occur in the agent's files: its hosts (a wildcard's domain) and the
    variables it passes in or sets."""
    hosts = {host.removeprefix("*.").split(":")[0] for host in preset.allow}
    return hosts | set(preset.env) | {name for name, _ in preset.set_env}


def _absent(needles: set[str], root: Path) -> set[str]:
    """The needles found in no regular file under ``root`` (symlinks not followed)."""
    left = {n: n.encode() for n in needles}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            if not left or os.path.islink(path) or os.path.getsize(path) == 0:
                continue
            with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                for needle in [n for n, b in left.items() if m.find(b) >= 0]:
                    del left[needle]
    return set(left)


def _pinned(package: str, pins: Iterable[str]) -> str:
    return next(p for p in pins if p.startswith(package))


@pytest.mark.parametrize("agent", sorted(PACKAGES))
def test_npm_agents_presets_match_their_pinned_versions(agent: str, npm_agents: Path) -> None:
    root = npm_agents / "lib" / "node_modules" / PACKAGES[agent]
    assert root.is_dir(), root
    absent = _absent(_needles(load(agent)), root)
    assert not absent, (f"the {agent} preset names {sorted(absent)}, which "
                        f"{_pinned(PACKAGES[agent], NPM_AGENTS)} does not contain")


def test_aider_preset_matches_its_pinned_version(aider_venv: Path) -> None:
    """Aider reaches its providers through litellm: the whole venv it installs counts."""
    [site] = (aider_venv / "lib").glob("python3*/site-packages")
    absent = _absent(_needles(load("aider")), site)
    assert not absent, f"the aider preset names {sorted(absent)}, which {AIDER} does not contain"


def test_a_stale_host_is_caught(npm_agents: Path) -> None:
    """The check itself: Claude Code 2.1 no longer contains the hosts of the old preset."""
    root = npm_agents / "lib" / "node_modules" / PACKAGES["claude"]
    assert _absent({"console.anthropic.com", "statsig.anthropic.com", "api.anthropic.com"},
                   root) == {"console.anthropic.com", "statsig.anthropic.com"}
