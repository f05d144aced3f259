"""The sandbox's DNS responder, over real UDP on loopback, with queries built by dnslib."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from dnslib import OPCODE, QTYPE, RCODE, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from agent_sandbox._dns import TTL, DnsResponder
from agent_sandbox._netplan import resolv_conf

ALLOWED = {"api.example.com": "10.0.0.7"}
Ask = Callable[[bytes], Awaitable[DNSRecord]]


class Calls:
    """A lookup over ALLOWED that remembers every name it was asked, plus an on_query log."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.logged: list[tuple[str, str, str | None]] = []

    def lookup(self, name: str) -> str | None:
        self.names.append(name)
        return ALLOWED.get(name)

    def on_query(self, name: str, qtype: str, answer: str | None) -> None:
        self.logged.append((name, qtype, answer))


@contextlib.asynccontextmanager
async def serving(calls: Calls) -> AsyncIterator[tuple[Ask, socket.socket]]:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: DnsResponder(calls.lookup, calls.on_query), local_addr=("127.0.0.1", 0)
    )
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setblocking(False)
    client.connect(transport.get_extra_info("sockname"))

    async def ask(packet: bytes) -> DNSRecord:
        await loop.sock_sendall(client, packet)
        data = await asyncio.wait_for(loop.sock_recv(client, 4096), 2)
        return DNSRecord.parse(data)

    try:
        yield ask, client
    finally:
        client.close()
        transport.close()


def run(body: Callable[[Ask, socket.socket], Awaitable[None]], calls: Calls) -> None:
    async def main() -> None:
        async with serving(calls) as (ask, client):
            await body(ask, client)

    asyncio.run(main())


def query(name: str | DNSLabel, qtype: str = "A") -> DNSRecord:
    return DNSRecord.question(name, qtype)


def check_header(reply: DNSRecord, sent: DNSRecord, rcode: int) -> None:
    assert reply.header.id == sent.header.id
    assert (reply.header.qr, reply.header.aa, reply.header.ra) == (1, 1, 0)
    assert reply.header.rcode == rcode
    assert reply.questions == sent.questions


def test_allowed_name_gets_one_a_record() -> None:
    calls = Calls()
    sent = query("api.example.com")

    async def body(ask: Ask, _: socket.socket) -> None:
        reply = await ask(sent.pack())
        check_header(reply, sent, RCODE.NOERROR)
        assert [(str(rr.rname), rr.rtype, str(rr.rdata), rr.ttl) for rr in reply.rr] == [
            ("api.example.com.", QTYPE.A, "10.0.0.7", TTL)
        ]
        assert TTL == 5

    run(body, calls)
    assert calls.names == ["api.example.com"]
    assert calls.logged == [("api.example.com", "A", "10.0.0.7")]


def test_name_is_normalised_before_the_lookup() -> None:
    calls = Calls()

    async def body(ask: Ask, _: socket.socket) -> None:
        reply = await ask(query("API.Example.COM.").pack())
        assert [str(rr.rdata) for rr in reply.rr] == ["10.0.0.7"]

    run(body, calls)
    assert calls.names == ["api.example.com"]


def test_unknown_name_is_nxdomain() -> None:
    calls = Calls()
    sent = query("evil.example.net")

    async def body(ask: Ask, _: socket.socket) -> None:
        reply = await ask(sent.pack())
        check_header(reply, sent, RCODE.NXDOMAIN)
        assert reply.rr == []

    run(body, calls)
    assert calls.names == ["evil.example.net"]
    assert calls.logged == [("evil.example.net", "A", None)]


@pytest.mark.parametrize(
    ("qtype", "answers"), [("AAAA", []), ("MX", []), ("TXT", []), ("ANY", ["10.0.0.7"])]
)
def test_other_types_of_an_allowed_name(qtype: str, answers: list[str]) -> None:
    calls = Calls()
    sent = query("api.example.com", qtype)

    async def body(ask: Ask, _: socket.socket) -> None:
        reply = await ask(sent.pack())
        check_header(reply, sent, RCODE.NOERROR)
        assert [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A] == answers
        assert len(reply.rr) == len(answers)

    run(body, calls)
    assert calls.names == ["api.example.com"]
    assert calls.logged == [("api.example.com", qtype, "10.0.0.7")]


