"""Layered configuration: files, variables, flags; the project file only tightens; every
bad input is one clear error naming the file, line and key, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_sandbox._errors import UsageError
from agent_sandbox._policy.config import effective, read_file
from agent_sandbox._policy.groups import group_of


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path, dict[str, str]]:
    home = tmp_path / "home"
    (home / ".config" / "agent-sandbox").mkdir(parents=True)
    project = tmp_path / "project"
    project.mkdir()
    return home / ".config" / "agent-sandbox" / "config.toml", project, {"HOME": str(home)}


def test_layers_merge_lists_and_override_scalars(layout: tuple[Path, Path, dict[str, str]],
                                                 ) -> None:
    user, project, environ = layout
    user.write_text('allow = ["api.anthropic.com"]\ntimeout = "2h"\nmemory = "4G"\n')
    (project / ".agent-sandbox.toml").write_text('hide = ["secrets"]\ntimeout = "30m"\n')
    environ["AGENT_SANDBOX_ALLOW"] = "registry.npmjs.org, pypi.org"
    got = effective(str(project), environ, {"allow": ["github.com"], "memory": "2G"})
    assert got["allow"].value == ("api.anthropic.com", "registry.npmjs.org", "pypi.org",
                                  "github.com")
    assert got["allow"].source == f"{user}:1 + AGENT_SANDBOX_ALLOW + --allow"
    assert got["timeout"].value == "30m" and got["timeout"].source.endswith(
        ".agent-sandbox.toml:2")
    assert got["memory"].value == "2G" and got["memory"].source == "--memory"
    assert got["hide"].value == (str(project / "secrets"),)  # relative to the project


@pytest.mark.parametrize("text, message", [
    ('allow = ["evil.com"]', "may only tighten the policy, and allow would widen it"),
    ('net = "host"', "net = 'host' would widen"),
    ('ro = ["/home"]', "ro would widen"),
    ('env = ["AWS_SECRET_ACCESS_KEY"]', "env would widen"),
    ("allow_nested_userns = true", "allow_nested_userns would widen"),
    ('timeout = "3h"', "would raise timeout"),
    # Raising a built-in limit is widening too (a 900G tmpfs home eats the host's memory).
    ('home_size = "900G"', "would raise home_size = '536870912' (built-in)"),
    ('fsize = "900T"', "would raise fsize"),
    ("nofile = 1048576", "would raise nofile"),
    # memory and pids are capped by default where cgroup v2 works: none lifts that.
    ('memory = "none"', "memory = 'none': the project file may only tighten the policy"),
    ('pids = "none"', "none lifts the cap"),
])
def test_the_project_file_cannot_widen(layout: tuple[Path, Path, dict[str, str]], text: str,
                                       message: str) -> None:
    user, project, environ = layout
    user.write_text('timeout = "2h"\n')
    (project / ".agent-sandbox.toml").write_text(f"# comment\n{text}\n")
    with pytest.raises(UsageError) as raised:
        effective(str(project), environ, {})
    assert message in raised.value.message
    assert raised.value.message.startswith(f"{project / '.agent-sandbox.toml'}:2: ")


def test_the_project_file_can_tighten(layout: tuple[Path, Path, dict[str, str]]) -> None:
    user, project, environ = layout
    user.write_text('allow = ["a.example.com", "b.example.com"]\nnet = "filtered"\n')
    (project / ".agent-sandbox.toml").write_text(
        'drop_allow = ["b.example.com"]\nnet = "none"\npids = 100\nhome_size = "64M"\n')
    got = effective(str(project), environ, {})
    assert got["allow"].value == ("a.example.com",)
    assert got["net"].value == "none" and got["pids"].value == "100"
    assert got["home_size"].value == "64M"


def test_the_project_file_can_cap_what_the_user_left_uncapped(
        layout: tuple[Path, Path, dict[str, str]]) -> None:
    user, project, environ = layout
    user.write_text('memory = "none"\npids = "none"\n')
    (project / ".agent-sandbox.toml").write_text('memory = "2G"\npids = "none"\n')
    got = effective(str(project), environ, {})
    assert got["memory"].value == "2G" and got["pids"].value == "none"


@pytest.mark.parametrize("text, message", [
    ("net = [", "not valid TOML"),
    ('nett = "none"', "unknown key 'nett' (did you mean 'net'?)"),
    ("allow = 5", "allow must be a list of strings"),
    ('allow = ["1.2.3.4"]', "allow: --allow 1.2.3.4: IP addresses are not allowed"),
    ('net = "open"', "net must be one of none, filtered, host"),
    ('terminal = "off"', "terminal must be filtered or raw (not 'off')"),
    ('memory = "lots"', "memory: memory 'lots': expected a size"),
    ("gpu = 1", "gpu must be true or false"),
    ('ro = ["relative/path"]', "use an absolute path or ~/... here"),
    ("[limits]\nmemory = 1", "unknown key 'limits'"),
])
def test_bad_user_files_name_file_line_and_key(tmp_path: Path, text: str,
                                               message: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text + "\n")
    with pytest.raises(UsageError) as raised:
        read_file(str(path))
    assert raised.value.message.startswith(f"{path}")
    assert message in raised.value.message


def test_bad_environment_values(layout: tuple[Path, Path, dict[str, str]]) -> None:
    _, project, environ = layout
    for name, value, message in [("AGENT_SANDBOX_GPU", "maybe", "expected true or false"),
                                 ("AGENT_SANDBOX_NET", "wide", "net must be one of"),
                                 ("AGENT_SANDBOX_ALLOW", "localhost", "loopback names")]:
        with pytest.raises(UsageError, match=message):
            effective(str(project), {**environ, name: value}, {})


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_loaded_or_refused_cleanly(tmp_path_factory: pytest.TempPathFactory,
                                               text: str) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "config.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        read_file(str(path))
    except UsageError as e:
        assert e.message.startswith(str(path))


toml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3), max_leaves=5)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["net", "allow", "hide", "memory", "gpu", "timeout",
                                        "env", "publish", "pids", "x"]),
                       toml_values, max_size=4))
def test_any_structure_is_loaded_or_refused_cleanly(tmp_path_factory: pytest.TempPathFactory,
                                                    data: dict[str, object]) -> None:
    lines = []
    for key, value in data.items():
        if value is None:
            continue
        lines.append(f"{key} = {_toml(value)}")
    path = tmp_path_factory.mktemp("fuzz") / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        read_file(str(path))
    except UsageError as e:
        assert e.message.startswith(str(path))


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').encode(
            "unicode_escape").decode().replace("\\\\u", "\\u") + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value if v is not None) + "]"
    return '""'


def test_per_agent_sections_apply_only_to_their_agent(
        layout: tuple[Path, Path, dict[str, str]]) -> None:
    user, project, environ = layout
    user.write_text('allow = ["a.example.com"]\ntimeout = "2h"\n\n[agents.claude]\n'
                    'allow = ["platform.example.com"]\ntimeout = "30m"\n'
                    '[agents.codex]\nallow = ["codex.example.com"]\n')
    plain = effective(str(project), environ, {})
    assert plain["allow"].value == ("a.example.com",) and plain["timeout"].value == "2h"
    claude = effective(str(project), environ, {}, agent="claude")
    assert claude["allow"].value == ("a.example.com", "platform.example.com")
    assert claude["allow"].per_item() == (f"{user}:1", f"{user}:5")
    assert claude["timeout"].value == "30m" and claude["timeout"].source == f"{user}:6"
    # Over the file's top level, under the layers above it.
    assert effective(str(project), environ, {"timeout": "1h"}, agent="claude")[
        "timeout"].value == "1h"


@pytest.mark.parametrize("text, line, message", [
    ("[agents.clude]\nallow = []", 1, "[agents.clude]: 'clude': no such preset (did you mean "
     "'claude'?)"),
    ('[agents.claude]\nalow = ["x.example"]', 2, "[agents.claude]: unknown key 'alow' (did "
     "you mean 'allow'?)"),
    ('[agents.claude]\nallow = ["1.2.3.4"]', 2, "allow: --allow 1.2.3.4: IP addresses"),
    ("[agents]\nclaude = 3", 1, "agents: expected sections [agents.NAME]"),
    ('gpu = true\n[agents.codex]\nnet = "open"', 3, "net must be one of none, filtered, host"),
])
def test_bad_per_agent_sections_name_file_line_and_key(
        layout: tuple[Path, Path, dict[str, str]], text: str, line: int,
        message: str) -> None:
    user, project, environ = layout
    user.write_text(text + "\n")
    with pytest.raises(UsageError) as raised:
        effective(str(project), environ, {}, agent="gemini")  # checked whichever is active
    assert raised.value.message.startswith(f"{user}:{line}: "), raised.value.message
    assert message in raised.value.message


def test_a_user_preset_may_have_a_section(tmp_path: Path,
                                          layout: tuple[Path, Path, dict[str, str]]) -> None:
    user, project, environ = layout
    (user.parent / "presets").mkdir()
    (user.parent / "presets" / "mine.toml").write_text('allow = ["mine.example.com"]\n')
    user.write_text('[agents.mine]\nallow = ["more.example.com"]\n')
    got = effective(str(project), environ, {}, agent="mine")
    assert got["allow"].value == ("more.example.com",)


def test_the_project_file_has_no_agent_sections(
        layout: tuple[Path, Path, dict[str, str]]) -> None:
    _, project, environ = layout
    (project / ".agent-sandbox.toml").write_text('[agents.claude]\nnet = "none"\n')
    with pytest.raises(UsageError, match="per-agent sections go in your own configuration"):
        effective(str(project), environ, {})


def test_host_groups_expand_in_every_layer(layout: tuple[Path, Path, dict[str, str]]) -> None:
    user, project, environ = layout
    user.write_text('allow = ["@pypi", "a.example.com"]\n')
    (project / ".agent-sandbox.toml").write_text('drop_allow = ["files.pythonhosted.org"]\n')
    environ["AGENT_SANDBOX_ALLOW"] = "@npm"
    got = effective(str(project), environ, {"allow": ["@crates:8443"]})
    assert got["allow"].value == ("pypi.org", "a.example.com", "registry.npmjs.org",
                                  "crates.io:8443", "index.crates.io:8443",
                                  "static.crates.io:8443")
    assert got["allow"].per_item() == (f"{user}:1 (@pypi)", f"{user}:1",
                                       "AGENT_SANDBOX_ALLOW (@npm)",
                                       *["--allow (@crates:8443)"] * 3)


@pytest.mark.parametrize("where, setting", [("flag", {"allow": ["@pypy"]}),
                                            ("file", {}), ("variable", {})])
def test_an_unknown_host_group_lists_the_known_ones(
        layout: tuple[Path, Path, dict[str, str]], where: str,
        setting: dict[str, list[str]]) -> None:
    user, project, environ = layout
    if where == "file":
        user.write_text('# mine\nallow_private = ["@pypy"]\n')
    if where == "variable":
        environ["AGENT_SANDBOX_ALLOW"] = "@pypy"
    with pytest.raises(UsageError) as raised:
        effective(str(project), environ, setting)
    message = raised.value.message
    assert "@pypy: no such host group (did you mean @pypi?); the groups are: @crates, " \
           "@github, @go, @huggingface, @npm, @pypi" in message
    if where == "file":
        assert message.startswith(f"{user}:2: allow_private: ")


@pytest.mark.parametrize("text, line", [
    ('net = "none"\nallow = [\n', 2),  # unclosed at the end: its last line
    ('net = "none"\nallow = ["a"]\nbad = "\\q"\n', 3),
    ('gpu = true\ngpu = false\n', 2),
    ('net = "none"\n\xff = 1\n', 2),  # not UTF-8
])
def test_toml_errors_say_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = tmp_path / "config.toml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(UsageError) as raised:
        read_file(str(path))
    assert raised.value.message.startswith(f"{path}:{line}: not "), raised.value.message


def test_the_group_holding_a_host_names_it_for_a_printed_fix() -> None:
    assert group_of("files.pythonhosted.org") == "@pypi"
    assert group_of("registry.npmjs.org") == "@npm"
    assert group_of("example.com") is None
    assert group_of("pypi.org.evil.test") is None
