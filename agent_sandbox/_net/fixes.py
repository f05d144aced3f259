"""The flags that would have allowed what the filtered network refused. Pure, no I/O.

Each refusal says what it asks of the allow-list (:data:`ALLOW`: the name, or its port,
is not listed; :data:`PRIVATE`: the name is allowed but resolved to a private or loopback
address; :data:`NO_FLAG`: nothing a flag can change, such as a TLS server name that is not
the host asked for). The refusals of one host are merged, so the exit summary prints one
suggestion per host naming every port it was refused on, and the 403 body the same for its
one connection. Every suggestion parses, and with it pasted the refused connection goes
through (tests/integration/test_network.py runs each kind twice to check).

A lookup refused by the sandbox's DNS responder carries no port: the name alone is
suggested, on the default ports, unless a connection to it named another one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from agent_sandbox._net.allow import DEFAULT_PORTS, allow_hint
from agent_sandbox._net.names import is_ip_literal, is_loopback_name, loose, normalise_name

ALLOW, PRIVATE, NO_FLAG = "allow", "private", ""
PORTS_KEPT = 8  # per host: more than this many refused ports is a scan, not a need


class Refusals:
    """One host's refusals, merged: how many, on which ports, and what they ask for."""

    __slots__ = ("count", "first", "ports", "private", "unfixable")

    def __init__(self) -> None:
        self.count = 0
        self.ports: dict[int, None] = {}  # the fixable ones, in the order seen; 0: a lookup
        self.private = False  # an allowed name resolved to a private address
        self.first = ""  # the first refusal's reason
        self.unfixable = ""  # the first one no flag can change

    def add(self, port: int, need: str, reason: str) -> None:
        self.count += 1
        self.first = self.first or reason
        if need == NO_FLAG:
            self.unfixable = self.unfixable or reason
            return
        self.private = self.private or need == PRIVATE
        if len(self.ports) < PORTS_KEPT:
            self.ports.setdefault(port, None)


# A host group (``@pypi``...) holding a name, for a suggestion that names the group. The
# groups live elsewhere (the configuration); the network gets this from the launcher.
GroupOf = Callable[[str], str | None]


def _no_group(name: str) -> str | None:
    return None


def suggestion(host: str, refused: Refusals, group_of: GroupOf = _no_group) -> str:
    """The flags that would allow every fixable refusal of ``host``, or "" if none would.

    Names: ``--allow NAME`` for the default ports (and for a lookup alone), ``NAME:PORT``
    for each other port, ``--allow-private`` when an allowed name resolved to a private
    address; a group instead of the name when one holds it and only the default ports are
    needed. Loopback names and addresses: ``--forward-host PORT``. Other addresses: the
    ``--resolve NAME=ADDR`` recipe (a name has to be chosen for them).
    """
    if not refused.ports:  # only refusals no flag changes
        return ""
    ports = [p for p in refused.ports if p]
    if is_ip_literal(host) or is_loopback_name(loose(host)):
        return " ".join(dict.fromkeys(allow_hint(host, p) for p in ports))  # none: a lookup
    name = normalise_name(host)
    if name is None:
        return ""
    flag = "--allow-private" if refused.private else "--allow"
    others = [p for p in ports if p not in DEFAULT_PORTS]
    targets = [f"{name}:{p}" for p in others]
    if len(others) < len(ports) or not ports:  # a default port, or a lookup alone
        group = None if refused.private or others else group_of(name)
        targets.insert(0, group or name)
    return " ".join(f"{flag} {target}" for target in targets)


class Shown(NamedTuple):
    """One host of the exit summary."""

    host: str
    times: int
    fix: str  # the flags, or ""
    why: str  # what the refusal was, when it is not simply an unlisted name


def shown(host: str, refused: Refusals, group_of: GroupOf = _no_group) -> Shown:
    fix = suggestion(host, refused, group_of)
    if fix:
        why = "private address" if refused.private else ""
    else:
        why = f"no flag allows it: {refused.unfixable or refused.first}"
    return Shown(host, refused.count, fix, why)


HOST_SHOWN = 80  # characters of a host name in the summary line (it stays one line)


def describe(item: Shown) -> str:
    """``host x3 (why: fix)``: one host of the summary line. A name too long to show whole
    gets no flag (a flag with the name cut would not be the fix): the log has it."""
    long = len(item.host) > HOST_SHOWN
    host = item.host[:HOST_SHOWN] + "..." if long else item.host
    count = f" x{item.times}" if item.times > 1 else ""
    fix = "the name is cut here: agent-sandbox log --verdict deny shows it" if long and \
        item.fix else item.fix
    inner = ": ".join(part for part in (item.why[:120], fix) if part)
    return f"{host}{count} ({inner})"
