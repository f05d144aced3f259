"""The sandbox's DNS responder, over real UDP on loopback, with queries built by dnslib."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dnslib import OPCODE, QTYPE, RCODE, DNSHeader, DNSLabel, DNSQuestion, DNSRecord

from agent_sandbox._net.dns import TTL, DnsResponder
from agent_sandbox._net.plan import resolv_conf

ALLOWED = {"api.example.com": "10.0.0.7"}
Ask = Callable[[bytes], DNSRecord]


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


@contextlib.contextmanager
def serving(responder: DnsResponder) -> Iterator[tuple[Ask, socket.socket]]:
    """The responder on a UDP socket of this host's loopback, answering from a thread the way
    the launcher does (each reply to the query's sender), and a client connected to it."""
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            data, peer = server.recvfrom(4096)
            if not data and peer is None:
                return  # shut down
            reply = responder.answer(data)
            if reply is not None:
                server.sendto(reply, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.settimeout(2)
    client.connect(server.getsockname())

    def ask(packet: bytes) -> DNSRecord:
        client.send(packet)
        return DNSRecord.parse(client.recv(4096))

    try:
        yield ask, client
    finally:
        client.close()
        with contextlib.suppress(OSError):  # ENOTCONN, but the blocked recvfrom returns
            server.shutdown(socket.SHUT_RDWR)
        thread.join(2)
        server.close()


def run(body: Callable[[Ask, socket.socket], None], calls: Calls) -> None:
    with serving(DnsResponder(calls.lookup, calls.on_query)) as (ask, client):
        body(ask, client)


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

    def body(ask: Ask, _: socket.socket) -> None:
        reply = ask(sent.pack())
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

    def body(ask: Ask, _: socket.socket) -> None:
        reply = ask(query("API.Example.COM.").pack())
        assert [str(rr.rdata) for rr in reply.rr] == ["10.0.0.7"]

    run(body, calls)
    assert calls.names == ["api.example.com"]


def test_unknown_name_is_nxdomain() -> None:
    calls = Calls()
    sent = query("evil.example.net")

    def body(ask: Ask, _: socket.socket) -> None:
        reply = ask(sent.pack())
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

    def body(ask: Ask, _: socket.socket) -> None:
        reply = ask(sent.pack())
        check_header(reply, sent, RCODE.NOERROR)
        assert [str(rr.rdata) for rr in reply.rr if rr.rtype == QTYPE.A] == answers
        assert len(reply.rr) == len(answers)

    run(body, calls)
    assert calls.names == ["api.example.com"]
    assert calls.logged == [("api.example.com", qtype, "10.0.0.7")]


def test_a_label_holding_a_dot_is_not_taken_for_the_allowed_name() -> None:
    calls = Calls()
    sent = query(DNSLabel([b"api.example", b"com"]))

    def body(ask: Ask, _: socket.socket) -> None:
        check_header(ask(sent.pack()), sent, RCODE.NXDOMAIN)

    run(body, calls)
    assert calls.names == []
    assert [answer for _, _, answer in calls.logged] == [None]


def test_garbage_is_dropped_and_the_next_query_still_answered() -> None:
    calls = Calls()
    response = query("api.example.com").reply().pack()
    garbage = [b"", b"\x12", b"\xde\xad\xbe\xef" * 9, bytes(range(256)), response]
    sent = query("api.example.com")

    def body(ask: Ask, client: socket.socket) -> None:
        for packet in garbage:
            client.send(packet)
        # Loopback keeps order: the first datagram back must be the valid query's answer.
        reply = ask(sent.pack())
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

    def body(ask: Ask, _: socket.socket) -> None:
        reply = ask(sent.pack())
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

    with serving(DnsResponder(lookup)) as (ask, client):
        client.send(query("boom.example.com").pack())
        assert ask(sent.pack()).header.id == sent.header.id
    assert calls.names == ["api.example.com"]


def _forbid_new_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the responder opened a socket or resolved a name")

    for name in ("socket", "socketpair", "create_connection", "getaddrinfo", "gethostbyname"):
        monkeypatch.setattr(socket, name, refuse)


def test_it_never_forwards(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls()
    responder = DnsResponder(calls.lookup, calls.on_query)
    _forbid_new_sockets(monkeypatch)
    packets = [query(name, qtype).pack()
               for name, qtype in [("api.example.com", "A"), ("evil.example.net", "A"),
                                   ("x.org", "MX")]]
    replies = [responder.answer(packet) for packet in [*packets, b"junk"]]
    # One reply per query, for the caller to send back to the sender: nothing went elsewhere.
    assert [reply is not None for reply in replies] == [True, True, True, False]
    assert calls.names == ["api.example.com", "evil.example.net", "x.org"]


def test_resolv_conf_has_no_search_list() -> None:
    text = resolv_conf()
    assert text == "nameserver 127.0.0.53\noptions ndots:0 attempts:1 timeout:2\n"
    assert "search" not in text and "domain" not in text
