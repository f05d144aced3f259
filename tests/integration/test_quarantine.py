"""Quarantine at exit: git keeps working inside (new nested repositories, submodules,
worktrees, an interactive rebase), and what the session made there that host git would run
is set aside when it ends, so the host git commands a user runs afterwards run nothing
planted; ``agent-sandbox quarantine restore`` puts it back byte for byte."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import GIT_ENV, Env, host_git, launched, run_cli, sandbox_sh
from tests.plans import plan_for, run_plan

pytestmark = pytest.mark.integration




@pytest.fixture
def repo(project: Path, env: Env) -> Path:
    host_git(env, "init", "-q", cwd=project)
    (project / "a.txt").write_text("a\n")
    host_git(env, "add", "a.txt", cwd=project)
    host_git(env, "commit", "-qm", "one", cwd=project)
    (project / "a.txt").write_text("b\n")
    host_git(env, "commit", "-qam", "two", cwd=project)
    return project


def _quarantined(done: subprocess.CompletedProcess[str]) -> str:
    """The quarantine id the exit summary names."""
    line = next(x for x in done.stderr.splitlines() if "quarantined" in x)
    return line.rsplit("agent-sandbox quarantine show ", 1)[1].strip()


NESTED = ("git init -q evil && git -C evil commit -q --allow-empty -m x && "
          "git -C evil config core.fsmonitor 'touch {marker}' && "
          "printf '#!/bin/sh\\ntouch {marker}.hook\\n' > evil/.git/hooks/post-checkout && "
          "chmod +x evil/.git/hooks/post-checkout && git add evil && git commit -qm nested && "
          "echo MADE")


def test_a_new_nested_repository_keeps_its_history_and_loses_what_would_run(
        repo: Path, env: Env, tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    done = sandbox_sh(NESTED.format(marker=marker), cwd=repo, env=env.with_(**GIT_ENV))
    assert "MADE" in done.stdout, done.stderr
    session = _quarantined(done)
    # What the user runs afterwards: nothing planted runs, the work is all there.
    assert "nested" in host_git(env, "log", "--oneline", cwd=repo)
    host_git(env, "status", cwd=repo)
    host_git(env, "-C", "evil", "status", cwd=repo)
    host_git(env, "-C", "evil", "checkout", "-q", "-B", "other", cwd=repo)
    assert not marker.exists() and not Path(f"{marker}.hook").exists()
    assert host_git(env, "-C", "evil", "log", "--format=%s", cwd=repo).split() == ["x"]
    assert "fsmonitor" not in (repo / "evil/.git/config").read_text()
    # Listed, shown, and restored byte for byte.
    listed = run_cli(["quarantine", "list"], cwd=repo, env=env.vars)
    assert session in listed.stdout and str(repo) in listed.stdout
    shown = run_cli(["quarantine", "show", session], cwd=repo, env=env.vars)
    assert "evil/.git/hooks/post-checkout" in shown.stdout and "fsmonitor" in shown.stdout
    restored = run_cli(["quarantine", "restore", session], cwd=repo, env=env.vars)
    assert restored.returncode == 0, restored.stderr
    assert f"touch {marker}" in (repo / "evil/.git/config").read_text()
    assert (repo / "evil/.git/hooks/post-checkout").read_text() == \
        f"#!/bin/sh\ntouch {marker}.hook\n"
    assert run_cli(["quarantine", "drop", session], cwd=repo, env=env.vars).returncode == 0
    assert session not in run_cli(["quarantine", "list"], cwd=repo, env=env.vars).stdout


def test_without_the_quarantine_host_git_runs_the_planted_fsmonitor(
        repo: Path, env: Env, tmp_path: Path) -> None:
    """The control: the same session without a launcher to quarantine (the plan run with
    bwrap directly) leaves the fsmonitor, and host git status runs it."""
    marker = tmp_path / "RAN"
    plan = plan_for(repo, env.with_(**GIT_ENV), ["sh", "-c", NESTED.format(marker=marker)])
    done = run_plan(plan, tmp_path, environ=env.with_(**GIT_ENV))
    assert "MADE" in done.stdout, done.stderr
    host_git(env, "-C", "evil", "status", cwd=repo)
    assert marker.exists()


def _rebase_left_with_exec(marker: Path) -> str:
    """An interactive rebase stopped at a `break`, an `exec` line waiting behind it."""
    editor = f"sed -i '1i break\\nexec touch {marker}'"
    return (f'git -c sequence.editor="{editor}" rebase -i HEAD~1 >/dev/null 2>&1; '
            "git status | head -3")


def test_a_rebase_left_in_progress_loses_its_exec_lines(repo: Path, env: Env,
                                                        tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    done = sandbox_sh(_rebase_left_with_exec(marker), cwd=repo, env=env.with_(**GIT_ENV))
    assert "rebase" in done.stdout, done.stdout + done.stderr
    _quarantined(done)
    host_git(env, "rebase", "--continue", cwd=repo)
    assert not marker.exists()
    assert host_git(env, "log", "--format=%s", cwd=repo).split() == ["two", "one"]


def test_without_the_quarantine_host_git_rebase_continue_runs_the_exec_line(
        repo: Path, env: Env, tmp_path: Path) -> None:
    """The control: the same session with no launcher to quarantine (its plan run with
    bwrap directly) leaves the exec line, and host git rebase --continue runs it."""
    marker = tmp_path / "RAN"
    plan = plan_for(repo, env.with_(**GIT_ENV), ["sh", "-c", _rebase_left_with_exec(marker)])
    done = run_plan(plan, tmp_path, environ=env.with_(**GIT_ENV))
    assert "rebase" in done.stdout, done.stdout + done.stderr
    host_git(env, "rebase", "--continue", cwd=repo)
    assert marker.exists()


def test_a_forged_worktree_is_set_aside(repo: Path, env: Env, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    host_git(env, "init", "-q", str(elsewhere), cwd=tmp_path)
    forge = (f"mkdir -p .git/worktrees/x && echo {elsewhere}/.git > .git/worktrees/x/commondir"
             " && echo ref: refs/heads/master > .git/worktrees/x/HEAD && echo MADE")
    done = sandbox_sh(forge, cwd=repo, env=env.vars)
    assert "MADE" in done.stdout, done.stderr
    _quarantined(done)
    assert not (repo / ".git/worktrees/x").exists()
    # A real one made inside stays.
    made = sandbox_sh("git worktree add -q wt HEAD && echo ADDED", cwd=repo,
                      env=env.with_(**GIT_ENV))
    assert "ADDED" in made.stdout, made.stdout + made.stderr
    assert (repo / "wt" / "a.txt").exists() and "quarantined" not in made.stderr
    host_git(env, "worktree", "list", cwd=repo)


def _submodule_with_a_hook(marker: Path) -> str:
    return ("git init -q lib-src && git -C lib-src commit -q --allow-empty -m lib && "
            "git -c protocol.file.allow=always submodule add -q ./lib-src lib && "
            "git commit -qm 'add lib' && "
            f"printf '#!/bin/sh\\ntouch {marker}\\n' > .git/modules/lib/hooks/post-checkout "
            "&& chmod +x .git/modules/lib/hooks/post-checkout && echo MADE")


@pytest.mark.parametrize("quarantine", [True, False])
def test_a_submodule_added_inside_works_and_its_new_hooks_are_set_aside(
        repo: Path, env: Env, tmp_path: Path, quarantine: bool) -> None:
    """Without the quarantine (the control: the plan run with bwrap directly) host git
    checkout in the submodule runs the planted hook."""
    marker = tmp_path / "RAN"
    script = _submodule_with_a_hook(marker)
    if quarantine:
        done = sandbox_sh(script, cwd=repo, env=env.with_(**GIT_ENV))
        _quarantined(done)
    else:
        plan = plan_for(repo, env.with_(**GIT_ENV), ["sh", "-c", script])
        done = run_plan(plan, tmp_path, environ=env.with_(**GIT_ENV))
    assert "MADE" in done.stdout, done.stdout + done.stderr
    assert "lib" in host_git(env, "submodule", "status", cwd=repo)
    host_git(env, "-c", "protocol.file.allow=always", "submodule", "update", "--init",
             "--checkout", cwd=repo)
    host_git(env, "-C", "lib", "checkout", "-q", "-B", "x", cwd=repo)
    assert marker.exists() is not quarantine


def test_a_killed_launchers_session_is_quarantined_by_its_janitor(
        repo: Path, env: Env, tmp_path: Path) -> None:
    marker = tmp_path / "RAN"
    script = NESTED.format(marker=marker) + "; sleep 60"
    with launched(["-q", "--", "sh", "-c", script], cwd=repo,
                  env=env.with_(**GIT_ENV)) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "MADE"
        proc.kill()
        proc.wait()
    config = repo / "evil/.git/config"
    deadline = time.monotonic() + 15
    while "fsmonitor" in config.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "fsmonitor" not in config.read_text()
    host_git(env, "-C", "evil", "status", cwd=repo)
    assert not marker.exists()
    listed = run_cli(["quarantine", "list"], cwd=repo, env=env.vars)
    assert str(repo) in listed.stdout
    state = env.home / ".local/state/agent-sandbox/quarantine"
    manifests = [json.loads(p.read_text()) for p in state.glob("*/manifest.json")]
    assert any(i["path"].endswith("evil/.git/config") for m in manifests for i in m["items"])


def test_covered_names_the_session_created_are_set_aside(repo: Path, env: Env,
                                                         tmp_path: Path) -> None:
    """Names no host tool runs on its own get no placeholder: made inside, they are moved
    out at the end (a .gitmodules keeps all but its update commands)."""
    marker = tmp_path / "RAN"
    gitmodules = (f'[submodule "x"]\n\tpath = x\n\turl = ./x\n\tupdate = !touch {marker}\n')
    script = ("mkdir -p .husky .claude/commands && echo evil > .husky/pre-commit && "
              "echo 'run this' > .claude/commands/deploy.md && "
              "echo '{\"tasks\": {}}' > app.code-workspace && "
              f"printf '{gitmodules}' > .gitmodules && echo MADE")
    done = sandbox_sh(script, cwd=repo, env=env.with_(**GIT_ENV))
    assert "MADE" in done.stdout, done.stderr
    session = _quarantined(done)
    for gone in (".husky", ".claude/commands", "app.code-workspace"):
        assert not (repo / gone).exists(), gone
    assert "update" not in (repo / ".gitmodules").read_text()
    assert "url = ./x" in (repo / ".gitmodules").read_text()
    restored = run_cli(["quarantine", "restore", session], cwd=repo, env=env.vars)
    assert restored.returncode == 0, restored.stderr
    assert (repo / ".husky/pre-commit").read_text() == "evil\n"
    assert (repo / ".claude/commands/deploy.md").read_text() == "run this\n"
    assert (repo / ".gitmodules").read_text() == gitmodules


def test_a_new_repositorys_work_tree_elsewhere_is_set_aside(repo: Path, env: Env,
                                                            tmp_path: Path) -> None:
    """core.worktree stays only as git submodule add writes it (its own work tree, whose
    .git file names it: test_git_config.py); pointing anywhere else, host git would check
    files out there."""
    script = ("git init -q evil && git -C evil commit -q --allow-empty -m x && "
              "git -C evil config core.worktree ../.. && echo MADE")
    done = sandbox_sh(script, cwd=repo, env=env.with_(**GIT_ENV))
    assert "MADE" in done.stdout, done.stderr
    assert "worktree = ../.." in done.stderr
    assert "worktree" not in (repo / "evil/.git/config").read_text()
