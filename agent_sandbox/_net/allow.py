"""The policy of ``--net filtered``: which names, ports and upstream addresses. Pure, no I/O.

The allow-list is about host *names*. A request names a host; :func:`decide` says yes or no
from the name and port alone, before any DNS. The addresses a name resolves to are judged
separately by :func:`address_refusal`, after resolution and before dialling, so a name that
is allowed cannot be turned into a path to the host's loopback, the LAN or a cloud metadata
service by its DNS answers (DNS rebinding).

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

DEFAULT_PORTS = (443, 80)

# Names that mean "this machine" without DNS (RFC 6761 for *.localhost, the rest from the
# /etc/hosts files of Debian and Red Hat). Reaching host services is --forward-host's job.
LOOPBACK_NAMES = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "localhost6",
        "localhost6.localdomain6",
        "ip6-localhost",
        "ip6-loopback",
    }
)

# Cloud metadata services hand out credentials to whoever asks from the machine: refused even
# for entries that accept private answers. AWS/GCP/Azure/Oracle IMDS, AWS ECS task metadata,
# Alibaba, AWS IMDS over IPv6, Azure WireServer (a public address, so no range catches it).
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "100.100.100.200",
        "fd00:ec2::254",
        "168.63.129.16",
    )
)

_HOST_FORMS = "expected HOST, HOST:PORT or *.DOMAIN[:PORT]"
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
# Values made only of these are shown as typed in messages; anything else is repr()'d so that
# spaces, quotes and control characters are visible.
_PLAIN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_:*[]/=+@%,~"
)

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_RFC1918 = (
    ipaddress.IPv4Network("10.0.0.0/8"),
    ipaddress.IPv4Network("172.16.0.0/12"),
    ipaddress.IPv4Network("192.168.0.0/16"),
)
_ULA = ipaddress.IPv6Network("fc00::/7")
# IPv6 ranges that carry an IPv4 address in their low 32 bits. The well-known NAT64 prefix
# is how an IPv6-only network reaches every IPv4 host, so it is judged by the embedded
# address alone; the others are judged by it too, and then as IPv6.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOW32_EMBEDDING = (
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible (deprecated)
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT)
    _NAT64,
)
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")
_TEREDO = ipaddress.IPv6Network("2001::/32")

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def _is_number_label(label: str) -> bool:
    """A label libc's inet_aton reads as a number: decimal, octal (0...) or hex (0x...)."""
    if label[:2] in ("0x", "0X"):
        return set(label[2:]) <= _HEX_DIGITS
    return bool(label) and label.isascii() and label.isdigit()


def normalise_name(raw: str) -> str | None:
    """The canonical form of a DNS host name, or None if ``raw`` is not one.

    Lower-case, one trailing dot dropped; labels of 1-63 characters from ``[a-z0-9-]`` not
    starting or ending with ``-``; at most 253 characters. Only ASCII: an IDN must be given
    in punycode (``xn--...``), so two spellings can never name the same host. The last label
    may not be a number (RFC 1123 2.1; the URL standard does the same): ``127.1`` or
    ``foo.0x10`` are addresses or nonsense, never names. So a name this returns is never an
    IP literal. Single-label names are valid here; :func:`decide` still needs them allowed.
    """
    if not raw.isascii():
        return None
    name = raw.lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > 253:
        return None
    labels = name.split(".")
    for label in labels:
        if not 1 <= len(label) <= 63 or not set(label) <= _LABEL_CHARS:
            return None
        if label[0] == "-" or label[-1] == "-":
            return None
    if _is_number_label(labels[-1]):
        return None
    return name


def _literal_text(text: str) -> str:
    """Surrounding blanks, one pair of brackets and one trailing dot removed."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return text[:-1] if text.endswith(".") else text


def is_ip_literal(text: str) -> bool:
    """Whether ``text`` is, or would be read by a resolver as, an IP address.

    IPv6 with or without brackets (and a zone), dotted-quad IPv4, and every other form
    inet_aton accepts: 1 to 4 parts, each decimal, octal or hex (``127.1``, ``2130706433``,
    ``0x7f000001``, ``017700000001``). Generous on purpose: out-of-range parts still count, so
    nothing shaped like an address is ever treated as a name. A trailing dot is ignored.
    """
    text = _literal_text(text)
    if ":" in text:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return False
        return True
    parts = text.split(".")
    return len(parts) <= 4 and all(_is_number_label(p) for p in parts)


def _inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """The address libc's inet_aton reads from ``text`` (``127.1``, ``0x7f000001``), or None.

    The last part fills the remaining bytes: ``a``, ``a.b`` (b: 24 bits), ``a.b.c`` (c: 16).
    """
    parts = _literal_text(text).split(".")
    if not 1 <= len(parts) <= 4 or not all(_is_number_label(p) for p in parts):
        return None
    values: list[int] = []
    for part in parts:
        if part[:2] in ("0x", "0X"):
            values.append(int(part[2:] or "0", 16))
        elif part.startswith("0") and len(part) > 1:
            if not set(part) <= set("01234567"):
                return None
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *head, last = values
    tail_bits = 8 * (4 - len(head))
    if any(v > 255 for v in head) or last >= 1 << tail_bits:
        return None
    value = 0
    for v in head:
        value = value << 8 | v
    return ipaddress.IPv4Address(value << tail_bits | last)


def is_loopback_name(name: str) -> bool:
    """Whether a (lower-case, dot-stripped) name means this machine without asking DNS."""
    return name in LOOPBACK_NAMES or name.endswith(".localhost")


def _loose(host: str) -> str:
    """Lower-case, one trailing dot dropped: enough to spot loopback names before syntax."""
    host = host.lower()
    return host[:-1] if host.endswith(".") else host


def _strict_ip(text: str) -> _IPAddress | None:
    """A canonical-form IP address (brackets optional), or None. No inet_aton forms."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# --- flag values ----------------------------------------------------------------------------


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
    if is_loopback_name(_loose(text)):
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
    address = _strict_ip(addr_text)
    if address is None:
        raise UsageError(
            f"{where}: {addr_text!r} is not an IPv4 or IPv6 address (expected NAME=ADDR)"
        )
    return name, str(address)


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
        address = _strict_ip(host_text)
        if address is None:
            raise UsageError(
                f"{where}: write the address in standard form (e.g. 127.0.0.1 or [::1])"
            )
        host = str(address)
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
    if is_loopback_name(_loose(host)):
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


