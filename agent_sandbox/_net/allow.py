"""The allow-list of ``--net filtered``: flag values parsed into rules, and the decision on a
name and port. Pure, no I/O.

The allow-list is about host *names*. A request names a host; :func:`decide` says yes or no
from the name and port alone, before any DNS. The addresses a name resolves to are judged
separately, after resolution and before dialling (:mod:`agent_sandbox._net.address`).

IP literals are never allowed: an allow-list of names means nothing if ``1.2.3.4`` (or
``0x7f000001``, which libc reads as 127.0.0.1) can be asked for directly. The user who needs
a fixed address names it with ``--resolve NAME=ADDR`` and allows the name.

Flag values are parsed here, and each bad value becomes a :class:`UsageError` naming the flag,
the value and what would have been accepted.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import NamedTuple

from agent_sandbox._errors import UsageError
from agent_sandbox._net.names import (
    address_text,
    inet_aton,
    is_ip_literal,
    is_loopback_name,
    literal_text,
    loose,
    normalise_name,
    strict_ip,
)

DEFAULT_PORTS = (443, 80)

_HOST_FORMS = "expected HOST, HOST:PORT or *.DOMAIN[:PORT]"
# Values made only of these are shown as typed in messages; anything else is repr()'d so that
# spaces, quotes and control characters are visible.
_PLAIN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:*[]/=+@%,~"
)


class AllowEntry(NamedTuple):
    """One ``--allow``: a host name or a ``*.`` wildcard, and the ports it may be reached on."""

    pattern: str  # normalised, lower-case: "api.example.com" or "*.example.com"
    ports: tuple[int, ...]  # DEFAULT_PORTS unless given
    # Accept DNS answers in private/loopback/link-local/... ranges for this entry (a service
    # on the LAN or a VPN). Metadata, multicast and unspecified addresses stay refused.
    allow_private: bool = False
    origin: str = "--allow"  # the flag text, for messages ("--allow api.x.com:8443")


class Forward(NamedTuple):
    """One ``--forward-host``: a port on the sandbox's 127.0.0.1 relayed to a host service."""

    inside_port: int
    host: str = ""  # host side TCP target: a normalised name or a canonical IP
    port: int = 0
    unix_path: str = ""  # or a host UNIX socket (absolute); then host/port are unused
    origin: str = "--forward-host"


class Verdict(NamedTuple):
    """The answer for one request: allowed or not, why, and the entry that matched."""

    allowed: bool
    reason: str  # short, for the log and the 403 body
    # Set when allowed, and also when the name matched but the port did not.
    entry: AllowEntry | None = None


# --- names and literals ---------------------------------------------------------------------


def _show(raw: str) -> str:
    return raw if raw and set(raw) <= _PLAIN else repr(raw)


def _port(text: str) -> int | None:
    """A port 1-65535 written in ASCII digits, or None."""
    if not (text.isascii() and text.isdigit()) or len(text) > 5:
        return None
    value = int(text)
    return value if 1 <= value <= 65535 else None


def _split_host_port(text: str) -> tuple[str, str | None] | None:
    """``HOST[:PORT]`` or ``[IPV6][:PORT]`` -> (host, port text or None); None if malformed.

    More than one colon without brackets is taken as a bare host (an IPv6 address), never
    split: ``::1:80`` is an address, not ``::1`` port 80.
    """
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or ":" not in text[:close]:
            return None  # brackets are for IPv6 addresses only
        host, rest = text[1:close], text[close + 1 :]
        if not rest:
            return host, None
        if rest.startswith(":"):
            return host, rest[1:]
        return None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, port
    return text, None


