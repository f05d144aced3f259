"""git config writes work inside, on a copy: the everyday keys (remotes, upstreams,
submodules) reach the host's config at exit, removals included, and host git then uses
them; any other change (core.*, aliases, ...) is held back, quarantined with the command
that applies it, and host git afterwards runs nothing the session planted."""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import GIT_ENV, Env, host_git, launched, run_cli, sandbox_sh

pytestmark = pytest.mark.integration


@pytest.fixture
def upstream(tmp_path: Path, env: Env, repo: Path) -> Path:
    """A local bare repository holding the project's history (shown inside with --rw)."""
    bare = tmp_path / "up.git"
    host_git(env, "clone", "-q", "--bare", str(repo), str(bare), cwd=tmp_path)
    return bare


def _config(env: Env, repo: Path) -> str:
    return host_git(env, "config", "--local", "--list", cwd=repo)


def test_remote_add_and_branch_u_reach_the_host(repo: Path, upstream: Path,
                                                env: Env) -> None:
    script = (f"set -e; git remote add origin {upstream}; git fetch -q origin; "
              "git branch -u origin/main; git status | sed -n 2p; "
              "git checkout -qb feat/x.y; git push -q -u origin feat/x.y 2>&1; echo DONE")
    done = sandbox_sh(script, cwd=repo, env=env.with_(**GIT_ENV), extra=["--rw", str(upstream)])
    assert "DONE" in done.stdout, done.stdout + done.stderr
    assert "up to date with 'origin/main'" in done.stdout
    assert "git config: applied" in done.stderr and "quarantine" not in done.stderr
    config = _config(env, repo)
    assert f"remote.origin.url={upstream}" in config
    assert "remote.origin.fetch=+refs/heads/*:refs/remotes/origin/*" in config
    assert "branch.main.remote=origin" in config and "branch.main.merge=refs/heads/main" in config
    assert "branch.feat/x.y.merge=refs/heads/feat/x.y" in config
    # What the user runs afterwards.
    host_git(env, "checkout", "-q", "main", cwd=repo)
    assert "up to date with 'origin/main'" in host_git(env, "status", cwd=repo)
    host_git(env, "fetch", "-q", cwd=repo)
    assert host_git(env, "rev-parse", "@{u}", cwd=repo) == \
        host_git(env, "rev-parse", "main", cwd=repo)
    # Removals of everyday keys reach the host too.
    script = "set -e; git branch --unset-upstream; git remote remove origin; echo DONE"
    done = sandbox_sh(script, cwd=repo, env=env.with_(**GIT_ENV))
    assert "DONE" in done.stdout, done.stderr
    config = _config(env, repo)
    assert "remote.origin" not in config and "branch.main.remote" not in config
    assert "[remote" not in (repo / ".git" / "config").read_text()


def test_submodule_add_works_end_to_end(repo: Path, env: Env, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    host_git(env, "init", "-q", str(lib), cwd=tmp_path)
    host_git(env, "commit", "-q", "--allow-empty", "-m", "lib", cwd=lib)
    script = (f"set -e; git -c protocol.file.allow=always submodule add -q {lib} lib; "
              "git commit -qm 'add lib'; git submodule status; echo DONE")
    done = sandbox_sh(script, cwd=repo, env=env.with_(**GIT_ENV), extra=["--ro", str(lib)])
    assert "DONE" in done.stdout, done.stdout + done.stderr
    # Nothing to set aside: the submodule's config keeps the core.worktree git wrote.
    assert "quarantine" not in done.stderr, done.stderr
    assert "worktree = ../../../lib" in (repo / ".git/modules/lib/config").read_text()
    config = _config(env, repo)
    assert f"submodule.lib.url={lib}" in config and "submodule.lib.active=true" in config
    assert "lib" in host_git(env, "submodule", "status", cwd=repo)
    assert host_git(env, "status", "--porcelain", cwd=repo) == ""
    # A fresh clone's way of getting it, on the host.
    host_git(env, "-c", "protocol.file.allow=always", "submodule", "update", "--init",
             "--force", cwd=repo)
    assert host_git(env, "-C", "lib", "log", "--format=%s", cwd=repo).split() == ["lib"]


def _plant(repo: Path, marker: Path) -> str:
    """A session setting keys that make host git run a script writing ``marker``."""
    script = repo.parent / "planted.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\n")
    script.chmod(0o755)
    return (f"set -e; mkdir -p tools/hooks; printf '#!/bin/sh\\ntouch {marker}\\n' > "
            "tools/hooks/pre-commit; chmod +x tools/hooks/pre-commit; "
            "git config core.hooksPath tools/hooks; "
            f"git config core.fsmonitor {script}; git config alias.st '!{script}'; "
            "git remote add origin /elsewhere.git; echo DONE")


