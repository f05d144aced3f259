"""The sandbox's DNS: a stub responder that answers from the allow-list and forwards nothing.

The launcher serves it (``_proxy``), from outside the sandbox, on a UDP socket that lives in
the sandbox's network namespace. Every answer comes from a ``Lookup`` callback: an allowed
name gets one A record, anything else NXDOMAIN. Nothing is ever asked upstream, so a query
cannot carry data out of the sandbox (DNS tunnelling) and the answers cannot point anywhere
the filter forbids.

Malformed input: bytes that do not parse, and responses (QR=1), are dropped silently; there
is no trustworthy id to answer, and never answering a response rules out reply loops. A
parsed query with an opcode other than QUERY gets NOTIMP, one without exactly one question
FORMERR, a class other than IN NOTIMP: the client fails at once instead of timing out.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from dnslib import CLASS, OPCODE, QTYPE, RCODE, RR, A, DNSHeader, DNSRecord

# Normalised name (lower-case, no trailing dot) -> IPv4 address if allowed, None if not.
Lookup = Callable[[str], str | None]
# (name, qtype name, answer or None), once per question, for logging.
OnQuery = Callable[[str, str, str | None], None]

# The mapping is per sandbox and may change while it runs: keep client caches short-lived.
TTL = 5
# Hostname labels only (underscore for _service._proto names). dnslib renders a label
# holding a dot unescaped, so ``[b"api.example", b"com"]`` would otherwise pass for the
# allowed name "api.example.com"; such names, and any other odd bytes, are never looked up.
_LABEL = re.compile(rb"[A-Za-z0-9_-]{1,63}")


def _normalise(labels: tuple[bytes, ...]) -> str | None:
    if not labels or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    return b".".join(labels).decode("ascii").lower()


class DnsResponder:
    """Answers query datagrams; the caller owns the socket and sends each reply back to the
    query's sender only."""

    def __init__(self, lookup: Lookup, on_query: OnQuery | None = None) -> None:
        self._lookup = lookup
        self._on_query = on_query

    def answer(self, data: bytes) -> bytes | None:
        """The reply to a datagram, or None to drop it."""
        # A bug or a hostile packet must not take the responder (and the sandbox's DNS) down.
        try:
            return self._answer(data)
        except Exception:
            return None

    def _answer(self, data: bytes) -> bytes | None:
        try:
            query = DNSRecord.parse(data)
        except Exception:
            return None
        if query.header.qr:
            return None
        # RD is echoed as RFC 1035 asks; RA=0: this server recurses for nobody.
        header = DNSHeader(
            id=query.header.id, qr=1, opcode=query.header.opcode, aa=1, ra=0, rd=query.header.rd
        )
        # Echo the question only when there is exactly one: the reply then fits 512 bytes.
        single = len(query.questions) == 1
        reply = DNSRecord(header, questions=query.questions if single else [])
        if query.header.opcode != OPCODE.QUERY:
            header.rcode = RCODE.NOTIMP
        elif not single:
            header.rcode = RCODE.FORMERR
        elif query.q.qclass != CLASS.IN:
            header.rcode = RCODE.NOTIMP
        else:
            self._resolve(reply)
        return bytes(reply.pack())

    def _resolve(self, reply: DNSRecord) -> None:
        question = reply.q
        qtype = question.qtype
        name = _normalise(tuple(question.qname.label))
        address = None if name is None else self._lookup(name)
        if self._on_query is not None:
            shown = name if name is not None else str(question.qname).rstrip(".").lower()
            self._on_query(shown, QTYPE[qtype], address)
        if address is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif qtype in (QTYPE.A, QTYPE.ANY):
            reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(address), ttl=TTL))
        # Otherwise NOERROR with no answer (NODATA): no AAAA, so clients fall back to IPv4.
