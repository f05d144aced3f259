"""Positive controls: legitimate work inside the real sandbox still succeeds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import CLI, INSIDE_UID, Env, run_cli, sandbox_sh

pytestmark = pytest.mark.integration


def test_a_file_written_in_the_project_persists(project: Path, env: Env) -> None:
    done = sandbox_sh("echo hello > out.txt && mkdir -p sub && echo x > sub/y",
                      cwd=project, env=env.vars)
    assert done.returncode == 0, done.stderr
    assert (project / "out.txt").read_text() == "hello\n"
    assert (project / "sub" / "y").read_text() == "x\n"


def test_git_commit_with_the_users_identity(project: Path, env: Env) -> None:
    subprocess.run(["git", "init", "-q", str(project)], check=True, env=env.vars)
    (project / "a.txt").write_text("a\n")
    done = sandbox_sh(
        "git add a.txt && git commit -q -m 'from the sandbox' && git log -1 --format='%an <%ae>'",
        cwd=project, env=env.vars,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Sandbox Tester <t@example.invalid>"
    log = subprocess.run(["git", "-C", str(project), "log", "--format=%s"], env=env.vars,
                         capture_output=True, text=True, check=True)
    assert log.stdout.strip() == "from the sandbox"


def test_the_git_identity_is_read_only(project: Path, env: Env) -> None:
    done = sandbox_sh("git config --global user.name Mallory", cwd=project, env=env.vars)
    assert done.returncode != 0
    assert "Sandbox Tester" in (env.home / ".gitconfig").read_text()


def test_python_shell_and_coreutils(project: Path, env: Env) -> None:
    done = sandbox_sh(
        "python3 -c 'print(6*7)' && printf 'b\\na\\n' | sort | tr -d '\\n' && echo "
        "&& echo abc | sha256sum | cut -c1-8 && ls / >/dev/null && id -u",
        cwd=project, env=env.vars,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["42", "ab", "edeaaff3", str(INSIDE_UID)]


def test_tmp_is_writable_and_private(project: Path, env: Env) -> None:
    done = sandbox_sh("echo x > /tmp/f && cat /tmp/f && echo $TMPDIR && ls -A /tmp",
                      cwd=project, env=env.vars)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split()
    assert lines[:2] == ["x", "/tmp"]


def test_cwd_inside_is_cwd_outside(project: Path, env: Env) -> None:
    sub = project / "deep" / "er"
    sub.mkdir(parents=True)
    done = sandbox_sh("pwd", cwd=sub, env=env.vars)
    assert done.stdout.strip() == str(sub)


def test_paths_with_spaces_and_leading_dashes(tmp_path: Path, env: Env) -> None:
    odd = tmp_path / "-my project\nwith newline"
    odd.mkdir()
    done = run_cli(["--", "sh", "-c", 'pwd; echo ok > "$1"', "sh", "--output"],
                   cwd=odd, env=env.vars)
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip("\n") == str(odd)
    assert (odd / "--output").read_text() == "ok\n"


def test_exit_status_is_propagated(project: Path, env: Env) -> None:
    for status in (0, 1, 42, 125, 255):  # 1 and 125 too: bwrap's own failures never pose as them
        assert sandbox_sh(f"exit {status}", cwd=project, env=env.vars).returncode == status


def test_signal_death_is_128_plus_n(project: Path, env: Env) -> None:
    assert sandbox_sh("kill -TERM $$", cwd=project, env=env.vars).returncode == 128 + 15
    assert sandbox_sh("kill -KILL $$", cwd=project, env=env.vars).returncode == 128 + 9


def test_extra_binds(project: Path, env: Env, tmp_path: Path) -> None:
    ro_dir = tmp_path / "data"
    ro_dir.mkdir()
    (ro_dir / "in.txt").write_text("readable\n")
    rw_dir = tmp_path / "out"
    rw_dir.mkdir()
    hidden = project / "secrets"
    hidden.mkdir()
    (hidden / "key").write_text("hidden\n")
    (project / ".env").write_text("TOKEN=1\n")
    done = sandbox_sh(
        f"cat {ro_dir}/in.txt; (echo w > {ro_dir}/new) 2>/dev/null || echo ro-refused; "
        f"echo w > {rw_dir}/new && echo rw-ok; "
        "ls -A secrets 2>/dev/null || echo dir-unreadable; (cat .env) 2>/dev/null || echo no-env",
        cwd=project, env=env.vars,
        extra=["--ro", str(ro_dir), "--rw", str(rw_dir), "--hide", "secrets", "--hide", ".env"],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["readable", "ro-refused", "rw-ok", "dir-unreadable", "no-env"]
    assert (rw_dir / "new").read_text() == "w\n"
    assert not (ro_dir / "new").exists()
    assert (hidden / "key").read_text() == "hidden\n"


def test_env_flags(project: Path, env: Env) -> None:
    done = sandbox_sh('echo "$FOO|$BAR|$AGENT_SANDBOX_ACTIVE|$HOME"', cwd=project,
                      env=env.with_(BAR="from-host"),
                      extra=["--env", "FOO=a b", "--env", "BAR"])
    assert done.stdout.strip() == f"a b|from-host|1|{env.home}"


def test_host_network_mode_still_isolates_everything_else(project: Path, env: Env) -> None:
    done = sandbox_sh("ls /sys/class/net 2>/dev/null | wc -l; id -u; echo ok",
                      cwd=project, env=env.vars, extra=["--net", "host"])
    assert done.returncode == 0, done.stderr
    assert "--net host shares the host network" in done.stderr


def test_config_files_shape_the_sandbox(project: Path, env: Env) -> None:
    user = env.home / ".config" / "agent-sandbox"
    user.mkdir(parents=True)
    (user / "config.toml").write_text('env = ["FROM_USER_CONFIG=yes"]\n')
    (project / ".agent-sandbox.toml").write_text('hide = ["secrets.txt"]\n')
    (project / "secrets.txt").write_text("hidden\n")
    done = sandbox_sh('echo "$FROM_USER_CONFIG"; (cat secrets.txt) 2>/dev/null || echo hidden',
                      cwd=project, env=env.vars)
    assert done.stdout.split() == ["yes", "hidden"], done.stderr
    # The project file itself is protected: the command cannot loosen it for next time.
    assert "SUCCEEDED" not in sandbox_sh("(echo 'hide = []' > .agent-sandbox.toml) 2>/dev/null"
                                         " && echo SUCCEEDED; true", cwd=project,
                                         env=env.vars).stdout


@pytest.mark.parametrize("net", [["--net", "none"], ["--allow", "example.com"]])
def test_a_caller_with_many_open_fds(project: Path, env: Env, net: list[str]) -> None:
    # `nix develop` leaves fds open, so the launcher's own get two-digit numbers; the
    # start script runs in sh (dash), which redirects to one-digit fds only.
    hold = " ".join(f"{fd}</dev/null" for fd in range(3, 16))
    done = subprocess.run(["bash", "-c", f'exec {hold}; exec "$@"', "bash", *CLI, "-q", *net,
                           "--", "sh", "-c", "echo started; ls /proc/self/fd | wc -l"],
                          cwd=project, env=env.vars, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    started, count = done.stdout.split()
    assert started == "started"
    assert int(count) <= 5  # stdio, ls's directory fd, and nothing the caller held
