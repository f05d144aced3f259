"""The proxy's decision order, with real sockets on this host's loopback and an instrumented
resolver: a denied name never causes a lookup; answers in refused ranges are never dialled."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import RCODE, DNSRecord

from agent_sandbox._net.allow import parse_allow
from agent_sandbox._net.log import DecisionLog
from agent_sandbox._net.proxy import Listeners, Network, serving
from tests.conftest import loopback_server


class Resolver:
    """Stands in for the host's resolver: records every lookup, answers from a table."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.answers: dict[str, str] = {}

    def resolve(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [self.answers[host]]


@pytest.fixture
def echo() -> Iterator[int]:
    with loopback_server(lambda conn: conn.sendall(b"upstream:" + conn.recv(1000))) as port:
        yield port


@pytest.fixture
def proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          echo: int) -> Iterator[tuple[int, Resolver, Network]]:
    resolver = Resolver()
    monkeypatch.setattr("agent_sandbox._net.proxy.resolve", resolver.resolve)
    entries = (parse_allow(f"allowed.test:{echo}"),
               parse_allow(f"private.test:{echo}", private=True))
    log = DecisionLog("test", str(tmp_path / "log.jsonl"))
    net = Network(entries, (), log)
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        with serving(net, Listeners(proxy=listener), (), lambda _: socket.socket()):
            yield listener.getsockname()[1], resolver, net
    finally:
        listener.close()
        log.close()


def _connect(port: int, target: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\n".encode())
        reply = s.recv(1000)
        if reply.startswith(b"HTTP/1.1 200"):
            host = target.rsplit(":", 1)[0]
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            reply += s.recv(1000)
        return reply


def test_denied_requests_never_reach_the_resolver(proxy: tuple[int, Resolver, Network],
                                                  echo: int) -> None:
    port, resolver, _ = proxy
    for target in ("evil.test:443", f"allowed.test:{echo + 1}", "127.0.0.1:443",
                   "localhost:443", "[::1]:443", "169.254.169.254:80", "evil.test.:443",
                   f"sub.allowed.test:{echo}"):
        assert _connect(port, target).startswith(b"HTTP/1.1 403"), target
    assert resolver.calls == []


def test_answers_in_refused_ranges_are_never_dialled(proxy: tuple[int, Resolver, Network],
                                                     echo: int) -> None:
    port, resolver, net = proxy
    for address in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0"):
        resolver.answers["allowed.test"] = address
        reply = _connect(port, f"allowed.test:{echo}")
        assert b"upstream:" not in reply, address  # DNS rebinding to a refused range
    assert resolver.calls == ["allowed.test"] * 5
    assert net.blocked["allowed.test"].count == 5


def test_refusals_print_the_flag_that_would_allow_them(
    proxy: tuple[int, Resolver, Network], echo: int
) -> None:
    """The 403 body and the exit summary name --allow-private for an allowed name whose
    address is private, the real port for an unlisted one, and no flag where none helps."""
    port, resolver, net = proxy
    resolver.answers["allowed.test"] = "127.0.0.1"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET http://allowed.test:{echo}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        private = s.recv(1000).decode()
    assert private.startswith("HTTP/1.1 403")
    assert f"run agent-sandbox with --allow-private allowed.test:{echo}." in private
    assert b"with --allow evil.test:8443." in _connect(port, "evil.test:8443")
    net.dns_lookup("evil.test")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET http://[::1]/ HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"with --forward-host 80." in s.recv(1000)
    assert net.summary() == (
        f"network: blocked 4 request(s): evil.test x2 (--allow evil.test:8443), allowed.test "
        f"(private address: --allow-private allowed.test:{echo}), ::1 (--forward-host 80); "
        f"details in {net.log.path}")


def test_an_allowed_name_is_resolved_once_and_dialled_at_the_vetted_address(
    proxy: tuple[int, Resolver, Network], echo: int
) -> None:
    port, resolver, _ = proxy
    resolver.answers["private.test"] = "127.0.0.1"  # fine: that entry allows private
    reply = _connect(port, f"private.test:{echo}")
    assert reply.startswith(b"HTTP/1.1 200")
    assert b"upstream:GET / HTTP/1.1" in reply
    assert resolver.calls == ["private.test"]


def test_an_absolute_url_is_sent_with_the_checked_host_for_one_request(
    proxy: tuple[int, Resolver, Network], echo: int
) -> None:
    port, resolver, _ = proxy
    resolver.answers["private.test"] = "127.0.0.1"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET http://private.test:{echo}/x HTTP/1.1\r\nHost: fronted.example\r\n"
                  "Connection: keep-alive\r\n\r\n".encode())
        reply = s.recv(1000).decode()
    assert reply.startswith("upstream:GET /x HTTP/1.1\r\n")
    assert f"Host: private.test:{echo}\r\n" in reply and "fronted" not in reply
    assert "Connection: close\r\n" in reply and "keep-alive" not in reply