def parse_allow(raw: str, *, private: bool = False, origin: str = "--allow") -> AllowEntry:
    """``HOST``, ``HOST:PORT``, ``*.DOMAIN`` or ``*.DOMAIN:PORT`` -> an entry.

    ``origin`` is the flag's name (``--allow``, or whichever flag sets ``private``); the
    entry's ``origin`` is the flag with its value, for messages.
    """
    where = f"{origin} {_show(raw)}"
    split = _split_host_port(raw)
    if is_ip_literal(raw) or (split is not None and is_ip_literal(split[0])):
        raise UsageError(
            f"{where}: IP addresses are not allowed; allow a host name, "
            "or use --resolve NAME=ADDR"
        )
    if split is None:
        raise UsageError(f"{where}: not a valid host name ({_HOST_FORMS})")
    host, port_text = split
    ports: tuple[int, ...] = DEFAULT_PORTS
    if port_text is not None:
        port = _port(port_text)
        if port is None:
            raise UsageError(f"{where}: invalid port {port_text!r} (expected 1-65535)")
        ports = (port,)

    wildcard = host.startswith("*.")
    body = host[2:] if wildcard else host
    if host == "*" or body == "*":
        raise UsageError(f"{where}: too broad; allow host names or *.DOMAIN")
    if "*" in body:
        raise UsageError(f"{where}: a wildcard may only be a leading '*.' (e.g. *.example.com)")
    _refuse_loopback_name(body, where, "are not allowed")
    name = normalise_name(body)
    if name is None:
        idn = "" if body.isascii() else "; non-ASCII names must be given in punycode (xn--...)"
        raise UsageError(f"{where}: not a valid host name ({_HOST_FORMS}){idn}")
    if wildcard:
        if "." not in name:
            raise UsageError(
                f"{where}: too broad; a wildcard needs at least two labels after '*.' "
                "(e.g. *.example.com)"
            )
        name = "*." + name
    return AllowEntry(pattern=name, ports=ports, allow_private=private, origin=f"{origin} {raw}")


def _refuse_loopback_name(text: str, where: str, what: str) -> None:
    if is_loopback_name(loose(text)):
        raise UsageError(f"{where}: loopback names {what}; "
                         "use --forward-host PORT to reach a service on this machine")


def parse_resolve(raw: str) -> tuple[str, str]:
    """``NAME=ADDR`` -> (normalised name, canonical address). ADDR: IPv4 or IPv6, [] optional."""
    where = f"--resolve {_show(raw)}"
    name_text, sep, addr_text = raw.partition("=")
    if not sep:
        raise UsageError(f"{where}: expected NAME=ADDR (e.g. --resolve db.internal=10.0.0.5)")
    if is_ip_literal(name_text):
        raise UsageError(f"{where}: NAME must be a host name, not an address (NAME=ADDR)")
    _refuse_loopback_name(name_text, where, "cannot be resolved elsewhere")
    name = normalise_name(name_text)
    if name is None:
        raise UsageError(f"{where}: {name_text!r} is not a valid host name (expected NAME=ADDR)")
    address = strict_ip(addr_text)
    if address is None:
        raise UsageError(
            f"{where}: {addr_text!r} is not an IPv4 or IPv6 address (expected NAME=ADDR)"
        )
    return name, address_text(address)


def parse_forward(raw: str) -> Forward:
    """``PORT``, ``HOST:PORT``, ``[IPV6]:PORT`` or ``unix:/PATH=PORT`` -> a forward.

    The inside port is always on the sandbox's 127.0.0.1: the TCP port itself for TCP
    targets, the ``=PORT`` for a UNIX socket (which has no port of its own).
    """
    where = f"--forward-host {_show(raw)}"
    origin = f"--forward-host {raw}"
    forms = "expected PORT, HOST:PORT, [IPV6]:PORT or unix:/PATH=PORT"
    if raw.startswith("unix:"):
        rest = raw[len("unix:") :]
        path, sep, port_text = rest.rpartition("=")
        if not sep:
            raise UsageError(
                f"{where}: a UNIX socket needs =PORT, the port on 127.0.0.1 inside "
                f"(e.g. unix:{rest or '/PATH'}=5432)"
            )
        if not path.startswith("/") or "\0" in path:
            raise UsageError(f"{where}: the socket path must be absolute ({forms})")
        inside = _port(port_text)
        if inside is None:
            raise UsageError(f"{where}: invalid port {port_text!r} (expected 1-65535)")
        return Forward(inside_port=inside, unix_path=path, origin=origin)

    split = _split_host_port(raw)
    if split is None:
        raise UsageError(f"{where}: {forms}")
    host_text, port_part = split
    if port_part is None:
        port = _port(host_text)
        if port is None:
            raise UsageError(f"{where}: {forms} (ports 1-65535)")
        return Forward(inside_port=port, host="127.0.0.1", port=port, origin=origin)
    port = _port(port_part)
    if port is None:
        raise UsageError(f"{where}: invalid port {port_part!r} (expected 1-65535)")
    if is_ip_literal(host_text):
        address = strict_ip(host_text)
        if address is None:
            raise UsageError(
                f"{where}: write the address in standard form (e.g. 127.0.0.1 or [::1])"
            )
        host = address_text(address)
    else:
        name = normalise_name(host_text)
        if name is None:
            raise UsageError(f"{where}: {host_text!r} is not a valid host name ({forms})")
        host = name
    return Forward(inside_port=port, host=host, port=port, origin=origin)


