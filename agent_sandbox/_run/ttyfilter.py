"""The terminal firewall's filter: what the command writes to its terminal, streamed, with
every escape sequence outside an allow-list dropped. Pure: bytes in, bytes out, counts.

A terminal emulator obeys what the programs it shows write to it, and some of that reaches
beyond the screen: OSC 52 sets (or reads) the system clipboard, title and DECRQSS reports
type attacker-chosen text into the input, tmux passthrough and APC carry sequences past a
multiplexer, ``ESC SP G`` switches the answers to 8-bit controls. The allow-list is what
TUIs need: SGR, cursor movement and erasing, scroll regions, modes (alternate screen, mouse,
focus, bracketed paste, synchronized output, cursor style), OSC 0/1/2 titles and OSC 8
links, colour set/query, and the queries whose answers the terminal makes up itself
(device attributes, cursor position, mode and size reports, XTVERSION, the kitty keyboard
flags). Everything else is dropped whole and counted by kind.

Bytes are decoded as UTF-8 (``surrogateescape``: invalid bytes round-trip unchanged), so a
C1 control is seen both as an encoded code point (U+009B, which VTE and xterm take as CSI)
and as a raw byte 0x80-0x9F outside a valid sequence: both are dropped. A sequence split
across reads waits for its end; one that grows past ``SEQUENCE_MAX`` (an unterminated OSC
of 10 MB, say) is dropped and the rest of it skipped without being kept: the filter never
holds more than ``SEQUENCE_MAX`` characters.
"""

from __future__ import annotations

import codecs
import re

SEQUENCE_MAX = 8192  # characters of one kept sequence (an OSC 8 link's URL fits)
KINDS_MAX = 32  # distinct kinds counted; more are counted as "other"

# In the ground state: ESC, and the controls a terminal acts on beyond the screen. Passed:
# BEL, BS, HT, LF, VT, FF, CR (and DEL, which terminals ignore). Dropped: ENQ (answerback),
# SO/SI (charset shifts that garble the screen), CAN/SUB, the other C0 controls, C1 controls
# encoded (U+0080-U+009F) or raw (lone bytes 0x80-0x9F, decoded as U+DC80-U+DC9F).
_SPECIAL = re.compile("[\x00-\x06\x0e-\x1f\x80-\x9f\udc80-\udc9f]")
# The fast path (``_clean``), on bytes: the C0 controls dropped (not ESC), an encoded C1,
# and, after each ESC, the sequences most output is made of (SGR, cursor moves, erasing,
# DEC modes, charsets): a chunk with nothing else passes as it is. Each of these is one
# the slow path allows too.
_C0_DROPPED = bytes([*range(0x07), *range(0x0E, 0x1B), *range(0x1C, 0x20)])
_ENCODED_C1 = re.compile(rb"\xc2[\x80-\x9f]")
_UNFINISHED = re.compile(rb"\x1b(?:\[\??[0-9;:]{0,32})?")  # a common one, cut by the read
_COMMON_ONLY = re.compile(rb"[^\x1b]*(?:\x1b(?:\[[0-9;:]*[@A-HJ-MPSTXZ`a-hmr]|\[\?[0-9;]*[hl]"
                          rb"|[78=>MDE]|\([0B])[^\x1b]*)*")
_CSI_MAX = 256  # characters of a CSI: longer is no sequence a TUI writes
_CSI = re.compile(r"\[([\x30-\x3f]*)([\x20-\x2f]*)([\x40-\x7e])?")
_ESC = re.compile(r"([\x20-\x2f]*)([\x30-\x7e])?")
_OSC_STOP = re.compile("[\x00-\x1f\x7f-\x9f\udc80-\udc9f]")  # where a kept OSC ends
_STRING_END = re.compile("[\x1b\x9c\x18\x1a]")  # ESC (of ST), ST, CAN, SUB
_OSC_END = re.compile("[\x1b\x9c\x18\x1a\x07]")  # and BEL

# CSI (private marker, intermediates) -> the final bytes allowed with them.
_CSI_ALLOWED = {
    ("", ""): "@ABCDEFGHIJKLMPSTXZ`abcdefghlmnrsu",
    ("?", ""): "hlJKnsruS",
    ("?", "$"): "p",  # DECRQM (private modes): the answer is the mode's state
    ("", "$"): "p",  # DECRQM
    (">", ""): "cmqu",  # DA2, modifyOtherKeys, XTVERSION, kitty keyboard push
    ("<", ""): "u",  # kitty keyboard pop
    ("=", ""): "cu",  # DA3, kitty keyboard set
    ("", " "): "q",  # cursor style
    ("", "!"): "p",  # soft reset
}
# CSI Ps t: the title stack (22, 23) and size reports (numbers the terminal knows); not the
# window moves and resizes, nor the title reports (20, 21), which type the title back.
_WINDOW_OPS = frozenset({"14", "16", "18", "19", "22", "23"})
# ESC + final, and the charset designations ESC ( 0 and the like.
_ESC_ALLOWED = frozenset("78=>MDEc")
_CHARSET_INTERMEDIATES = frozenset("()*+-./")
# OSC numbers: titles, palette and colours (set and query: the answer is a colour), links,
# colour resets.
_OSC_ALLOWED = frozenset({"0", "1", "2", "4", "8", "10", "11", "12", "104", "110", "111",
                          "112"})
