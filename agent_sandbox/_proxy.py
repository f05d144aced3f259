"""The filtered network, served from outside the sandbox on sockets that live inside it.

Three ways in, one policy (``_netpolicy.decide``):

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

import asyncio
import contextlib
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from agent_sandbox._errors import SandboxUnavailable
from agent_sandbox._netlog import DecisionLog
from agent_sandbox._netplan import static_addresses
from agent_sandbox._netpolicy import (
    AllowEntry,
    Forward,
    address_refusal,
    allow_hint,
    decide,
    match,
    normalise_name,
)
from agent_sandbox._relay import relay
from agent_sandbox._wire import MAX_HEAD, NeedMore, request_head, sni, split_host_port

_DYNAMIC_SLOTS = 256 * 256 - 2  # 127.2.0.1 .. 127.2.255.254
HEAD_TIMEOUT = 10.0  # seconds to send a request head or ClientHello (slowloris)
DIAL_TIMEOUT = 10.0
MAX_CONNECTIONS = 1024
BUFFER = 256 * 1024
DYNAMIC_NET = "127.2"  # 127.2.x.y: names allocated when the DNS responder answers a wildcard


class Denied(Exception):
    """The policy refuses the connection (logged as "deny")."""

    def __init__(self, reason: str, host: str = "", port: int = 0) -> None:
        super().__init__(reason)
        self.reason, self.host, self.port = reason, host, port


class UpstreamFailed(Denied):
    """The policy allowed it but the upstream could not be reached (logged as "allow" with
    the error: the agent's request was legitimate, the network was not there)."""


class Network:
    """The state shared by the listeners: policy, name <-> address map, log, counters."""

    def __init__(self, entries: Sequence[AllowEntry], pins: Sequence[tuple[str, str]],
                 log: DecisionLog) -> None:
        self.entries = tuple(entries)
        self.pins = dict(pins)
        self.log = log
        self.by_name = static_addresses(self.entries)
        self.by_address = {address: name for name, address in self.by_name.items()}
        self.blocked: Counter[tuple[str, int]] = Counter()
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
            self.log.record("deny", path="dns", host=name, port=0,
                            reason="not in the allow-list")
            self.blocked[(name, 0)] += 1
            return None
        return self.address_for(clean or name)

    def deny(self, path: str, host: str, port: int, reason: str) -> None:
        self.blocked[(host, port)] += 1
        self.log.record("deny", path=path, host=host, port=port, reason=reason)

    def summary(self) -> str | None:
        if not self.blocked:
            return None
        parts = []
        for (host, port), count in self.blocked.most_common(5):
            what = host if port in (0, 443, 80) else f"{host}:{port}"
            parts.append(f"{what}{f' x{count}' if count > 1 else ''} ({allow_hint(host, port)})")
        more = len(self.blocked) - 5
        return (f"network: blocked {sum(self.blocked.values())} connection(s): "
                + ", ".join(parts) + (f", and {more} more" if more > 0 else "")
                + f"; details in {self.log.path}")


async def _read_until(reader: asyncio.StreamReader, data: bytes, parse: object) -> bytes:
    """Read into ``data`` until ``parse(data)`` stops raising NeedMore (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + HEAD_TIMEOUT
    while True:
        try:
            parse(data)  # type: ignore[operator]
            return data
        except NeedMore:
            pass
        if len(data) > MAX_HEAD + 16 * 1024:
            return data
        chunk = await asyncio.wait_for(reader.read(16 * 1024), deadline - loop.time())
        if not chunk:
            return data
        data += chunk


async def _dial(net: Network, entry: AllowEntry, host: str, port: int,
                path: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """Resolve (or take the pin), vet the address, dial it: no second lookup."""
    pinned = net.pins.get(host)
    if pinned:
        candidates = [pinned]
    else:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as e:
            raise UpstreamFailed(f"cannot resolve: {e.strerror or e}", host, port) from None
        candidates = list(dict.fromkeys(str(info[4][0]) for info in infos))
    refusals, failures = [], []
    for address in candidates:
        # A --resolve pin is the user's explicit choice: private addresses are fine there,
        # metadata, unspecified and multicast addresses never are.
        refusal = address_refusal(address, entry.allow_private or bool(pinned))
        if refusal:
            refusals.append(f"{address}: {refusal}")
            continue
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(address, port, limit=BUFFER), DIAL_TIMEOUT)
        except (TimeoutError, OSError) as e:
            failures.append(f"{address}: {e or 'timeout'}")
            continue
        net.allowed += 1
        net.log.record("allow", path=path, host=host, port=port, upstream=address)
        return reader, writer, address
    if failures:
        raise UpstreamFailed("; ".join(failures + refusals), host, port)
    raise Denied("; ".join(refusals) or "no address", host, port)


async def _pipe_both(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                     up_r: asyncio.StreamReader, up_w: asyncio.StreamWriter,
                     first: bytes) -> None:
    try:
        await relay((client_r, client_w), (up_r, up_w), first)
    finally:
        up_w.close()


def _decide(net: Network, host: str, port: int, path: str) -> AllowEntry:
    verdict = decide(net.entries, host, port)
    if not verdict.allowed or verdict.entry is None:
        raise Denied(verdict.reason, host, port)
    return verdict.entry


async def _check_tunnel(reader: asyncio.StreamReader, host: str, port: int,
                        data: bytes) -> bytes:
    """The first bytes (``data``, already read, then more) must be TLS naming ``host`` (SNI)
    or an HTTP request for ``host`` (Host); returns them, to be sent on upstream. Bounded in
    time like a request head, so idle connections cannot pile up."""
    data = data or await asyncio.wait_for(reader.read(16 * 1024), HEAD_TIMEOUT)
    if data[:1] == bytes([0x16]):
        data = await _read_until(reader, data, sni)
        name = sni(data)
        if name != host:
            raise Denied(f"TLS server name {name!r} is not {host!r}", host, port)
        return data
    data = await _read_until(reader, data, request_head)
    head = request_head(data) if data else None
    target = split_host_port(head.header("host") or "", port) if head else None
    if not head or not target or target[0] != host:
        raise Denied("neither TLS nor HTTP for this host", host, port)
    return data


def _http_error(status: str, body: str) -> bytes:
    payload = body.encode()
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n"
            "X-Agent-Sandbox: blocked\r\n\r\n").encode() + payload


async def _serve_proxy(net: Network, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
    data = await _read_until(reader, b"", request_head)
    head = request_head(data) if data else None
    if head is None:
        writer.write(_http_error("400 Bad Request", "agent-sandbox: not an HTTP request\n"))
        raise Denied("malformed proxy request")
    connect = head.method == "CONNECT"
    if connect:
        target, rest = split_host_port(head.target, 443), ""
    elif head.target.startswith("http://"):
        authority, _, rest = head.target[len("http://"):].partition("/")
        target = split_host_port(authority, 80)
    else:
        writer.write(_http_error("400 Bad Request",
                                 "agent-sandbox: only CONNECT and http:// URLs\n"))
        raise Denied(f"unsupported proxy request {head.method} {head.target[:80]!r}")
    if target is None:
        raise Denied(f"bad proxy target {head.target[:80]!r}")
    host, port = target
    try:
        entry = _decide(net, host, port, "proxy")
    except Denied as denied:
        writer.write(_http_error("403 Forbidden", _why(denied)))
        raise
    if connect:
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        # Bytes sent along with the CONNECT head are checked like any others.
        first = await _check_tunnel(reader, host, port, data[head.size:])
    else:
        # An absolute URL: forwarded in origin form, without the proxy's own headers, with
        # the Host the policy checked (not one naming another site behind the same address)
        # and for this one request only (a next one on the connection is never seen).
        headers = "".join(f"{k}: {v}\r\n" for k, v in head.headers
                          if not k.lower().startswith("proxy-")
                          and k.lower() not in ("host", "connection", "keep-alive"))
        first = (f"{head.method} /{rest} {head.version}\r\nHost: {authority}\r\n{headers}"
                 "Connection: close\r\n\r\n").encode()
        first += data[head.size:]
    try:
        up_r, up_w, _ = await _dial(net, entry, host, port, "proxy")
    except UpstreamFailed as failed:
        if not connect:
            writer.write(_http_error("502 Bad Gateway", f"agent-sandbox: {host}:{port} is "
                                     f"allowed, but unreachable: {failed.reason}\n"))
        raise
    except Denied as denied:
        if not connect:
            writer.write(_http_error("403 Forbidden", _why(denied)))
        raise
    await _pipe_both(reader, writer, up_r, up_w, first)


async def _serve_transparent(net: Network, port: int, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
    destination = writer.get_extra_info("sockname")[0]
    expected = net.by_address.get(destination)
    if expected is None:
        raise Denied(f"{destination} is not an allowed name's address", destination, port)
    entry = _decide(net, expected, port, "transparent")
    data = await _check_tunnel(reader, expected, port, b"")
    up_r, up_w, _ = await _dial(net, entry, expected, port, "transparent")
    await _pipe_both(reader, writer, up_r, up_w, data)


async def _serve_forward(net: Network, forward: Forward, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
    if forward.unix_path:
        up_r, up_w = await asyncio.open_unix_connection(forward.unix_path, limit=BUFFER)
        target = f"unix:{forward.unix_path}"
    else:
        up_r, up_w = await asyncio.wait_for(
            asyncio.open_connection(forward.host, forward.port, limit=BUFFER), DIAL_TIMEOUT)
        target = f"{forward.host}:{forward.port}"
    net.log.record("allow", path="forward", host=target, port=forward.inside_port)
    await _pipe_both(reader, writer, up_r, up_w, b"")


def _why(denied: Denied) -> str:
    hint = f"\nTo allow it, run agent-sandbox with {allow_hint(denied.host, denied.port)}." \
        if denied.host else ""
    return (f"agent-sandbox blocked this connection: {denied.host or 'request'}"
            f"{f':{denied.port}' if denied.port else ''}: {denied.reason}.{hint}\n")


def _handler(net: Network, path: str, serve: Any) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if net.active >= MAX_CONNECTIONS:
            net.deny(path, "", 0, "too many connections")
            writer.close()
            return
        net.active += 1
        try:
            await serve(reader, writer)
        except UpstreamFailed as failed:
            net.log.record("allow", path=path, host=failed.host, port=failed.port,
                           upstream=f"failed: {failed.reason}")
        except Denied as denied:
            net.deny(path, denied.host, denied.port, denied.reason)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            pass
        except Exception as e:  # a bug must cost one connection, never the server
            net.log.record("error", path=path, reason=repr(e))
        finally:
            net.active -= 1
            with contextlib.suppress(OSError):
                await writer.drain()
            writer.close()
    return handle


class Listeners(NamedTuple):
    """The sockets made inside the namespace, by role (None: not served)."""

    proxy: socket.socket | None = None
    dns: socket.socket | None = None
    transparent: tuple[tuple[int, socket.socket], ...] = ()  # by port, on every address
    forwards: tuple[tuple[Forward, socket.socket], ...] = ()


async def _serve_published(net: Network, make_socket: Callable[[], socket.socket], port: int,
                           reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
    """A host connection to 127.0.0.1:PORT, dialled into the sandbox's 127.0.0.1:PORT with
    a socket made inside its namespace."""
    loop = asyncio.get_running_loop()
    sock = await loop.run_in_executor(None, make_socket)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    up_r, up_w = await asyncio.open_connection(sock=sock, limit=BUFFER)
    net.log.record("allow", path="publish", host="127.0.0.1", port=port)
    await _pipe_both(reader, writer, up_r, up_w, b"")


class _LazyDns(asyncio.DatagramProtocol):
    """Loads the DNS responder (dnslib, ~7 ms of import) with the first query, not at
    every launch."""

    def __init__(self, lookup: Callable[[str], str | None]) -> None:
        self._lookup = lookup
        self._transport: asyncio.BaseTransport | None = None
        self._real: asyncio.DatagramProtocol | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self._real is None and self._transport is not None:
            from agent_sandbox._dns import DnsResponder

            self._real = DnsResponder(self._lookup)
            self._real.connection_made(self._transport)
        if self._real is not None:
            self._real.datagram_received(data, addr)


async def _start(net: Network, listeners: Listeners, publish: Sequence[int],
                 make_socket: Callable[[], socket.socket]) -> list[Any]:
    """Every server, started; a port that cannot be served raises before the command runs."""
    loop = asyncio.get_running_loop()
    handlers: list[tuple[socket.socket, str, Any]] = []
    if listeners.proxy is not None:
        handlers.append((listeners.proxy, "proxy", lambda r, w: _serve_proxy(net, r, w)))
    for port, sock in listeners.transparent:
        handlers.append((sock, "transparent",
                         lambda r, w, p=port: _serve_transparent(net, p, r, w)))
    for forward, sock in listeners.forwards:
        handlers.append((sock, "forward",
                         lambda r, w, f=forward: _serve_forward(net, f, r, w)))
    servers: list[Any] = [
        await asyncio.start_server(_handler(net, path, serve), sock=sock, limit=BUFFER)
        for sock, path, serve in handlers
    ]
    for port in publish:
        servers.append(await asyncio.start_server(
            _handler(net, "publish",
                     lambda r, w, p=port: _serve_published(net, make_socket, p, r, w)),
            host="127.0.0.1", port=port, limit=BUFFER))
    if listeners.dns is not None:
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _LazyDns(net.dns_lookup), sock=listeners.dns)
        servers.append(transport)
    return servers


@contextlib.contextmanager
def serving(net: Network, listeners: Listeners, publish: Sequence[int],
            make_socket: Callable[[], socket.socket]) -> Iterator[None]:
    """Serve from a thread of the launcher while the sandbox runs (the main thread keeps the
    signal-driven supervision); stop and join on exit. Startup errors are raised here."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            servers = loop.run_until_complete(_start(net, listeners, publish, make_socket))
        except BaseException as e:  # reported to the launcher's thread below
            failure.append(e)
            ready.set()
            loop.close()
            return
        ready.set()
        loop.run_forever()
        for server in servers:
            server.close()
        # Connections still open end here: their handlers close both sides.
        tasks = asyncio.all_tasks(loop)
        if tasks:
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(asyncio.sleep(0))  # one turn: closing transports finish
        loop.close()

    thread = threading.Thread(target=run, name="agent-sandbox-network", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        thread.join()
        raise SandboxUnavailable(f"cannot serve the sandbox's network: {failure[0]}")
    try:
        yield
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
