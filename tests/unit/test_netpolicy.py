"""The filtered network's policy: flag parsing, name matching, decisions, address classes."""

from __future__ import annotations

import pytest

from agent_sandbox._errors import EXIT_USAGE, UsageError
from agent_sandbox._net.address import address_refusal
from agent_sandbox._net.allow import (
    DEFAULT_PORTS,
    AllowEntry,
    Forward,
    Verdict,
    allow_hint,
    decide,
    match,
    parse_allow,
    parse_forward,
    parse_publish,
    parse_resolve,
)
from agent_sandbox._net.names import is_ip_literal, normalise_name


def _usage_error(func: object, raw: str) -> str:
    assert callable(func)
    with pytest.raises(UsageError) as caught:
        func(raw)
    assert caught.value.exit_status == EXIT_USAGE
    return caught.value.message


def _entries(*raws: str) -> list[AllowEntry]:
    return [parse_allow(raw) for raw in raws]


# --- normalise_name -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("api.example.com", "api.example.com"),
        ("API.Example.COM", "api.example.com"),
        ("api.example.com.", "api.example.com"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a-b.c0.example", "a-b.c0.example"),
        ("123.example.com", "123.example.com"),
        ("intranet", "intranet"),  # single label: valid syntax, decide() still needs it allowed
        ("a" * 63 + ".com", "a" * 63 + ".com"),
        (".".join(["a" * 61] * 4) + ".", ".".join(["a" * 61] * 4)),  # 247 chars + root dot
    ],
)
def test_normalise_name_accepts_host_names(raw: str, expected: str) -> None:
    assert normalise_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        ".",
        "example.com..",
        ".example.com",
        "exa mple.com",
        "a..b.com",
        "-a.example.com",
        "a-.example.com",
        "under_score.example.com",
        "*.example.com",
        "bücher.example",
        "a" * 64 + ".com",
        ".".join(["a" * 63] * 4),  # 255 chars
        "example.com:443",
        "1.2.3.4",
        "127.1",
        "2130706433",
        "foo.123",
        "foo.0x1f",
        "::1",
        "[::1]",
        " example.com",
    ],
)
def test_normalise_name_refuses_everything_else(raw: str) -> None:
    assert normalise_name(raw) is None


# --- is_ip_literal --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "1.2.3.4",
        "127.0.0.1",
        "127.0.0.1.",
        "127.1",
        "127.0.1",
        "2130706433",
        "0x7f000001",
        "0X7F000001",
        "0x7f.1",
        "017700000001",
        "0177.0.0.1",
        "999.1.1.1",  # out of range: still address-shaped, never a name
        "::1",
        "[::1]",
        "::",
        "2606:4700::1111",
        "::ffff:127.0.0.1",
        "[::ffff:169.254.169.254]",
        "fe80::1%eth0",
        " 8.8.8.8 ",
    ],
)
def test_ip_literals_in_every_form_libc_reads(text: str) -> None:
    assert is_ip_literal(text)


@pytest.mark.parametrize(
    "text",
    [
        "example.com",
        "1.2.3.4.5",
        "1.2.3.example",
        "cafe",
        "0xcafe.example.com",
        "localhost",
        "",
        "1..2",
        ":::",
        "[example.com]",
        "١٢٧.0.0.1",  # non-ASCII digits: libc reads no number here
    ],
)
def test_names_and_garbage_are_not_ip_literals(text: str) -> None:
    assert not is_ip_literal(text)


def test_a_normalised_name_is_never_an_ip_literal() -> None:
    for raw in ("127.1", "2130706433", "0x7f000001", "017700000001", "1.2.3.4", "8.8.8.8."):
        assert is_ip_literal(raw)
        assert normalise_name(raw) is None


# --- parse_allow ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "pattern", "ports"),
    [
        ("api.example.com", "api.example.com", DEFAULT_PORTS),
        ("API.Example.com.", "api.example.com", DEFAULT_PORTS),
        ("api.example.com:8443", "api.example.com", (8443,)),
        ("api.example.com:1", "api.example.com", (1,)),
        ("api.example.com:65535", "api.example.com", (65535,)),
        ("*.example.com", "*.example.com", DEFAULT_PORTS),
        ("*.Example.COM.:8443", "*.example.com", (8443,)),
        ("*.co.uk", "*.co.uk", DEFAULT_PORTS),  # two labels: no public-suffix list here
        ("intranet", "intranet", DEFAULT_PORTS),
    ],
)
def test_parse_allow_accepts(raw: str, pattern: str, ports: tuple[int, ...]) -> None:
    assert parse_allow(raw) == AllowEntry(pattern, ports, False, f"--allow {raw}")


