"""`nix develop .#<agent>`: the agent's name runs it inside the real sandbox; the escape hatch.

Each fake agent (stub-nixpkgs) prints its argv, the sandbox marker, its seccomp mode, the
file system type of $HOME and a few variables `nix develop` sets.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest

from tests.conftest import Env
from tests.nix.conftest import SHELLS, Flake

pytestmark = [pytest.mark.integration, pytest.mark.nix]


def _report(out: str, command: str) -> dict[str, str]:
    """The fake agent's ``key=value`` words, or an assertion with the whole output."""
    found = re.search(rf"^fake-{command} marker=.*$", out, re.M)
    assert found, out
    return dict(word.split("=", 1) for word in found.group(0).split()[1:])


def _confined(report: dict[str, str]) -> bool:
    return report["marker"] == "1" and report["seccomp"] == "2"


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_agent_command_runs_confined(flake: Flake, shell: str, env: Env,
                                     project: Path) -> None:
    command, preset = SHELLS[shell]
    status, out = flake.develop(shell, command, "--version", "a b", env=env.vars, cwd=project)
    assert status == 0, out
    assert f"fake-{command} argv: --version a b" in out
    report = _report(out, command)
    assert _confined(report), out
    # Its own home (the preset's state), never the host's: no keys, no cloud credentials.
    assert not {".ssh", ".aws"} & set(report["home-entries"].split(",")), out
    assert f"preset {preset}" in out  # the shell hook's banner
    # What `nix develop` sets for builds stays out of the sandbox.
    assert f"fake-{command} env: IN_NIX_SHELL=unset shellHook= TMPDIR=/tmp" in out


_PYTHON_VARIABLES = ("PYTHONPATH", "PYTHONHASHSEED", "PYTHONNOUSERSITE", "PYTHONHOME")


@pytest.mark.parametrize("shell", ["default", "claude-code"])
def test_the_shells_leak_no_python_and_no_compiler(flake: Flake, shell: str, env: Env,
                                                   project: Path) -> None:
    """agent-sandbox is a Python application: in a shell's packages, nixpkgs' Python setup
    hook would export its Python environment into the user's shell (and into an agent run
    with AGENT_SANDBOX=false). The stub models that propagation; the shells must not
    trigger it, nor bring a C compiler (mkShellNoCC)."""
    script = ('for v in ' + " ".join(_PYTHON_VARIABLES) + '; do eval "echo $v=\\${$v-unset}"; '
              'done; echo "$PATH" | tr : "\\n" | grep -e -python3- -e gcc-wrapper || true; '
              'command -v agent-sandbox')
    status, out = flake.develop(shell, "sh", "-c", script, env=env.vars, cwd=project)
    assert status == 0, out
    for name in _PYTHON_VARIABLES:
        assert f"{name}=unset" in out, out
    assert "-python3-" not in out and "gcc-wrapper" not in out, out
    assert re.search(r"^/nix/store/\S+/bin/agent-sandbox\r?$", out, re.M), out


def test_escape_hatch_runs_unconfined_loudly_and_is_logged(flake: Flake, env: Env,
                                                           project: Path) -> None:
    state = env.home / "state"
    status, out = flake.develop("claude-code", "claude", "hi",
                                env=env.with_(AGENT_SANDBOX="false", XDG_STATE_HOME=str(state)),
                                cwd=project)
    assert status == 0, out
    assert not _confined(_report(out, "claude")), out
    assert "WARNING: AGENT_SANDBOX=false: running" in out and "UNCONFINED" in out
    records = [json.loads(line) for line in
               (state / "agent-sandbox" / "decisions.jsonl").read_text().splitlines()]
    bypass = [r for r in records if r["decision"] == "bypass"]
    assert len(bypass) == 1 and bypass[0]["command"][1:] == ["hi"], records
    assert bypass[0]["agent"] == "claude" and bypass[0]["cwd"] == str(project)


def test_unknown_switch_value_starts_nothing(flake: Flake, env: Env, project: Path) -> None:
    status, out = flake.develop("claude-code", "claude", env=env.with_(AGENT_SANDBOX="off"),
                                cwd=project)
    assert status == 2, out
    assert "AGENT_SANDBOX='off': expected true or false" in out
    assert "fake-claude" not in out


