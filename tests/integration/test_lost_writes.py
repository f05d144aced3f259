"""Nothing lost silently: what the command wrote outside the project is gone at exit, and
the exit says so (the temporary $HOME, the sandbox's root); a session that wrote nothing
there hears nothing; a git worktree made outside the project leaves the host no stale
("prunable") entry, and the fixes printed for it work."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.conftest import GIT_ENV, Env, host_git, run_cli, sandbox_sh

pytestmark = pytest.mark.integration


def _not_kept(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "not kept:" in line]


def test_a_file_written_in_the_temporary_home_is_named_at_exit(project: Path,
                                                               env: Env) -> None:
    done = sandbox_sh("echo notes > ~/todo.txt && mkdir -p ~/.cache/pip && "
                      "echo x > ~/.cache/pip/y && echo DONE", cwd=project, env=env.vars)
    assert "DONE" in done.stdout, done.stderr
    lines = _not_kept(done.stderr)
    assert len(lines) == 1, done.stderr
    assert "1 file the command wrote in the temporary $HOME" in lines[0]
    assert "~/todo.txt" in lines[0] and ".cache" not in lines[0]
    assert not (env.home / "todo.txt").exists()


def test_writes_in_the_home_are_named_with_a_count_and_elsewhere_refused(
        project: Path, env: Env) -> None:
    script = ("mkdir -p ~/notes/a && for i in 1 2 3 4 5; do echo $i > ~/notes/a/$i; done && "
              "echo x > ~/todo.txt && echo DONE; "
              "mkdir /lost-dir 2>&1; echo x > /var/lost.txt")
    done = sandbox_sh(script, cwd=project, env=env.vars)
    assert "DONE" in done.stdout, done.stderr
    lines = _not_kept(done.stderr)
    assert len(lines) == 1, done.stderr
    assert "6 files the command wrote in the temporary $HOME" in lines[0]
    assert "~/notes/ (5 files)" in lines[0] and "~/todo.txt" in lines[0]
    # Next to the project or in /var, a write is refused (the read-only skeleton): it
    # fails there and then instead of vanishing at exit.
    assert done.stdout.count("Read-only file system") == 1  # mkdir's, on stdout
    assert "/var/lost.txt: Read-only file system" in done.stderr


def test_a_session_that_writes_nothing_outside_hears_nothing(project: Path,
                                                             env: Env) -> None:
    done = sandbox_sh("echo kept > in-project.txt && echo scratch > /tmp/x && "
                      "git --version >/dev/null && ls ~ >/dev/null", cwd=project, env=env.vars)
    assert done.returncode == 0, done.stderr
    assert not _not_kept(done.stderr), done.stderr
    assert (project / "in-project.txt").read_text() == "kept\n"


def test_a_worktree_outside_the_project_leaves_no_stale_entry(repo: Path, env: Env) -> None:
    outside = repo.parent / "proj-wt"
    script = (f"set -e; git worktree add -q -b feat {outside}; cd {outside}; "
              "echo work > w.txt; git add w.txt; git commit -qm 'in the worktree'; "
              "echo uncommitted > u.txt; echo DONE")
    done = sandbox_sh(script, cwd=repo, env=env.with_(**GIT_ENV))
    assert "DONE" in done.stdout, done.stdout + done.stderr
    assert not outside.exists()
    line = next(x for x in done.stderr.splitlines() if "gone with the sandbox;" in x)
    assert f"worktree {outside}" in line and "branch feat and commits are kept" in line
    assert "git worktree add ./wt" in line and "--rw" in line
    # The host: no prunable worktree, the branch and its commit are there.
    assert "prunable" not in host_git(env, "worktree", "list", "--porcelain", cwd=repo)
    assert host_git(env, "worktree", "list", cwd=repo).count("\n") == 1
    assert host_git(env, "log", "--format=%s", "feat", cwd=repo).split("\n")[0] == \
        "in the worktree"
    # The entry is in the quarantine, and restorable.
    session = line.rsplit("agent-sandbox quarantine show ", 1)[1].split(")")[0]
    shown = run_cli(["quarantine", "show", session], cwd=repo, env=env.vars)
    assert ".git/worktrees/proj-wt" in shown.stdout


def test_the_fixes_printed_for_a_worktree_keep_it(repo: Path, env: Env) -> None:
    """Both fixes the exit line names: a worktree inside the project, or one in a
    directory given with --rw (docs/faq.md's command, as written)."""
    inside = sandbox_sh("git worktree add -q ./wt && echo DONE", cwd=repo,
                        env=env.with_(**GIT_ENV))
    assert "DONE" in inside.stdout and "gone with the sandbox" not in inside.stderr
    assert (repo / "wt" / "a.txt").exists()
    outside = repo.parent / "proj-wt"
    outside.mkdir()
    done = sandbox_sh(f"git worktree add -q {shlex.quote(str(outside))} && echo DONE",
                      cwd=repo, env=env.with_(**GIT_ENV), extra=["--rw", "../proj-wt"])
    assert "DONE" in done.stdout, done.stdout + done.stderr
    assert "gone with the sandbox" not in done.stderr
    assert (outside / "a.txt").exists()
    listed = host_git(env, "worktree", "list", cwd=repo)
    assert str(outside) in listed and "prunable" not in listed
