"""Agent state per project, attacked as a prompt-injected agent in project A would: nothing
planted in A's home reaches project B, B's transcripts stay out of A, the login is shared
and kept fresh, symlinks in a home make the launcher touch nothing outside it, and the home
has a size cap. Each agent here is a fake found on PATH under the preset's name: it runs
the script it is given, inside."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from agent_sandbox._policy.presets import saved_home
from tests.conftest import SECRET, Env, launched, run_cli

pytestmark = pytest.mark.integration

AGENT = '#!/bin/sh\nexec /bin/sh -c "$1"\n'
# What an attacker plants per preset: hooks, MCP servers, memory, settings, rc files.
PLANTED = {
    "claude": [".claude/settings.json", ".claude/CLAUDE.md", ".claude/commands/x.md"],
    "codex": [".codex/config.toml", ".codex/AGENTS.md"],
    "gemini": [".gemini/settings.json", ".gemini/GEMINI.md"],
    "aider": [".aider.conf.yml", ".aider/history"],
    "opencode": [".config/opencode/opencode.json", ".local/share/opencode/x"],
}
EVERYWHERE = [".bashrc", ".profile", ".config/git/config"]
LOGIN = {"claude": ".claude/.credentials.json", "codex": ".codex/auth.json",
         "gemini": ".gemini/oauth_creds.json"}


def _projects(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "project-a", tmp_path / "project-b"
    a.mkdir()
    b.mkdir()
    return a, b


def _agents(env: Env) -> None:
    tools = env.home / "tools"
    tools.mkdir(exist_ok=True)
    for name in PLANTED:
        (tools / name).write_text(AGENT)
        (tools / name).chmod(0o755)
    env.vars["PATH"] = f"{tools}:{env.vars['PATH']}"


def _run(agent: str, script: str, project: Path, env: Env, *extra: str,
         ) -> subprocess.CompletedProcess[str]:
    return run_cli(["-q", *extra, agent, script], cwd=project, env=env.vars)


def _saved(env: Env, agent: str, project: Path) -> Path:
    return Path(saved_home(agent, os.path.realpath(project), env.vars))


@pytest.mark.parametrize("agent", sorted(PLANTED))
def test_nothing_planted_in_one_project_reaches_another(agent: str, env: Env,
                                                        tmp_path: Path) -> None:
    _agents(env)
    a, b = _projects(tmp_path)
    paths = [*PLANTED[agent], *EVERYWHERE]
    plant = " && ".join(f'mkdir -p "$(dirname ~/{p})" && echo planted > ~/{p}' for p in paths)
    done = _run(agent, plant + " && mkdir -p ~/transcripts && echo A-secret > "
                "~/transcripts/a.jsonl", a, env)
    assert done.returncode == 0, done.stderr
    look = "; ".join(f"cat ~/{p} 2>/dev/null" for p in [*paths, "transcripts/a.jsonl"])
    in_b = _run(agent, look + "; true", b, env)
    assert in_b.returncode == 0, in_b.stderr
    assert "planted" not in in_b.stdout and "A-secret" not in in_b.stdout
    # The control: A's own next session has all of it (the check can see a planted file).
    in_a = _run(agent, look + "; true", a, env)
    assert in_a.stdout.count("planted") == len(paths) and "A-secret" in in_a.stdout


def test_the_login_is_shared_refreshed_and_kept_fresh(env: Env, tmp_path: Path) -> None:
    _agents(env)
    a, b = _projects(tmp_path)
    read = "cat ~/.claude/.credentials.json"
    # No host login yet: the sandbox has none.
    assert _run("claude", f"{read} 2>/dev/null; true", a, env).stdout == ""
    # Logging in on the host afterwards reaches the next launch, and says so.
    (env.home / ".claude").mkdir()
    (env.home / ".claude/.credentials.json").write_text('{"token": "host-1"}')
    first = run_cli(["claude", read], cwd=a, env=env.vars)
    assert json.loads(first.stdout) == {"token": "host-1"}
    assert "login: copied from your ~/.claude/.credentials.json (the sandbox's was missing)" \
        in first.stderr
    # A refreshes its token: B gets that one next, and so does A's next session.
    refresh = "echo '{\"token\": \"refreshed-in-a\"}' > ~/.claude/.credentials.json"
    assert _run("claude", refresh, a, env).returncode == 0
    assert json.loads(_run("claude", read, b, env).stdout) == {"token": "refreshed-in-a"}
    assert json.loads(_run("claude", read, a, env).stdout) == {"token": "refreshed-in-a"}
    # A host login that is newer does not replace a shared one that has not expired...
    (env.home / ".claude/.credentials.json").write_text('{"token": "host-2"}')
    assert json.loads(_run("claude", read, b, env).stdout) == {"token": "refreshed-in-a"}
    # ... and does replace one that has.
    expired = '{"token": "old", "expiresAt": 1000}'
    assert _run("claude", f"echo '{expired}' > ~/.claude/.credentials.json", a, env
                ).returncode == 0
    os.utime(env.home / ".claude/.credentials.json")  # the host's is the newer one
    assert json.loads(_run("claude", read, b, env).stdout) == {"token": "host-2"}
    # Nothing but the login files is in the shared place.
    shared = env.home / ".local/share/agent-sandbox/logins/claude"
    assert sorted(str(p.relative_to(shared)) for p in shared.rglob("*") if p.is_file()) \
        == [".claude/.credentials.json", ".lock"]


def test_two_sessions_refreshing_at_once_leave_one_whole_login(env: Env,
                                                               tmp_path: Path) -> None:
    _agents(env)
    a, b = _projects(tmp_path)
    (env.home / ".claude").mkdir()
    (env.home / ".claude/.credentials.json").write_text('{"token": "host"}')
    sessions = []
    for project, token in ((a, "from-a"), (b, "from-b")):
        # Each waits for a file in its own project (the host makes both at once).
        script = (f"echo started; while [ ! -e {project}/go ]; do sleep 0.05; done; "
                  f"echo '{{\"token\": \"{token}\"}}' > ~/.claude/.credentials.json")
        sessions.append(launched(["-q", "claude", script], cwd=project, env=env.vars))
    procs = [s.__enter__() for s in sessions]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stderr is not None
            line = proc.stdout.readline().strip()
            assert line == "started", line or proc.stderr.read()
        for project in (a, b):
            (project / "go").touch()
        for proc in procs:
            assert proc.wait(timeout=60) == 0
    finally:
        for s in sessions:
            s.__exit__(None, None, None)
    shared = json.loads((env.home / ".local/share/agent-sandbox/logins/claude/.claude/"
                         ".credentials.json").read_text())
    assert shared in ({"token": "from-a"}, {"token": "from-b"})
    # Each project's next session has a valid login: the shared one.
    for project in (a, b):
        seen = json.loads(_run("claude", "cat ~/.claude/.credentials.json", project, env).stdout)
        assert seen == shared


def test_symlinks_planted_in_a_home_make_the_launcher_touch_nothing_outside(
        env: Env, tmp_path: Path) -> None:
    _agents(env)
    a, _ = _projects(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("host file\n")
    (env.home / ".claude").mkdir()
    (env.home / ".claude/.credentials.json").write_text('{"token": "t"}')
    plant = (f"ln -s {outside} ~/to-dir; ln -s {outside}/keep ~/to-file; "
             "ln -s /nonexistent/x ~/dangling; rm -rf ~/.claude; "
             f"ln -s {outside} ~/.claude")
    assert _run("claude", plant, a, env).returncode == 0
    # The next launch fills, seeds the login and saves; then the home is removed.
    again = _run("claude", "ls -la ~ >/dev/null; cat ~/.claude/.credentials.json", a, env)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {"token": "t"}  # a real ~/.claude again
    listing = run_cli(["state"], cwd=a, env=env.vars)
    name = listing.stdout.split()[0]
    assert run_cli(["state", "rm", name], cwd=a, env=env.vars).returncode == 0
    assert sorted(os.listdir(outside)) == ["keep"]
    assert (outside / "keep").read_text() == "host file\n"
    assert not _saved(env, "claude", a).exists()


def test_a_symlinked_old_home_is_set_aside_without_being_followed(env: Env,
                                                                 tmp_path: Path) -> None:
    _agents(env)
    a, _ = _projects(tmp_path)
    outside = tmp_path / "outside"
    (outside / ".claude").mkdir(parents=True)
    (outside / ".claude/.credentials.json").write_text('{"token": "planted"}')
    homes = env.home / ".local/share/agent-sandbox/homes"
    homes.mkdir(parents=True)
    (homes / "claude").symlink_to(outside)
    done = _run("claude", "cat ~/.claude/.credentials.json 2>/dev/null; true", a, env)
    assert done.returncode == 0, done.stderr
    assert "planted" not in done.stdout
    assert (outside / ".claude/.credentials.json").read_text() == '{"token": "planted"}'
    assert not (homes / "claude").exists()


def test_a_shared_home_of_before_is_migrated(env: Env, tmp_path: Path) -> None:
    _agents(env)
    a, _ = _projects(tmp_path)
    old = env.home / ".local/share/agent-sandbox/homes/claude"
    (old / ".claude").mkdir(parents=True)
    (old / ".claude/.credentials.json").write_text('{"token": "old-login"}')
    (old / ".claude/settings.json").write_text('{"hooks": "planted before"}')
    done = run_cli(["claude", "cat ~/.claude/.credentials.json; cat ~/.claude/settings.json "
                    "2>/dev/null; true"], cwd=a, env=env.vars)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"token": "old-login"}
    assert "set aside in" in done.stderr and "its login was kept" in done.stderr
    aside = list((env.home / ".local/share/agent-sandbox/set-aside").iterdir())
    assert len(aside) == 1 and (aside[0] / ".claude/settings.json").exists()
    assert not old.exists()


def test_the_home_has_a_size_cap(env: Env, tmp_path: Path) -> None:
    _agents(env)
    a, _ = _projects(tmp_path)
    fill = "dd if=/dev/zero of=$HOME/big bs=1M count=16 2>&1"
    capped = _run("claude", fill + "; true", a, env, "--agent-home-size", "8M")
    assert "No space left on device" in capped.stdout, capped.stdout + capped.stderr
    saved = _saved(env, "claude", a)
    assert (saved / "big").stat().st_size <= 8 << 20
    # The control: with room, the same write succeeds (and is kept).
    roomy = _run("claude", fill, a, env, "--agent-home-size", "64M")
    assert "No space left" not in roomy.stdout
    assert (saved / "big").stat().st_size == 16 << 20
    # A saved home over the cap is refused before anything starts, with the fix.
    over = _run("claude", "echo ran", a, env, "--agent-home-size", "4M")
    assert over.returncode == 125 and "ran" not in over.stdout
    assert "agent-sandbox state rm claude/" in over.stderr


def test_no_secret_of_the_real_home_is_in_any_agent_home(env: Env, tmp_path: Path) -> None:
    _agents(env)
    a, _ = _projects(tmp_path)
    done = _run("claude", "cat ~/.ssh/id_ed25519 ~/.aws/credentials 2>/dev/null; true", a, env)
    assert SECRET not in done.stdout
    listed = run_cli(["state", "--json"], cwd=a, env=env.vars)
    [home] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert home["project"] == os.path.realpath(a) and home["name"].startswith("claude/")


def _claude_hook(marker: Path) -> str:
    hook = {"hooks": {"SessionStart": [{"hooks": [
        {"type": "command", "command": f"touch {marker}"}]}]}}
    return f"mkdir -p ~/.claude && echo '{json.dumps(hook)}' > ~/.claude/settings.json"


def _codex_mcp(marker: Path) -> str:
    server = f'[mcp_servers.planted]\ncommand = "sh"\nargs = ["-c", "touch {marker}; sleep 5"]\n'
    return f"mkdir -p ~/.codex && printf '{server}' > ~/.codex/config.toml"


def _gemini_mcp(marker: Path) -> str:
    settings = {"mcpServers": {"planted": {"command": "sh",
                                           "args": ["-c", f"touch {marker}; sleep 5"]}}}
    return f"mkdir -p ~/.gemini && echo '{json.dumps(settings)}' > ~/.gemini/settings.json"


# The real agents, started headless where they start offline: what they run at start.
REAL = {
    "claude": (_claude_hook, ["claude", "-p", "hi"], {"ANTHROPIC_API_KEY": "sk-ant-offline"}),
    "codex": (_codex_mcp, ["codex", "exec", "--skip-git-repo-check", "hi"],
              {"OPENAI_API_KEY": "sk-offline"}),
    "gemini": (_gemini_mcp, ["--env", "GEMINI_CLI_TRUST_WORKSPACE=true", "gemini", "-p", "hi"],
               {"GEMINI_API_KEY": "offline"}),
}


@pytest.mark.agents
@pytest.mark.parametrize("agent", sorted(REAL))
def test_what_one_project_plants_does_not_run_in_another(
        agent: str, npm_home: Path, env: Env, tmp_path: Path) -> None:
    """With the real agent: project A's home gets a hook or MCP server that would leave
    FROM-A in project B; B's own home one that leaves FROM-B. Started in B, the agent runs
    what is in its home (FROM-B appears: the control), and A's never."""
    plant, args, keys = REAL[agent]
    a, b = _projects(tmp_path)
    for project, marker in ((a, b / "FROM-A"), (b, b / "FROM-B")):
        assert run_cli(["-q", "--agent", agent, "--", "sh", "-c", plant(marker)],
                       cwd=project, env=env.vars).returncode == 0
    with launched(["-q", *args], cwd=b, env=env.with_(**keys), stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL) as proc:
        deadline = time.monotonic() + 120  # offline they retry their API for minutes
        while time.monotonic() < deadline and not (b / "FROM-B").exists():
            time.sleep(0.2)
        proc.terminate()
        proc.wait(timeout=30)
    assert (b / "FROM-B").exists(), f"{agent} never ran what its home holds"
    assert not (b / "FROM-A").exists()
