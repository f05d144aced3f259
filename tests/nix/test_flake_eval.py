"""The flake evaluates offline: every output is there for both systems, `nix flake check`
passes without building, and unfree packages other than Claude Code stay refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Env
from tests.nix.conftest import SHELLS, Flake

pytestmark = pytest.mark.nix

SYSTEMS = {"x86_64-linux", "aarch64-linux"}


def test_flake_show_lists_every_output(flake: Flake, env: Env, project: Path) -> None:
    shown = flake.nix("flake", "show", "--json", flake.ref(), *flake.override,
                      env=env.vars, cwd=project)
    assert shown.returncode == 0, shown.stderr
    outputs = json.loads(shown.stdout)
    assert set(outputs) == {"packages", "devShells", "apps", "checks", "overlays", "lib",
                            "formatter", "nixosModules", "homeManagerModules", "templates"}
    for system in SYSTEMS:
        assert set(outputs["packages"][system]) == {"default", "agent-sandbox", *SHELLS}
        assert set(outputs["devShells"][system]) == {"default", *SHELLS}
        assert set(outputs["apps"][system]) == {"default", "agent-sandbox", *SHELLS}
        assert set(outputs["checks"][system]) == {"agent-sandbox", "devShell-default",
                                                  *(f"devShell-{s}" for s in SHELLS)}
    assert set(outputs["overlays"]) == {"default"}


def test_flake_check_evaluates(flake: Flake, env: Env, project: Path) -> None:
    checked = flake.nix("flake", "check", "--no-build", flake.ref(), *flake.override,
                        env=env.vars, cwd=project)
    assert checked.returncode == 0, checked.stderr


def _eval(flake: Flake, *args: str, env: Env, project: Path) -> tuple[int, str]:
    done = flake.nix("eval", "--json", *args, env=env.vars, cwd=project)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.integration
def test_mk_agent_shell_with_another_nixpkgs(flake: Flake, env: Env, project: Path) -> None:
    # As docs/nix.md shows for another flake: its own nixpkgs (no overlay) and agent; the
    # command's name comes from the package's mainProgram.
    shell = (f"import {flake.root}/nix/mk-agent-shell.nix {{ pkgs = import {flake.stub} {{ }}; "
             "agent = (import %s { }).codex; preset = \"codex\"; }" % flake.stub)
    status, out = flake.develop_installable(["--impure", "--expr", shell], ["codex", "mine"],
                                            env=env.vars, cwd=project)
    assert status == 0, out
    assert "fake-codex argv: mine" in out
    assert "fake-codex marker=1 seccomp=2" in out
    assert "preset codex" in out


@pytest.mark.integration
@pytest.mark.parametrize("agent", sorted(SHELLS))
def test_nix_run_starts_the_agent_confined(flake: Flake, agent: str, env: Env,
                                           project: Path) -> None:
    """`nix run .#<agent>`: the confined package (lib.wrapAgent) as an app."""
    command = SHELLS[agent][0]
    done = flake.nix("run", flake.ref(agent), *flake.override, "--", "--version",
                     env=env.vars, cwd=project)
    assert done.returncode == 0, done.stderr
    assert f"fake-{command} argv: --version" in done.stdout
    assert f"fake-{command} marker=1 seccomp=2" in done.stdout, done.stdout


def test_wrap_agent_installs_like_the_agent(flake: Flake, env: Env, project: Path) -> None:
    """meta.mainProgram is the command, the unwrapped agent stays reachable."""
    done = flake.nix("eval", "--json", flake.ref("packages.x86_64-linux.codex"), "--apply",
                     "p: [ p.meta.mainProgram p.unwrapped.pname p.preset ]", *flake.override,
                     env=env.vars, cwd=project)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["codex", "codex", "codex"]


def test_claude_code_passes_the_unfree_predicate(flake: Flake, env: Env,
                                                 project: Path) -> None:
    status, out = _eval(flake, flake.ref("devShells.x86_64-linux.claude-code.name"),
                        *flake.override, env=env, project=project)
    assert status == 0 and '"claude-sandboxed"' in out, out
    # The stub refuses it like nixpkgs does when no predicate admits it.
    expr = f"(import {flake.stub} {{ }}).claude-code.name"
    status, out = _eval(flake, "--impure", "--expr", expr, env=env, project=project)
    assert status != 0 and "unfree license" in out, out