def _refusal_v4(ip: ipaddress.IPv4Address, allow_private: bool) -> str | None:
    if ip in _THIS_NETWORK:
        # connect() to 0.0.0.0 reaches this machine on Linux; the rest of 0/8 is never a peer.
        return "unspecified address"
    if ip == _BROADCAST:
        return "broadcast address"
    if ip.is_multicast:
        return "multicast address"
    if ip in METADATA_ADDRESSES:
        return "cloud metadata address"
    if allow_private:
        return None
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip in _CGNAT:
        return "CGNAT address"
    if any(ip in net for net in _RFC1918):
        return "private address"
    if ip.is_private or ip.is_reserved or not ip.is_global:
        return "reserved address"
    return None


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for or carries, if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _LOW32_EMBEDDING) and int(ip) > 1:  # not :: or ::1
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _refusal_v6(ip: ipaddress.IPv6Address, allow_private: bool) -> str | None:
    ip = ipaddress.IPv6Address(int(ip))  # drop a %zone: the address alone decides
    if ip.is_unspecified:
        return "unspecified address"
    if ip.is_multicast:
        return "multicast address"
    if ip in METADATA_ADDRESSES:
        return "cloud metadata address"
    embedded = _embedded_v4(ip)
    if embedded is not None:
        reason = _refusal_v4(embedded, allow_private)
        # Mapped addresses are the IPv4 address (a dual-stack socket dials it as such);
        # NAT64 is how IPv6-only networks reach IPv4 hosts: both judged by it alone.
        if reason is not None or ip.ipv4_mapped is not None or ip in _NAT64:
            return reason
    if allow_private:
        return None
    if ip.is_loopback:
        return "loopback address"
    if ip.is_link_local:
        return "link-local address"
    if ip in _ULA:
        return "private address"
    if ip.is_private or ip.is_reserved or ip.is_site_local or not ip.is_global:
        return "reserved address"
    if ip in _SIX_TO_FOUR or ip in _TEREDO:
        # Tunnels to arbitrary IPv4 hosts, deprecated; whatever ipaddress's version says.
        return "reserved address"
    return None


def address_refusal(address: str, allow_private: bool) -> str | None:
    """Why an upstream address (a DNS answer) must not be dialled, or None if it may be.

    Always refused, even for entries that accept private answers: unspecified, multicast,
    broadcast and cloud metadata addresses. Refused unless ``allow_private``: loopback,
    private, link-local, CGNAT and every other non-global range. IPv6 forms that stand for an
    IPv4 address (mapped ``::ffff:a.b.c.d``, NAT64, 6to4, Teredo...) are judged by it too, so
    ``::ffff:169.254.169.254`` is the metadata service. Text that is not an address: refused.
    """
    ip = _strict_ip(address.strip())
    if ip is None:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv4Address):
        return _refusal_v4(ip, allow_private)
    return _refusal_v6(ip, allow_private)


def allow_hint(host: str, port: int) -> str:
    """The flag(s) that would allow ``host:port``, for "run agent-sandbox with ..." messages.

    Loopback (names or addresses) -> ``--forward-host PORT``; other IP literals ->
    ``--resolve NAME=ADDR --allow NAME[:PORT]``; names -> ``--allow NAME[:PORT]``. Never
    empty: a name no flag can allow still gets ``--allow`` (its parse error then says why).
    """
    suffix = "" if port in DEFAULT_PORTS else f":{port}"
    if is_ip_literal(host):
        address = _strict_ip(_literal_text(host)) or _inet_aton(host)
        if address is None:
            return f"--resolve NAME=ADDR --allow NAME{suffix}"
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        if address.is_loopback or (mapped is not None and mapped.is_loopback):
            return f"--forward-host {port}"
        return f"--resolve NAME={address} --allow NAME{suffix}"
    if is_loopback_name(_loose(host)):
        return f"--forward-host {port}"
    return f"--allow {normalise_name(host) or _loose(host)}{suffix}"
