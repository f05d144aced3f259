"""Bad input: one clear line naming what is wrong, the documented exit status, no traceback,
and nothing started (no work dir was ever created)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IS_ROOT, Env, run_cli


def _assert_clean_error(done: object, status: int, *needles: str) -> None:
    import subprocess

    assert isinstance(done, subprocess.CompletedProcess)
    assert done.returncode == status, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("agent-sandbox: error: ")
    for needle in needles:
        assert needle in done.stderr


def _nothing_started(env: Env) -> None:
    assert env.workdirs() == []


def test_unknown_option(project: Path, env: Env) -> None:
    done = run_cli(["--bogus", "--", "true"], cwd=project, env=env.vars)
    _assert_clean_error(done, 2, "--bogus")
    _nothing_started(env)


def test_abbreviated_options_are_not_guessed(project: Path, env: Env) -> None:
    done = run_cli(["--proj", str(project), "true"], cwd=project, env=env.vars)
    _assert_clean_error(done, 2, "--proj")


def test_missing_command(project: Path, env: Env) -> None:
    for args in ([], ["--"], ["--ro", "/usr"]):
        done = run_cli(args, cwd=project, env=env.vars)
        _assert_clean_error(done, 2, "missing COMMAND")
    _nothing_started(env)


def test_missing_project_dir(project: Path, env: Env) -> None:
    done = run_cli(["--project", str(project / "nope"), "--", "true"], cwd=project, env=env.vars)
    _assert_clean_error(done, 2, "--project", "no such directory")
    _nothing_started(env)


def test_home_and_system_dirs_are_not_projects(project: Path, env: Env) -> None:
    for bad in (str(env.home), "/", "/usr", "/tmp", str(env.home.parent)):
        done = run_cli(["--project", bad, "--", "true"], cwd=project, env=env.vars)
        _assert_clean_error(done, 2, "cannot be the project")
    done = run_cli(["--", "true"], cwd=env.home, env=env.vars)  # cwd = $HOME, no --project
    _assert_clean_error(done, 2, "home directory")


def test_command_not_found(project: Path, env: Env) -> None:
    done = run_cli(["--", "no-such-command-xyz"], cwd=project, env=env.vars)
    _assert_clean_error(done, 127, "no-such-command-xyz: command not found inside the sandbox")
    _nothing_started(env)


def test_command_only_on_the_host_says_where_it_is(project: Path, env: Env) -> None:
    """Shown by default (tests/integration/test_installs.py); with that off, 127 and the
    launch that would show it."""
    bindir = env.home / ".local" / "bin"
    bindir.mkdir(parents=True)
    tool = bindir / "mytool"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    done = run_cli(["--no-show-command-install", "--", "mytool"], cwd=project,
                   env=env.with_(PATH=f"{bindir}:/usr/bin:/bin"))
    _assert_clean_error(done, 127, f"it is installed at {tool}",
                        f"agent-sandbox --ro {bindir} --no-show-command-install -- mytool")


def test_command_not_executable(project: Path, env: Env) -> None:
    (project / "script.sh").write_text("echo hi\n")
    done = run_cli(["--", "./script.sh"], cwd=project, env=env.vars)
    _assert_clean_error(done, 126, "not executable")


def test_deleted_cwd(project: Path, env: Env) -> None:
    gone = project / "gone"
    gone.mkdir()
    # Start a shell in the directory, remove it, then run the CLI from there.
    script = f"cd {gone} && rmdir {gone} && exec \"$@\""
    import subprocess
    import sys

    done = subprocess.run(["sh", "-c", script, "sh", sys.executable, "-m", "agent_sandbox",
                           "--", "true"], env=env.vars, capture_output=True, text=True,
                          check=False)
    _assert_clean_error(done, 2, "the current directory no longer exists")


@pytest.mark.skipif(IS_ROOT, reason="root bypasses directory permissions; .ci/run repeats "
                    "this suite as an unprivileged user, where it runs")
def test_unreadable_cwd(project: Path, env: Env) -> None:
    locked = project / "locked"
    locked.mkdir()
    import subprocess
    import sys

    script = f"cd {locked} && chmod 0 {locked} && exec \"$@\""
    try:
        done = subprocess.run(["sh", "-c", script, "sh", sys.executable, "-m", "agent_sandbox",
                               "--", "true"], env=env.vars, capture_output=True, text=True,
                              check=False)
    finally:
        locked.chmod(0o755)
    _assert_clean_error(done, 2, "not readable")


@pytest.mark.parametrize("bad", ["LD_PRELOAD=/x.so", "NODE_OPTIONS=--require=/x",
                                 "BASH_ENV", "1BAD", "A-B=1", "=x", "HOME=/x"])
def test_bad_env_flags(project: Path, env: Env, bad: str) -> None:
    done = run_cli(["--env", bad, "--", "true"], cwd=project, env=env.vars)
    _assert_clean_error(done, 2, "--env")
    _nothing_started(env)


def test_missing_extra_path(project: Path, env: Env) -> None:
    for flag in ("--ro", "--rw", "--hide"):
        done = run_cli([flag, "/no/such/path", "--", "true"], cwd=project, env=env.vars)
        _assert_clean_error(done, 2, f"{flag} /no/such/path", "no such file")


def test_home_or_its_parent_as_an_extra_path_is_refused_with_a_fix_that_works(
        project: Path, env: Env) -> None:
    """It would cover the sandbox's $HOME and show every key; the printed flag works."""
    (env.home / ".local/bin").mkdir(parents=True)
    for flag in ("--ro", "--rw"):
        for path in (env.home, env.home.parent):
            done = run_cli([flag, str(path), "--", "true"], cwd=project, env=env.vars)
            _assert_clean_error(done, 2, f"{flag} {path}: your home directory")
            _nothing_started(env)
            suggested = re.search(r"for example (--r[ow] ~/\S+)", done.stderr)
            assert suggested, done.stderr
            option, where = suggested[1].split()
            pasted = run_cli([option, where.replace("~", str(env.home), 1), "--", "true"],
                             cwd=project, env=env.vars)
            assert pasted.returncode == 0, pasted.stderr