def test_a_label_holding_a_dot_is_not_taken_for_the_allowed_name() -> None:
    calls = Calls()
    sent = query(DNSLabel([b"api.example", b"com"]))

    async def body(ask: Ask, _: socket.socket) -> None:
        check_header(await ask(sent.pack()), sent, RCODE.NXDOMAIN)

    run(body, calls)
    assert calls.names == []
    assert [answer for _, _, answer in calls.logged] == [None]


def test_garbage_is_dropped_and_the_next_query_still_answered() -> None:
    calls = Calls()
    response = query("api.example.com").reply().pack()
    garbage = [b"", b"\x12", b"\xde\xad\xbe\xef" * 9, bytes(range(256)), response]
    sent = query("api.example.com")

    async def body(ask: Ask, client: socket.socket) -> None:
        for packet in garbage:
            client.send(packet)
        # Loopback keeps order: the first datagram back must be the valid query's answer.
        reply = await ask(sent.pack())
        check_header(reply, sent, RCODE.NOERROR)
        assert [str(rr.rdata) for rr in reply.rr] == ["10.0.0.7"]

    run(body, calls)
    assert calls.names == ["api.example.com"]


def _bad_query(**header: int) -> tuple[DNSRecord, int]:
    rcode = header.pop("rcode")
    questions = [DNSQuestion(f"q{i}.example.com") for i in range(header.pop("questions", 1))]
    return DNSRecord(DNSHeader(id=4242, **header), questions=questions), rcode


@pytest.mark.parametrize(
    ("header"),
    [
        {"opcode": OPCODE.STATUS, "rcode": RCODE.NOTIMP},
        {"questions": 0, "rcode": RCODE.FORMERR},
        {"questions": 2, "rcode": RCODE.FORMERR},
    ],
)
def test_parsable_non_queries_are_refused_without_a_lookup(header: dict[str, int]) -> None:
    calls = Calls()
    sent, rcode = _bad_query(**header)

    async def body(ask: Ask, _: socket.socket) -> None:
        reply = await ask(sent.pack())
        assert (reply.header.id, reply.header.qr, reply.header.rcode) == (4242, 1, rcode)
        assert reply.rr == []

    run(body, calls)
    assert calls.names == []


def test_a_failing_lookup_does_not_kill_the_responder() -> None:
    calls = Calls()
    sent = query("api.example.com")

    def lookup(name: str) -> str | None:
        if name == "boom.example.com":
            raise RuntimeError(name)
        return calls.lookup(name)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: DnsResponder(lookup), local_addr=("127.0.0.1", 0)
        )
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.setblocking(False)
            client.connect(transport.get_extra_info("sockname"))
            await loop.sock_sendall(client, query("boom.example.com").pack())
            await loop.sock_sendall(client, sent.pack())
            reply = DNSRecord.parse(await asyncio.wait_for(loop.sock_recv(client, 4096), 2))
            assert reply.header.id == sent.header.id
        transport.close()

    asyncio.run(main())
    assert calls.names == ["api.example.com"]


def _forbid_new_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the responder opened a socket or resolved a name")

    for name in ("socket", "socketpair", "create_connection", "getaddrinfo", "gethostbyname"):
        monkeypatch.setattr(socket, name, refuse)
    for name in ("create_datagram_endpoint", "create_connection", "getaddrinfo"):
        monkeypatch.setattr(asyncio.BaseEventLoop, name, refuse)


def test_it_never_forwards(monkeypatch: pytest.MonkeyPatch) -> None:
    class Recorder:
        def __init__(self) -> None:
            self.sent: list[tuple[bytes, Any]] = []

        def sendto(self, data: bytes, addr: Any = None) -> None:
            self.sent.append((data, addr))

    calls = Calls()
    recorder = Recorder()
    responder = DnsResponder(calls.lookup, calls.on_query)
    responder.connection_made(cast(asyncio.BaseTransport, recorder))
    _forbid_new_sockets(monkeypatch)
    peer = ("10.0.2.100", 40000)
    for name, qtype in [("api.example.com", "A"), ("evil.example.net", "A"), ("x.org", "MX")]:
        responder.datagram_received(query(name, qtype).pack(), peer)
    responder.datagram_received(b"junk", peer)
    # One reply per query, each to the sender only: nothing went anywhere else.
    assert [addr for _, addr in recorder.sent] == [peer] * 3
    assert calls.names == ["api.example.com", "evil.example.net", "x.org"]


def test_resolv_conf_has_no_search_list() -> None:
    text = resolv_conf()
    assert text == "nameserver 127.0.0.53\noptions ndots:0 attempts:1 timeout:2\n"
    assert "search" not in text and "domain" not in text