def test_bytes_sent_with_the_connect_head_are_checked(
    proxy: tuple[int, Resolver, Network], echo: int
) -> None:
    port, resolver, _ = proxy
    resolver.answers["private.test"] = "127.0.0.1"
    target = f"private.test:{echo}"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: evil.test\r\n\r\n"
                  .encode())
        reply = s.recv(1000)
        reply += s.recv(1000)
    assert reply.startswith(b"HTTP/1.1 200") and b"upstream:" not in reply
    # Control: the same single packet naming the right host goes through, without waiting.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"CONNECT {target} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: private.test\r\n"
                  "\r\n".encode())
        reply = b""
        while b"upstream:" not in reply and (chunk := s.recv(1000)):
            reply += chunk
    assert b"upstream:GET / HTTP/1.1" in reply


def test_a_tunnel_that_never_speaks_is_closed(proxy: tuple[int, Resolver, Network],
                                              echo: int,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    port, resolver, _ = proxy
    monkeypatch.setattr("agent_sandbox._net.proxy.HEAD_TIMEOUT", 0.5)
    resolver.answers["private.test"] = "127.0.0.1"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"CONNECT private.test:{echo} HTTP/1.1\r\n\r\n".encode())
        assert s.recv(1000).startswith(b"HTTP/1.1 200")
        assert s.recv(1000) == b""  # closed by the proxy, not by this 10 s timeout


def test_wildcard_addresses_stay_bounded_and_valid(tmp_path: Path) -> None:
    log = DecisionLog("test", str(tmp_path / "log.jsonl"))
    net = Network((parse_allow("*.example.com"),), (), log)
    first = net.address_for("n0.example.com")
    names = [f"n{i}.example.com" for i in range(1, 70000)]
    addresses = {net.address_for(name) for name in names}
    log.close()
    assert len(addresses) == 256 * 256 - 2 and first in addresses
    assert all(0 <= int(part) <= 255 for a in addresses for part in a.split("."))
    assert len(net.by_name) == len(net.by_address) == 256 * 256 - 2
    assert net.by_address[first] != "n0.example.com"  # recycled for a newer name


def test_a_tunnel_moves_every_byte_both_ways_and_passes_half_closes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The upstream speaks first (its greeting may be read before the relay takes over),
    # then reads to the end of the client's direction, then answers with a digest of it.
    server = socket.create_server(("127.0.0.1", 0))
    payload = os.urandom(8 * 1024 * 1024)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"greeting;")
            got = bytearray()
            while chunk := conn.recv(1 << 20):
                got += chunk
            conn.sendall(b"got:" + hashlib.sha256(bytes(got)).hexdigest().encode())

    threading.Thread(target=serve, daemon=True).start()
    upstream = server.getsockname()[1]
    resolver = Resolver()
    resolver.answers["private.test"] = "127.0.0.1"
    monkeypatch.setattr("agent_sandbox._net.proxy.resolve", resolver.resolve)
    log = DecisionLog("test", str(tmp_path / "log.jsonl"))
    net = Network((parse_allow(f"private.test:{upstream}", private=True),), (), log)
    listener = socket.create_server(("127.0.0.1", 0))
    # Plain HTTP in a tunnel carries one request: its body is the payload.
    head = (f"POST / HTTP/1.1\r\nHost: private.test\r\nContent-Length: {8 << 20}"
            "\r\n\r\n").encode()
    try:
        with serving(net, Listeners(proxy=listener), (), lambda _: socket.socket()), \
                socket.create_connection(listener.getsockname(), timeout=20) as s:
            s.sendall(f"CONNECT private.test:{upstream} HTTP/1.1\r\n\r\n".encode())
            assert s.recv(1000).startswith(b"HTTP/1.1 200")
            s.sendall(head + payload)
            s.shutdown(socket.SHUT_WR)
            reply = bytearray()
            while chunk := s.recv(1 << 16):
                reply += chunk
    finally:
        listener.close()
        server.close()
        log.close()
    sent = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")  # one request
    digest = hashlib.sha256(sent + payload).hexdigest().encode()
    assert bytes(reply) == b"greeting;got:" + digest


