"""The generated files and what renders each: the man page and the configuration reference
(``scripts/gen-docs.py`` writes them; ``tests/unit/test_docgen.py`` fails when a committed one
is stale). Shell completion is rendered on demand (``completion``). Never on the launch path.
"""

from __future__ import annotations

from collections.abc import Callable

from agent_sandbox._cli.manpage import man_page
from agent_sandbox._cli.reference import config_reference

# Each committed file (relative to the repository) and what renders it.
GENERATED: dict[str, Callable[[], str]] = {
    "docs/agent-sandbox.1": man_page,
    "docs/config-reference.md": config_reference,
}
