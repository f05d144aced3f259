"""The terminal firewall's filter, pure: what it drops, what it keeps intact, split reads,
bounded memory. The relay's real-pty tests are in tests/integration/test_terminal.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent_sandbox._run.ttyfilter import SEQUENCE_MAX, OutputFilter

ESC = b"\x1b"
ST = ESC + b"\\"

# What must never reach the user's terminal, with the kind it is counted as.
DANGEROUS = {
    "OSC 52 write, BEL": (ESC + b"]52;c;ZWNobyBwd25lZAo=\x07", "OSC 52 (clipboard)"),
    "OSC 52 write, ST": (ESC + b"]52;c;ZWNobyBwd25lZAo=" + ST, "OSC 52 (clipboard)"),
    "OSC 52 query": (ESC + b"]52;c;?\x07", "OSC 52 (clipboard)"),
    "OSC 52 8-bit ST": (ESC + b"]52;c;eA==\xc2\x9c", "OSC 52 (clipboard)"),
    "title report": (ESC + b"[21t", "CSI 21 t (title report)"),
    "icon report": (ESC + b"[20t", "CSI 21 t (title report)"),
    "window move": (ESC + b"[3;0;0t", "CSI t (window operation)"),
    "DECRQSS": (ESC + b"P$qm" + ST, "DCS (device control string)"),
    "XTGETTCAP": (ESC + b"P+q544e" + ST, "DCS (device control string)"),
    "tmux passthrough": (ESC + b"Ptmux;" + ESC + ESC + b"]52;c;eA==\x07" + ST,
                         "DCS (device control string)"),
    "APC (kitty graphics)": (ESC + b"_Gf=100;AAAA" + ST, "APC"),
    "PM": (ESC + b"^private" + ST, "PM"),
    "SOS": (ESC + b"Xstring" + ST, "SOS"),
    "paste end": (ESC + b"[201~", "CSI ~"),
    "paste start": (ESC + b"[200~", "CSI ~"),
    "iTerm2 command": (ESC + b"]1337;File=inline=1:AAAA\x07", "OSC 1337 (iTerm2 commands)"),
    "8-bit answers": (ESC + b" G", "ESC  G"),
    "ENQ answerback": (b"\x05", "C0 control"),
    "encoded C1 CSI": (b"\xc2\x9b21t", "C1 control"),
    "encoded C1 OSC": (b"\xc2\x9d52;c;eA==\x07", "C1 control"),
    "raw C1 CSI": (b"\x9b21t", "C1 control"),
    "raw C1 DCS": (b"\x90$qm\x9c", "C1 control"),
    "printer": (ESC + b"[5i", "CSI i"),
}

# What TUIs need, passed byte for byte.
ALLOWED = [
    ESC + b"[0m", ESC + b"[1;38;5;208;48;2;10;20;30m", ESC + b"[4:3m", ESC + b"[H",
    ESC + b"[12;40H", ESC + b"[2J", ESC + b"[K", ESC + b"[3A", ESC + b"[?1049h",
    ESC + b"[?1049l", ESC + b"[?25l", ESC + b"[?1000h", ESC + b"[?1006h", ESC + b"[?1004h",
    ESC + b"[?2004h", ESC + b"[?2026h", ESC + b"[?2026$p", ESC + b"[5;20r", ESC + b"7",
    ESC + b"8", ESC + b"(0", ESC + b"(B", ESC + b"=", ESC + b">", ESC + b"[c", ESC + b"[>c",
    ESC + b"[6n", ESC + b"[>q", ESC + b"[?u", ESC + b"[>1u", ESC + b"[<u", ESC + b"[2 q",
    ESC + b"[22;0t", ESC + b"[23;0t", ESC + b"[14t", ESC + b"[>4;2m",
    ESC + b"]0;my title\x07", ESC + b"]2;t\xc3\xa9l\xc3\xa9" + ST,
    ESC + b"]8;;https://example.com/a?b=c" + ST + b"link" + ESC + b"]8;;" + ST,
    ESC + b"]11;?\x07", ESC + b"]10;rgb:ffff/ffff/ffff" + ST, ESC + b"]104\x07",
    b"\x07", b"\x08", b"\t", b"\n", b"\r", "héllo wörld ✓ 漢字 🎉".encode(),
]


def _filter(*chunks: bytes) -> tuple[bytes, dict[str, int]]:
    f = OutputFilter()
    out = b"".join(f.feed(c) for c in chunks) + f.flush()
    return out, f.dropped


@pytest.mark.parametrize("name", DANGEROUS)
def test_each_dangerous_sequence_is_dropped_whole_and_counted(name: str) -> None:
    sequence, kind = DANGEROUS[name]
    out, dropped = _filter(b"before " + sequence + b" after")
    assert ESC not in out and b"\x9b" not in out and b"\x9d" not in out, out
    assert out.startswith(b"before ") and out.endswith(b" after")
    assert dropped.get(kind, 0) >= 1, dropped


@pytest.mark.parametrize("name", DANGEROUS)
def test_a_dangerous_sequence_split_anywhere_is_dropped_the_same(name: str) -> None:
    data = b"a" + DANGEROUS[name][0] + b"z"
    whole = _filter(data)
    for cut in range(1, len(data)):
        assert _filter(data[:cut], data[cut:]) == whole, cut
    assert _filter(*(data[i:i + 1] for i in range(len(data)))) == whole


def test_allowed_sequences_pass_intact_whole_and_byte_by_byte() -> None:
    data = b"|".join(ALLOWED)
    assert _filter(data) == (data, {})
    assert _filter(*(data[i:i + 1] for i in range(len(data)))) == (data, {})


def test_every_c0_and_c1_control() -> None:
    passed = {0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D}
    for code in [*range(0x20), 0x7F]:
        if code == 0x1B:
            continue
        out, _ = _filter(b"x" + bytes([code]) + b"y")
        assert out == (b"x" + bytes([code]) + b"y" if code in passed or code == 0x7F
                       else b"xy"), code
    for code in range(0x80, 0xA0):
        assert _filter(b"x" + chr(code).encode() + b"y")[0] == b"xy", code  # encoded
        assert _filter(b"x" + bytes([code]) + b"y")[0] == b"xy", code  # raw


def test_other_invalid_utf8_passes_unchanged() -> None:
    data = b"\xff\xfe latin-1: caf\xe9 \xc3"
    assert _filter(data)[0] == data


def test_a_10_mb_unterminated_osc_is_never_held_and_the_stream_recovers() -> None:
    f = OutputFilter()
    out = f.feed(ESC + b"]52;c;")
    chunk = b"A" * 65536
    for _ in range(160):
        out += f.feed(chunk)
        assert len(f._held) <= 4 * SEQUENCE_MAX + 3  # bytes of at most SEQUENCE_MAX characters
    out += f.feed(b"\x07after") + f.flush()
    assert out == b"after"
    # A kept kind (a title) that never ends is dropped once it passes the bound.
    f = OutputFilter()
    out = f.feed(ESC + b"]0;") + b"".join(f.feed(chunk) for _ in range(16))
    out += f.feed(b"\x07after") + f.flush()
    assert out == b"after" and f.dropped == {"oversized sequence": 1}
    assert f._held == b""


def test_an_endless_csi_is_bounded() -> None:
    f = OutputFilter()
    out = f.feed(ESC + b"[" + b"1;" * 100000) + f.feed(b"m ok") + f.flush()
    assert ESC not in out and out.endswith(b"m ok") and "malformed CSI" in f.dropped


def test_an_esc_inside_a_dropped_string_starts_the_next_sequence() -> None:
    # Terminals end an OSC at an ESC that is not ST: so does the filter, else it would
    # pass what the terminal parses as a new sequence without judging it.
    for data in (ESC + b"]52;c;eA==" + ESC + b"[21t" + b"z",
                 ESC + b"]52;c;eA==" + ESC, ESC + b"P$q" + ESC + b"[1mz"):
        for cut in range(1, len(data)):
            out, _ = _filter(data[:cut], data[cut:])
            assert b"21t" not in out and b"$q" not in out


def test_kinds_are_bounded() -> None:
    f = OutputFilter()
    for n in range(1000):
        f.feed(ESC + b"]" + str(1000 + n).encode() + b";x\x07")
    assert len(f.dropped) <= 33 and sum(f.dropped.values()) == 1000


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=12))
def test_any_bytes_split_anyhow_give_the_same_clean_output(chunks: list[bytes]) -> None:
    """Whatever the command writes, however the reads split it: the same output, and that
    output passes the filter unchanged (only allowed, whole sequences are in it)."""
    joined = b"".join(chunks)
    out, _ = _filter(*chunks)
    assert out == _filter(joined)[0]
    assert _filter(out)[0] == out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*ALLOWED, *(s for s, _ in DANGEROUS.values()),
                                 b"text", b"\x1b", b"\x1b[", b"\x1b]", b"\x07", b"\x9c",
                                 b"\x1b\\", b"52;c;", b"21t", b";"]), max_size=20))
def test_no_mix_of_pieces_lets_a_dangerous_sequence_through(pieces: list[bytes]) -> None:
    out, _ = _filter(*pieces)
    for marker in (b"\x1b]52", b"\x1b[21t", b"\x1b[20t", b"\x1bP", b"\x1b_", b"\x1b^",
                   b"\x1bX", b"\x1b[201~", b"\x1b G", b"\x05", b"\xc2\x9b", b"\x9b"):
        assert marker not in out, (marker, out)
    assert _filter(out)[0] == out
