"""What the filtered network looks like from inside. Pure: addresses, files, variables.

Exact allow-list names get fixed loopback addresses 127.1.x.y, written to the sandbox's
/etc/hosts (so even programs that ignore /etc/resolv.conf reach them); wildcard entries are
answered by the DNS responder at ``DNS_ADDRESS``, which allocates 127.2.x.y on demand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from agent_sandbox._net.allow import AllowEntry, Forward

PROXY_ADDRESS = ("127.0.0.1", 3128)
DNS_ADDRESS = ("127.0.0.53", 53)
STATIC_NET = "127.1"

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                   "all_proxy", "NO_PROXY", "no_proxy")


class NetPlan(NamedTuple):
    """The network the launcher serves for one sandbox."""

    filtered: bool  # the allow-list proxy, DNS and transparent listeners
    entries: tuple[AllowEntry, ...] = ()
    pins: tuple[tuple[str, str], ...] = ()  # --resolve NAME=ADDR
    forwards: tuple[Forward, ...] = ()  # host services shown on the sandbox's loopback
    publish: tuple[int, ...] = ()  # sandbox ports shown on the host's 127.0.0.1


def static_addresses(entries: tuple[AllowEntry, ...]) -> dict[str, str]:
    """Exact names -> 127.1.x.y, in allow-list order (stable across runs)."""
    names = list(dict.fromkeys(e.pattern for e in entries if not e.pattern.startswith("*.")))
    return {name: f"{STATIC_NET}.{(i + 1) // 256}.{(i + 1) % 256}"
            for i, name in enumerate(names)}


def transparent_ports(entries: tuple[AllowEntry, ...]) -> tuple[int, ...]:
    """Every allowed port gets a transparent listener (the proxy's own port excepted)."""
    ports = dict.fromkeys(p for e in entries for p in e.ports if p != PROXY_ADDRESS[1])
    return tuple(ports)


def hosts_file(entries: tuple[AllowEntry, ...]) -> str:
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback",
             "127.0.1.1 agent-sandbox"]
    lines += [f"{address} {name}" for name, address in static_addresses(entries).items()]
    return "\n".join(lines) + "\n"


def resolv_conf() -> str:
    # No search domains and ndots:0: a search list would make the resolver ask for names the
    # agent never typed (and log them as blocked); one short attempt keeps denials fast.
    return f"nameserver {DNS_ADDRESS[0]}\noptions ndots:0 attempts:1 timeout:2\n"


def proxy_environment() -> dict[str, str]:
    url = f"http://{PROXY_ADDRESS[0]}:{PROXY_ADDRESS[1]}"
    no_proxy = "localhost,127.0.0.1,::1"
    return {"HTTP_PROXY": url, "HTTPS_PROXY": url, "ALL_PROXY": url, "http_proxy": url,
            "https_proxy": url, "all_proxy": url, "NO_PROXY": no_proxy, "no_proxy": no_proxy}
