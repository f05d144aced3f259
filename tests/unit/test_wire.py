"""Plain HTTP cut to one request: its head (ending the connection), its body, and what
followed it, which the proxy never forwards."""

from __future__ import annotations

import pytest

from agent_sandbox._net.wire import one_request, request_head


def test_one_request_is_cut_out_of_a_pipeline() -> None:
    data = (b"POST /a HTTP/1.1\r\nHost: ok.test\r\nContent-Length: 3\r\nConnection: keep-alive"
            b"\r\n\r\nabcGET / HTTP/1.1\r\nHost: other.test\r\n\r\n")
    head = request_head(data)
    assert head is not None
    one = one_request(head, data)
    assert one is not None
    assert one.first == (b"POST /a HTTP/1.1\r\nHost: ok.test\r\nContent-Length: 3\r\n"
                         b"Connection: close\r\n\r\nabc")
    assert one.body_left == 0 and one.extra.startswith(b"GET / HTTP/1.1\r\nHost: other.test")
    # A body still arriving: the rest is counted, nothing after it is taken.
    partial = one_request(head, data[:head.size + 1])
    assert partial is not None and partial.body_left == 2 and partial.extra == b""


@pytest.mark.parametrize("header", [b"Transfer-Encoding: chunked", b"Content-Length: 3x"])
def test_a_body_that_cannot_be_delimited_is_refused(header: bytes) -> None:
    data = b"POST / HTTP/1.1\r\nHost: ok.test\r\n" + header + b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    head = request_head(data)
    assert head is not None and one_request(head, data) is None
