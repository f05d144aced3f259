"""Host names and IP literals as a resolver would read them. Pure, no I/O.

A name that :func:`normalise_name` accepts is never an IP literal, and :func:`is_ip_literal`
is generous on purpose (every form libc's inet_aton reads), so nothing shaped like an
address is ever taken for a name by the allow-list or the proxy.
"""

from __future__ import annotations

import ipaddress

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


_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


def literal_text(text: str) -> str:
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
    text = literal_text(text)
    if ":" in text:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return False
        return True
    parts = text.split(".")
    return len(parts) <= 4 and all(_is_number_label(p) for p in parts)


def inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """The address libc's inet_aton reads from ``text`` (``127.1``, ``0x7f000001``), or None.

    The last part fills the remaining bytes: ``a``, ``a.b`` (b: 24 bits), ``a.b.c`` (c: 16).
    """
    parts = literal_text(text).split(".")
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


def loose(host: str) -> str:
    """Lower-case, one trailing dot dropped: enough to spot loopback names before syntax."""
    host = host.lower()
    return host[:-1] if host.endswith(".") else host


def strict_ip(text: str) -> IPAddress | None:
    """A canonical-form IP address (brackets optional), or None. No inet_aton forms."""
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# --- flag values ----------------------------------------------------------------------------


def address_text(address: IPAddress) -> str:
    """The canonical text of an address, the same on every Python: an IPv4-mapped IPv6
    address as ``::ffff:a.b.c.d`` (3.13 prints it so, earlier versions as hex groups)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None \
            and address.scope_id is None:
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)
