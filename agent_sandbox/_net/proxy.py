"""The filtered network, served from outside the sandbox on sockets that live inside it.

Three ways in, one policy (``_net.allow.decide``):

- the HTTP proxy (CONNECT and absolute-URI requests) that the proxy variables point at;
- transparent listeners on :443 and :80 of every loopback address: allowed names resolve
  (``/etc/hosts``, or the DNS responder for wildcard entries) to per-name addresses
  127.1.x.y, and the name must match the TLS SNI or HTTP Host the client then sends;
- the DNS responder itself, which answers only allowed names and never forwards a query.

Each connection is decided in this order: name syntax (IP literals, loopback names), the
allow-list (before any DNS lookup: a denied name never causes a query), the port, SNI/Host
equals the name, then resolution (or the ``--resolve`` pin) and the answer's address class
(loopback, private, link-local, CGNAT, metadata refused unless the entry allows private),
then a dial to that vetted address, with no second lookup. Every decision is logged.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import NamedTuple

from agent_sandbox._errors import SandboxUnavailable
from agent_sandbox._net.address import address_refusal
from agent_sandbox._net.allow import AllowEntry, Forward, decide, match
from agent_sandbox._net.fixes import (
    ALLOW,
    NO_FLAG,
    PRIVATE,
    GroupOf,
    Refusals,
    describe,
    shown,
    suggestion,
)
from agent_sandbox._net.log import DecisionLog
from agent_sandbox._net.loop import (
    READ,
    InThread,
    Loop,
    Ready,
    Task,
    accepting,
    connect,
    connect_socket,
    recv,
    send_all,
)
from agent_sandbox._net.names import normalise_name
from agent_sandbox._net.plan import static_addresses
from agent_sandbox._net.relay import relay
from agent_sandbox._net.wire import (
    MAX_HEAD,
    NeedMore,
    RequestHead,
    one_request,
    request_head,
    sni,
    split_host_port,
)
from agent_sandbox._say import printable

_DYNAMIC_SLOTS = 256 * 256 - 2  # 127.2.0.1 .. 127.2.255.254
HEAD_TIMEOUT = 10.0  # seconds to send a request head or ClientHello (slowloris)
DIAL_TIMEOUT = 10.0
MAX_CONNECTIONS = 1024
DYNAMIC_NET = "127.2"  # 127.2.x.y: names allocated when the DNS responder answers a wildcard


class Denied(Exception):
    """The policy refuses the connection (logged as "deny"); ``reply`` is sent to the client
    before it is closed. ``need`` is what a flag would have to change (``_net.fixes``)."""

    def __init__(self, reason: str, host: str = "", port: int = 0, reply: bytes = b"",
                 need: str = NO_FLAG) -> None:
        super().__init__(reason)
        self.reason, self.host, self.port, self.reply = reason, host, port, reply
        self.need = need


class UpstreamFailed(Denied):
    """The policy allowed it but the upstream could not be reached (logged as "allow" with
    the error: the agent's request was legitimate, the network was not there)."""


class Network:
    """The state shared by the listeners: policy, name <-> address map, log, counters."""

    def __init__(self, entries: Sequence[AllowEntry], pins: Sequence[tuple[str, str]],
                 log: DecisionLog, group_of: GroupOf | None = None) -> None:
        self.entries = tuple(entries)
        self.pins = dict(pins)
        self.log = log
        # The host groups, for suggestions that name one (none are passed yet).
        self.group_of = group_of
        self.by_name = static_addresses(self.entries)
        self.by_address = {address: name for name, address in self.by_name.items()}
        self.blocked: dict[str, Refusals] = {}  # by host
        self.allowed = 0
        self.active = 0
        self._next = 1
        self._lock = threading.Lock()

    def address_for(self, name: str) -> str:
        """The name's loopback address; a wildcard match gets the next 127.2.x.y. After
        65534 names the oldest address is given to the new name (the table stays bounded;
        a connection to a recycled address goes to the newer name, allowed too)."""
        with self._lock:
            if name not in self.by_name:
                slot = (self._next - 1) % _DYNAMIC_SLOTS + 1
                address = f"{DYNAMIC_NET}.{slot // 256}.{slot % 256}"
                self._next += 1
                if address in self.by_address:
                    del self.by_name[self.by_address[address]]
                self.by_name[name], self.by_address[address] = address, name
            return self.by_name[name]

    def dns_lookup(self, name: str) -> str | None:
        """The DNS responder's answer: an allowed name's address, or None (NXDOMAIN)."""
        clean = normalise_name(name)
        entry = match(self.entries, clean) if clean else None
        if entry is None:
            self.deny("dns", name, 0, "not in the allow-list", ALLOW)
            return None
        return self.address_for(clean or name)

    def deny(self, path: str, host: str, port: int, reason: str, need: str = NO_FLAG) -> None:
        self.blocked.setdefault(host, Refusals()).add(port, need, reason)
        self.log.record("deny", path=path, host=host, port=port, reason=reason)

    def fix(self, denied: Denied) -> str:
        """The flags that would have allowed this one refusal (the 403 body's)."""
        one = Refusals()
        one.add(denied.port, denied.need, denied.reason)
        return suggestion(denied.host, one, *self._groups())

    def _groups(self) -> tuple[GroupOf, ...]:
        return () if self.group_of is None else (self.group_of,)

    def summary(self) -> str | None:
        """The exit's line: the hosts refused most, each with the flags that would allow
        everything it was refused (merged per host), or why no flag would."""
        if not self.blocked:
            return None
        top = sorted(self.blocked.items(), key=lambda item: -item[1].count)[:5]
        parts = [describe(shown(host, refused, *self._groups())) for host, refused in top]
        more = len(self.blocked) - len(top)
        total = sum(r.count for r in self.blocked.values())
        return (f"network: blocked {total} request(s): " + ", ".join(parts)
                + (f", and {more} more host(s)" if more > 0 else "")
                + f"; details in {self.log.path}")


def _read_until(sock: socket.socket, data: bytes,
                parse: Callable[[bytes], object]) -> Task[bytes]:
    """Read into ``data`` until ``parse(data)`` stops raising NeedMore (bounded)."""
    deadline = time.monotonic() + HEAD_TIMEOUT
    while True:
        try:
            parse(data)
            return data
        except NeedMore:
            pass
        if len(data) > MAX_HEAD + 16 * 1024:
            return data
        chunk = yield from recv(sock, deadline)
        if not chunk:
            return data
        data += chunk


def resolve(host: str, port: int) -> list[str]:
    """The host's resolver (blocking: run in a thread), its addresses in order, once each."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _dial_tcp(host: str, port: int) -> Task[socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return connect(family, (host, port), time.monotonic() + DIAL_TIMEOUT)


def _dial(net: Network, entry: AllowEntry, host: str, port: int,
          path: str) -> Task[socket.socket]:
    """Resolve (or take the pin), vet the address, dial it: no second lookup."""
    pinned = net.pins.get(host)
    if pinned:
        candidates = [pinned]
    else:
        try:
            candidates = yield InThread(lambda: resolve(host, port))
        except OSError as e:
            raise UpstreamFailed(f"cannot resolve: {e.strerror or e}", host, port) from None
    refusals, failures = [], []
    for address in candidates:
        # A --resolve pin is the user's explicit choice: private addresses are fine there,
        # metadata, unspecified and multicast addresses never are.
        refusal = address_refusal(address, entry.allow_private or bool(pinned))
        if refusal:
            refusals.append(f"{address}: {refusal}")
            continue
        try:
            upstream = yield from _dial_tcp(address, port)
        except (TimeoutError, OSError) as e:
            failures.append(f"{address}: {e or 'timeout'}")
            continue
        net.allowed += 1
        net.log.record("allow", path=path, host=host, port=port, upstream=address)
        return upstream
    if failures:
        raise UpstreamFailed("; ".join(failures + refusals), host, port)
    # --allow-private changes the answer only if no address was one it refuses too.
    private = bool(candidates) and all(address_refusal(a, True) is None for a in candidates)
    raise Denied("; ".join(refusals) or "no address", host, port,
                 need=PRIVATE if private else NO_FLAG)


def _decide(net: Network, host: str, port: int) -> AllowEntry:
    verdict = decide(net.entries, host, port)
    if not verdict.allowed or verdict.entry is None:
        # The name or its port is not listed; a port refused for an entry that accepts
        # private answers needs the same for the new port.
        private = verdict.entry is not None and verdict.entry.allow_private
        raise Denied(verdict.reason, host, port, need=PRIVATE if private else ALLOW)
    return verdict.entry


def _check_tunnel(net: Network, client: socket.socket, host: str, port: int,
                  data: bytes) -> Task[tuple[bytes, int | None]]:
    """The first bytes (``data``, already read, then more) must be TLS naming ``host`` (SNI)
    or an HTTP request for ``host`` (Host). Returns what to send upstream and how much more
    of the client's bytes may follow: all of them for TLS (None), for plain HTTP only the
    rest of that one request's body (``_one_request``). Bounded in time like a request
    head, so idle connections cannot pile up."""
    data = data or (yield from recv(client, time.monotonic() + HEAD_TIMEOUT))
    if data[:1] == bytes([0x16]):
        data = yield from _read_until(client, data, sni)
        name = sni(data)
        if name != host:
            raise Denied(f"TLS server name {name!r} is not {host!r}", host, port)
        return data, None
    data = yield from _read_until(client, data, request_head)
    head = request_head(data) if data else None
    target = split_host_port(head.header("host") or "", port) if head else None
    if not head or not target or target[0] != host:
        raise Denied("neither TLS nor HTTP for this host", host, port)
    return _one_request(net, head, data, host, port)


def _one_request(net: Network, head: RequestHead, data: bytes, host: str, port: int,
                 request_line: str | None = None,
                 authority: str | None = None) -> tuple[bytes, int | None]:
    """Plain HTTP carries exactly one checked request per connection: its head (with
    ``Connection: close``) and body go upstream, nothing after them does. A pipelined
    request that came along is logged as not forwarded (its client retries on a new
    connection, which is checked in turn)."""
    one = one_request(head, data, request_line, authority)
    if one is None:
        raise Denied("a request body without Content-Length (chunked): not forwarded on "
                     "plain HTTP", host, port, _http_error(
                         "411 Length Required", "agent-sandbox: plain HTTP requests need a "
                         "Content-Length\n"))
    if one.extra:
        net.deny("pipelined", host, port, "a second request on the connection was not "
                 "forwarded (one checked request per plain-HTTP connection)")
    return one.first, one.body_left


def _http_error(status: str, body: str) -> bytes:
    payload = body.encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n"
            "X-Agent-Sandbox: blocked\r\n\r\n").encode() + payload


def _forbidden(net: Network, denied: Denied) -> Denied:
    denied.reply = _http_error("403 Forbidden", _why(denied, net.fix(denied)))
    return denied


def _serve_proxy(net: Network, client: socket.socket) -> Task[None]:
    data = yield from _read_until(client, b"", request_head)
    head = request_head(data) if data else None
    if head is None:
        raise Denied("malformed proxy request", reply=_http_error(
            "400 Bad Request", "agent-sandbox: not an HTTP request\n"))
    connect = head.method == "CONNECT"
    if connect:
        target, rest = split_host_port(head.target, 443), ""
    elif head.target.startswith("http://"):
        authority, _, rest = head.target[len("http://"):].partition("/")
        target = split_host_port(authority, 80)
    else:
        raise Denied(f"unsupported proxy request {head.method} {head.target[:80]!r}",
                     reply=_http_error("400 Bad Request",
                                       "agent-sandbox: only CONNECT and http:// URLs\n"))
    if target is None:
        raise Denied(f"bad proxy target {head.target[:80]!r}")
    host, port = target
    try:
        entry = _decide(net, host, port)
    except Denied as denied:
        raise _forbidden(net, denied) from None
    if connect:
        yield from send_all(client, b"HTTP/1.1 200 Connection Established\r\n\r\n",
                            time.monotonic() + HEAD_TIMEOUT)
        # Bytes sent along with the CONNECT head are checked like any others.
        first, limit = yield from _check_tunnel(net, client, host, port, data[head.size:])
    else:
        # An absolute URL: forwarded in origin form, without the proxy's own headers, with
        # the Host the policy checked (not one naming another site behind the same address)
        # and for this one request only (a next one on the connection is never sent).
        first, limit = _one_request(net, head, data, host, port,
                                    f"{head.method} /{rest} {head.version}", authority)
    try:
        upstream = yield from _dial(net, entry, host, port, "proxy")
    except UpstreamFailed as failed:
        if not connect:
            failed.reply = _http_error("502 Bad Gateway", f"agent-sandbox: {host}:{port} is "
                                       f"allowed, but unreachable: {failed.reason}\n")
        raise
    except Denied as denied:
        raise (denied if connect else _forbidden(net, denied)) from None
    with upstream:
        yield from relay(client, upstream, first, limit)


def _serve_transparent(net: Network, port: int, client: socket.socket) -> Task[None]:
    destination = client.getsockname()[0]
    expected = net.by_address.get(destination)
    if expected is None:
        raise Denied(f"{destination} is not an allowed name's address", destination, port)
    entry = _decide(net, expected, port)
    data, limit = yield from _check_tunnel(net, client, expected, port, b"")
    upstream = yield from _dial(net, entry, expected, port, "transparent")
    with upstream:
        yield from relay(client, upstream, data, limit)


def _serve_forward(net: Network, forward: Forward, client: socket.socket) -> Task[None]:
    deadline = time.monotonic() + DIAL_TIMEOUT
    if forward.unix_path:
        upstream = yield from connect(socket.AF_UNIX, forward.unix_path, deadline)
        target = f"unix:{forward.unix_path}"
    else:
        upstream = yield from _dial_tcp(forward.host, forward.port)
        target = f"{forward.host}:{forward.port}"
    net.log.record("allow", path="forward", host=target, port=forward.inside_port)
    with upstream:
        yield from relay(client, upstream, b"")


# Where a published port is dialled inside, in order: a server may listen on either
# loopback alone (``localhost`` is ::1 first for many), or on both.
PUBLISHED_ADDRESSES = ("127.0.0.1", "::1")


def _serve_published(net: Network, make_socket: Callable[[str], socket.socket], port: int,
                     client: socket.socket) -> Task[None]:
    """A host connection to 127.0.0.1:PORT, dialled into the sandbox's 127.0.0.1:PORT, else
    its [::1]:PORT, with a socket made inside its namespace (by the namespace child, which
    answers at once)."""
    deadline = time.monotonic() + DIAL_TIMEOUT
    for address in PUBLISHED_ADDRESSES:
        with make_socket(address) as upstream:
            upstream.setblocking(False)
            try:
                yield from connect_socket(upstream, (address, port), deadline)
            except ConnectionRefusedError:
                if address == PUBLISHED_ADDRESSES[-1]:
                    raise
                continue  # nothing listens there: the next one
            net.log.record("allow", path="publish", host=address, port=port)
            yield from relay(client, upstream, b"")
            return


def _why(denied: Denied, fix: str) -> str:
    """The 403's body: the host, the reason and the flags to allow it (or that none
    would), each line safe for a terminal (a client may print it, and the host name is the
    command's choice)."""
    lines = [f"agent-sandbox blocked this connection: {denied.host or 'request'}"
             f"{f':{denied.port}' if denied.port else ''}: {denied.reason}.",
             f"To allow it, run agent-sandbox with {fix}." if fix else
             "No agent-sandbox flag allows it."]
    return "".join(printable(line) + "\n" for line in lines)


def _outcome(net: Network, path: str, serve: Task[None]) -> Task[bytes]:
    """Run ``serve``, log how it ended; returns the reply a refusal owes the client."""
    try:
        yield from serve
    except UpstreamFailed as failed:
        net.log.record("allow", path=path, host=failed.host, port=failed.port,
                       upstream=f"failed: {failed.reason}")
        return failed.reply
    except Denied as denied:
        net.deny(path, denied.host, denied.port, denied.reason, denied.need)
        return denied.reply
    except (TimeoutError, OSError):
        pass
    except Exception as e:  # a bug must cost one connection, never the server
        net.log.record("error", path=path, reason=repr(e))
    return b""


def _handler(net: Network, path: str,
             serve: Callable[[socket.socket], Task[None]]) -> Callable[[socket.socket], Task[None]]:
    def handle(client: socket.socket) -> Task[None]:
        with client:
            if net.active >= MAX_CONNECTIONS:
                net.deny(path, "", 0, "too many connections")
                return
            net.active += 1
            try:
                reply = yield from _outcome(net, path, serve(client))
                if reply:
                    with contextlib.suppress(TimeoutError, OSError):
                        yield from send_all(client, reply, time.monotonic() + HEAD_TIMEOUT)
            finally:
                net.active -= 1
    return handle


class Listeners(NamedTuple):
    """The sockets made inside the namespace, by role (None: not served)."""

    proxy: socket.socket | None = None
    dns: socket.socket | None = None
    transparent: tuple[tuple[int, socket.socket], ...] = ()  # by port, on every address
    forwards: tuple[tuple[Forward, socket.socket], ...] = ()


def _serve_dns(sock: socket.socket, lookup: Callable[[str], str | None]) -> Task[None]:
    """Answer each query datagram to its sender. The responder (dnslib, ~7 ms of import) is
    loaded with the first query, not at every launch."""
    sock.setblocking(False)
    from_dnslib = None
    while True:
        yield Ready(sock.fileno(), READ)
        try:
            data, peer = sock.recvfrom(4096)
        except OSError:
            continue  # nothing after all, or an error the kernel queued: not fatal
        if from_dnslib is None:
            from agent_sandbox._net.dns import DnsResponder

            from_dnslib = DnsResponder(lookup)
        reply = from_dnslib.answer(data)
        if reply is not None:
            with contextlib.suppress(OSError):  # a full buffer drops it, like the network
                sock.sendto(reply, peer)


def _tasks(net: Network, listeners: Listeners, published: Sequence[tuple[int, socket.socket]],
           make_socket: Callable[[str], socket.socket],
           spawn: Callable[[Task[None]], None]) -> list[Task[None]]:
    """One task per listening socket."""
    served: list[tuple[socket.socket, str, Callable[[socket.socket], Task[None]]]] = []
    if listeners.proxy is not None:
        served.append((listeners.proxy, "proxy", partial(_serve_proxy, net)))
    served += [(sock, "transparent", partial(_serve_transparent, net, port))
               for port, sock in listeners.transparent]
    served += [(sock, "forward", partial(_serve_forward, net, forward))
               for forward, sock in listeners.forwards]
    served += [(sock, "publish", partial(_serve_published, net, make_socket, port))
               for port, sock in published]
    tasks = [accepting(sock, _handler(net, path, serve), spawn) for sock, path, serve in served]
    if listeners.dns is not None:
        tasks.append(_serve_dns(listeners.dns, net.dns_lookup))
    return tasks


@contextlib.contextmanager
def serving(net: Network, listeners: Listeners, publish: Sequence[int],
            make_socket: Callable[[str], socket.socket]) -> Iterator[None]:
    """Serve from a thread of the launcher while the sandbox runs (the main thread keeps the
    signal-driven supervision); stop and join on exit. Startup errors are raised here,
    before the command runs."""
    with contextlib.ExitStack() as stack:
        published = []
        for port in publish:
            try:
                sock = socket.create_server(("127.0.0.1", port))
            except OSError as e:
                raise SandboxUnavailable(
                    f"cannot serve the sandbox's network: --publish {port}: {e}") from None
            published.append((port, stack.enter_context(sock)))
        loop = Loop()
        for task in _tasks(net, listeners, published, make_socket, loop.spawn):
            loop.spawn(task)
        thread = threading.Thread(target=loop.run, name="agent-sandbox-network", daemon=True)
        thread.start()
        try:
            yield
        finally:
            loop.stop()
            thread.join(5)
