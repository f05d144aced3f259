"""The NixOS and home-manager modules (``programs.agent-sandbox``), evaluated with the stub's
module system (undeclared options and wrong types are errors, as in nixpkgs): the agents
chosen are installed confined, and the settings become a config.toml agent-sandbox reads.
The template: ``nix flake init -t`` gives a project whose shell runs its agent confined."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLI, Env
from tests.nix.conftest import Flake

pytestmark = pytest.mark.nix

# What NixOS and home-manager declare, as far as the module sets them.
HOSTS = {
    "nixos": "{ lib, ... }: { options.environment.systemPackages = lib.mkOption "
             "{ type = lib.types.listOf lib.types.package; default = [ ]; }; "
             "options.environment.etc = lib.mkOption { type = lib.types.attrs; default = { }; }; }",
    "home-manager": "{ lib, ... }: { options.home.packages = lib.mkOption "
                    "{ type = lib.types.listOf lib.types.package; default = [ ]; }; "
                    "options.xdg.configFile = lib.mkOption { type = lib.types.attrs; "
                    "default = { }; }; }",
}
OUTPUT = {"nixos": "nixosModules", "home-manager": "homeManagerModules"}
RESULT = {  # where the packages and the config file land
    "nixos": ("environment.systemPackages", 'environment.etc."agent-sandbox/config.toml"'),
    "home-manager": ("home.packages", 'xdg.configFile."agent-sandbox/config.toml"'),
}


def _evaluate(flake: Flake, target: str, settings: str, env: Env,
              cwd: Path) -> subprocess.CompletedProcess[str]:
    """The packages the module installs and the text of the config file it writes (built:
    reading it builds it), or null."""
    packages, config_file = RESULT[target]
    apply = (f"modules: let lib = import {flake.stub}/lib.nix; pkgs = import {flake.stub} {{ }}; "
             "eval = lib.evalModules { specialArgs = { inherit pkgs; }; modules = "
             f"[ ({HOSTS[target]}) modules.default {{ programs.agent-sandbox = {settings}; }} ]; "
             f"}}; c = eval.config; file = c.{config_file}.source or null; in "
             f"{{ packages = map (p: p.name) c.{packages}; "
             "config = if file == null then null else builtins.readFile file; }")
    return flake.nix("eval", "--impure", "--json", flake.ref(OUTPUT[target]), *flake.override,
                     "--apply", apply, env=env.vars, cwd=cwd)


@pytest.mark.parametrize("target", sorted(OUTPUT))
def test_the_module_installs_agents_confined_and_writes_the_config(
        flake: Flake, target: str, env: Env, project: Path) -> None:
    settings = ('{ enable = true; agents = [ "codex" "aider" ]; '
                'settings = { allow = [ "github.com" ]; memory = "4G"; gpu = false; }; }')
    done = _evaluate(flake, target, settings, env, project)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["packages"] == ["agent-sandbox-0.1.0", "codex-sandboxed", "aider-sandboxed"]
    # The file it writes is a configuration agent-sandbox accepts, key by key.
    config_home = env.home / ".config" / "agent-sandbox"
    config_home.mkdir(parents=True)
    (config_home / "config.toml").write_text(result["config"])
    shown = subprocess.run([*CLI, "config"], cwd=project, env=env.vars, capture_output=True,
                           text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    assert "allow = github.com    # " in shown.stdout and "memory = 4G    # " in shown.stdout


@pytest.mark.parametrize("target", sorted(OUTPUT))
def test_disabled_the_module_does_nothing(flake: Flake, target: str, env: Env,
                                          project: Path) -> None:
    done = _evaluate(flake, target, '{ agents = [ "codex" ]; }', env, project)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"packages": [], "config": None}


@pytest.mark.parametrize("value, error", [
    ('{ enable = true; agents = [ "claude" ]; }', "agents' is not of type `list of one of"),
    ('{ enable = true; agent = [ "codex" ]; }', "programs.agent-sandbox.agent' does not exist"),
])
def test_a_wrong_setting_is_an_evaluation_error(flake: Flake, value: str, error: str,
                                                env: Env, project: Path) -> None:
    done = _evaluate(flake, "nixos", value, env, project)
    assert done.returncode != 0 and error in done.stderr, done.stderr


@pytest.mark.integration
def test_the_template_gives_a_confined_shell(flake: Flake, env: Env, tmp_path: Path) -> None:
    made = tmp_path / "new-project"
    made.mkdir()
    init = flake.nix("flake", "init", "-t", flake.ref("default"), env=env.vars, cwd=made)
    assert init.returncode == 0, init.stderr
    assert (made / "flake.nix").is_file()
    status, out = flake.develop_installable(
        [f"path:{made}", "--override-input", "agent-sandbox", flake.ref(),
         "--override-input", "nixpkgs", f"path:{flake.stub}",
         "--override-input", "agent-sandbox/nixpkgs", f"path:{flake.stub}",
         "--no-write-lock-file"], ["codex", "from-the-template"], env=env.vars, cwd=made)
    assert status == 0, out
    assert "fake-codex argv: from-the-template" in out
    assert "fake-codex marker=1 seccomp=2" in out, out
