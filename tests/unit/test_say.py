"""Messages: the prefix, and colour only on a terminal without NO_COLOR or TERM=dumb."""

from __future__ import annotations

import pytest

from agent_sandbox._say import colour_wanted, render


@pytest.mark.parametrize("environ, isatty, wanted", [
    ({"TERM": "xterm"}, True, True),
    ({"TERM": "xterm"}, False, False),
    ({"TERM": "xterm", "NO_COLOR": "1"}, True, False),
    ({"TERM": "xterm", "NO_COLOR": ""}, True, True),  # no-color.org: set and not empty
    ({"TERM": "dumb"}, True, False),
])
def test_colour_only_where_wanted(environ: dict[str, str], isatty: bool, wanted: bool) -> None:
    assert colour_wanted(environ, isatty) is wanted


def test_render() -> None:
    assert render("error: bad", False) == "agent-sandbox: error: bad"
    assert render("error: bad", True) == "agent-sandbox: \033[1;31merror:\033[0m bad"
    assert render("warning: x", True) == "agent-sandbox: \033[33mwarning:\033[0m x"
    assert render("started w", True) == "agent-sandbox: started w"  # no kind, no colour