def test_parse_allow_private_and_origin() -> None:
    entry = parse_allow("db.lan:5432", private=True, origin="--allow-private")
    assert entry == AllowEntry("db.lan", (5432,), True, "--allow-private db.lan:5432")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "exa mple.com",
            "--allow 'exa mple.com': not a valid host name "
            "(expected HOST, HOST:PORT or *.DOMAIN[:PORT])",
        ),
        (
            "1.2.3.4",
            "--allow 1.2.3.4: IP addresses are not allowed; allow a host name, "
            "or use --resolve NAME=ADDR",
        ),
        ("1.2.3.4:443", "IP addresses are not allowed"),
        ("[::1]:443", "IP addresses are not allowed"),
        ("::1", "IP addresses are not allowed"),
        ("2130706433", "IP addresses are not allowed"),
        ("0x7f000001:80", "IP addresses are not allowed"),
        ("*", "too broad"),
        ("*.com", "too broad"),
        ("*.com:443", "too broad"),
        ("*.*", "too broad"),
        ("a.*.com", "a wildcard may only be a leading '*.'"),
        ("*example.com", "a wildcard may only be a leading '*.'"),
        ("*.*.example.com", "a wildcard may only be a leading '*.'"),
        ("api.example.com:0", "invalid port '0' (expected 1-65535)"),
        ("api.example.com:65536", "invalid port '65536'"),
        ("api.example.com:", "invalid port ''"),
        ("api.example.com:https", "invalid port 'https'"),
        ("api.example.com:+443", "invalid port '+443'"),
        ("localhost", "--allow localhost: loopback names are not allowed; use --forward-host"),
        ("LOCALHOST.:8080", "loopback names are not allowed"),
        ("foo.localhost", "loopback names are not allowed"),
        ("*.localhost", "loopback names are not allowed"),
        ("ip6-localhost", "loopback names are not allowed"),
        ("localhost.localdomain", "loopback names are not allowed"),
        ("bücher.example", "non-ASCII names must be given in punycode"),
        ("", "--allow '': not a valid host name"),
        ("[example.com]:443", "not a valid host name"),
        ("a:b:c", "not a valid host name"),
        ("foo.123", "not a valid host name"),
    ],
)
def test_parse_allow_refuses_with_the_flag_and_value(raw: str, expected: str) -> None:
    message = _usage_error(parse_allow, raw)
    assert expected in message
    assert message.startswith("--allow ")


def test_parse_allow_messages_name_the_flag_given() -> None:
    with pytest.raises(UsageError, match=r"^--allow-private 1\.2\.3\.4: IP addresses"):
        parse_allow("1.2.3.4", private=True, origin="--allow-private")


# --- parse_resolve --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("db.internal=10.0.0.5", ("db.internal", "10.0.0.5")),
        ("DB.Internal.=10.0.0.5", ("db.internal", "10.0.0.5")),
        ("v6.example=2001:DB8::0:1", ("v6.example", "2001:db8::1")),
        ("v6.example=[2001:db8::1]", ("v6.example", "2001:db8::1")),
        ("m.example=::ffff:1.2.3.4", ("m.example", "::ffff:1.2.3.4")),
        ("m.example=::ffff:102:304", ("m.example", "::ffff:1.2.3.4")),
    ],
)
def test_parse_resolve_accepts(raw: str, expected: tuple[str, str]) -> None:
    assert parse_resolve(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("db.internal", "expected NAME=ADDR"),
        ("=10.0.0.5", "not a valid host name"),
        ("db internal=10.0.0.5", "not a valid host name"),
        ("*.example.com=10.0.0.5", "not a valid host name"),
        ("1.2.3.4=10.0.0.5", "NAME must be a host name"),
        ("localhost=10.0.0.5", "loopback names cannot be resolved elsewhere"),
        ("db.internal=", "is not an IPv4 or IPv6 address"),
        ("db.internal=db.other", "is not an IPv4 or IPv6 address"),
        ("db.internal=127.1", "is not an IPv4 or IPv6 address"),
        ("db.internal=0x7f000001", "is not an IPv4 or IPv6 address"),
        ("db.internal=10.0.0.256", "is not an IPv4 or IPv6 address"),
    ],
)
def test_parse_resolve_refuses(raw: str, expected: str) -> None:
    message = _usage_error(parse_resolve, raw)
    assert message.startswith("--resolve ")
    assert expected in message


