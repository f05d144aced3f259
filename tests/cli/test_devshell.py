"""The fronts the Nix dev shells call: `agent-sandbox agent-wrapper` and `shell-hook`.

The escape hatch, bad switch values and the banner need no sandbox; the wrapper's confined
path and the marker that is not believed launch the real one.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Env, run_cli


@pytest.fixture
def agent(project: Path) -> Path:
    """A stand-in agent that reports whether it runs confined (in the project, so that the
    sandbox shows it)."""
    script = project / "bin" / "fake-agent"
    script.parent.mkdir()
    script.write_text('#!/bin/sh\necho "agent argv: $*"\n'
                      'grep "^Seccomp:" /proc/self/status\necho "marker=$AGENT_SANDBOX_ACTIVE"\n')
    script.chmod(0o755)
    return script


def _decisions(env: Env) -> list[dict[str, object]]:
    log = env.home / ".local" / "state" / "agent-sandbox" / "decisions.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize("value", ["false", "0", "no", "FALSE", " No "])
def test_switch_off_runs_unconfined_after_a_loud_warning(agent: Path, project: Path, env: Env,
                                                        value: str) -> None:
    done = run_cli(["agent-wrapper", "--agent", "codex", "--", str(agent), "x y"], cwd=project,
                   env=env.with_(AGENT_SANDBOX=value))
    assert done.returncode == 0, done.stderr
    assert "agent argv: x y" in done.stdout
    assert "Seccomp:\t0" in done.stdout  # really unconfined, as asked
    assert f"WARNING: AGENT_SANDBOX=false: running {agent} UNCONFINED" in done.stderr
    [record] = _decisions(env)
    assert record["decision"] == "bypass" and record["agent"] == "codex"
    assert record["command"] == [str(agent), "x y"] and record["cwd"] == str(project)


@pytest.mark.parametrize("value", ["off", "flase", "2"])
def test_unknown_switch_value_is_a_usage_error(agent: Path, project: Path, env: Env,
                                               value: str) -> None:
    done = run_cli(["agent-wrapper", "--agent", "codex", "--", str(agent)], cwd=project,
                   env=env.with_(AGENT_SANDBOX=value))
    assert done.returncode == 2
    assert done.stderr.startswith(f"agent-sandbox: error: AGENT_SANDBOX={value!r}: expected "
                                  "true or false")
    assert "agent argv" not in done.stdout and "Traceback" not in done.stderr
    assert _decisions(env) == [] and env.workdirs() == []


@pytest.mark.parametrize("command", [[], [""]])
def test_missing_agent_command_is_a_usage_error(project: Path, env: Env,
                                                command: list[str]) -> None:
    done = run_cli(["agent-wrapper", "--agent", "codex", "--", *command], cwd=project,
                   env=env.with_(AGENT_SANDBOX="false"))
    assert done.returncode == 2 and "missing the agent's command" in done.stderr


def test_unrunnable_agent_when_bypassing_is_a_clear_error(project: Path, env: Env) -> None:
    done = run_cli(["agent-wrapper", "--", str(project / "nope")], cwd=project,
                   env=env.with_(AGENT_SANDBOX="false"))
    assert done.returncode == 2
    assert f"cannot run {project / 'nope'}: No such file" in done.stderr


@pytest.mark.integration
@pytest.mark.parametrize("switch", [None, "true", "1", "yes", ""])
def test_switch_on_or_unset_confines(agent: Path, project: Path, env: Env,
                                     switch: str | None) -> None:
    environ = env.vars if switch is None else env.with_(AGENT_SANDBOX=switch)
    done = run_cli(["agent-wrapper", "--agent", "none", "--", str(agent), "in"], cwd=project,
                   env=environ)
    assert done.returncode == 0, done.stderr
    assert "agent argv: in" in done.stdout and "Seccomp:\t2" in done.stdout
    assert "marker=1" in done.stdout
    assert [r["decision"] for r in _decisions(env)] == ["start", "exit"]  # no bypass


@pytest.mark.integration
def test_marker_outside_a_sandbox_is_not_believed(agent: Path, project: Path,
                                                   env: Env) -> None:
    done = run_cli(["agent-wrapper", "--", str(agent)], cwd=project,
                   env=env.with_(AGENT_SANDBOX_ACTIVE="1"))
    assert done.returncode == 0, done.stderr
    assert "Seccomp:\t2" in done.stdout
    assert "AGENT_SANDBOX_ACTIVE is set but this process is not confined" in done.stderr


def test_shell_hook_banner(project: Path, env: Env) -> None:
    done = run_cli(["shell-hook", "--agent", "claude", "--command", "claude"], cwd=project,
                   env=env.vars)
    assert done.returncode == 0 and done.stdout == ""
    assert done.stderr.startswith("agent-sandbox: `claude` runs confined here (preset claude: ")
    assert "to run it unconfined once: AGENT_SANDBOX=false claude" in done.stderr
    off = run_cli(["shell-hook", "--agent", "claude", "--command", "claude"], cwd=project,
                  env=env.with_(AGENT_SANDBOX="no"))
    assert "WARNING: AGENT_SANDBOX=false: `claude` runs UNCONFINED in this shell" in off.stderr
    bad = run_cli(["shell-hook", "--agent", "claude", "--command", "claude"], cwd=project,
                  env=env.with_(AGENT_SANDBOX="nah"))
    assert bad.returncode == 0 and "`claude` refuses to start until it is fixed" in bad.stderr
    assert "runs confined here" not in bad.stderr


@pytest.mark.parametrize("define, warned", [
    ("", False),
    ("alias fake-agent=true", True),
    ("fake-agent() { true; }", True),
    ("PATH=/elsewhere:$PATH", False),  # nothing named fake-agent there
])
def test_shell_hook_reports_what_bypasses_the_wrapper(agent: Path, project: Path, env: Env,
                                                      define: str, warned: bool) -> None:
    hook = run_cli(["shell-hook", "--agent", "none", "--command", "fake-agent", "--wrapper",
                    str(agent)], cwd=project, env=env.vars)
    assert hook.returncode == 0, hook.stderr
    script = f'shopt -s expand_aliases; PATH="{agent.parent}:$PATH"; {define}\n{hook.stdout}'
    shell = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                           env=env.vars, timeout=30)
    assert ("so it would run UNCONFINED" in shell.stderr) is warned, shell.stderr


def test_shell_hook_without_an_agent(project: Path, env: Env) -> None:
    done = run_cli(["shell-hook"], cwd=project, env=env.vars)
    assert done.returncode == 0 and done.stdout == ""
    assert "confine a command with: agent-sandbox -- COMMAND" in done.stderr