def test_filtered_network_without_an_allow_list(project: Path, env: Env) -> None:
    done = run_cli(["--net", "filtered", "--", "true"], cwd=project, env=env.vars)
    _assert_clean_error(done, 2, "--net filtered needs at least one --allow")


def test_bad_network_mode(project: Path, env: Env) -> None:
    done = run_cli(["--net", "open", "--", "true"], cwd=project, env=env.vars)
    _assert_clean_error(done, 2, "--net")


def test_json_without_check(project: Path, env: Env) -> None:
    done = run_cli(["--json", "--", "true"], cwd=project, env=env.vars)
    _assert_clean_error(done, 2, "--json goes with --check")


@pytest.mark.integration
def test_untrusted_bwrap_is_refused_unless_explicit(project: Path, env: Env) -> None:
    fake = project / "bwrap"
    fake.write_text("#!/bin/sh\necho UNCONFINED\n")
    fake.chmod(0o755)
    # Earlier on PATH: ignored (a system bwrap is used, the command runs confined).
    done = run_cli(["--", "true"], cwd=project, env=env.with_(PATH=f"{project}:/usr/bin:/bin"))
    assert done.returncode == 0 and "UNCONFINED" not in done.stdout + done.stderr
    done = run_cli(["--", "true"], cwd=project, env=env.with_(AGENT_SANDBOX_BWRAP="bwrap"))
    _assert_clean_error(done, 2, "AGENT_SANDBOX_BWRAP", "absolute")


def test_help_and_version(project: Path, env: Env) -> None:
    done = run_cli(["--help"], cwd=project, env=env.vars)
    assert done.returncode == 0
    for text in ("--project", "--net", "--dry-run", "--check", "125", "127"):
        assert text in done.stdout
    done = run_cli(["--version"], cwd=project, env=env.vars)
    assert done.returncode == 0 and done.stdout.startswith("agent-sandbox ")


def test_dry_run_prints_the_plan_and_starts_nothing(project: Path, env: Env) -> None:
    done = run_cli(["--dry-run", "--env", "SECRET_TOKEN", "--", "bash", "-c", "echo 'a b'"],
                   cwd=project, env=env.with_(SECRET_TOKEN="tok-123"))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "--unshare-net" in out and f"--bind {project} {project}" in out
    assert "bash -c 'echo '\"'\"'a b'\"'\"''" in out
    assert "SECRET_TOKEN=<from host>" in out and "tok-123" not in out
    _nothing_started(env)


