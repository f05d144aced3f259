"""A network namespace of the test's own, for launches whose upstream must listen on a
privileged port (443, the port a suggested ``--allow NAME`` opens) or whose host resolver
must answer a name with a loopback address (an ``/etc/hosts`` of the test's, bound in a
mount namespace of its own). Its only interface is ``lo``: nothing sent in it can leave
this machine.

``isolated_network`` starts this file as a program under ``unshare``: as root, in new
network and mount namespaces; as a user, in a user namespace of its own too (same uid),
keeping the capabilities it grants only until the upstreams are bound and ``/etc/hosts`` is
in place. The launches it runs then get none: they are the user's, as outside.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import http.server
import json
import os
import shutil
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_MS_BIND = 4096
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello from {self.headers['Host']}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _lo_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(s, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(s, _SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | _IFF_UP))


def _serve_tls(port: int, cert: str, key: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), _Hello)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def _inside(spec: dict[str, Any]) -> None:
    """The program in the namespaces: set them up, then run each launch asked for on stdin
    (one JSON line each) and answer with its outcome (one JSON line)."""
    libc = ctypes.CDLL(None, use_errno=True)
    _lo_up()
    for port in spec["tls_ports"]:
        _serve_tls(port, spec["cert"], spec["key"])
    hosts = spec["hosts"]
    if hosts is not None and libc.mount(hosts.encode(), b"/etc/hosts", None, _MS_BIND,
                                        None) != 0:
        raise OSError(ctypes.get_errno(), "bind /etc/hosts")
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    print("ready", flush=True)
    for line in sys.stdin:
        run = json.loads(line)
        done = subprocess.run(run["argv"], cwd=run["cwd"], env=run["env"], capture_output=True,
                              text=True, timeout=run["timeout"], check=False)
        print(json.dumps({"rc": done.returncode, "stdout": done.stdout,
                          "stderr": done.stderr}), flush=True)


class IsolatedNetwork:
    def __init__(self, proc: subprocess.Popen[str], extra_env: Mapping[str, str]) -> None:
        self._proc = proc
        self._extra_env = dict(extra_env)

    def run(self, argv: Sequence[str], *, cwd: Path, env: Mapping[str, str],
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(json.dumps({"argv": list(argv), "cwd": str(cwd), "timeout":
                                           timeout, "env": {**env, **self._extra_env}}) + "\n")
        self._proc.stdin.flush()
        answer = json.loads(self._proc.stdout.readline())
        return subprocess.CompletedProcess(argv, answer["rc"], answer["stdout"],
                                           answer["stderr"])


@contextlib.contextmanager
def isolated_network(*, cert: Path, key: Path, tls_ports: Sequence[int],
                     hosts: Path | None = None) -> Iterator[IsolatedNetwork]:
    """TLS upstreams (``cert``/``key``) on 127.0.0.1 at ``tls_ports`` of a network namespace
    of the test's own, ``hosts`` as its /etc/hosts; run launches in it with ``.run``."""
    import pytest

    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("needs unshare (util-linux)")
    extra_env: dict[str, str] = {}
    if os.getuid() == 0:
        namespaces = [unshare, "--net", "--mount"]
    else:
        namespaces = [unshare, "--user", "--map-current-user", "--keep-caps", "--net",
                      "--mount"]
        # Root's files show as owned by the overflow uid in a user namespace, so the system
        # bwrap is not found as root-owned: named, as the launcher's docs say to.
        bwrap = shutil.which("bwrap", path="/usr/bin:/bin")
        if bwrap is None:
            pytest.skip("needs a system bwrap")
        extra_env["AGENT_SANDBOX_BWRAP"] = bwrap
    spec = {"cert": str(cert), "key": str(key), "tls_ports": list(tls_ports),
            "hosts": None if hosts is None else str(hosts)}
    root = Path(__file__).resolve().parents[2]
    with subprocess.Popen([*namespaces, sys.executable, "-m", "tests.integration.isolated_net",
                           json.dumps(spec)], cwd=root, stdin=subprocess.PIPE,
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            yield IsolatedNetwork(proc, extra_env)
        finally:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=30)


if __name__ == "__main__":
    _inside(json.loads(sys.argv[1]))
