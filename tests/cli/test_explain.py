"""`agent-sandbox explain` through the real CLI: the state of a path or host, the rule and the
layer behind it; bad input is one error line and exit 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Env, run_cli


@pytest.fixture
def repo(project: Path, env: Env) -> Path:
    subprocess.run(["git", "init", "-q"], cwd=project, check=True, env=env.vars)
    (project / "main.py").write_text("print(1)\n")
    (project / "secrets").mkdir()
    return project


def _explain(args: list[str], cwd: Path, env: Env, **extra: str) -> str:
    done = run_cli(["explain", *args], cwd=cwd, env=env.with_(**extra))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_project_file_is_read_write(repo: Path, env: Env) -> None:
    out = _explain(["./main.py"], repo, env)
    assert out.startswith(f"{repo}/main.py: read-write\n")
    assert f"mount:   --bind {repo} {repo}    # the project, read-write" in out
    assert "layer:   the project" in out


def test_a_system_dir_is_read_only(repo: Path, env: Env) -> None:
    out = _explain(["/usr/bin"], repo, env)
    assert out.startswith("/usr/bin: read-only\n") and "built-in (system, read-only" in out


def test_ssh_keys_are_hidden(repo: Path, env: Env) -> None:
    out = _explain([str(env.home / ".ssh" / "id_ed25519")], repo, env)
    assert out.startswith(f"{env.home}/.ssh/id_ed25519: hidden (not present inside)\n")
    assert f"--tmpfs {env.home}    # empty, size-capped $HOME" in out


def test_a_hidden_path_is_masked_by_its_flag(repo: Path, env: Env) -> None:
    out = _explain(["./secrets", "--hide", "secrets"], repo, env)
    assert out.startswith(f"{repo}/secrets: masked")
    assert f"--perms 0000 --tmpfs {repo}/secrets    # --hide secrets" in out
    assert "layer:   --hide (command line)" in out


def test_protected_files_name_the_protect_rule(repo: Path, env: Env) -> None:
    out = _explain(["./.git/hooks"], repo, env)
    assert out.startswith(f"{repo}/.git/hooks: read-only\n")
    assert "# protected: git hooks: run or read by git on the host" in out
    assert "layer:   built-in: the protected names" in out
    out = _explain(["./.envrc"], repo, env)  # missing: a placeholder holds its place
    assert out.startswith(f"{repo}/.envrc: masked") and "placeholder" in out
    assert "not on the host: the sandbox makes it" in out


def test_a_ro_flag_path(repo: Path, env: Env, tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    out = _explain([str(data / "sub"), "--ro", str(data)], repo, env)
    assert out.startswith(f"{data}/sub: read-only\n")
    assert f"--ro-bind {data} {data}    # --ro {data}" in out
    assert "layer:   --ro (command line)" in out


def test_a_config_file_rule_names_its_file_and_line(repo: Path, env: Env,
                                                    tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = env.home / ".config" / "agent-sandbox" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'# mine\nrw = ["{data}"]\nallow = ["api.example.com"]\n'
                      'protect = ["Makefile"]\n')
    (repo / "Makefile").write_text("all:\n")
    out = _explain([str(data)], repo, env)
    assert out.startswith(f"{data}: read-write\n") and f"layer:   {config}:2" in out
    out = _explain(["./Makefile"], repo, env)
    assert out.startswith(f"{repo}/Makefile: read-only\n")
    assert f"layer:   protect Makefile: {config}:4" in out
    out = _explain(["api.example.com"], repo, env)
    assert out.startswith("api.example.com: allowed on ports 443, 80\n")
    assert f"port 443: --allow api.example.com    layer: {config}:3" in out


def test_allowed_and_denied_hosts(repo: Path, env: Env) -> None:
    out = _explain(["github.com", "--allow", "github.com"], repo, env)
    assert "port 443: --allow github.com    layer: --allow (command line)" in out
    out = _explain(["github.com:22", "--allow", "github.com"], repo, env)
    assert out.startswith("github.com:22: denied (port 22 not allowed")
    assert "to allow it: --allow github.com:22" in out
    out = _explain(["evil.example", "--allow", "github.com"], repo, env,
                   AGENT_SANDBOX_ALLOW="pypi.org")
    assert out.startswith("evil.example: denied (not in the allow-list)")
    out = _explain(["pypi.org"], repo, env, AGENT_SANDBOX_ALLOW="pypi.org")
    assert "layer: AGENT_SANDBOX_ALLOW (environment)" in out
    out = _explain(["api.anthropic.com", "--", "claude"], repo, env)
    assert "layer: preset:claude" in out
    out = _explain(["example.com"], repo, env)
    assert out.startswith("example.com: denied (--net none")


@pytest.mark.parametrize("args, needle", [
    (["./nope"], "nope: no such file or directory on the host; created there, it would be "
                 "read-write inside"),
    (["~/nope"], "nope: no such file or directory on the host; created there, it would be "
                 "hidden inside"),
    (["not a host"], "not a host name"),
    (["src/main.py"], "a relative path starts with ./, or use --path"),
    (["example.com:0"], "not a host name"),
    ([], "explain takes one PATH or HOST"),
    (["/etc", "--dry-run"], "--dry-run does not go with explain"),
])
def test_bad_input_is_one_line_and_exit_2(repo: Path, env: Env, args: list[str],
                                          needle: str) -> None:
    done = run_cli(["explain", *args], cwd=repo, env=env.vars)
    assert done.returncode == 2, done.stdout
    assert done.stderr.startswith("agent-sandbox: error: ") and needle in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_forced_kinds(repo: Path, env: Env) -> None:
    assert _explain(["--path", "main.py"], repo, env).startswith(f"{repo}/main.py: read-write")
    out = _explain(["--host", "main.py"], repo, env)
    assert out.startswith("main.py: denied") and "write ./main.py or --path main.py" in out
