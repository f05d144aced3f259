"""The shipped presets are valid data: every host, variable and path is one the sandbox
accepts; detection goes by the command's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_sandbox._errors import UsageError
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
    for variable, _ in preset.set_env:
        assert not is_forbidden(variable), variable
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


def test_each_built_in_preset_names_its_sources() -> None:
    """Every host a preset allows is written in its file's comments with where it was
    found (the agent's docs or binary): a host without a word about it does not ship."""
    for name in names():
        preset = load(name)
        comments = "\n".join(line for line in Path(preset.path).read_text().splitlines()
                             if line.lstrip().startswith("#"))
        assert "Source" in comments or "found in" in comments, name
        for host in preset.allow:
            assert host in comments, (name, host)


def test_set_env_and_publish_when() -> None:
    assert dict(load("claude").set_env) == {"DISABLE_AUTOUPDATER": "1"}
    codex = load("codex")
    assert codex.publish_for(["login"]) == (("login", ("1455",)),)
    assert codex.publish_for(["login", "--device-auth"]) == (("login", ("1455",)),)
    assert codex.publish_for([]) == () and codex.publish_for(["exec", "login"]) == ()


@pytest.fixture
def user_presets(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    directory = tmp_path / "config" / "agent-sandbox" / "presets"
    directory.mkdir(parents=True)
    return directory, {"HOME": str(tmp_path / "home"),
                       "XDG_CONFIG_HOME": str(tmp_path / "config")}


def test_a_user_preset_adds_an_agent(user_presets: tuple[Path, dict[str, str]]) -> None:
    directory, environ = user_presets
    (directory / "my-agent.toml").write_text(
        'description = "Mine"\nallow = ["api.example.com", "@pypi"]\nenv = ["MY_KEY"]\n'
        'state = [".my-agent"]\n[set_env]\nMY_AGENT_NO_UPDATE = "1"\n')
    assert "my-agent" in names(environ) and "my-agent" not in names()
    assert detect("/opt/bin/my-agent", environ) == "my-agent"
    assert detect("my-agent") is None  # without the user's environment: built-ins only
    preset = load("my-agent", environ)
    assert preset.allow == ("api.example.com", "@pypi") and preset.env == ("MY_KEY",)
    assert preset.set_env == (("MY_AGENT_NO_UPDATE", "1"),)
    assert preset.path == str(directory / "my-agent.toml")


def test_a_user_preset_replaces_the_built_in_one(
        user_presets: tuple[Path, dict[str, str]]) -> None:
    directory, environ = user_presets
    (directory / "claude.toml").write_text('allow = ["api.anthropic.com"]\n')
    preset = load("claude", environ)
    assert preset.allow == ("api.anthropic.com",) and preset.set_env == ()
    assert preset.path == str(directory / "claude.toml")
    assert load("claude").allow != preset.allow  # the built-in one is still there


@pytest.mark.parametrize("text, line, message", [
    ('allow = ["1.2.3.4"]', 2, "allow: --allow 1.2.3.4: IP addresses are not allowed"),
    ('allow = ["@pypy"]', 2, "allow: @pypy: no such host group (did you mean @pypi?)"),
    ("allow = 5", 2, "allow: must be a list of strings"),
    ('env = ["LD_PRELOAD"]', 2, "env: preset LD_PRELOAD: loader/interpreter injection"),
    ('env = ["HOME"]', 2, "env: preset HOME: this variable is set by the sandbox"),
    ('env = ["not a name"]', 2, "env: 'not a name' is not a variable name"),
    ('state = ["../.ssh"]', 2, "state: '../.ssh': a path relative to $HOME"),
    ('seed = ["/etc/shadow"]', 2, "seed: '/etc/shadow': a path relative to $HOME"),
    ("[set_env]\nX = 1", 3, "set_env: X must be a string"),
    ('[set_env]\n"BASH_ENV" = "/x"', 3, "set_env: preset BASH_ENV: loader/interpreter"),
    ('[publish_when]\nlogin = ["99999"]', 3, "publish_when: --publish 99999: expected a port"),
    ('[publish_when]\n"auth login" = "1455"', 3, 'expected "SUBCOMMAND" = [PORT, ...]'),
    ('alow = ["x.example"]', 2, "unknown key 'alow' (did you mean 'allow'?)"),
    ("allow = [", 2, "not valid TOML: "),
])
def test_a_broken_user_preset_names_file_line_and_key(
        user_presets: tuple[Path, dict[str, str]], text: str, line: int,
        message: str) -> None:
    directory, environ = user_presets
    path = directory / "mine.toml"
    path.write_text(f'description = "Mine"\n{text}\n')
    with pytest.raises(UsageError) as raised:
        load("mine", environ)
    assert raised.value.message.startswith(f"{path}:{line}: "), raised.value.message
    assert message in raised.value.message


def test_unknown_presets_suggest_the_close_one() -> None:
    with pytest.raises(UsageError, match=r"'clude': no such preset \(did you mean 'claude'"):
        load("clude")
    assert detect("none") is None and detect("/usr/bin/none") is None
