"""The login rules of agent homes: what of a file is shared, when a token has expired, and
the key that names a project's home."""

from __future__ import annotations

import json

import pytest

from agent_sandbox._policy.login import expired, login_part
from agent_sandbox._policy.presets import load, project_key


@pytest.mark.parametrize("data, now, result", [
    (b'{"claudeAiOauth": {"expiresAt": 1700000000000}}', 1800000000, True),  # ms
    (b'{"claudeAiOauth": {"expiresAt": 1900000000000}}', 1800000000, False),
    (b'{"expiry_date": 1700000000}', 1800000000, True),  # seconds
    (b'{"tokens": {"expires_at": "2020-01-01T00:00:00Z"}}', 1800000000, True),  # ISO
    (b'{"token": "no expiry field"}', 1800000000, False),
    (b"not json", 1800000000, False),
    (b'{"expiresAt": true}', 1800000000, False),
])
def test_expired(data: bytes, now: float, result: bool) -> None:
    assert expired(data, now) is result


def test_only_the_login_crosses_projects() -> None:
    claude = load("claude")
    account = {"oauthAccount": {"email": "me@example.com"}, "userID": "u1",
               "projects": {"/secret": {}}, "mcpServers": {"x": {"command": "evil"}}}
    shared = login_part(claude, ".claude.json", json.dumps(account).encode())
    assert shared is not None
    assert json.loads(shared) == {"oauthAccount": {"email": "me@example.com"}, "userID": "u1"}
    assert login_part(claude, ".claude/.credentials.json", b"[1, 2]") is None  # not an object
    assert login_part(claude, ".claude/.credentials.json", b"") is None
    gemini = load("gemini")
    settings = {"selectedAuthType": "oauth-personal", "mcpServers": {"x": {"command": "evil"}},
                "hooks": {"y": "z"}}
    kept = login_part(gemini, ".gemini/settings.json", json.dumps(settings).encode())
    assert kept is not None and json.loads(kept) == {"selectedAuthType": "oauth-personal"}


def test_no_settings_file_is_a_login() -> None:
    for name in ("claude", "codex", "gemini", "aider", "opencode"):
        preset = load(name)
        for rel in preset.seed:
            assert not rel.endswith(("settings.json", "config.toml", "opencode.json")), rel


def test_project_keys_are_readable_and_distinct() -> None:
    one, two = project_key("/home/u/src/app"), project_key("/home/u/work/app")
    assert one.startswith("app-") and two.startswith("app-") and one != two
    assert project_key("/").startswith("root-")
    assert "/" not in project_key("/home/u/we ird/na/me") and project_key("/x/..").count("/") == 0
