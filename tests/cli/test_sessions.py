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
        # Ended: attach shows what it printed, and how it ended.
        dead = run_cli(["attach", "bg"], cwd=project, env=senv)
        assert dead.returncode == 0, dead.stderr
        assert "got one in" in dead.stdout and "got two in" in dead.stdout
        assert "bg (bg." in dead.stderr and "with status 0" in dead.stderr
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


def _state(senv: dict[str, str]) -> Path:
    return Path(senv["HOME"], ".local", "state", "agent-sandbox")


def test_a_detached_job_that_ended_before_attach_shows_its_output_and_status(
        project: Path, senv: dict[str, str]) -> None:
    """Its output is kept after it ends: attach prints it (colours kept, an OSC 52 clipboard
    write and a terminal query dropped) and its exit status, and exits with it."""
    script = ("echo out-line; echo err-line >&2; "
              "printf '\\033]52;c;ZWNobyBwd25lZA==\\007\\033[21t\\033[31mred\\033[0m\\n'; "
              "exit 3")
    done = run_cli(["-q", "--detach", "--name", "job", "--", "sh", "-c", script],
                   cwd=project, env=senv)
    assert done.returncode in (0, 3), done.stderr  # 3 if it ended before detach returned
    _wait_for(lambda: _ps(project, senv) == [])
    shown = run_cli(["attach", "job"], cwd=project, env=senv)
    assert shown.returncode == 3, shown.stderr
    assert shown.stdout == "out-line\nerr-line\n\x1b[31mred\x1b[0m\n"
    assert "job (job." in shown.stderr and "with status 3" in shown.stderr
    # By its id too; and ps does not list it.
    [meta] = (_state(senv) / "scrollback").glob("job.*.json")
    by_id = run_cli(["attach", meta.stem], cwd=project, env=senv)
    assert by_id.returncode == 3 and by_id.stdout == shown.stdout
    # The control: a name that never ran is still an error.
    assert run_cli(["attach", "never"], cwd=project, env=senv).returncode == 2


def test_a_detached_jobs_kept_output_is_bounded(project: Path, senv: dict[str, str]) -> None:
    """3 MiB printed: at most 2 MiB on disk, attach shows the last MiB (ending with the last
    line, without the first)."""
    script = "i=0; while [ $i -lt 3000 ]; do printf 'line %04d %01000d\\n' $i 0; i=$((i+1)); done"
    done = run_cli(["-q", "--detach", "--name", "big", "--", "sh", "-c", script],
                   cwd=project, env=senv)
    assert done.returncode == 0, done.stderr
    _wait_for(lambda: _ps(project, senv) == [], timeout=60)
    kept = sum(f.stat().st_size for f in (_state(senv) / "scrollback").glob("big.*.out*"))
    assert 1 << 20 <= kept <= 2 << 20
    shown = run_cli(["attach", "big"], cwd=project, env=senv)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[-1].startswith("line 2999 ") and "line 0000" not in shown.stdout
    assert 0.95 * (1 << 20) < len(shown.stdout) <= (1 << 20) + 2


def test_each_run_has_its_own_id_and_a_name_is_not_reused(project: Path,
                                                          senv: dict[str, str]) -> None:
    """Two runs of the same command get two names (true-1, true-2) and two ids; two runs
    given the same --name get two ids, and log --session NAME shows only the latest,
    log --session ID either one."""
    for _ in range(2):
        assert run_cli(["-q", "--", "true"], cwd=project, env=senv).returncode == 0
    for status in (4, 5):
        run_cli(["-q", "--name", "same", "--", "sh", "-c", f"exit {status}"], cwd=project,
                env=senv)
    starts = [r for r in _log(project, senv) if r["decision"] == "start"]
    assert [r["session"] for r in starts] == ["true-1", "true-2", "same", "same"]
    ids = [str(r["id"]) for r in starts]
    assert len(set(ids)) == 4 and all(i.startswith(f"{r['session']}.")
                                      for i, r in zip(ids, starts, strict=True))
    latest = run_cli(["log", "--json", "--session", "same"], cwd=project, env=senv)
    records = [json.loads(line) for line in latest.stdout.splitlines()]
    assert {r["id"] for r in records} == {ids[3]}
    assert [r.get("status") for r in records if r["decision"] == "exit"] == [5]
    assert f"same: 2 runs had this name; shown: the latest ({ids[3]})" in latest.stderr
    assert ids[2] in latest.stderr
    first = _log(project, senv, "--session", ids[2])
    assert [r.get("status") for r in first if r["decision"] == "exit"] == [4]
    assert _log(project, senv, "--session", "true-1") == [
        r for r in _log(project, senv) if r["id"] == ids[0]]