def test_risky_keys_are_held_back_and_host_git_runs_nothing(repo: Path, env: Env,
                                                            tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    done = sandbox_sh(_plant(repo, marker), cwd=repo, env=env.with_(**GIT_ENV))
    assert "DONE" in done.stdout, done.stdout + done.stderr
    held = next(x for x in done.stderr.splitlines() if "not applied" in x)
    for key in ("core.hookspath", "core.fsmonitor", "alias.st"):
        assert key in held
    config = (repo / ".git" / "config").read_text()
    assert "hooksPath" not in config and "fsmonitor" not in config and "alias" not in config
    assert "/elsewhere.git" in config  # the everyday key of the same session
    # What the user runs afterwards runs nothing planted.
    host_git(env, "status", cwd=repo)
    (repo / "b.txt").write_text("b\n")
    host_git(env, "add", "b.txt", cwd=repo)
    host_git(env, "commit", "-qm", "two", cwd=repo)
    assert subprocess.run(["git", "st"], cwd=repo, env=env.with_(**GIT_ENV),
                          capture_output=True, check=False).returncode != 0
    assert not marker.exists()
    # The printed command applies them, deliberately.
    fix = shlex.split(held.rsplit("apply them: ", 1)[1])  # as the shell reads it pasted
    assert fix[:3] == ["agent-sandbox", "quarantine", "restore"]
    restored = run_cli(fix[1:], cwd=repo, env=env.vars)
    assert restored.returncode == 0, restored.stderr
    config = _config(env, repo)
    assert "core.hookspath=tools/hooks" in config and "alias.st=" in config
    assert f"core.fsmonitor={repo.parent / 'planted.sh'}" in config


def test_a_key_changed_on_the_host_meanwhile_is_kept(repo: Path, env: Env) -> None:
    host_git(env, "remote", "add", "origin", "/first.git", cwd=repo)
    script = ("git remote set-url origin /session.git && echo SET && "
              "while [ ! -e go ]; do sleep 0.05; done")
    with launched(["--", "sh", "-c", script], cwd=repo, env=env.with_(**GIT_ENV)) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "SET"
        host_git(env, "remote", "set-url", "origin", "/host.git", cwd=repo)
        (repo / "go").write_text("")
        _, stderr = proc.communicate(timeout=60)
    assert "remote.origin.url (changed on the host meanwhile)" in stderr
    assert "remote.origin.url=/host.git" in _config(env, repo)


def test_a_config_that_cannot_be_copied_stays_read_only(repo: Path, env: Env) -> None:
    """The fallback: never less confined. A config too big to copy is read-only inside,
    as before, and the launch says so."""
    with (repo / ".git" / "config").open("a") as f:
        f.write("# " + "x" * (1 << 20) + "\n")
    before = (repo / ".git" / "config").read_bytes()
    done = sandbox_sh("git config core.fsmonitor evil 2>&1; git remote add o /x 2>&1; true",
                      cwd=repo, env=env.vars)
    assert "git config is read-only inside this time" in done.stderr
    assert "docs/faq.md: git config is read-only inside" in done.stderr
    assert "## git config is read-only inside" in (
        Path(__file__).parents[2] / "docs" / "faq.md").read_text()
    assert "Device or resource busy" in done.stdout, done.stdout
    assert (repo / ".git" / "config").read_bytes() == before


def test_a_killed_launchers_copy_is_settled_by_its_janitor(repo: Path, env: Env,
                                                           tmp_path: Path) -> None:
    script = "git remote add origin /up.git && git config core.fsmonitor evil && echo SET; " \
             "sleep 60"
    with launched(["-q", "--", "sh", "-c", script], cwd=repo,
                  env=env.with_(**GIT_ENV)) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "SET"
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 15
    while "/up.git" not in (repo / ".git/config").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    config = (repo / ".git" / "config").read_text()
    assert "/up.git" in config and "fsmonitor" not in config
    listed = run_cli(["quarantine", "list"], cwd=repo, env=env.vars)
    assert str(repo) in listed.stdout
    state = env.home / ".local/state/agent-sandbox/quarantine"
    assert not list(state.glob(".*.git")), "the copies are removed once settled"