def parse_publish(raw: str) -> int:
    """``PORT`` (1-65535) -> the port."""
    port = _port(raw)
    if port is None:
        raise UsageError(f"--publish {_show(raw)}: expected a port number 1-65535")
    return port


# --- decisions ------------------------------------------------------------------------------


def _matching(entries: Sequence[AllowEntry], name: str) -> list[AllowEntry]:
    """Entries matching a normalised name: exact ones first, then wildcards, each in order."""
    exact = [e for e in entries if e.pattern == name]
    wild = [
        e
        for e in entries
        if e.pattern.startswith("*.") and name.endswith(e.pattern[1:])
        # endswith(".example.com") on a valid name already implies at least one more label;
        # the apex "example.com" does not end with ".example.com".
    ]
    return exact + wild


def match(entries: Sequence[AllowEntry], name: str) -> AllowEntry | None:
    """The entry for ``name``: an exact entry beats a wildcard; otherwise the first one.

    ``*.example.com`` matches ``a.example.com`` and ``a.b.example.com``, never the apex
    ``example.com``. ``name`` is normalised first (case, trailing dot); invalid -> None.
    """
    normalised = normalise_name(name)
    if normalised is None:
        return None
    found = _matching(entries, normalised)
    return found[0] if found else None


def decide(entries: Sequence[AllowEntry], host: str, port: int) -> Verdict:
    """Whether a request for ``host:port`` may go out. No DNS: the name alone decides.

    The order is a security property. First the syntax: an IP literal or a loopback name is
    refused before anything else, so no allow-list entry can ever let one through. Then the
    allow-list, then the port. The allow-list is a union: every entry only adds, so when
    several entries match, the request is allowed if any of them has the port. The entry
    returned is the first (exact before wildcard) with the port, preferring one that
    accepts private answers, since that is what the union allows for this name and port.
    """
    if is_ip_literal(host):
        return Verdict(False, "IP literals are refused")
    if is_loopback_name(loose(host)):
        return Verdict(False, "loopback names are refused")
    name = normalise_name(host)
    if name is None:
        return Verdict(False, "invalid host name")
    found = _matching(entries, name)
    if not found:
        return Verdict(False, "not in the allow-list")
    with_port = [e for e in found if port in e.ports]
    if with_port:
        chosen = next((e for e in with_port if e.allow_private), with_port[0])
        return Verdict(True, f"allowed by {chosen.origin}", chosen)
    allowed: list[int] = []
    for entry in found:
        allowed.extend(p for p in entry.ports if p not in allowed)
    listed = ", ".join(map(str, allowed))
    return Verdict(False, f"port {port} not allowed for {name} (allowed: {listed})", found[0])



def allow_hint(host: str, port: int) -> str:
    """The flag(s) that would allow ``host:port``, for "run agent-sandbox with ..." messages.

    Loopback (names or addresses) -> ``--forward-host PORT``; other IP literals ->
    ``--resolve NAME=ADDR --allow NAME[:PORT]``; names -> ``--allow NAME[:PORT]``. Never
    empty: a name no flag can allow still gets ``--allow`` (its parse error then says why).
    """
    suffix = "" if port in DEFAULT_PORTS else f":{port}"
    if is_ip_literal(host):
        address = strict_ip(literal_text(host)) or inet_aton(host)
        if address is None:
            return f"--resolve NAME=ADDR --allow NAME{suffix}"
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        if address.is_loopback or (mapped is not None and mapped.is_loopback):
            return f"--forward-host {port}"
        return f"--resolve NAME={address} --allow NAME{suffix}"
    if is_loopback_name(loose(host)):
        return f"--forward-host {port}"
    return f"--allow {normalise_name(host) or loose(host)}{suffix}"
