"""The shipped presets are valid data: every host, variable and path is one the sandbox
accepts; detection goes by the command's name."""

from __future__ import annotations

import pytest

from agent_sandbox._net.allow import parse_allow
from agent_sandbox._policy.env import is_forbidden
from agent_sandbox._policy.presets import detect, load, names
from agent_sandbox._policy.protected import PROTECTED


def test_the_five_presets_exist() -> None:
    assert names() == ("aider", "claude", "codex", "gemini", "opencode")


@pytest.mark.parametrize("name", names())
def test_each_preset_is_valid(name: str) -> None:
    preset = load(name)
    assert preset.allow and preset.description
    for host in preset.allow:
        parse_allow(host)  # raises on anything the allow-list refuses
    for variable in preset.env:
        assert not is_forbidden(variable), variable
    for path in (*preset.state, *preset.seed, *(k for k, _ in preset.seed_json)):
        assert not path.startswith("/") and ".." not in path.split("/")
    # Seeds are state files (the login), never files the host executes.
    assert not set(preset.seed) & set(PROTECTED)


def test_detection_by_basename() -> None:
    assert detect("claude") == "claude"
    assert detect("/opt/node/bin/codex") == "codex"
    assert detect("bash") is None and detect("claude-wrapper") is None