def test_log_filters_by_time_and_verdict(project: Path, senv: dict[str, str]) -> None:
    state = _state(senv)
    state.mkdir(parents=True)
    now = time.time()
    old = [{"time": now - 7200, "session": "a", "id": "a.1", "decision": "start"},
           {"time": now - 7100, "session": "a", "id": "a.1", "decision": "deny", "host": "x"}]
    (state / "decisions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    fetch = ("import urllib.request\n"
             "try: urllib.request.urlopen('http://denied.example/')\n"
             "except Exception as e: print(e)\n")
    run_cli(["-q", "--name", "net", "--allow", "allowed.example", "--", "python3", "-c",
             fetch], cwd=project, env=senv)
    assert [r["decision"] for r in _log(project, senv, "--since", "30m")] == \
        ["start", "deny", "exit"]
    assert [(r["session"], r["host"]) for r in _log(project, senv, "--verdict", "deny")] == \
        [("a", "x"), ("net", "denied.example")]
    assert [r["session"] for r in _log(project, senv, "--verdict", "deny", "--since", "3h")] \
        == ["a", "net"]
    today = time.strftime("%Y-%m-%d", time.localtime(now - 7200))
    assert len(_log(project, senv, "--since", today)) == 5
    assert _log(project, senv, "--verdict", "allow") == []
    assert _log(project, senv, "--session", "a", "--since", "1h") == []  # known, none since


@pytest.mark.parametrize(("args", "needle"), [
    (["--since", "yesterday"], "--since 'yesterday': expected a duration ago (90, 30m, 2h, "
                               "7d) or a local time (2025-06-01, 2025-06-01T14:30, 14:30"),
    (["--since", "0"], "--since '0': expected a duration ago"),
    (["--verdict", "maybe"], "argument --verdict: invalid choice: 'maybe' (choose from "
                             "'allow', 'deny')"),
])
def test_log_bad_filters_say_what_is_allowed(project: Path, senv: dict[str, str],
                                             args: list[str], needle: str) -> None:
    done = run_cli(["log", *args], cwd=project, env=senv)
    assert done.returncode == 2 and needle in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_log_reads_the_rotated_file_and_the_current_one(project: Path,
                                                        senv: dict[str, str]) -> None:
    """A launch that finds the log over 8 MiB moves it to decisions.jsonl.1 (one old file,
    replacing the previous one); log shows both, in time order."""
    from agent_sandbox._net.log import ROTATE_AT

    state = _state(senv)
    state.mkdir(parents=True)
    (state / "decisions.jsonl.1").write_text(json.dumps(
        {"time": 1.0, "session": "ancient", "id": "ancient.1", "decision": "start"}) + "\n")
    filler = json.dumps({"time": 2.0, "session": "old", "decision": "allow", "pad": "x" * 100})
    (state / "decisions.jsonl").write_text((filler + "\n") * (ROTATE_AT // 120 + 10))
    run_cli(["-q", "--name", "new", "--", "true"], cwd=project, env=senv)
    assert sorted(p.name for p in state.glob("decisions.jsonl*")) == [
        "decisions.jsonl", "decisions.jsonl.1"]  # ancient's file was replaced
    assert (state / "decisions.jsonl.1").stat().st_size > ROTATE_AT
    sessions = [r["session"] for r in _log(project, senv)]
    assert sessions[0] == "old" and sessions[-2:] == ["new", "new"]
    assert "ancient" not in sessions


def test_a_scrollback_directory_others_can_read_is_refused(project: Path,
                                                           senv: dict[str, str]) -> None:
    """What sessions printed may hold secrets: --detach refuses, in the caller's terminal,
    to keep it where others could read it, and starts nothing."""
    scrollback = _state(senv) / "scrollback"
    scrollback.mkdir(parents=True)
    scrollback.chmod(0o755)
    done = run_cli(["--detach", "--name", "x", "--", "touch", "started"], cwd=project,
                   env=senv)
    assert done.returncode == 125, done.stderr
    assert f"{scrollback}, where detached sessions' output is kept, is not a directory " \
           "private to you" in done.stderr
    assert f"fix: remove {scrollback} if it is not yours" in done.stderr
    assert _ps(project, senv) == [] and not (project / "started").exists()
