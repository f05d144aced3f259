"""Messages on stderr, one line each after the ``agent-sandbox:`` prefix.

The kind a line starts with (``error:``, ``warning:``, ``WARNING:``, ``fix:``, ``notice:``)
is coloured only when stderr is a terminal, ``NO_COLOR`` is unset or empty (no-color.org)
and ``TERM`` is not ``dumb``: logs and pipes get plain text.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

_COLOURS = {"error:": "1;31", "warning:": "33", "WARNING:": "1;33", "fix:": "32",
            "notice:": "36"}


def colour_wanted(environ: Mapping[str, str], isatty: bool) -> bool:
    return isatty and not environ.get("NO_COLOR") and environ.get("TERM", "") != "dumb"


def render(text: str, colour: bool) -> str:
    """The full line for ``text`` (pure)."""
    kind, _, rest = text.partition(" ")
    if colour and kind in _COLOURS:
        text = f"\033[{_COLOURS[kind]}m{kind}\033[0m {rest}"
    return f"agent-sandbox: {text}"


def printable(text: str) -> str:
    """``text`` safe for a terminal: every C0 and C1 control character and DEL (ESC
    included, so no escape sequence survives) written as a visible ``\\xNN``. Strings
    from inside the sandbox (host names, paths, commands, session names) pass through this
    wherever they are printed."""
    return text.translate(_ESCAPES)


_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}


_KEPT_WHEN_QUIET = ("error:", "warning:", "WARNING:", "fix:")
_hushed = False


def hush() -> None:
    """From now on, ``say`` prints only errors, warnings and fixes (``-q`` before a
    subcommand: the launch itself decides line by line what ``-q`` drops)."""
    global _hushed
    _hushed = True


def say(text: str) -> None:
    """One message line on stderr; nothing in it can drive the terminal (``printable``)."""
    if _hushed and not text.startswith(_KEPT_WHEN_QUIET):
        return
    print(render(printable(text), colour_wanted(os.environ, sys.stderr.isatty())),
          file=sys.stderr)


def human_size(n: int) -> str:
    """Bytes as people write them: 2G, 11.7G, 512M, 40B."""
    for unit, factor in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= factor:
            return f"{n // factor}{unit}" if n % factor == 0 else f"{n / factor:.1f}{unit}"
    return f"{n}B"


def home_relative(path: str, home: str | None = None) -> str:
    """``path`` with the caller's home written ``~``, for messages."""
    home = home or os.path.expanduser("~")
    return "~" + path[len(home):] if path == home or path.startswith(home + "/") else path
