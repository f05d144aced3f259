"""Session records and the decision log, read back: pure parts and a private state dir."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent_sandbox._cli.sessions import _ended, describe
from agent_sandbox._run.sessions import Session, alive, default_base


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
    log = tmp_path / "agent-sandbox" / "decisions.jsonl"
    log.parent.mkdir()
    assert _ended("quick", 100.0) is None  # no log yet
    log.write_text("".join(json.dumps(r) + "\n" for r in (
        {"time": 50.0, "session": "quick", "decision": "exit", "status": 9},  # an old run
        {"time": 100.5, "session": "other", "decision": "exit", "status": 1},
        {"time": 100.5, "session": "quick", "decision": "start"},
        {"time": 100.7, "session": "quick", "decision": "exit", "status": 3})))
    assert _ended("quick", 100.0) == 3
    assert _ended("quick", 200.0) is None


def test_describe_is_one_line_with_quoted_values() -> None:
    line = describe({"time": 0, "session": "s", "decision": "start",
                     "command": ["sh", "-c", "exit 3"], "agent": ""})
    assert line.endswith("  s  start  command=\"sh -c 'exit 3'\" agent=\"\"")
