"""TOML files the user writes (configuration, presets): read capped, parsed, and every
problem a UsageError that starts with ``FILE:LINE``. Also where a key stands in the text, so
that an error about a value names the line the user has to change."""

from __future__ import annotations

import re
from typing import Any

from agent_sandbox._errors import UsageError

# A configuration file is a few lines; one larger than this is not one.
MAX_BYTES = 1 << 20

# tomllib says where it stopped at the end of its message (it has no attributes for it
# before Python 3.14).
_AT_LINE = re.compile(r" \(at line (\d+), column (\d+)\)$")
_AT_END = " (at end of document)"


def read(path: str, *, follow: bool) -> tuple[str, dict[str, Any]] | None:
    """The text and the data of ``path``; None if it does not exist. ``follow``: the last
    component may be a symlink (never for a file the command can write)."""
    from agent_sandbox._files import read_input

    raw = read_input(path, MAX_BYTES, follow=follow)
    if raw is None:
        return None
    import tomllib  # only when a file exists: most launches have none

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise UsageError(f"{path}:{line}: not UTF-8 text") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        message = str(e)
        found = _AT_LINE.search(message)
        if found:
            where = f"{path}:{found[1]}"
            message = f"{message[:found.start()]} (column {found[2]})"
        else:
            where = f"{path}:{max(1, len(text.splitlines()))}"
            message = message.removesuffix(_AT_END) + (" (at its end)" if message.endswith(
                _AT_END) else "")
        raise UsageError(f"{where}: not valid TOML: {message}") from None


def line_of(text: str, key: str, table: tuple[str, ...] = ()) -> int:
    """The line where ``key`` is set in ``[table]`` (top level for ``()``) or starts a table
    of its own (``[key]``), else where that table starts, else 1. Good enough for messages:
    quoted keys and dotted keys are found too."""
    current: tuple[str, ...] = ()
    table_line = 1
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("[") and not stripped.startswith("[["):
            current = _table_name(stripped)
            if current == table:
                table_line = number
            elif current == (*table, key):
                return number
            continue
        if current != table:
            continue
        for spelling in (key, f'"{key}"', f"'{key}'"):
            if stripped.startswith(spelling) and \
                    stripped[len(spelling):].lstrip().startswith(("=", ".")):
                return number
    return table_line


def _table_name(header: str) -> tuple[str, ...]:
    inner = header[1:].split("]", 1)[0]
    return tuple(part.strip().strip("\"'") for part in inner.split("."))
