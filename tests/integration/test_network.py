"""The filtered network, for real: a local TLS upstream (trustme certificate) reached through
``--resolve``, both client paths, every refusal, forwards, published ports, floods.
Loopback only: nothing here sends a packet off this machine."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import socketserver
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import trustme

from tests.conftest import CLI, Env, launched, loopback_server, run_cli

pytestmark = pytest.mark.integration

NAME = "api.example.test"


class Upstream(NamedTuple):
    port: int
    ca: Path
    hits: list[str]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.hits.append(self.headers["Host"])  # type: ignore[attr-defined]
        body = f"hello from {self.headers['Host']} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def upstream(project: Path) -> Iterator[Upstream]:
    """An HTTPS server on the host's 127.0.0.1 with a certificate for NAME."""
    with _https_server(project, NAME, "other.example.test") as up:
        yield up


@pytest.fixture
def pypi_upstream(project: Path) -> Iterator[Upstream]:
    """An HTTPS server on the host's 127.0.0.1 with a certificate for the @pypi group's hosts
    and a host of another group."""
    with _https_server(project, "pypi.org", "files.pythonhosted.org",
                       "registry.npmjs.org") as up:
        yield up


@contextlib.contextmanager
def _https_server(project: Path, *names: str) -> Iterator[Upstream]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(context)
    ca_path = project / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.hits = []  # type: ignore[attr-defined]
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Upstream(server.server_address[1], ca_path, server.hits)  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def _filtered(up: Upstream, *extra: str) -> list[str]:
    return ["--allow", f"{NAME}:{up.port}", "--resolve", f"{NAME}=127.0.0.1", *extra]


def _log(env: Env) -> list[dict[str, Any]]:
    """The connection decisions in the log (not the launches' starts and exits)."""
    path = Path(env.vars["HOME"]) / ".local/state/agent-sandbox/decisions.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()] \
        if path.exists() else []
    return [r for r in records if r["decision"] not in ("start", "exit")]


def test_allowed_name_through_both_client_paths(project: Path, env: Env,
                                                upstream: Upstream) -> None:
    url = f"https://{NAME}:{upstream.port}"
    script = (
        f"curl -sS --noproxy '*' --cacert ca.pem {url}/transparent && "
        "python3 -c 'import ssl, urllib.request; "
        "ctx = ssl.create_default_context(cafile=\"ca.pem\"); "
        f"print(urllib.request.urlopen(\"{url}/proxy\", context=ctx).read().decode(), end=\"\")'"
    )
    done = run_cli([*_filtered(upstream), "--", "sh", "-c", script], cwd=project, env=env.vars)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f"hello from {NAME}:{upstream.port} /transparent",
                                        f"hello from {NAME}:{upstream.port} /proxy"]
    paths = {(d["path"], d["decision"]) for d in _log(env)}
    assert {("transparent", "allow"), ("proxy", "allow")} <= paths


def test_wildcard_names_resolve_through_the_sandboxs_dns(project: Path, env: Env,
                                                         upstream: Upstream) -> None:
    # other.example.test is only in a wildcard entry: no /etc/hosts line, so the DNS
    # responder inside answers it with a fresh 127.2.x.y served transparently.
    done = run_cli(["--allow", f"*.example.test:{upstream.port}", "--resolve",
                    "other.example.test=127.0.0.1", "--", "sh", "-c",
                    "getent hosts other.example.test; grep -c example /etc/hosts; "
                    f"curl -sS --noproxy '*' --cacert ca.pem "
                    f"https://other.example.test:{upstream.port}/wild"],
                   cwd=project, env=env.vars)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["127.2.0.1", "other.example.test"]
    assert lines[1] == "0"
    assert lines[2] == f"hello from other.example.test:{upstream.port} /wild"