# --- parse_forward --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("5432", Forward(5432, "127.0.0.1", 5432, "", "--forward-host 5432")),
        ("db.lan:5432", Forward(5432, "db.lan", 5432, "", "--forward-host db.lan:5432")),
        ("LocalHost:8080", Forward(8080, "localhost", 8080, "", "--forward-host LocalHost:8080")),
        ("10.0.0.5:6379", Forward(6379, "10.0.0.5", 6379, "", "--forward-host 10.0.0.5:6379")),
        ("[::1]:5432", Forward(5432, "::1", 5432, "", "--forward-host [::1]:5432")),
        (
            "unix:/run/postgresql/.s.PGSQL.5432=5432",
            Forward(5432, "", 0, "/run/postgresql/.s.PGSQL.5432",
                    "--forward-host unix:/run/postgresql/.s.PGSQL.5432=5432"),
        ),
        (
            "unix:/tmp/a=b.sock=80",
            Forward(80, "", 0, "/tmp/a=b.sock", "--forward-host unix:/tmp/a=b.sock=80"),
        ),
    ],
)
def test_parse_forward_accepts(raw: str, expected: Forward) -> None:
    assert parse_forward(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("unix:/run/docker.sock", "a UNIX socket needs =PORT"),
        ("unix:/run/docker.sock=", "invalid port ''"),
        ("unix:/run/docker.sock=0", "invalid port '0'"),
        ("unix:run/docker.sock=2375", "the socket path must be absolute"),
        ("unix:=2375", "the socket path must be absolute"),
        ("0", "expected PORT, HOST:PORT"),
        ("65536", "expected PORT, HOST:PORT"),
        ("http", "expected PORT, HOST:PORT"),
        ("::1:5432", "expected PORT, HOST:PORT"),
        ("db.lan:", "invalid port ''"),
        ("db.lan:99999", "invalid port '99999'"),
        ("db lan:5432", "is not a valid host name"),
        ("127.1:5432", "write the address in standard form"),
        ("[db.lan]:5432", "expected PORT, HOST:PORT"),
        ("", "expected PORT, HOST:PORT"),
    ],
)
def test_parse_forward_refuses(raw: str, expected: str) -> None:
    message = _usage_error(parse_forward, raw)
    assert message.startswith("--forward-host ")
    assert expected in message


# --- parse_publish --------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "port"), [("1", 1), ("8000", 8000), ("65535", 65535)])
def test_parse_publish_accepts(raw: str, port: int) -> None:
    assert parse_publish(raw) == port


@pytest.mark.parametrize("raw", ["0", "65536", "", "-1", "80a", "+80", " 80", "٨٠", "1e3"])
def test_parse_publish_refuses(raw: str) -> None:
    message = _usage_error(parse_publish, raw)
    assert message.startswith("--publish ")
    assert "expected a port number 1-65535" in message


# --- match ----------------------------------------------------------------------------------


def test_wildcard_matches_deeper_names_never_the_apex() -> None:
    entries = _entries("*.example.com")
    assert match(entries, "a.example.com") == entries[0]
    assert match(entries, "a.b.example.com") == entries[0]
    assert match(entries, "example.com") is None
    assert match(entries, "badexample.com") is None
    assert match(entries, "example.com.evil.net") is None
    assert match(entries, "a.example.co") is None


def test_match_is_case_insensitive_and_ignores_a_trailing_dot() -> None:
    entries = _entries("api.example.com", "*.cdn.example.net")
    assert match(entries, "API.EXAMPLE.COM.") == entries[0]
    assert match(entries, "X.Cdn.Example.Net.") == entries[1]
    assert match(entries, "api.example.com..") is None


def test_exact_match_does_not_cover_subdomains() -> None:
    entries = _entries("example.com")
    assert match(entries, "example.com") == entries[0]
    assert match(entries, "a.example.com") is None


def test_exact_entry_beats_an_earlier_wildcard_then_first_wins() -> None:
    wild, exact = parse_allow("*.example.com"), parse_allow("api.example.com:8443")
    assert match([wild, exact], "api.example.com") == exact
    first, second = parse_allow("*.example.com"), parse_allow("*.b.example.com:8443")
    assert match([first, second], "a.b.example.com") == first
    assert match([second, first], "a.b.example.com") == second


def test_match_of_invalid_names_is_none() -> None:
    entries = _entries("*.example.com")
    assert match(entries, "a b.example.com") is None
    assert match(entries, "") is None
    assert match([], "a.example.com") is None


