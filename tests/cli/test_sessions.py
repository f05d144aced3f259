"""Sessions: ps, stop, log, --name, and detached runs with attach, on real sandboxes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.conftest import CLI, Env, launched, run_cli

pytestmark = pytest.mark.integration


@pytest.fixture
def senv(env: Env) -> Iterator[dict[str, str]]:
    """The test environment with a short private XDG_RUNTIME_DIR (a UNIX socket's path must
    fit in 107 bytes, which pytest's temporary paths may not)."""
    with tempfile.TemporaryDirectory(prefix="as-rt-", dir="/tmp") as runtime:
        os.chmod(runtime, 0o700)
        yield env.with_(XDG_RUNTIME_DIR=runtime)


def _ps(project: Path, environ: dict[str, str]) -> list[dict[str, object]]:
    done = run_cli(["ps", "--json"], cwd=project, env=environ)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def _wait_for(predicate: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _log(project: Path, environ: dict[str, str], *args: str) -> list[dict[str, object]]:
    done = run_cli(["log", "--json", *args], cwd=project, env=environ)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_ps_lists_running_sandboxes_and_forgets_ended_ones(project: Path,
                                                           senv: dict[str, str]) -> None:
    assert run_cli(["ps"], cwd=project, env=senv).stderr == \
        "agent-sandbox: no sandboxes are running\n"
    with launched(["-q", "--", "sleep", "30"], cwd=project, env=senv) as first, \
            launched(["-q", "--", "sleep", "30"], cwd=project, env=senv) as second:
        _wait_for(lambda: len(_ps(project, senv)) == 2)
        names = {s["pid"]: s["name"] for s in _ps(project, senv)}  # in start order
        assert sorted(names.values()) == ["sleep-1", "sleep-2"]
        assert set(names) == {first.pid, second.pid}
        assert all(s["project"] == str(project) and s["net"] == "none"
                   for s in _ps(project, senv))
        table = run_cli(["ps"], cwd=project, env=senv).stdout.splitlines()
        assert table[0].split() == ["NAME", "AGENT", "PID", "NET", "UPTIME", "TERMINAL",
                                    "PROJECT"]
        assert sorted(row.split()[:3] for row in table[1:]) == sorted(
            [name, "-", str(pid)] for pid, name in names.items())
        first.terminate()
        first.wait(timeout=20)
        _wait_for(lambda: [s["name"] for s in _ps(project, senv)] == [names[second.pid]])


def test_a_name_in_use_is_refused_before_anything_starts(project: Path,
                                                         senv: dict[str, str]) -> None:
    with launched(["-q", "--name", "work", "--", "sleep", "30"], cwd=project, env=senv):
        _wait_for(lambda: len(_ps(project, senv)) == 1)
        done = run_cli(["-q", "--name", "work", "--", "touch", "second"], cwd=project,
                       env=senv)
        assert done.returncode == 2
        assert "a session named 'work' is already running" in done.stderr
        assert not (project / "second").exists()


@pytest.mark.parametrize("name", ["", "-x", "a/b", "x" * 65, "a b"])
def test_bad_names_are_usage_errors(project: Path, senv: dict[str, str], name: str) -> None:
    done = run_cli([f"--name={name}", "--", "true"], cwd=project, env=senv)
    assert done.returncode == 2 and "a session name is 1-64 letters" in done.stderr


def test_a_killed_launchers_record_is_not_believed(project: Path,
                                                   senv: dict[str, str]) -> None:
    with launched(["-q", "--name", "gone", "--", "sleep", "30"], cwd=project,
                  env=senv) as proc:
        _wait_for(lambda: len(_ps(project, senv)) == 1)
        proc.kill()  # no chance to remove its record
        proc.wait()
    records = Path(senv["XDG_RUNTIME_DIR"], "agent-sandbox")
    assert (records / "gone.json").exists()
    assert _ps(project, senv) == []
    assert not (records / "gone.json").exists()  # removed by ps
    done = run_cli(["-q", "--name", "gone", "--", "true"], cwd=project, env=senv)
    assert done.returncode == 0, done.stderr


def test_stop_ends_the_command_like_sigterm(project: Path, senv: dict[str, str]) -> None:
    script = "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done"
    with launched(["-q", "--name", "victim", "--", "sh", "-c", script], cwd=project,
                  env=senv) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
        done = run_cli(["stop", "victim"], cwd=project, env=senv)
        assert done.returncode == 0 and done.stderr == "agent-sandbox: stopped victim\n"
        assert proc.wait(timeout=5) == 7
        assert "got-term" in proc.stdout.read()
    assert _ps(project, senv) == []


def test_stop_and_attach_unknown_sessions(project: Path, senv: dict[str, str]) -> None:
    for args in (["stop", "nope"], ["attach", "nope"]):
        done = run_cli(args, cwd=project, env=senv)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("agent-sandbox: error: no running session named 'nope'")
        assert "Traceback" not in done.stderr


def test_log_has_starts_exits_and_decisions_by_session(project: Path,
                                                       senv: dict[str, str]) -> None:
    # A denied name is refused before any lookup: no network is needed for this.
    fetch = ("import os, urllib.request\n"
             "try: urllib.request.urlopen('http://denied.example/')\n"
             "except Exception as e: print(e)\n")
    done = run_cli(["-q", "--name", "net", "--allow", "allowed.example", "--", "python3", "-c",
                    fetch], cwd=project, env=senv)
    assert done.returncode == 0 and "403" in done.stdout, done.stdout + done.stderr
    run_cli(["-q", "--name", "other", "--", "true"], cwd=project, env=senv)
    records = _log(project, senv, "--session", "net")
    assert [r["decision"] for r in records] == ["start", "deny", "exit"]
    start, deny, end = records
    assert start["net"] == "filtered (1 host)" and start["project"] == str(project)
    assert deny["host"] == "denied.example" and end["status"] == 0
    assert {r["session"] for r in _log(project, senv)} == {"net", "other"}
    human = run_cli(["log", "--session", "net"], cwd=project, env=senv).stdout.splitlines()
    assert len(human) == 3 and "  net  deny  " in human[1]


def test_log_of_an_unknown_session_is_an_error(project: Path, senv: dict[str, str]) -> None:
    done = run_cli(["log", "--session", "never"], cwd=project, env=senv)
    assert done.returncode == 2 and "no session named 'never' in the log" in done.stderr


def test_log_follow_prints_new_records(project: Path, senv: dict[str, str]) -> None:
    # ^C as a terminal sends it, even when the suite itself runs with SIGINT ignored (a
    # background job of a non-interactive shell), which the follower would inherit.
    with subprocess.Popen([*CLI, "log", "--follow", "--json"], cwd=project, env=senv,
                          stdout=subprocess.PIPE, text=True,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                          ) as follower:
        try:
            # Whether the follower is up before or after this launch, its first line is
            # this start: the log holds nothing before it.
            run_cli(["-q", "--name", "later", "--", "true"], cwd=project, env=senv)
            assert follower.stdout is not None
            first = json.loads(follower.stdout.readline())
            assert (first["session"], first["decision"]) == ("later", "start")
        finally:
            follower.send_signal(signal.SIGINT)
            follower.wait(timeout=10)


def _attach(project: Path, senv: dict[str, str], name: str) -> pexpect.spawn:
    child = pexpect.spawn(CLI[0], [*CLI[1:], "attach", name], cwd=str(project), env=senv,
                          encoding="utf-8", timeout=20, dimensions=(24, 80))
    child.expect(f"attached to {name}")
    return child


def test_detach_attach_detach_and_attach_again(project: Path, senv: dict[str, str]) -> None:
    echo = 'while read line; do echo "got $line in $(tty)"; done'
    done = run_cli(["-q", "--detach", "--name", "bg", "--", "sh", "-c", echo], cwd=project,
                   env=senv)
    assert done.returncode == 0, done.stderr
    assert "started bg, detached; attach with: agent-sandbox attach bg" in done.stderr
    try:
        [session] = _ps(project, senv)
        assert session["name"] == "bg"
        assert "detached" in run_cli(["ps"], cwd=project, env=senv).stdout
        child = _attach(project, senv, "bg")
        child.sendline("one")
        child.expect(r"got one in /dev/(console|pts/\d+)")  # a terminal
        child.sendcontrol("\\")  # detach
        child.expect(pexpect.EOF)
        child.close()
        assert [s["name"] for s in _ps(project, senv)] == ["bg"]  # still running
        child = _attach(project, senv, "bg")
        child.sendline("two")
        child.expect("got two")
        child.sendcontrol("d")  # the command's own end
        child.expect(pexpect.EOF)
        child.close()
        _wait_for(lambda: _ps(project, senv) == [])
        dead = run_cli(["attach", "bg"], cwd=project, env=senv)  # ended: nothing to attach
        assert dead.returncode == 2
        assert "no running session named 'bg'" in dead.stderr
    finally:
        run_cli(["stop", "bg"], cwd=project, env=senv)


def test_attach_refuses_a_session_that_is_not_detached(project: Path,
                                                       senv: dict[str, str]) -> None:
    with launched(["-q", "--name", "fg", "--", "sleep", "30"], cwd=project, env=senv):
        _wait_for(lambda: len(_ps(project, senv)) == 1)
        done = run_cli(["attach", "fg"], cwd=project, env=senv)
        assert done.returncode == 2
        assert "fg is not detached: it runs in the terminal it was started from" in done.stderr


def test_detach_default_name_and_a_bad_command_starts_nothing(project: Path,
                                                              senv: dict[str, str]) -> None:
    bad = run_cli(["--detach", "--", "no-such-command"], cwd=project, env=senv)
    assert bad.returncode == 127 and _ps(project, senv) == []
    done = run_cli(["-q", "--detach", "--", "sleep", "30"], cwd=project, env=senv)
    try:
        assert done.returncode == 0, done.stderr
        assert [s["name"] for s in _ps(project, senv)] == ["sleep-1"]
    finally:
        run_cli(["stop", "sleep-1"], cwd=project, env=senv)


def test_sessions_bad_input(project: Path, senv: dict[str, str]) -> None:
    empty = run_cli(["log", "--session", ""], cwd=project, env=senv)
    assert empty.returncode == 2 and "--session '': a session name is" in empty.stderr
    # A line in the log that is not one of ours does not stop the listing.
    state = Path(senv["HOME"], ".local", "state", "agent-sandbox")
    state.mkdir(parents=True)
    (state / "decisions.jsonl").write_text('{"time": null}\n[1]\nnot json\n')
    listed = run_cli(["log"], cwd=project, env=senv)
    assert listed.returncode == 0 and listed.stdout == "" and "Traceback" not in listed.stderr


def test_a_sessions_directory_others_can_write_is_refused(project: Path,
                                                           senv: dict[str, str]) -> None:
    # Its records would tell stop which process to signal.
    records = Path(senv["XDG_RUNTIME_DIR"], "agent-sandbox")
    records.mkdir()
    records.chmod(0o777)
    for args in (["ps"], ["stop", "x"], ["-q", "--", "true"]):
        done = run_cli(args, cwd=project, env=senv)
        assert done.returncode == 125, (args, done.stderr)
        assert "is not a directory private to you" in done.stderr


def test_detach_refuses_a_socket_path_too_long(project: Path, env: Env) -> None:
    runtime = project.parent / ("r" * 100)
    runtime.mkdir(mode=0o700)
    done = run_cli(["--detach", "--", "true"], cwd=project,
                   env=env.with_(XDG_RUNTIME_DIR=str(runtime)))
    assert done.returncode == 125
    assert "socket path is too long" in done.stderr and "XDG_RUNTIME_DIR" in done.stderr


def test_the_command_cannot_reach_records_log_or_terminals(project: Path,
                                                           senv: dict[str, str]) -> None:
    records = Path(senv["XDG_RUNTIME_DIR"], "agent-sandbox")
    state = Path(senv["HOME"], ".local", "state", "agent-sandbox")
    done = run_cli(["-q", "--detach", "--name", "bg", "--", "sleep", "30"], cwd=project,
                   env=senv)
    assert done.returncode == 0, done.stderr
    try:
        # The control: they are there on the host.
        assert {"bg.json", "bg.sock"} <= set(os.listdir(records))
        assert (state / "decisions.jsonl").exists()
        probe = run_cli(["-q", "--", "sh", "-c",
                         f"for d in {records} {state}; do test -e $d && echo SEEN $d; done; "
                         "echo done"], cwd=project, env=senv)
        assert probe.stdout == "done\n", probe.stdout + probe.stderr
    finally:
        run_cli(["stop", "bg"], cwd=project, env=senv)


def test_options_before_a_subcommand_keep_it_a_subcommand(project: Path,
                                                          senv: dict[str, str]) -> None:
    """`agent-sandbox -q ps` is the ps subcommand (it used to run ps in a sandbox); -q and
    -v go before any subcommand, the launch's options before config and explain, which
    take them; after --, ps is a command."""
    with launched(["-q", "--name", "busy", "--", "sleep", "30"], cwd=project, env=senv):
        _wait_for(lambda: len(_ps(project, senv)) == 1)
        for options in (["-q"], ["-v"], ["-qv"], ["--quiet", "--verbose"]):
            done = run_cli([*options, "ps"], cwd=project, env=senv)
            assert done.returncode == 0, (options, done.stderr)
            assert done.stdout.splitlines()[0].split()[0] == "NAME", (options, done.stdout)
            assert "busy" in done.stdout and done.stderr == "", (options, done.stderr)
        listed = run_cli(["-q", "ps", "--json"], cwd=project, env=senv)
        assert json.loads(listed.stdout)["name"] == "busy"
        stopped = run_cli(["-q", "stop", "busy"], cwd=project, env=senv)
        assert stopped.returncode == 0 and stopped.stderr == ""  # the notice, hushed
    assert run_cli(["-q", "ps"], cwd=project, env=senv).stderr == ""
    assert run_cli(["-v", "ps"], cwd=project, env=senv).stderr == \
        "agent-sandbox: no sandboxes are running\n"
    inside = run_cli(["-q", "--", "ps", "-e", "-o", "comm="], cwd=project, env=senv)
    assert inside.returncode == 0 and inside.stdout.split()[-1] == "ps", inside.stderr
    explained = run_cli(["--allow", "api.example.test", "explain", "api.example.test:443"],
                        cwd=project, env=senv)
    assert explained.returncode == 0 and "allowed on port 443" in explained.stdout, \
        explained.stderr
    for words, flag, sub in ((["--allow", "x.test", "ps"], "--allow", "ps"),
                             (["--net=host", "log"], "--net", "log"),
                             (["-q", "--detach", "attach", "x"], "--detach", "attach")):
        done = run_cli(words, cwd=project, env=senv)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith(f"agent-sandbox: error: {flag} is an option of a launch, "
                                      f"which {sub} does not take"), done.stderr