def test_denied_names_get_403_naming_the_flag_and_are_never_looked_up(
    project: Path, env: Env, upstream: Upstream
) -> None:
    script = "curl -sS -i http://evil.example.net/ ; curl -sS https://evil.example.net/ ; true"
    done = run_cli([*_filtered(upstream), "--", "sh", "-c", script], cwd=project, env=env.vars)
    assert "HTTP/1.1 403 Forbidden" in done.stdout
    assert "evil.example.net:80: not in the allow-list" in done.stdout
    assert "--allow evil.example.net" in done.stdout
    assert "CONNECT tunnel failed, response 403" in done.stderr
    # The exit summary says what was blocked and how to allow it.
    assert "network: blocked" in done.stderr and "(--allow evil.example.net)" in done.stderr
    # Inside, the name does not resolve either (the DNS responder answers only allowed names).
    done = run_cli([*_filtered(upstream), "--", "getent", "hosts", "evil.example.net"],
                   cwd=project, env=env.vars)
    assert done.returncode == 2 and done.stdout == ""


@pytest.mark.parametrize("target", ["127.0.0.1", "localhost", "[::1]", "169.254.169.254",
                                    "0x7f000001"])
def test_literals_and_loopback_names_are_refused(project: Path, env: Env, upstream: Upstream,
                                                 target: str) -> None:
    done = run_cli([*_filtered(upstream), "--", "curl", "-sS", "--proxy", "http://127.0.0.1:3128",
                    "--noproxy", "", f"http://{target}/"], cwd=project, env=env.vars)
    assert "blocked this connection" in done.stdout, done.stdout + done.stderr
    assert upstream.hits == []


def test_sni_mismatch_and_wrong_port_are_refused(project: Path, env: Env,
                                                 upstream: Upstream) -> None:
    script = (
        # Transparent: other.example.test's SNI sent to NAME's address.
        f"curl -sS --noproxy '*' --cacert ca.pem --resolve other.example.test:{upstream.port}:"
        f"127.1.0.1 https://other.example.test:{upstream.port}/ ; echo rc=$?; "
        # Through the proxy: CONNECT to NAME, then a TLS hello for another name.
        f"python3 -c 'import socket; s = socket.create_connection((\"127.0.0.1\", 3128)); "
        f"s.sendall(b\"CONNECT {NAME}:{upstream.port} HTTP/1.1\\r\\n\\r\\n\"); print(s.recv(99)); "
        "import ssl; ctx = ssl.create_default_context(cafile=\"ca.pem\"); "
        "ctx.check_hostname = False\n"
        "try: ctx.wrap_socket(s, server_hostname=\"other.example.test\")\n"
        "except OSError as e: print(\"tls failed\")'; "
        # Wrong port.
        f"curl -sS --cacert ca.pem https://{NAME}:443/ ; echo rc=$?"
    )
    done = run_cli([*_filtered(upstream), "--", "sh", "-c", script], cwd=project, env=env.vars)
    assert "rc=35" in done.stdout  # the transparent connection was closed at once
    assert "tls failed" in done.stdout
    assert "CONNECT tunnel failed, response 403" in done.stderr
    reasons = [d["reason"] for d in _log(env) if d["decision"] == "deny"]
    assert any("TLS server name 'other.example.test'" in r for r in reasons)
    assert any(f"port 443 not allowed for {NAME}" in r for r in reasons)
    assert upstream.hits == []


def test_raw_sockets_have_no_route_and_host_loopback_is_unreached(
    project: Path, env: Env, upstream: Upstream
) -> None:
    with socket.socket() as host_listener:
        host_listener.bind(("127.0.0.1", 0))
        host_listener.listen()
        host_listener.settimeout(0)
        port = host_listener.getsockname()[1]
        script = (
            "import socket, time\n"
            "t = time.monotonic()\n"
            "for target in [('1.1.1.1', 443), ('127.0.0.1', %d)]:\n"
            "    try: socket.create_connection(target, timeout=5); print('connected')\n"
            "    except OSError as e: print(e.errno)\n"
            "u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "try: u.sendto(b'x', ('1.1.1.1', 53)); print('sent')\n"
            "except OSError as e: print(e.errno)\n"
            "print(time.monotonic() - t < 2)\n" % port
        )
        done = run_cli([*_filtered(upstream), "--", "python3", "-c", script], cwd=project,
                       env=env.vars)
        assert done.stdout.split() == ["101", "111", "101", "True"], done.stderr
        with pytest.raises(BlockingIOError):
            host_listener.accept()


