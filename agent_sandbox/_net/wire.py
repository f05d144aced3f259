"""Reading just enough of a client's first bytes to know where it wants to go. Pure.

TLS: the server name (SNI) of a ClientHello. HTTP: the request line and the Host header of
a request head. Both are parsed from bytes already read, never by talking to anyone, and
refuse anything odd rather than guess.
"""

from __future__ import annotations

from typing import NamedTuple

TLS_HANDSHAKE = 0x16
MAX_HEAD = 64 * 1024  # request heads and ClientHellos larger than this are refused


class NeedMore(Exception):
    """More bytes are needed to decide."""


def tls_record_length(data: bytes) -> int:
    """Total length of the first TLS record in ``data`` (header included)."""
    if len(data) < 5:
        raise NeedMore
    return 5 + int.from_bytes(data[3:5], "big")


def sni(data: bytes) -> str | None:
    """The server name in a ClientHello, lower-cased; None if there is none or ``data`` is
    not a ClientHello in one record. Raises NeedMore until the whole record is there."""
    if not data:
        raise NeedMore
    if data[0] != TLS_HANDSHAKE:
        return None
    end = tls_record_length(data)
    if len(data) < end:
        raise NeedMore
    body = data[5:end]
    try:
        if body[0] != 1:  # ClientHello
            return None
        pos = 4 + 2 + 32  # handshake header, client_version, random
        pos += 1 + body[pos]  # session id
        pos += 2 + int.from_bytes(body[pos:pos + 2], "big")  # cipher suites
        pos += 1 + body[pos]  # compression methods
        ext_end = pos + 2 + int.from_bytes(body[pos:pos + 2], "big")
        pos += 2
        while pos + 4 <= ext_end:
            ext_type = int.from_bytes(body[pos:pos + 2], "big")
            ext_len = int.from_bytes(body[pos + 2:pos + 4], "big")
            pos += 4
            if ext_type == 0:  # server_name: list length, then (type, length, name) entries
                if body[pos + 2] != 0:
                    return None
                name_len = int.from_bytes(body[pos + 3:pos + 5], "big")
                name = body[pos + 5:pos + 5 + name_len]
                if len(name) != name_len:
                    return None
                return name.decode("ascii").lower()
            pos += ext_len
    except (IndexError, UnicodeDecodeError):
        return None
    return None


class RequestHead(NamedTuple):
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    size: int  # bytes of the head, up to and including the blank line

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


def request_head(data: bytes) -> RequestHead | None:
    """Parse an HTTP/1.x request head; None if it is not one. Raises NeedMore until the
    blank line has arrived (and refuses heads over MAX_HEAD bytes: None)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_HEAD:
            return None
        raise NeedMore
    if end > MAX_HEAD:
        return None
    try:
        lines = data[:end].decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        return None
    if not version.startswith("HTTP/1.") or not method.isalpha():
        return None
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return None
        headers.append((name, value.strip()))
    return RequestHead(method, target, version, tuple(headers), end + 4)


def split_host_port(authority: str, default_port: int) -> tuple[str, int] | None:
    """``host[:port]`` or ``[v6]:port`` -> (host, port); None if malformed."""
    host, port = authority, default_port
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            return None
        host, rest = authority[1:close], authority[close + 1:]
        if rest:
            if not rest.startswith(":") or not rest[1:].isdigit():
                return None
            port = int(rest[1:])
    elif authority.count(":") == 1:
        host, _, text = authority.partition(":")
        if not text.isdigit():
            return None
        port = int(text)
    if not host or not 0 < port < 65536:
        return None
    return host.lower().rstrip("."), port


class OneRequest(NamedTuple):
    """One plain-HTTP request as it goes upstream: its head (ending the connection after
    it), the body bytes already read, how many more the body has, and what followed it."""

    first: bytes
    body_left: int
    extra: bytes


def one_request(head: RequestHead, data: bytes, request_line: str | None = None,
                host: str | None = None) -> OneRequest | None:
    """``data`` (starting with ``head``) cut to exactly one request: the head rewritten with
    ``Connection: close`` (and ``request_line``/``Host`` when given: the proxy's absolute
    form turned into origin form), its Content-Length of body, nothing after. None for a
    body this cannot delimit (Transfer-Encoding, or a bad Content-Length): refused rather
    than guessed, so no second request can hide in it."""
    if head.header("transfer-encoding") is not None:
        return None
    length_text = head.header("content-length") or "0"
    if not length_text.isdigit():
        return None
    length = int(length_text)
    dropped = {"connection", "keep-alive", "proxy-connection"}
    if host is not None:
        dropped.add("host")
    lines = [request_line or f"{head.method} {head.target} {head.version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in head.headers
              if k.lower() not in dropped and not (host is not None
                                                   and k.lower().startswith("proxy-"))]
    lines.append("Connection: close")
    body = data[head.size:head.size + length]
    return OneRequest(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body,
                      length - len(body), data[head.size + length:])
