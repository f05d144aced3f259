"""The flags printed for what the network refused: merged per host, each one parsing and
allowing what it was printed for (the real launcher runs them: tests/integration/
test_network.py)."""

from __future__ import annotations

import pytest

from agent_sandbox._net.allow import decide, parse_allow
from agent_sandbox._net.fixes import (
    ALLOW,
    NO_FLAG,
    PRIVATE,
    Refusals,
    describe,
    shown,
    suggestion,
)


def _refused(*refusals: tuple[int, str, str]) -> Refusals:
    merged = Refusals()
    for port, need, reason in refusals:
        merged.add(port, need, reason)
    return merged


@pytest.mark.parametrize(("host", "refusals", "fix"), [
    # A lookup alone (the DNS responder's NXDOMAIN) has no port: the default ports.
    ("api.example.com", [(0, ALLOW, "")], "--allow api.example.com"),
    ("API.Example.com.", [(443, ALLOW, ""), (80, ALLOW, ""), (0, ALLOW, "")],
     "--allow api.example.com"),
    # The real port, never :0; a lookup does not add the default ports to it.
    ("api.example.com", [(0, ALLOW, ""), (8443, ALLOW, "")], "--allow api.example.com:8443"),
    ("api.example.com", [(8443, ALLOW, ""), (443, ALLOW, ""), (22, ALLOW, "")],
     "--allow api.example.com --allow api.example.com:8443 --allow api.example.com:22"),
    # Allowed, but its address was private: the other flag.
    ("db.example.com", [(443, PRIVATE, "127.0.0.1: loopback address")],
     "--allow-private db.example.com"),
    ("db.example.com", [(5432, PRIVATE, "10.0.0.5: private address"), (443, ALLOW, "")],
     "--allow-private db.example.com --allow-private db.example.com:5432"),
    # Addresses and loopback.
    ("127.0.0.1", [(5432, ALLOW, ""), (6379, ALLOW, "")],
     "--forward-host 5432 --forward-host 6379"),
    ("localhost", [(0, ALLOW, "")], ""),  # a lookup of it: no port to forward
    ("93.184.216.34", [(443, ALLOW, "")], "--resolve NAME=93.184.216.34 --allow NAME"),
    # Nothing a flag changes.
    ("api.example.com", [(443, NO_FLAG, "TLS server name 'x' is not 'api.example.com'")], ""),
    ("A_B.example.com", [(443, ALLOW, "invalid host name")], ""),
])
def test_one_suggestion_per_host_naming_what_it_needs(
        host: str, refusals: list[tuple[int, str, str]], fix: str) -> None:
    assert suggestion(host, _refused(*refusals)) == fix


@pytest.mark.parametrize(("host", "ports", "private"), [
    ("api.example.com", (0,), False),
    ("api.example.com", (443, 8443, 0, 80, 22), False),
    ("db.example.com", (443, 5432), True),
])
def test_each_suggested_flag_parses_and_allows_every_refused_port(
        host: str, ports: tuple[int, ...], private: bool) -> None:
    refused = _refused(*[(p, PRIVATE if private else ALLOW, "") for p in ports])
    words = suggestion(host, refused).split()
    entries = [parse_allow(value, private=flag == "--allow-private")
               for flag, value in zip(words[::2], words[1::2], strict=True)]
    assert all(flag == ("--allow-private" if private else "--allow") for flag in words[::2])
    for port in ports:
        verdict = decide(entries, host, port or 443)
        assert verdict.allowed and verdict.entry is not None
        assert verdict.entry.allow_private == private


def test_a_group_that_holds_the_name_is_suggested_for_the_default_ports() -> None:
    def group_of(name: str) -> str | None:
        return "@pypi" if name in ("pypi.org", "files.pythonhosted.org") else None

    assert suggestion("files.pythonhosted.org", _refused((443, ALLOW, "")),
                      group_of) == "--allow @pypi"
    # Not for another port, nor a private address: the group does not say those.
    assert suggestion("pypi.org", _refused((8443, ALLOW, "")),
                      group_of) == "--allow pypi.org:8443"
    assert suggestion("pypi.org", _refused((443, PRIVATE, "")),
                      group_of) == "--allow-private pypi.org"
    assert suggestion("example.org", _refused((443, ALLOW, "")),
                      group_of) == "--allow example.org"


def test_the_summary_part_says_why_when_it_is_not_just_unlisted() -> None:
    assert describe(shown("a.test", _refused((443, ALLOW, ""), (0, ALLOW, "")))) == \
        "a.test x2 (--allow a.test)"
    assert describe(shown("db.test", _refused((443, PRIVATE, "127.0.0.1: loopback")))) == \
        "db.test (private address: --allow-private db.test)"
    assert describe(shown("c.test", _refused((443, NO_FLAG, "TLS server name 'x'")))) == \
        "c.test (no flag allows it: TLS server name 'x')"
    # A fixable refusal of the same host wins: its flags are printed.
    assert describe(shown("c.test", _refused((443, NO_FLAG, "sni"), (8443, ALLOW, "")))) == \
        "c.test x2 (--allow c.test:8443)"
    long = ".".join(["x" * 60] * 3) + ".test"
    assert describe(shown(long, _refused((443, ALLOW, "")))) == \
        long[:80] + "... (the name is cut here: agent-sandbox log --verdict deny shows it)"


def test_the_ports_kept_per_host_are_bounded() -> None:
    refused = _refused(*[(p, ALLOW, "") for p in range(1000, 2000)])
    assert refused.count == 1000 and len(refused.ports) == 8