def test_forward_host_reaches_a_host_tcp_service_and_unix_socket(project: Path, env: Env,
                                                                 tmp_path: Path) -> None:
    def serve(listener: socket.socket, reply: bytes) -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(reply + conn.recv(100))

    tcp = socket.create_server(("127.0.0.1", 0))
    unix_path = tmp_path / "mirror.sock"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(unix_path))
    unix.listen()
    with tcp, unix:
        threads = [threading.Thread(target=serve, args=(tcp, b"tcp:"), daemon=True),
                   threading.Thread(target=serve, args=(unix, b"unix:"), daemon=True)]
        for t in threads:
            t.start()
        tcp_port = tcp.getsockname()[1]
        script = (
            "import socket\n"
            "for port in (%d, 7000):\n"
            "    s = socket.create_connection(('127.0.0.1', port)); s.sendall(b'hi')\n"
            "    print(s.recv(100).decode())\n" % tcp_port
        )
        done = run_cli(["--forward-host", str(tcp_port), "--forward-host",
                        f"unix:{unix_path}=7000", "--", "python3", "-c", script],
                       cwd=project, env=env.vars)
    assert done.stdout.split() == ["tcp:hi", "unix:hi"], done.stderr
    assert {d["path"] for d in _log(env)} == {"forward"}
    # The start line says what is reachable, not only "network none".
    assert (f"; network none + forwarded localhost:{tcp_port}, forwarded localhost:7000 "
            f"(host unix:{unix_path}); ") in done.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("inside", ["127.0.0.1", "::1"])
def test_publish_makes_a_server_inside_reachable_from_the_host(project: Path, env: Env,
                                                               inside: str) -> None:
    """A server inside on either loopback address alone (many bind ``localhost``, which is
    ::1 first) answers on the host's 127.0.0.1:PORT."""
    port = _free_port()
    family = "socket.AF_INET6" if ":" in inside else "socket.AF_INET"
    server = ("import socket; s = socket.create_server((%r, %d), family=%s); print('up', "
              "flush=True); c, _ = s.accept(); c.sendall(b'from inside:' + c.recv(10))"
              % (inside, port, family))
    with launched(["-q", "--publish", str(port), "--", "python3", "-c", server], cwd=project,
                  env=env.vars) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"ping")
            assert client.recv(100) == b"from inside:ping"
        assert proc.wait(timeout=30) == 0


def test_flood_slowloris_and_garbage_leave_the_proxy_responsive(
    project: Path, env: Env, upstream: Upstream
) -> None:
    script = (
        "import socket, ssl, time, urllib.request\n"
        "idle = [socket.create_connection(('127.0.0.1', 3128)) for _ in range(1000)]\n"
        "g = socket.create_connection(('127.0.0.1', 3128))\n"
        "g.sendall(b'GET http://x/ HTTP/1.1\\r\\n' + b'X' * 70000)\n"
        "print('garbage answered', g.recv(100)[:12])\n"
        "t = time.monotonic()\n"
        "ctx = ssl.create_default_context(cafile='ca.pem')\n"
        f"body = urllib.request.urlopen('https://{NAME}:{upstream.port}/', context=ctx).read()\n"
        "print('legit', body.startswith(b'hello'), time.monotonic() - t < 5)\n"
        "print('open', sum(1 for s in idle if s.fileno() >= 0))\n"
    )
    started = time.monotonic()
    done = run_cli([*_filtered(upstream), "--", "sh", "-c",
                    "ulimit -n 4096 2>/dev/null; python3 -c \"$0\"", script], cwd=project,
                   env=env.vars, timeout=120)
    assert "legit True True" in done.stdout, done.stdout + done.stderr
    assert "garbage answered b'HTTP/1.1 400'" in done.stdout
    assert time.monotonic() - started < 60


def test_allowed_name_with_an_unreachable_upstream_is_logged_as_allowed(
    project: Path, env: Env
) -> None:
    # Nothing listens on this pinned port: the policy allowed the connection, the dial failed.
    port = _free_port()
    done = run_cli(["--allow", f"{NAME}:{port}", "--resolve", f"{NAME}=127.0.0.1", "--",
                    "curl", "-fsS", f"http://{NAME}:{port}/"], cwd=project, env=env.vars)
    assert done.returncode != 0
    [decision] = [d for d in _log(env) if d["host"] == NAME]
    assert decision["decision"] == "allow" and decision["upstream"].startswith("failed:")


