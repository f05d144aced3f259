"""The public surface is pinned: anything else is private and may change."""

import agent_sandbox


def test_public_names_are_pinned() -> None:
    assert agent_sandbox.__all__ == ["__version__"]
    assert sorted(n for n in vars(agent_sandbox) if not n.startswith("_")) == []


def test_version_is_a_release_string() -> None:
    major, minor, micro = agent_sandbox.__version__.split(".")
    assert all(part.isdigit() for part in (major, minor, micro))
