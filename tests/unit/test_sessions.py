"""Session records and the decision log, read back: pure parts and a private state dir."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent_sandbox._cli.sessions import Selection, describe, since
from agent_sandbox._errors import UsageError
from agent_sandbox._run.scrollback import SEGMENT, Ended, _Segments, find_ended, tail, terminal_safe
from agent_sandbox._run.sessions import Session, alive, default_base, numbered


def test_records_from_other_versions_or_half_written_are_not_sessions() -> None:
    assert Session.from_json("{") is None
    assert Session.from_json('{"name": "x"}') is None
    good = Session("a-1", 1, 2, 3.0, "", "/p", "none", ("true",))
    assert Session.from_json(good.to_json()) == good


def test_a_reused_pid_is_not_the_session() -> None:
    me = Session.from_json(json.dumps({"name": "x", "pid": os.getpid(), "ticks": 1,
                                       "started": 0.0, "agent": "", "project": "/",
                                       "net": "none", "command": ["x"]}))
    assert me is not None and not alive(me)  # our pid, another start time


@pytest.mark.parametrize("agent, command, base", [
    ("claude", ["/nix/store/x-claude-code/bin/claude"], "claude"),
    ("", ["/usr/bin/my tool (1)"], "mytool1"),
    ("", ["..."], "session"),
])
def test_default_names(agent: str, command: list[str], base: str) -> None:
    assert default_base(agent, command) == base


def test_a_detached_launch_that_already_ended_is_found_with_its_status(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    directory = tmp_path / "agent-sandbox" / "scrollback"
    assert find_ended("quick") is None  # nothing recorded yet
    directory.mkdir(parents=True)
    for meta in (Ended("quick.000001", "quick", 50.0, 9, 51.0),  # an older run
                 Ended("other.000002", "other", 60.0, 1, 61.0),
                 Ended("quick.000003", "quick", 100.0, 3, 101.0)):
        (directory / f"{meta.id}.json").write_text(json.dumps(meta._asdict()))
    (directory / "bad.1.json").write_text('{"id": "bad.1", "name": 1, "started": "x", '
                                          '"status": "3", "ended": null}')
    (directory / "link.2.json").symlink_to(directory / "quick.000003.json")
    assert find_ended("quick") == Ended("quick.000003", "quick", 100.0, 3, 101.0)
    assert find_ended("quick.000001") == Ended("quick.000001", "quick", 50.0, 9, 51.0)
    assert find_ended("bad.1") is None and find_ended("link.2") is None


def test_recorded_output_keeps_the_last_segment(tmp_path: Path) -> None:
    segments = _Segments(str(tmp_path), "s.1")
    for i in range(3000):
        segments.write(f"line {i:04d} ".encode() + b"x" * 1000 + b"\n")
    segments.close()
    on_disk = sum(f.stat().st_size for f in tmp_path.iterdir())
    assert on_disk <= 2 * SEGMENT
    kept = tail("s.1", str(tmp_path))
    assert len(kept) == SEGMENT and kept.endswith(b"line 2999 " + b"x" * 1000 + b"\n")
    assert b"line 0000" not in kept


def test_replayed_output_keeps_colours_and_drops_what_drives_a_terminal() -> None:
    raw = (b"plain\r\n\x1b[1;31mred\x1b[0m \x1b]52;c;ZWNobyBwd25lZA==\x07\x1b]0;title\x1b\\"
           b"\x1b[21t\x1bP$qm\x1b\\\x1b[2J\x1b[H\x07\x9b6n\xc2\x9b6n\x1bc\tend\xff")
    assert terminal_safe(raw) == "plain\r\n\x1b[1;31mred\x1b[0m \ufffd6n6n\tend\ufffd"


@pytest.mark.parametrize(("raw", "ago"), [("90", 90), ("30m", 1800), ("2h", 7200), ("7d", 604800)])
def test_since_a_duration(raw: str, ago: float) -> None:
    assert since(raw, 1_000_000.0) == 1_000_000.0 - ago


def test_since_a_local_time() -> None:
    import datetime

    now = datetime.datetime(2025, 6, 1, 15, 0).timestamp()
    assert since("2025-06-01", now) == datetime.datetime(2025, 6, 1).timestamp()
    assert since("2025-06-01T14:30", now) == datetime.datetime(2025, 6, 1, 14, 30).timestamp()
    assert since("14:30", now) == datetime.datetime(2025, 6, 1, 14, 30).timestamp()
    assert since("2025-06-01 14:30:00+00:00", now) == datetime.datetime(
        2025, 6, 1, 14, 30, tzinfo=datetime.UTC).timestamp()


@pytest.mark.parametrize("raw", ["yesterday", "", "-5m", "0", "25:00", "2025-13-01"])
def test_since_bad_values_say_what_is_allowed(raw: str) -> None:
    with pytest.raises(UsageError) as e:
        since(raw, 1_000_000.0)
    assert e.value.message == (f"--since {raw!r}: expected a duration ago (90, 30m, 2h, 7d) "
                               "or a local time (2025-06-01, 2025-06-01T14:30, 14:30 for "
                               "today)")


def test_a_name_selects_its_latest_run_and_an_id_any_run() -> None:
    records = [{"time": 1, "session": "w", "id": "w.1", "decision": "start"},
               {"time": 2, "session": "w", "id": "w.1", "decision": "deny"},
               {"time": 3, "session": "x", "id": "x.1", "decision": "start"},
               {"time": 4, "session": "w", "id": "w.2", "decision": "start"},
               {"time": 5, "session": "w", "id": "w.2", "decision": "allow"}]
    by_name = Selection("w", None, None)
    by_name.choose(records)
    assert by_name.runs == ["w.1", "w.2"]
    assert [r["time"] for r in records if by_name.wanted(r)] == [4, 5]
    by_id = Selection("w.1", "deny", None)
    by_id.choose(records)
    assert [r["time"] for r in records if by_id.wanted(r)] == [2]
    later = Selection(None, None, 3.5)
    assert [r["time"] for r in records if later.wanted(r)] == [4, 5]
    # Following a name: its next runs too.
    assert by_name.wanted({"time": 6, "session": "w", "id": "w.3"}, following=True)


def test_names_count_up_across_launches_and_skip_taken_ones(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert numbered("claude", lambda n: True) == "claude-1"
    assert numbered("claude", lambda n: True) == "claude-2"
    assert numbered("bash", lambda n: True) == "bash-1"
    assert numbered("claude", lambda n: n != "claude-3") == "claude-4"  # a live one holds 3
    numbers = tmp_path / "agent-sandbox" / "session-numbers.json"
    assert json.loads(numbers.read_text()) == {"bash": 1, "claude": 4}
    numbers.write_text("garbage")  # starts over, never fails the launch
    assert numbered("claude", lambda n: True) == "claude-1"
    numbers.unlink()
    numbers.mkdir()
    assert numbered("claude", lambda n: True) == "claude-1"


def test_describe_is_one_line_with_quoted_values() -> None:
    line = describe({"time": 0, "session": "s", "decision": "start",
                     "command": ["sh", "-c", "exit 3"], "agent": ""})
    assert line.endswith("  s  start  command=\"sh -c 'exit 3'\" agent=\"\"")
