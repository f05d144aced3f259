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


def say(text: str) -> None:
    print(render(text, colour_wanted(os.environ, sys.stderr.isatty())), file=sys.stderr)


def home_relative(path: str, home: str | None = None) -> str:
    """``path`` with the caller's home written ``~``, for messages."""
    home = home or os.path.expanduser("~")
    return "~" + path[len(home):] if path == home or path.startswith(home + "/") else path