def test_config_shows_each_value_and_where_it_came_from(project: Path, env: Env) -> None:
    user = env.home / ".config" / "agent-sandbox"
    user.mkdir(parents=True)
    (user / "config.toml").write_text('allow = ["api.anthropic.com"]\n')
    (project / ".agent-sandbox.toml").write_text('hide = [".env"]\n')
    (project / ".env").write_text("TOKEN=1\n")
    done = run_cli(["config", "--allow", "pypi.org"], cwd=project,
                   env=env.with_(AGENT_SANDBOX_TIMEOUT="1h"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert f"allow = api.anthropic.com, pypi.org    # {user}/config.toml:1 + --allow" in lines
    assert f"hide = {project}/.env    # {project}/.agent-sandbox.toml:1" in lines
    assert "timeout = 1h    # AGENT_SANDBOX_TIMEOUT" in lines


def test_a_widening_project_file_stops_the_launch(project: Path, env: Env) -> None:
    (project / ".agent-sandbox.toml").write_text('allow = ["evil.example.com"]\n')
    done = run_cli(["--", "touch", "ran"], cwd=project, env=env.vars)
    _assert_clean_error(done, 2, ".agent-sandbox.toml:1: allow: the project file may only "
                        "tighten the policy")
    assert not (project / "ran").exists()


def test_a_script_whose_interpreter_is_hidden(project: Path, env: Env) -> None:
    hidden = env.home / "py" / "bin"
    hidden.mkdir(parents=True)
    interpreter = hidden / "python3"
    interpreter.symlink_to("/usr/bin/python3")
    script = project / "tool"
    script.write_text(f"#!{interpreter}\nprint('hi')\n")
    script.chmod(0o755)
    done = run_cli(["--no-show-command-install", "--", "./tool"], cwd=project, env=env.vars)
    _assert_clean_error(done, 127, f"its interpreter {interpreter} is not visible",
                        f"--ro {hidden.parent}")
    shown = run_cli(["--", "./tool"], cwd=project, env=env.vars)
    assert shown.returncode == 0 and shown.stdout == "hi\n", shown.stderr


def _plant(kind: str, path: Path, tmp: Path) -> None:
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / "elsewhere.toml").write_text('net = "host"\n')
        path.symlink_to(tmp / "elsewhere.toml")
    elif kind == "directory":
        path.mkdir()
    elif kind == "sparse 8 GiB":
        with path.open("wb") as f:
            f.truncate(8 << 30)
    else:
        path.write_bytes(b"\x00\xff\xfe garbage \x1b]52;c;aGk=\x07" * 50)


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory", "sparse 8 GiB", "garbage"])
def test_a_hostile_project_file_is_a_clear_error(kind: str, project: Path, env: Env,
                                                 tmp_path: Path) -> None:
    """Whatever the command left as the project's .agent-sandbox.toml, the next launch
    names the file and exits 2 at once: no hang, no traceback, nothing started."""
    path = project / ".agent-sandbox.toml"
    _plant(kind, path, tmp_path)
    done = run_cli(["--", "sh", "-c", "echo STARTED"], cwd=project, env=env.vars, timeout=10)
    assert done.returncode == 2, done.stderr
    assert "STARTED" not in done.stdout and "Traceback" not in done.stderr
    assert str(path) in done.stderr
    if kind != "garbage":
        fix = next(x for x in done.stderr.splitlines() if x.startswith("agent-sandbox: fix:"))
        assert fix.endswith(f"mv {path} {path}.bad"), fix
        subprocess.run(fix.split("fix: ", 1)[1].split(": ", 1)[1], shell=True, check=True)
        assert run_cli(["--", "true"], cwd=project, env=env.vars).returncode == 0


KINDS = ["fifo", "symlink", "directory", "sparse 8 GiB", "garbage"]


def _paste_fix(done: subprocess.CompletedProcess[str]) -> None:
    fix = next(x for x in done.stderr.splitlines() if x.startswith("agent-sandbox: fix:"))
    subprocess.run(fix.split(": ", 3)[-1], shell=True, check=True)


@pytest.mark.parametrize("kind", KINDS)
def test_a_hostile_session_record_is_removed_or_named(kind: str, project: Path, env: Env,
                                                      tmp_path: Path) -> None:
    """The launcher's own records (in its private state directory): one that is not a
    record is stale and removed, at once; one it cannot remove (a directory) is named,
    and its fix works. ps and a launch alike."""
    sessions = env.home / ".local/state/agent-sandbox/sessions"
    sessions.mkdir(parents=True, mode=0o700, exist_ok=True)
    record = sessions / "ghost-1.json"
    _plant(kind, record, tmp_path)
    done = run_cli(["ps"], cwd=project, env=env.vars, timeout=10)
    if kind == "directory":
        _assert_clean_error(done, 2, f"{record}: not a session record")
        _paste_fix(done)
    else:
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
        assert not os.path.lexists(record)
    assert (tmp_path / "elsewhere.toml").exists() or kind != "symlink"  # never followed
    launched = run_cli(["--name", "ghost-1", "--", "true"], cwd=project, env=env.vars,
                       timeout=30)
    assert launched.returncode == 0, launched.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_a_hostile_quarantine_manifest_is_a_clear_error(kind: str, project: Path, env: Env,
                                                        tmp_path: Path) -> None:
    where = env.home / ".local/state/agent-sandbox/quarantine/s1"
    where.mkdir(parents=True)
    manifest = where / "manifest.json"
    _plant(kind, manifest, tmp_path)
    done = run_cli(["quarantine", "show", "s1"], cwd=project, env=env.vars, timeout=10)
    _assert_clean_error(done, 2, str(manifest))
    _paste_fix(done)
    after = run_cli(["quarantine", "show", "s1"], cwd=project, env=env.vars, timeout=10)
    _assert_clean_error(after, 2, "nothing is quarantined under that id")


@pytest.mark.parametrize("kind", KINDS)
def test_a_hostile_agent_home_never_hangs_or_fills_the_disk(kind: str, project: Path,
                                                           env: Env, tmp_path: Path) -> None:
    """What a session left in an agent's saved home (the command wrote it) and the home's
    record beside it: the next launch fills the home without blocking, following or
    copying zeros (the sparse file stays sparse), and `state` lists it."""
    from agent_sandbox._policy.presets import saved_home

    home = Path(saved_home("claude", str(project), env.vars))
    home.mkdir(parents=True)
    _plant(kind, home / ".claude.json", tmp_path)
    _plant(kind, home.parent / f"{home.name}.json", tmp_path / "x")
    argv = ["-q", "--agent", "claude", "--", "sh", "-c", "du -sk ~ | cut -f1"]
    done = run_cli(argv, cwd=project, env=env.vars, timeout=30)
    if kind == "directory":  # where the launcher writes the record: named, then fixed
        _assert_clean_error(done, 2, f"{home.parent / home.name}.json: cannot write")
        _paste_fix(done)
        done = run_cli(argv, cwd=project, env=env.vars, timeout=30)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[0]) < 1024, done.stdout
    saved = sum(p.lstat().st_blocks for p in home.rglob("*")) * 512
    assert saved < 1 << 20  # saved back as it was: no 8 GiB of zeros on the host disk
    listed = run_cli(["state"], cwd=project, env=env.vars, timeout=10)
    assert listed.returncode == 0 and f"claude/{home.name}" in listed.stdout, listed.stderr