def test_interactive_shell_confines_the_agent(flake: Flake, env: Env, project: Path) -> None:
    shell = flake.spawn_shell("claude-code", env=env.vars, cwd=project)
    try:
        shell.expect("runs confined here")
        shell.sendline("claude from-the-shell; echo status=$?")
        shell.expect(r"fake-claude marker=(\S+) seccomp=(\S+)")
        assert shell.match.group(1) == "1" and shell.match.group(2) == "2"
        shell.expect("status=0")
        shell.sendline("exit")
        shell.expect_exact(pexpect.EOF)
    finally:
        shell.close(force=True)


def test_alias_that_bypasses_the_wrapper_is_reported(flake: Flake, env: Env,
                                                     project: Path) -> None:
    # ~/.bashrc runs before the dev shell's hook in an interactive `nix develop`.
    (env.home / ".bashrc").write_text("alias claude=true\n")
    shell = flake.spawn_shell("claude-code", env=env.vars, cwd=project)
    try:
        shell.expect(r"WARNING: claude in this shell is not the sandbox wrapper \(it is a alias\)")
    finally:
        shell.close(force=True)


def test_no_warning_when_the_wrapper_is_reached(flake: Flake, env: Env,
                                                project: Path) -> None:
    status, out = flake.develop("claude-code", "true", env=env.vars, cwd=project)
    assert status == 0, out
    assert "runs confined here" in out and "not the sandbox wrapper" not in out


def test_direnv_style_environment_confines_the_agent(flake: Flake, env: Env,
                                                     project: Path) -> None:
    # direnv's `use flake` evaluates `nix print-dev-env` and keeps only variables: the
    # wrapper on PATH is what reaches the agent, not a shell function.
    printed = flake.nix("print-dev-env", flake.ref("claude-code"), *flake.override,
                        env=env.vars, cwd=project)
    assert printed.returncode == 0, printed.stderr
    script = project.parent / "dev-env.sh"
    script.write_text(printed.stdout)
    run = subprocess.run(["bash", "-c", f'eval "$(cat {script})" && claude via-direnv'],
                         env=env.vars, cwd=project, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "fake-claude argv: via-direnv" in run.stdout
    assert _confined(_report(run.stdout, "claude")), run.stdout


def test_wrapper_inside_the_sandbox_does_not_nest(flake: Flake, env: Env,
                                                  project: Path) -> None:
    # Inside, the agent's wrapper is still first on PATH; it must exec the agent, not a
    # second agent-sandbox (whose Python is not even visible inside).
    status, out = flake.develop("claude-code", "agent-sandbox", "-q", "--", "claude", "nested",
                                env=env.vars, cwd=project)
    assert status == 0, out
    assert "fake-claude argv: nested" in out
    assert _confined(_report(out, "claude")), out


def test_a_marker_set_outside_a_sandbox_does_not_skip_it(flake: Flake, env: Env,
                                                          project: Path) -> None:
    # The wrapper execs the agent directly only with the marker *and* a seccomp filter on
    # itself; the marker alone (a variable anyone can set) still gets the sandbox.
    status, out = flake.develop("claude-code", "claude", "x",
                                env=env.with_(AGENT_SANDBOX_ACTIVE="1"), cwd=project)
    assert status == 0, out
    assert _confined(_report(out, "claude")), out
    assert "AGENT_SANDBOX_ACTIVE is set but this process is not confined" in out


def test_a_marker_under_someone_elses_seccomp_filter_does_not_skip_it(
        flake: Flake, env: Env, project: Path) -> None:
    # Containers and systemd services run with a seccomp filter and often no_new_privs:
    # with the marker set there, the agent must still be confined.
    allow_all = ("import os, sys, pyseccomp as s; s.SyscallFilter(s.ALLOW).load(); "
                 "os.execvp('claude', ['claude', 'x'])")
    status, out = flake.develop("claude-code", sys.executable, "-c", allow_all,
                                env=env.with_(AGENT_SANDBOX_ACTIVE="1"), cwd=project)
    assert status == 0, out
    assert "AGENT_SANDBOX_ACTIVE is set but this process is not confined" in out
    assert "fake-claude argv: x" in out


def test_default_shell_has_the_launcher(flake: Flake, env: Env, project: Path) -> None:
    status, out = flake.develop("default", "agent-sandbox", "-q", "--", "sh", "-c",
                                'echo "inside marker=$AGENT_SANDBOX_ACTIVE"; '
                                'stat -f -c "home %T" ~; ls -A ~',
                                env=env.vars, cwd=project)
    assert status == 0, out
    assert "confine a command with: agent-sandbox -- COMMAND" in out
    assert "inside marker=1" in out
    assert "home tmpfs" in out and ".ssh" not in out