def test_bad_network_flags(project: Path, env: Env) -> None:
    for args, needle in [
        (["--net", "filtered"], "needs at least one --allow"),
        (["--net", "none", "--allow", "x.com"], "--allow needs --net filtered"),
        (["--allow", "1.2.3.4"], "--allow"),
        (["--allow", "*"], "--allow"),
        (["--resolve", "x.com=1.2.3.4"], "--resolve goes with --net filtered"),
        (["--net", "host", "--publish", "8000"], "--forward-host and --publish"),
        (["--publish", "0"], "--publish"),
        (["--forward-host", "unix:/x"], "--forward-host"),
        (["--allow", "x.com", "--env", "HTTPS_PROXY=http://evil"], "HTTPS_PROXY"),
    ]:
        done = run_cli([*args, "--", "true"], cwd=project, env=env.vars)
        assert done.returncode == 2, (args, done.stderr)
        assert needle in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)


def test_host_mode_says_what_it_exposes(project: Path, env: Env) -> None:
    done = run_cli(["--net", "host", "--", "true"], cwd=project, env=env.vars)
    assert done.returncode == 0
    assert "abstract UNIX socket" in done.stderr and "host loopback" in done.stderr


def test_real_claude_code_reaches_its_api_through_the_allow_list(
    project: Path, env: Env, npm_home: Path
) -> None:
    # Offline, the upstream lookup fails after the policy allowed the connection: the log
    # shows an allowed decision for the API, which is what this checks; then the launcher
    # is stopped with SIGTERM (Claude Code keeps retrying).
    args = ["-q", "--agent", "none", "--allow", "api.anthropic.com",
            "--env", "ANTHROPIC_API_KEY=sk-ant-offline-test", "claude", "-p", "hi"]
    with launched(args, cwd=project, env=env.vars, stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL) as proc:
        deadline = time.monotonic() + 90
        seen: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not seen:
            seen = [d for d in _log(env) if d["host"] == "api.anthropic.com"]
            time.sleep(0.2)
        proc.terminate()
        proc.wait(timeout=30)
    assert seen, "Claude Code never tried to reach its API"
    assert seen[0]["decision"] == "allow" and seen[0]["port"] == 443


def test_the_proxy_is_not_on_the_hosts_loopback(project: Path, env: Env,
                                                upstream: Upstream) -> None:
    script = "echo up; sleep 2"
    with launched(["-q", *_filtered(upstream), "--", "sh", "-c", script], cwd=project,
                  env=env.vars) as proc:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        # It lives in the sandbox's network namespace: nobody on the host, this user or
        # another, can connect to it (nothing else here listens on 3128).
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", 3128), timeout=5)
        proc.wait(timeout=30)