def test_mistyped_options_agents_and_commands_suggest_the_close_one(project: Path,
                                                                    env: Env) -> None:
    done = run_cli(["--alow", "pypi.org", "--", "true"], cwd=project, env=env.vars)
    _assert_clean_error(done, 2, "unrecognized arguments: --alow", "(did you mean --allow?)")
    done = run_cli(["--agent", "clude", "--", "true"], cwd=project, env=env.vars)
    _assert_clean_error(done, 2, "--agent 'clude': no such preset (did you mean 'claude'?)")
    done = run_cli(["clude"], cwd=project, env=env.vars)
    _assert_clean_error(done, 127, "clude: command not found inside the sandbox (did you "
                        "mean 'claude'?)")
    _nothing_started(env)


def test_a_config_file_with_a_toml_error_names_its_line(project: Path, env: Env) -> None:
    user = env.home / ".config" / "agent-sandbox"
    user.mkdir(parents=True)
    (user / "config.toml").write_text('net = "filtered"\nallow = ["a.example.com",\n'
                                      'timeout = "1h"\n')
    done = run_cli(["--", "true"], cwd=project, env=env.vars)
    _assert_clean_error(done, 2, f"{user}/config.toml:3: not valid TOML: ")
    _nothing_started(env)


def test_config_shows_every_key_with_its_default(project: Path, env: Env) -> None:
    from agent_sandbox._policy.config import KEYS

    user = env.home / ".config" / "agent-sandbox"
    user.mkdir(parents=True)
    (user / "config.toml").write_text('allow = ["@pypi"]\n[agents.claude]\nmemory = "2G"\n')
    done = run_cli(["config", "claude"], cwd=project, env=env.vars)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"# project: {project}; agent preset: claude (")
    assert sorted(line.split(" = ")[0] for line in lines[1:]) == sorted(KEYS)
    assert "net = filtered    # built-in: filtered when an allow-list is given, else none" \
        in lines
    assert "nofile = 65536    # built-in" in lines and "gpu = false    # built-in" in lines
    assert "memory = 2G    # " + f"{user}/config.toml:3" in lines
    assert ("allow = api.anthropic.com, platform.claude.com, claude.ai, pypi.org, "
            f"files.pythonhosted.org    # preset:claude + {user}/config.toml:1 (@pypi)") in lines
    assert any(line.startswith("env = ") and "DISABLE_AUTOUPDATER=1" in line for line in lines)
    # Without the agent, its section is not used.
    plain = run_cli(["config"], cwd=project, env=env.vars).stdout.splitlines()
    assert "memory = 2G" not in "\n".join(plain) and "# built-in" in plain[-1]
