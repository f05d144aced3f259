"""Lifecycle: nothing survives the sandbox, signals are passed on, the work dir is removed
(even after a SIGKILL of the launcher, by the next launch) and cleanup cannot be turned
against the host."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path

import pytest

from tests.conftest import SECRET, Env, launched, run_cli, sandbox_sh

pytestmark = pytest.mark.integration


def _wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _pids_with(token: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if token.encode() in f.read():
                        found.append(int(name))
            except OSError:
                continue
    return found


def _launch(script: str, project: Path, env: Env,
            *extra: str) -> ContextManager[subprocess.Popen[str]]:
    return launched(["-q", *extra, "--", "sh", "-c", script], cwd=project, env=env.vars)


def test_double_forked_daemons_do_not_survive(project: Path, env: Env) -> None:
    token = f"4{os.getpid() % 1000:03d}71"
    done = sandbox_sh(f"(setsid sleep {token} &) ; (nohup sleep {token} >/dev/null 2>&1 &); "
                      "sleep 0.2; exit 3", cwd=project, env=env.vars)
    assert done.returncode == 3
    assert _wait_for(lambda: not _pids_with(f"sleep\0{token}"))


@pytest.mark.parametrize("signo, status", [(signal.SIGTERM, 7), (signal.SIGINT, 5),
                                           (signal.SIGHUP, 9), (signal.SIGQUIT, 11)])
def test_signals_sent_to_the_launcher_reach_the_command(
    project: Path, env: Env, signo: signal.Signals, status: int
) -> None:
    name = signo.name[3:]
    with _launch(f"trap 'echo got-{name}; exit {status}' {name}; echo ready; "
                 "while :; do sleep 0.1; done", project, env) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signo)
        out, _ = proc.communicate(timeout=30)
    assert out.strip() == f"got-{name}"
    assert proc.returncode == status


def test_a_command_ignoring_sigterm_is_killed_after_the_grace_period(
    project: Path, env: Env
) -> None:
    with _launch("trap '' TERM; echo ready; while :; do sleep 0.1; done", project,
                 env) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 128 + signal.SIGKILL
    assert time.monotonic() - started >= 4  # the grace period (5 s) was honoured


def test_launcher_sigkill_kills_the_command_and_the_next_launch_reaps(
    project: Path, env: Env
) -> None:
    token = f"5{os.getpid() % 1000:03d}93"
    with _launch(f"exec sleep {token}", project, env, "--tmp-on-disk") as proc:
        assert _wait_for(lambda: bool(_pids_with(f"sleep\0{token}")))
        stale = env.workdirs()
        assert len([n for n in stale if not n.endswith(".lock")]) == 1
        proc.kill()
        proc.wait()
    assert _wait_for(lambda: not _pids_with(f"sleep\0{token}")), "the command survived"
    # The janitor removed what was made in the (empty) project: placeholders and the
    # pinned .claude directory the launcher made for them.
    assert _wait_for(lambda: not any(project.iterdir())), list(project.iterdir())
    assert env.workdirs() == stale  # nobody cleaned up yet
    assert sandbox_sh("true", cwd=project, env=env.vars).returncode == 0
    assert env.workdirs() == []


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim"
    (v / "sub").mkdir(parents=True)
    (v / "precious").write_text(SECRET)
    (v / "sub" / "more").write_text(SECRET)
    return v


def _tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_cleanup_attacks_leave_the_host_intact(
    project: Path, env: Env, victim: Path
) -> None:
    (project / "keep.txt").write_text(SECRET)
    before_victim, before_project = _tree(victim), _tree(project)
    # Inside, the victim paths do not exist; the links are planted for the host-side cleanup.
    script = f"""
        ln -s {victim} /tmp/dir-link
        ln -s {victim}/precious /tmp/file-link
        ln -s {project} /tmp/project-link
        mkdir -p /tmp/locked/inner && touch /tmp/locked/inner/f
        chmod 0 /tmp/locked/inner /tmp/locked
        mkdir /tmp/ro && touch /tmp/ro/f && chmod 500 /tmp/ro
        mkfifo /tmp/fifo
        python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("/tmp/sock")'
        python3 -c '