@pytest.fixture
def plain_upstream() -> Iterator[tuple[int, list[bytes]]]:
    """A plain-HTTP server on the host's 127.0.0.1 that answers the first request of each
    connection and records every byte each connection brought."""
    got: list[bytes] = []

    def handle(conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                data += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            while chunk := conn.recv(65536):
                data += chunk
        got.append(data)

    with loopback_server(handle) as port:
        yield port, got


PIPELINE = """
import socket, sys
host, port, direct = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "direct"
target = "/" if direct else f"http://{host}:{port}/"
first = f"GET {target} HTTP/1.1\\r\\nHost: {host}:{port}\\r\\n\\r\\n"
second = "GET http://internal.other.test/ HTTP/1.1\\r\\nHost: internal.other.test\\r\\n\\r\\n"
s = socket.create_connection((host, port) if direct else ("127.0.0.1", 3128), timeout=10)
s.sendall((first + second).encode())
reply = b""
while chunk := s.recv(65536):
    reply += chunk
print(reply.count(b"HTTP/1.1 200"), "response(s)")
"""


@pytest.mark.parametrize("path", ["proxy", "direct"])
def test_a_pipelined_second_request_is_never_forwarded(
        project: Path, env: Env, plain_upstream: tuple[int, list[bytes]], path: str) -> None:
    """Two requests back to back on one plain-HTTP connection, the second for a host the
    policy never saw: the upstream receives the first one only (each connection carries
    one checked request), and the log says what was dropped."""
    port, got = plain_upstream
    name = "plain.example.test"
    done = run_cli(["-q", "--allow", f"{name}:{port}", "--resolve", f"{name}=127.0.0.1",
                    "--", "python3", "-c", PIPELINE, name, str(port), path],
                   cwd=project, env=env.vars, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1 response(s)", done.stdout
    received = b"".join(got)
    assert received.count(b"GET ") == 1 and b"internal.other.test" not in received, received
    assert b"Connection: close" in received
    assert any(d["path"] == "pipelined" and d["decision"] == "deny" for d in _log(env))


ESCAPES = "\x1b]52;c;ZWNobyBwd25lZA==\x07\x1b[21t\x1bP$qm\x1b\\"
CONNECT_ESCAPES = f"""
import socket
s = socket.create_connection(("127.0.0.1", 3128), timeout=10)
s.sendall("CONNECT evil{ESCAPES}.example.test:443 HTTP/1.1\\r\\n\\r\\n".encode())
print(s.recv(4096).decode(errors="replace").splitlines()[0])
"""


def test_escape_sequences_from_inside_never_reach_the_terminal_raw(
        tmp_path: Path, env: Env) -> None:
    """A denied host name and the project's own path holding OSC 52, CSI and DCS
    sequences: the start line, the exit summary, the 403 and `agent-sandbox log` print no
    raw ESC or BEL."""
    project = tmp_path / f"proj{ESCAPES.replace('/', '')}"
    project.mkdir()
    done = run_cli(["--allow", "api.example.test", "--", "python3", "-c", CONNECT_ESCAPES],
                   cwd=project, env=env.vars, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "403" in done.stdout
    logged = run_cli(["log"], cwd=project, env=env.vars)
    for out in (done.stderr, logged.stdout):
        assert "\x1b" not in out and "\x07" not in out, out
    assert "\\x1b]52" in done.stderr  # shown, made harmless



def test_escape_sequences_in_a_command_and_a_path_never_reach_ps_or_explain_raw(
        tmp_path: Path, env: Env) -> None:
    """A running session whose command line holds OSC 52, CSI and DCS (`ps` lists it), and
    a path holding them (`explain` names it): shown as visible text, never raw."""
    project = tmp_path / f"proj{ESCAPES.replace('/', '')}"
    project.mkdir()
    (project / f"f{ESCAPES.replace('/', '')}").touch()
    with launched(["--name", "esc", "--", "sh", "-c", "echo up; sleep 30", f"x{ESCAPES}"],
                  cwd=project, env=env.vars) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == "up\n"
        listed = run_cli(["ps"], cwd=project, env=env.vars)
        explained = run_cli(["explain", str(project / f"f{ESCAPES.replace('/', '')}"), "--",
                             "true"],
                            cwd=project, env=env.vars)
    assert listed.returncode == 0 and "esc" in listed.stdout, listed.stderr
    assert explained.returncode == 0, explained.stderr
    for out in (listed.stdout, listed.stderr, explained.stdout, explained.stderr):
        assert "\x1b" not in out and "\x07" not in out, out
    assert "\\x1b]52" in listed.stdout and "\\x1b]52" in explained.stdout

# The launcher with the host's resolver counted: every name it asks getaddrinfo for under
# example.test is written down (and answered 127.0.0.1, which the proxy never dials for a
# name without --allow-private: nothing leaves the machine).
COUNTED_RESOLVER = r"""
import socket, sys
from agent_sandbox._cli import main as _cli

log = open(sys.argv[1], "a", buffering=1)
real = socket.getaddrinfo

def counted(host, *args, **kwargs):
    if str(host).endswith(".example.test"):
        log.write(f"{host}\n")
        return real("127.0.0.1", *args, **kwargs)
    return real(host, *args, **kwargs)

socket.getaddrinfo = counted
sys.exit(_cli.main(sys.argv[2:]))
"""


def test_a_lookup_alone_never_reaches_the_hosts_resolver(project: Path, env: Env,
                                                         tmp_path: Path) -> None:
    """With a wildcard allowed, names the command makes up (data in the labels) are
    answered by the sandbox's own DNS: the host's resolver sees none of them. A connection
    to one makes the launcher look it up, once."""
    import sys

    log = tmp_path / "resolver.log"
    log.touch()
    script = ("getent hosts c2VjcmV0.example.test; "
              "python3 -c 'import socket; print(socket.gethostbyname(\"bG9va3Vw.example.test\"))'; "
              "getent ahosts dGhpcmQ.example.test >/dev/null; echo looked-up; "
              "curl -s -o /dev/null --noproxy '*' --max-time 10 http://conn.example.test/ || true")
    done = subprocess.run([sys.executable, "-c", COUNTED_RESOLVER, str(log), "-q",
                           "--allow", "*.example.test", "--", "sh", "-c", script],
                          cwd=project, env=env.vars, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[1] == "c2VjcmV0.example.test" and lines[1].startswith("127.2.")
    assert "looked-up" in lines
    assert log.read_text().splitlines() == ["conn.example.test"]


FLOOD = """
import socket, sys, concurrent.futures
def one(i):
    # Long, distinct names on both paths (a proxy CONNECT, a plain-HTTP proxy request).
    host = f"{i}-" + ".".join(["x" * 60] * 3) + ".flood.example.net"
    line = (f"CONNECT {host}:443 HTTP/1.1\\r\\n\\r\\n" if i % 2 else
            f"GET http://{host}/ HTTP/1.1\\r\\nHost: {host}\\r\\nX-Pad: {'y' * 2000}\\r\\n\\r\\n")
    with socket.create_connection(("127.0.0.1", 3128), timeout=30) as s:
        s.sendall(line.encode())
        return s.recv(64).startswith(b"HTTP/1.1 403")
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    print(sum(pool.map(one, range(int(sys.argv[1])))))
"""


def test_a_flood_of_denials_costs_the_log_and_the_terminal_a_bounded_few_bytes(
        project: Path, env: Env) -> None:
    """10,000 denied requests with long distinct names through the real launcher: the log
    grows by at most 150 KB (docs/network.md: about 120 KB), the launcher's stderr stays a
    few lines, and `agent-sandbox log` shows the aggregate."""
    log = Path(env.vars["HOME"]) / ".local/state/agent-sandbox/decisions.jsonl"
    done = run_cli(["--name", "flood", "--allow", "api.example.test", "--", "python3", "-c",
                    FLOOD, "10000"], cwd=project, env=env.vars, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "10000"  # every one was refused
    assert log.stat().st_size < 150_000, log.stat().st_size
    assert len(done.stderr) < 2000 and len(done.stderr.splitlines()) <= 3, done.stderr
    records = [json.loads(line) for line in log.read_text().splitlines()]
    many = [r for r in records if r.get("path") == "many"]
    assert len(many) == 1 and many[0]["count"] == 10000 - 200, many
    assert max(len(line) for line in log.read_text().splitlines()) < 2000
    shown = run_cli(["log"], cwd=project, env=env.vars)
    assert shown.returncode == 0 and "count=9800" in shown.stdout, shown.stdout[-2000:]
    assert "not in the allow-list" in shown.stdout


_NODE_GET = (
    "require('https').get(process.argv[1], r => { let b = ''; r.on('data', d => b += d); "
    "r.on('end', () => console.log(b.trim())); }).on('error', e => { console.log(e.code); "
    "process.exit(1); })")


def test_ca_variables_reach_a_node_client_with_their_file_read_only(
        project: Path, env: Env, upstream: Upstream) -> None:
    """Corporate TLS inspection: the CA variables and the file they name (in the hidden
    home here) reach the command, read-only; Node, Python and curl trust the private CA."""
    ca = env.home / "corp" / "inspection-ca.pem"
    ca.parent.mkdir()
    pem = upstream.ca.read_bytes()
    ca.write_bytes(pem)
    upstream.ca.unlink()  # the project's copy: only the variable's file is inside
    url = f"https://{NAME}:{upstream.port}"
    script = (f"node -e \"{_NODE_GET}\" {url}/node && "
              f"curl -sS --noproxy '*' {url}/curl && "
              "python3 -c 'import urllib.request; "
              f"print(urllib.request.urlopen(\"{url}/python\").read().decode(), end=\"\")' && "
              'if echo x >> "$NODE_EXTRA_CA_CERTS"; then echo WRITABLE; fi')
    variables = {name: str(ca) for name in ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE",
                                            "CURL_CA_BUNDLE")}
    done = run_cli(["-q", *_filtered(upstream), "--", "sh", "-c", script], cwd=project,
                   env=env.with_(**variables))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines() == [f"hello from {NAME}:{upstream.port} /{path}"
                                        for path in ("node", "curl", "python")]
    assert "WRITABLE" not in done.stdout
    assert ca.read_bytes() == pem
    # Control: without the variable Node does not trust the private CA.
    done = run_cli(["-q", *_filtered(upstream), "--", "node", "-e", _NODE_GET, f"{url}/node"],
                   cwd=project, env=env.vars)
    assert done.returncode == 1
    assert done.stdout.strip() in ("UNABLE_TO_VERIFY_LEAF_SIGNATURE",
                                   "SELF_SIGNED_CERT_IN_CHAIN", "UNABLE_TO_GET_ISSUER_CERT")


def _printed_fix(stderr: str, host: str) -> list[str]:
    """The flags the exit summary suggests for ``host``: ``host[ xN] ([why: ]FLAGS)``."""
    import re
    import shlex

    summary = next(line for line in stderr.splitlines() if "network: blocked" in line)
    found = re.search(rf"{re.escape(host)}(?: x\d+)? \((?:[^():]*: )?(--[^()]*)\)", summary)
    assert found is not None, summary
    return shlex.split(found.group(1))


@pytest.mark.parametrize("case", ["unlisted-443", "unlisted-8443", "lookup-only", "private",
                                  "group"])
def test_every_printed_fix_allows_the_connection_when_pasted(
        project: Path, env: Env, tmp_path: Path, case: str) -> None:
    """Each kind of refusal, by a real client against a local upstream in a network
    namespace of the test's own (443 needs one): the exit summary's fix for the host,
    pasted into the same launch, lets the same connection through."""
    from tests.integration.isolated_net import isolated_network

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(project / "ca.pem"))
    issued = ca.issue_cert(NAME, "pypi.org")
    issued.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    hosts = tmp_path / "hosts"
    # The host's resolver's answers.
    hosts.write_text(f"127.0.0.1 localhost\n127.0.0.1 {NAME}\n127.0.0.1 pypi.org\n")
    curl = ["curl", "-sS", "--max-time", "20", "--cacert", "ca.pem"]
    base, client = {
        "unlisted-443": (["--allow", "other.example.test", "--resolve", f"{NAME}=127.0.0.1"],
                         [*curl, f"https://{NAME}/"]),
        "unlisted-8443": (["--allow", "other.example.test", "--resolve", f"{NAME}=127.0.0.1"],
                          [*curl, f"https://{NAME}:8443/"]),
        # Ignores the proxy variables: the sandbox's DNS refuses the name, nothing connects.
        "lookup-only": (["--allow", "other.example.test", "--resolve", f"{NAME}=127.0.0.1"],
                        [*curl, "--noproxy", "*", f"https://{NAME}/"]),
        # Allowed, and the host's resolver answers a loopback address: refused as private
        # (the client sees only a closed tunnel).
        "private": (["--allow", NAME], [*curl, f"https://{NAME}/"]),
        # A host of a group (pypi.org, of @pypi): the fix names the group.
        "group": (["--allow", "other.example.test", "--resolve", "pypi.org=127.0.0.1"],
                  [*curl, "https://pypi.org/"]),
    }[case]
    host = "pypi.org" if case == "group" else NAME
    with isolated_network(cert=tmp_path / "cert.pem", key=tmp_path / "key.pem",
                          tls_ports=(443, 8443), hosts=hosts) as net:
        first = net.run([*CLI, *base, "--", *client], cwd=project, env=env.vars)
        assert first.returncode != 0 and "hello" not in first.stdout, first.stderr
        fix = _printed_fix(first.stderr, host)
        again = net.run([*CLI, *base, *fix, "--", *client], cwd=project, env=env.vars)
    assert again.returncode == 0, (fix, again.stderr)
    assert again.stdout.startswith(f"hello from {host}"), again.stdout
    assert "network: blocked" not in again.stderr
    expected = {"unlisted-443": ["--allow", NAME], "unlisted-8443": ["--allow", f"{NAME}:8443"],
                "lookup-only": ["--allow", NAME], "private": ["--allow-private", NAME],
                "group": ["--allow", "@pypi"]}[case]
    assert fix == expected


OFFLINE = "network: none (loopback only): the command tried to reach the network"


def test_under_net_none_a_failed_lookup_says_the_sandbox_is_offline(project: Path,
                                                                    env: Env) -> None:
    """Tools say only "Could not resolve host"; the exit says the network was off when the
    command failed after trying it (a lookup to any server has no route; one to a DNS stub
    on loopback, such as 127.0.0.53, finds nobody), and stays quiet otherwise."""
    failed = run_cli(["--", "curl", "-sS", "https://example.com/"], cwd=project, env=env.vars)
    assert failed.returncode == 6 and "Could not resolve host" in failed.stderr
    assert OFFLINE in failed.stderr and "--allow HOST" in failed.stderr
    stub = ("import socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
            "s.sendto(b'query', ('127.0.0.53', 53)); sys.exit(1)")
    assert OFFLINE in run_cli(["--", "python3", "-c", stub], cwd=project, env=env.vars).stderr
    for script in ("exit 3", "getent hosts example.com; true"):  # not tried / not failed
        done = run_cli(["--", "sh", "-c", script], cwd=project, env=env.vars)
        assert "network: none" not in done.stderr, (script, done.stderr)
    assert OFFLINE not in run_cli(["-q", "--", "curl", "-sS", "https://example.com/"],
                                  cwd=project, env=env.vars).stderr


@pytest.mark.parametrize("way", ["flag", "config"])
def test_a_host_group_allows_its_hosts_through_the_real_proxy(
        project: Path, env: Env, pypi_upstream: Upstream, way: str) -> None:
    """@pypi (here on the upstream's port, @pypi:PORT) lets both of PyPI's hosts through,
    by either client path, and nothing else: npm's registry gets the proxy's 403."""
    port = pypi_upstream.port
    group = [] if way == "config" else ["--allow", f"@pypi:{port}"]
    if way == "config":
        user = env.home / ".config" / "agent-sandbox"
        user.mkdir(parents=True)
        (user / "config.toml").write_text(f'allow = ["@pypi:{port}"]\n')
    pins = [f"--resolve={n}=127.0.0.1" for n in ("pypi.org", "files.pythonhosted.org",
                                                   "registry.npmjs.org")]
    script = (f"curl -sS --cacert ca.pem https://pypi.org:{port}/simple/ && "
              f"curl -sS --noproxy '*' --cacert ca.pem https://files.pythonhosted.org:{port}/f && "
              f"curl -sS --cacert ca.pem https://registry.npmjs.org:{port}/x; echo rc=$?")
    done = run_cli([*group, *pins, "--", "sh", "-c", script], cwd=project, env=env.vars)
    assert done.stdout.splitlines()[:2] == [f"hello from pypi.org:{port} /simple/",
                                            f"hello from files.pythonhosted.org:{port} /f"], \
        done.stdout + done.stderr
    assert "rc=56" in done.stdout and "CONNECT tunnel failed, response 403" in done.stderr
    assert pypi_upstream.hits == [f"pypi.org:{port}", f"files.pythonhosted.org:{port}"]
    decisions = {d["host"]: (d["decision"], d.get("reason", "")) for d in _log(env)}
    assert decisions == {"pypi.org": ("allow", ""), "files.pythonhosted.org": ("allow", ""),
                         "registry.npmjs.org": ("deny", "not in the allow-list")}


def test_an_unknown_host_group_is_a_usage_error(project: Path, env: Env) -> None:
    done = run_cli(["--allow", "@pypy", "--", "true"], cwd=project, env=env.vars)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == (
        "agent-sandbox: error: --allow @pypy: no such host group (did you mean @pypi?); the "
        "groups are: @crates, @github, @go, @huggingface, @npm, @pypi")
