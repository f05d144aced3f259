"""Nothing from inside the sandbox drives the user's terminal: ``printable`` leaves no C0 or
C1 control character, so no escape sequence of any kind, in what the launcher prints."""

from __future__ import annotations

import io
import sys

import pytest

from agent_sandbox._cli.sessions import describe, table
from agent_sandbox._run.sessions import Session
from agent_sandbox._say import printable, say

SEQUENCES = {
    "OSC 52 clipboard write": "\x1b]52;c;ZWNobyBwd25lZA==\x07",
    "OSC with ST": "\x1b]0;title\x1b\\",
    "CSI title report": "\x1b[21t",
    "CSI colour": "\x1b[31m",
    "DCS DECRQSS": "\x1bP$qm\x1b\\",
    "bracketed paste end": "\x1b[201~",
    "8-bit CSI": "\x9b31m",
    "8-bit OSC": "\x9d52;c;aGk=\x9c",
    "SS3": "\x1bOP",
}


@pytest.mark.parametrize("code", [*range(0x20), 0x7F, *range(0x80, 0xA0)])
def test_every_control_character_is_made_visible(code: int) -> None:
    shown = printable(f"a{chr(code)}b")
    assert shown == f"a\\x{code:02x}b"


@pytest.mark.parametrize("name", list(SEQUENCES))
def test_no_escape_sequence_survives(name: str) -> None:
    shown = printable(f"host{SEQUENCES[name]}.example")
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in shown), shown


def test_text_stays_as_it_is() -> None:
    text = "café.example.com:443 /home/ü/src \\path\\ ~ 日本"
    assert printable(text) == text


def test_say_ps_and_log_print_no_raw_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    evil = "".join(SEQUENCES.values())
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    say(f"denied {evil}")
    row = table([Session(f"s{evil}", 1, 1, 0.0, evil, f"/p{evil}", evil, (evil,))], (), 1.0)
    line = describe({"time": 0, "session": evil, "decision": "deny", "host": evil})
    for out in (err.getvalue(), row, line):
        assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out, out