# --- decide ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "IP literals are refused"),
        ("[::1]", "IP literals are refused"),
        ("::1", "IP literals are refused"),
        ("0x7f000001", "IP literals are refused"),
        ("2130706433", "IP literals are refused"),
        ("127.1", "IP literals are refused"),
        ("169.254.169.254", "IP literals are refused"),
        ("93.184.216.34", "IP literals are refused"),
        ("localhost", "loopback names are refused"),
        ("LOCALHOST.", "loopback names are refused"),
        ("foo.localhost", "loopback names are refused"),
        ("a.b.localhost", "loopback names are refused"),
        ("localhost.localdomain", "loopback names are refused"),
        ("ip6-localhost", "loopback names are refused"),
        ("ip6-loopback", "loopback names are refused"),
        ("a b.example.com", "invalid host name"),
        ("x_y.example.com", "invalid host name"),
        ("", "invalid host name"),
        ("bücher.example.com", "invalid host name"),
    ],
)
def test_syntax_is_refused_before_the_allow_list(host: str, reason: str) -> None:
    # Even hand-built entries that parse_allow would refuse cannot let these through.
    entries = [
        *_entries("*.example.com"),
        AllowEntry("*.localhost", DEFAULT_PORTS),
        AllowEntry("localhost", DEFAULT_PORTS),
        AllowEntry("127.0.0.1", DEFAULT_PORTS),
        AllowEntry("2130706433", DEFAULT_PORTS),
    ]
    assert decide(entries, host, 443) == Verdict(False, reason)


def test_decide_allows_listed_names_on_their_ports() -> None:
    entries = _entries("api.example.com", "*.example.org:8443")
    verdict = decide(entries, "API.example.com.", 443)
    assert verdict.allowed and verdict.entry == entries[0]
    assert decide(entries, "api.example.com", 80).allowed
    verdict = decide(entries, "a.b.example.org", 8443)
    assert verdict.allowed and verdict.entry == entries[1]


def test_decide_refuses_unlisted_names() -> None:
    entries = _entries("api.example.com", "*.example.org")
    assert decide(entries, "example.org", 443) == Verdict(False, "not in the allow-list")
    assert decide(entries, "www.example.com", 443) == Verdict(False, "not in the allow-list")
    assert decide([], "api.example.com", 443) == Verdict(False, "not in the allow-list")


def test_decide_refuses_other_ports_and_says_which_are_allowed() -> None:
    entries = _entries("api.x.com")
    assert decide(entries, "api.x.com", 22) == Verdict(
        False, "port 22 not allowed for api.x.com (allowed: 443, 80)", entries[0]
    )
    entries = _entries("*.x.com:8443")
    assert decide(entries, "A.x.com", 443) == Verdict(
        False, "port 443 not allowed for a.x.com (allowed: 8443)", entries[0]
    )


def test_decide_treats_the_allow_list_as_a_union() -> None:
    # The same name twice, or an exact entry and a wildcard: every entry only adds.
    default, alt = parse_allow("api.x.com"), parse_allow("api.x.com:8443")
    assert decide([default, alt], "api.x.com", 8443) == Verdict(
        True, "allowed by --allow api.x.com:8443", alt
    )
    exact, wild = parse_allow("api.x.com"), parse_allow("*.x.com:8443")
    assert decide([exact, wild], "api.x.com", 8443).entry == wild
    assert decide([exact, wild], "api.x.com", 443).entry == exact
    verdict = decide([exact, wild], "api.x.com", 22)
    assert verdict.reason == "port 22 not allowed for api.x.com (allowed: 443, 80, 8443)"
    assert verdict.entry == exact


def test_decide_prefers_an_entry_that_accepts_private_answers() -> None:
    plain = parse_allow("db.x.com")
    private = parse_allow("db.x.com", private=True, origin="--allow-private")
    assert decide([plain, private], "db.x.com", 443).entry == private
    assert decide([private, plain], "db.x.com", 443).entry == private


# --- address_refusal ------------------------------------------------------------------------