_STRING_STARTS = {"]": "OSC", "P": "DCS", "X": "SOS", "^": "PM", "_": "APC"}
_OSC_NAMES = {"52": "OSC 52 (clipboard)", "1337": "OSC 1337 (iTerm2 commands)",
              "5113": "OSC 5113 (file transfer)", "7": "OSC 7 (working directory)",
              "9": "OSC 9 (notification)", "777": "OSC 777 (notification)"}


class OutputFilter:
    """Feed it what the command wrote; write what ``feed`` returns to the real terminal.
    ``dropped`` counts what was dropped, by kind (at most ``KINDS_MAX`` kinds)."""

    def __init__(self) -> None:
        # What came but is not decided yet: an unfinished sequence from its ESC (at most
        # SEQUENCE_MAX characters) and a character cut at the end of a read.
        self._held = b""
        # Skipping the rest of a dropped string sequence (OSC, DCS...): whether BEL ends
        # it, and whether it ended a read on an ESC (perhaps the first half of ST).
        self._skipping = False
        self._skip_osc = False
        self._skip_esc = False
        self.dropped: dict[str, int] = {}

    def feed(self, data: bytes) -> bytes:
        data, self._held = self._held + data, b""
        if not self._skipping:
            # Most reads end inside a common sequence or a character: the part before it
            # passes if it is clean, the rest waits for the next read.
            cut = _unfinished_tail(data)
            if _clean(data[:cut]):
                self._held = data[cut:]
                return data[:cut]
        return self._slow(data, final=False)

    def flush(self) -> bytes:
        """At the end: what is still held is an unterminated sequence, dropped."""
        data, self._held = self._held, b""
        out = self._slow(data, final=True)
        if self._held:
            self._count("unterminated sequence")
            self._held = b""
        return out

    def _slow(self, data: bytes, final: bool) -> bytes:
        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        out, pending = self._run(decoder.decode(data, final))
        self._held = pending.encode("utf-8", "surrogateescape") + decoder.getstate()[0]
        return out.encode("utf-8", "surrogateescape")

    def _count(self, kind: str) -> None:
        if kind not in self.dropped and len(self.dropped) >= KINDS_MAX:
            kind = "other"
        self.dropped[kind] = self.dropped.get(kind, 0) + 1

    def _run(self, text: str) -> tuple[str, str]:
        """What of ``text`` passes, and the unfinished sequence at its end."""
        if self._skip_esc and text:  # the read before ended on an ESC inside a string
            self._skip_esc = self._skipping = False
            text = text[1:] if text[0] == "\\" else "\x1b" + text
        i = self._skip(text, 0) if self._skipping else 0
        out: list[str] = []
        while i < len(text):
            special = _SPECIAL.search(text, i)
            if special is None:
                out.append(text[i:])
                break
            out.append(text[i:special.start()])
            i = special.start()
            if text[i] != "\x1b":
                self._count("C1 control" if text[i] >= "\x80" else "C0 control")
                i += 1
                continue
            kept, end = self._sequence(text, i)
            if end is None:  # unfinished: wait for the rest (bounded by _sequence)
                return "".join(out), text[i:]
            if kept is not None:
                out.append(kept)
            i = self._skip(text, end) if self._skipping else end
        return "".join(out), ""

    def _sequence(self, text: str, i: int) -> tuple[str | None, int | None]:
        """The escape sequence at ``text[i]`` (an ESC): (what to pass or None, its end),
        or (None, None) while it is unfinished."""
        if i + 1 == len(text):
            return None, None
        intro = text[i + 1]
        if intro == "[":
            return self._csi(text, i)
        if intro in _STRING_STARTS:
            return self._string(text, i, _STRING_STARTS[intro])
        match = _ESC.match(text, i + 1)
        assert match is not None  # both groups may be empty
        inter, final = match.group(1), match.group(2)
        if final is None:
            if match.end() < len(text) or len(inter) > 8:  # cut short, or no sequence
                self._count("malformed escape")
                return None, match.end()
            return None, None
        end = match.end()
        if (not inter and final in _ESC_ALLOWED) or (
                len(inter) == 1 and inter in _CHARSET_INTERMEDIATES):
            return text[i:end], end
        self._count(f"ESC {inter}{final}" if len(inter) <= 2 else "ESC other")
        return None, end

    def _csi(self, text: str, i: int) -> tuple[str | None, int | None]:
        match = _CSI.match(text, i + 1)
        assert match is not None
        params, inter, final = match.groups()
        if final is None:
            if match.end() < len(text) or match.end() - i > _CSI_MAX:
                self._count("malformed CSI")  # cut short by a control, or endless
                return None, match.end()
            return None, None
        end = match.end()
        marker = params[0] if params[:1] in ("?", ">", "<", "=") else ""
        if final == "t" and not marker and not inter:
            first = params.split(";", 1)[0]
            if first in _WINDOW_OPS:
                return text[i:end], end
            self._count("CSI 21 t (title report)" if first in ("20", "21")
                        else "CSI t (window operation)")
            return None, end
        if final in _CSI_ALLOWED.get((marker, inter), ""):
            return text[i:end], end
        self._count(f"CSI {marker}{inter}{final}" if len(inter) <= 2 else "CSI other")
        return None, end

    def _string(self, text: str, i: int, kind: str) -> tuple[str | None, int | None]:
        """OSC, DCS, SOS, PM, APC: up to BEL (OSC only) or ST (ESC \\ or U+009C); CAN and
        SUB cancel one; an ESC not followed by ``\\`` ends it and starts a new sequence."""
        body = i + 2
        if kind == "OSC":
            number = re.match(r"\d{0,6}", text[body:body + 7])
            assert number is not None
            digits = number.group()
            after = body + len(digits)
            if after == len(text) and len(digits) < 6:
                return None, None  # the number is not known yet
            if digits in _OSC_ALLOWED and text[after] in ";\x07\x1b\x9c":
                return self._kept_osc(text, i, body)
            name = _OSC_NAMES.get(digits, f"OSC {digits}" if digits else "OSC")
        else:
            name = {"DCS": "DCS (device control string)"}.get(kind, kind)
        self._count(name)
        self._skipping, self._skip_osc = True, kind == "OSC"
        return None, body

    def _kept_osc(self, text: str, i: int, body: int) -> tuple[str | None, int | None]:
        stop = _OSC_STOP.search(text, body, i + SEQUENCE_MAX)
        if stop is None:
            if len(text) - i < SEQUENCE_MAX:
                return None, None
            self._count("oversized sequence")
            self._skipping, self._skip_osc = True, True
            return None, i + SEQUENCE_MAX
        j, c = stop.start(), stop.group()
        if c == "\x07":
            return text[i:j + 1], j + 1
        if c == "\x9c":
            return text[i:j] + "\x1b\\", j + 1
        if c == "\x1b":
            if j + 1 == len(text):
                return None, None
            if text[j + 1] == "\\":
                return text[i:j + 2], j + 2
            self._count("malformed OSC")
            return None, j  # the ESC starts the next sequence
        self._count("malformed OSC")  # a control inside a title or a link
        self._skipping, self._skip_osc = True, True
        return None, j

    def _skip(self, text: str, i: int) -> int:
        """Past the rest of a dropped string sequence: where what follows it starts."""
        end = (_OSC_END if self._skip_osc else _STRING_END).search(text, i)
        if end is None:
            return len(text)
        if end.group() != "\x1b":
            self._skipping = False
            return end.end()
        if end.end() == len(text):
            self._skip_esc = True  # decided by the next read's first character
            return len(text)
        self._skipping = False
        return end.end() + 1 if text[end.end()] == "\\" else end.start()


def _clean(data: bytes) -> bool:
    """Whether ``data`` passes unchanged, decided at C speed for what most output is:
    whole UTF-8 without a C1 control or a dropped C0 one, whose every ESC starts a common
    allowed sequence that ends within it."""
    if len(data.translate(None, _C0_DROPPED)) != len(data):
        return False
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return False
        if _ENCODED_C1.search(data):
            return False
    return _COMMON_ONLY.fullmatch(data) is not None


def _unfinished_tail(data: bytes) -> int:
    """Where a character or a common sequence cut by the end of the read starts (or the
    length of ``data``)."""
    cut = len(data)
    for back in range(1, min(3, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            break
        if byte >= 0xC0:  # a lead byte: is its character complete?
            if (2 if byte < 0xE0 else 3 if byte < 0xF0 else 4) > back:
                cut -= back
            break
    esc = data.rfind(b"\x1b", max(0, cut - 40), cut)
    if esc >= 0 and _UNFINISHED.fullmatch(data, esc, cut):
        cut = esc
    return cut