def test_the_dns_responder_answers_queries_sent_before_it_ran(tmp_path: Path) -> None:
    log = DecisionLog("test", str(tmp_path / "log.jsonl"))
    net = Network((parse_allow("*.example.com"),), (), log)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        udp.bind(("127.0.0.1", 0))
        client.settimeout(10)
        client.connect(udp.getsockname())
        client.send(DNSRecord.question("a.example.com").pack())  # queued in udp's buffer
        with serving(net, Listeners(dns=udp), (), lambda _: socket.socket()):
            allowed = DNSRecord.parse(client.recv(4096))
            client.send(DNSRecord.question("evil.test").pack())
            denied = DNSRecord.parse(client.recv(4096))
    log.close()
    assert [str(rr.rdata) for rr in allowed.rr] == ["127.2.0.1"]
    assert denied.header.rcode == RCODE.NXDOMAIN and denied.rr == []
    assert list(net.blocked) == ["evil.test"] and net.blocked["evil.test"].count == 1
    assert net.blocked["evil.test"].ports == {0: None}


def test_leaving_serving_closes_open_connections_and_stops_the_thread(tmp_path: Path) -> None:
    log = DecisionLog("test", str(tmp_path / "log.jsonl"))
    net = Network((), (), log)
    with contextlib.closing(log), socket.create_server(("127.0.0.1", 0)) as listener:
        with serving(net, Listeners(proxy=listener), (), lambda _: socket.socket()):
            client = socket.create_connection(listener.getsockname(), timeout=10)
            client.sendall(b"CONNECT ")  # a head in progress: its handler waits for more
            deadline = time.monotonic() + 10
            while net.active == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert net.active == 1
        # Closed by the server, well before its timeout: an end of stream, or a reset when
        # the close found the head's bytes still unread.
        with client, contextlib.suppress(ConnectionResetError):
            assert client.recv(100) == b""
    assert net.active == 0
    assert "agent-sandbox-network" not in [t.name for t in threading.enumerate()]


def test_a_flood_of_denials_costs_the_log_a_bounded_size(tmp_path: Path) -> None:
    """10,000 denied requests, each with a long name of its own or the same name again: the
    log keeps one record per distinct denial (at most DENIED_KEYS), capped fields, and the
    repeats as one aggregate with its count and first and last time."""
    from agent_sandbox._net.log import DENIED_KEYS, FIELD_MAX

    path = tmp_path / "log.jsonl"
    log = DecisionLog("flood", str(path))
    for i in range(5000):
        log.record("deny", path="proxy", host=f"{i}-" + "x" * 5000, port=443, reason="no")
        log.record("deny", path="proxy", host="same.example", port=443, reason="no")
    log.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert path.stat().st_size < 150_000  # the documented bound: ~120 KB a session
    assert len(records) <= DENIED_KEYS + 2
    assert all(len(str(r.get("host", ""))) <= FIELD_MAX + 3 for r in records)
    [repeated] = [r for r in records if r.get("host") == "same.example" and "count" in r]
    assert repeated["count"] == 5000 and repeated["first"] <= repeated["last"]
    [rest] = [r for r in records if r.get("path") == "many"]
    assert rest["count"] == 10_000 - DENIED_KEYS - 4999


def test_the_log_is_rotated_when_a_launch_finds_it_large(tmp_path: Path) -> None:
    from agent_sandbox._net.log import ROTATE_AT

    path = tmp_path / "log.jsonl"
    path.write_bytes(b"{}\n" * (ROTATE_AT // 3 + 1))
    DecisionLog("next", str(path)).close()
    assert (tmp_path / "log.jsonl.1").stat().st_size > ROTATE_AT
    assert path.stat().st_size == 0


def test_two_launches_that_found_the_log_large_rotate_it_once(tmp_path: Path) -> None:
    """Both opened the large file; the second to rotate finds the path is a new file and
    appends to it, instead of moving it over the old log (which would lose the old log)."""
    from agent_sandbox._net.log import ROTATE_AT, _open_append, _rotated

    path = tmp_path / "log.jsonl"
    path.write_bytes(b"{}\n" * (ROTATE_AT // 3 + 1))
    first, second = _open_append(str(path)), _open_append(str(path))
    fd = _rotated(str(path), first)
    os.write(fd, b'{"time": 1}\n')
    os.close(fd)
    fd = _rotated(str(path), second)
    os.close(fd)
    assert (tmp_path / "log.jsonl.1").stat().st_size > ROTATE_AT
    assert path.read_bytes() == b'{"time": 1}\n'