import os
fd = os.open("/tmp", os.O_RDONLY)
for _ in range(10000):
    os.mkdir("d", dir_fd=fd)
    nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nfd
os.symlink("{victim}", "link-at-the-bottom", dir_fd=fd)
'
        echo planted
    """
    done = sandbox_sh(script, cwd=project, env=env.vars, timeout=120,
                      extra=["--tmp-on-disk"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "planted"
    assert _tree(victim) == before_victim
    assert (victim / "precious").read_text() == SECRET
    assert _tree(project) == before_project
    assert env.workdirs() == []  # the whole work dir is gone


def test_a_network_that_cannot_be_served_stops_the_command_from_ever_running(
        project: Path, env: Env) -> None:
    # bwrap's first process waits on the block pipe; killing only bwrap and closing the
    # pipe let it go on and run the command, unserved. The control: the same launch with a
    # free port runs it.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        script = "touch ran; sleep 1; touch still-ran"
        done = run_cli(["-q", "--publish", str(port), "--", "sh", "-c", script], cwd=project,
                       env=env.vars)
        assert done.returncode == 125 and "Address already in use" in done.stderr
        time.sleep(2)  # what a released command would have done by now
        assert not (project / "ran").exists() and not (project / "still-ran").exists()
    done = run_cli(["-q", "--publish", str(port), "--", "sh", "-c", "touch ran"],
                   cwd=project, env=env.vars)
    assert done.returncode == 0 and (project / "ran").exists(), done.stderr


def test_the_uninstall_section_removes_everything_the_tool_wrote(
        project: Path, env: Env) -> None:
    """docs/getting-started.md's uninstall command, run after sessions that used every place
    (an agent preset's home, the log, the seccomp cache, a --tmp-on-disk work dir), leaves
    no agent-sandbox file in the home or TMPDIR; the project keeps what the command wrote."""
    fake_claude = env.home / "bin/claude"
    fake_claude.parent.mkdir()
    fake_claude.write_text("#!/bin/sh\necho hi > ~/.claude/note; echo work > kept.txt\n")
    fake_claude.chmod(0o755)
    before = {p for p in env.home.rglob("*")} - {fake_claude, fake_claude.parent}
    path = f"{fake_claude.parent}:{env.vars['PATH']}"
    assert run_cli(["claude"], cwd=project, env=env.with_(PATH=path)).returncode == 0
    assert sandbox_sh("true", cwd=project, env=env.vars, extra=["--tmp-on-disk"]).returncode \
        == 0
    written = {str(p.relative_to(env.home))
               for pattern in (".*/agent-sandbox", ".*/*/agent-sandbox")
               for p in env.home.glob(pattern)}
    assert written == {".local/share/agent-sandbox", ".local/state/agent-sandbox",
                       ".cache/agent-sandbox"}, written
    docs = Path(__file__).parents[2] / "docs/getting-started.md"
    section = docs.read_text().split("## Uninstall", 1)[1]
    command = section.split("```sh\n", 1)[1].split("```", 1)[0]
    # Not the real pipx: this test's home is a fake one, the machine's pipx is not.
    command = command.replace("pipx uninstall agent-sandbox 2>/dev/null; ", "")
    subprocess.run(["sh", "-c", command], env=env.vars, check=True)
    # Relative: the test's own directory may hold the name (a user called agent-sandbox-ci).
    left = [str(p.relative_to(base)) for base in (env.home, env.tmpdir)
            for p in base.rglob("*") if "agent-sandbox" in str(p.relative_to(base))]
    assert left == []
    # What the sessions left in the home is only what was there (and empty XDG parents).
    after = {p for p in env.home.rglob("*") if p.is_file()} - {fake_claude}
    assert after <= before
    assert (project / "kept.txt").read_text() == "work\n"