_ALWAYS = [
    ("0.0.0.0", "unspecified address"),
    ("0.1.2.3", "unspecified address"),
    ("::", "unspecified address"),
    ("224.0.0.1", "multicast address"),
    ("239.255.255.250", "multicast address"),
    ("ff02::1", "multicast address"),
    ("255.255.255.255", "broadcast address"),
    ("169.254.169.254", "cloud metadata address"),
    ("169.254.170.2", "cloud metadata address"),
    ("100.100.100.200", "cloud metadata address"),
    ("fd00:ec2::254", "cloud metadata address"),
    ("[fd00:ec2::254]", "cloud metadata address"),
    ("168.63.129.16", "cloud metadata address"),
    ("::ffff:169.254.169.254", "cloud metadata address"),
    ("::ffff:0.0.0.0", "unspecified address"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata address"),  # NAT64 of 169.254.169.254
    ("2002:a9fe:a9fe::1", "cloud metadata address"),  # 6to4 of 169.254.169.254
    ("::169.254.169.254", "cloud metadata address"),  # IPv4-compatible
    ("not-an-address", "not an IP address"),
    ("127.1", "not an IP address"),
    ("", "not an IP address"),
]

_UNLESS_PRIVATE = [
    ("127.0.0.1", "loopback address"),
    ("127.53.0.1", "loopback address"),
    ("::1", "loopback address"),
    ("::ffff:127.0.0.1", "loopback address"),
    ("10.1.2.3", "private address"),
    ("172.16.0.1", "private address"),
    ("172.31.255.255", "private address"),
    ("192.168.1.1", "private address"),
    ("fd12:3456::1", "private address"),
    ("fc00::1", "private address"),
    ("::ffff:192.168.1.1", "private address"),
    ("64:ff9b::a00:1", "private address"),  # NAT64 of 10.0.0.1
    ("169.254.1.1", "link-local address"),
    ("fe80::1", "link-local address"),
    ("fe80::1%eth0", "link-local address"),
    ("100.64.0.1", "CGNAT address"),
    ("100.127.255.254", "CGNAT address"),
    ("192.0.2.1", "reserved address"),  # documentation
    ("198.18.0.1", "reserved address"),  # benchmarking
    ("240.0.0.1", "reserved address"),
    ("2001:db8::1", "reserved address"),
    ("fec0::1", "reserved address"),  # site-local (deprecated)
    ("100::1", "reserved address"),  # discard-only
    ("::7f00:1", "loopback address"),  # IPv4-compatible 127.0.0.1
]

_GLOBAL = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "172.32.0.1",
    "100.128.0.1",
    "2606:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8: how IPv6-only hosts reach IPv4
]


@pytest.mark.parametrize(("address", "reason"), _ALWAYS)
@pytest.mark.parametrize("allow_private", [False, True])
def test_addresses_refused_even_for_private_entries(
    address: str, reason: str, allow_private: bool
) -> None:
    assert address_refusal(address, allow_private) == reason


@pytest.mark.parametrize(("address", "reason"), _UNLESS_PRIVATE)
def test_non_global_addresses_need_allow_private(address: str, reason: str) -> None:
    assert address_refusal(address, False) == reason
    assert address_refusal(address, True) is None


@pytest.mark.parametrize("address", _GLOBAL)
@pytest.mark.parametrize("allow_private", [False, True])
def test_global_addresses_may_be_dialled(address: str, allow_private: bool) -> None:
    assert address_refusal(address, allow_private) is None


# --- allow_hint -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "hint"),
    [
        ("api.example.com", 443, "--allow api.example.com"),
        ("API.Example.com.", 80, "--allow api.example.com"),
        ("api.example.com", 8443, "--allow api.example.com:8443"),
        ("93.184.216.34", 443, "--resolve NAME=93.184.216.34 --allow NAME"),
        ("[2606:4700::1111]", 8443, "--resolve NAME=2606:4700::1111 --allow NAME:8443"),
        ("0x08080808", 443, "--resolve NAME=8.8.8.8 --allow NAME"),
        ("999.1.1.1", 443, "--resolve NAME=ADDR --allow NAME"),
        ("127.0.0.1", 5432, "--forward-host 5432"),
        ("0x7f000001", 8080, "--forward-host 8080"),
        ("2130706433", 80, "--forward-host 80"),
        ("[::1]", 3000, "--forward-host 3000"),
        ("::ffff:127.0.0.1", 3000, "--forward-host 3000"),
        ("localhost", 5432, "--forward-host 5432"),
        ("foo.localhost", 80, "--forward-host 80"),
    ],
)
def test_allow_hint_names_the_flag_that_would_allow_it(host: str, port: int, hint: str) -> None:
    assert allow_hint(host, port) == hint


def test_allow_hint_is_never_empty() -> None:
    assert allow_hint("A_B.example.com", 443) == "--allow a_b.example.com"


def test_a_hinted_allow_flag_parses_and_allows_the_request() -> None:
    for host, port in (("api.example.com", 443), ("api.example.com", 8443), ("x.io", 80)):
        flag, value = allow_hint(host, port).split(" ", 1)
        assert flag == "--allow"
        assert decide([parse_allow(value)], host, port).allowed
