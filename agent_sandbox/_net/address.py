"""Which upstream addresses may be dialled: the judgement of DNS answers. Pure, no I/O.

The allow-list decides on names (:mod:`.allow`); this judges the addresses a name resolved
to, after resolution and before dialling, so an allowed name cannot be turned into a path
to the host's loopback, the LAN or a cloud metadata service by its DNS answers (DNS
rebinding). IPv6 forms that carry an IPv4 address are judged by it too.
"""

from __future__ import annotations

import ipaddress

from agent_sandbox._net.names import strict_ip

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
    ip = strict_ip(address.strip())
    if ip is None:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv4Address):
        return _refusal_v4(ip, allow_private)
    return _refusal_v6(ip, allow_private)
