"""Filtered-network benchmark for agent-sandbox.

Why: with ``--allow``, every connection and every byte the command sends or receives goes
through the launcher (Python), both on the HTTP proxy and on the transparent listeners.
This measures, in one run, against a plain-HTTP upstream served by this script on
the host's 127.0.0.1: download throughput through the proxy and the transparent path against
the same client outside any sandbox (target >= 0.8x); the median added latency of a new
connection (target <= +1 ms); the launcher's RSS while it holds idle connections; and the
launch time of a filtered sandbox against ``--net none`` (target <= 1.5x). For scale, when
socat is installed, the same download through a plain socat TCP relay on the host (a peer:
any userspace relay adds a loopback hop).
Numbers are machine-dependent; nothing here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _timing import measure

NAME = "bench.example.test"
PROXY = "http://127.0.0.1:3128"
MIB = 1 << 20
TARGET_THROUGHPUT = 0.8
TARGET_ADDED_MS = 1.0
TARGET_LAUNCH = 1.5
WARMUP = 1
LAUNCH_WARMUP = 3

# The download client when curl is missing: prints "SECONDS BYTES" like curl's -w below.
DOWNLOAD = """\
import sys, time, urllib.request
url, proxy = sys.argv[1:3]
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy} if proxy else {}))
start, size = time.perf_counter(), 0
with opener.open(url) as response:
    while chunk := response.read(1 << 20):
        size += len(chunk)
print(time.perf_counter() - start, size)
"""
# COUNT rounds of one new connection per mode, in turn; prints {mode: [ms, ...]}. A mode is
# [host, port, request target]; names are resolved once, before the loop.
CONNECT_LOOP = """\
import json, socket, sys, time
name, count, modes = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
requests = {m: ((socket.gethostbyname(h), p), f"GET {t} HTTP/1.1\\r\\nHost: {name}\\r\\n"
                "Connection: close\\r\\n\\r\\n".encode()) for m, (h, p, t) in modes.items()}
times = {m: [] for m in modes}
for _ in range(count):
    for mode, (address, request) in requests.items():
        start = time.perf_counter()
        with socket.create_connection(address) as s:
            s.sendall(request)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        times[mode].append((time.perf_counter() - start) * 1000)
        if not reply.startswith(b"HTTP/1.0 200"):
            sys.exit(f"{mode}: {reply[:200]!r}")
print(json.dumps(times))
"""
# Opens COUNT idle connections to the proxy between two lines read on stdin.
HOLD = """\
import socket, sys
print("idle", flush=True)
sys.stdin.readline()
held = [socket.create_connection(("127.0.0.1", 3128)) for _ in range(int(sys.argv[1]))]
print("open", flush=True)
sys.stdin.readline()
"""


def start_upstream(mib: int) -> int:
    """Serve /big (``mib`` MiB of zeros, 1 MiB writes) and anything else ("ok") on a free
    port of 127.0.0.1, from threads of this process; returns the port."""
    chunk = b"\0" * MIB

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            big = self.path == "/big"
            self.send_response(200)
            self.send_header("Content-Length", str(mib * MIB if big else 2))
            self.end_headers()
            for _ in range(mib if big else 0):
                self.wfile.write(chunk)
            if not big:
                self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return int(server.server_address[1])


def start_socat(upstream: int) -> tuple[subprocess.Popen[bytes], int] | None:
    """A socat relay on the host to ``upstream``, if socat is installed: (process, port)."""
    socat = shutil.which("socat")
    if socat is None:
        return None
    with socket.socket() as probe:  # a free port (socat binds it right after)
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    proc = subprocess.Popen([socat, f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
                             f"TCP:127.0.0.1:{upstream}"], stderr=subprocess.DEVNULL)
    for _ in range(100):
        with socket.socket() as s, contextlib.suppress(OSError):
            s.connect(("127.0.0.1", port))
            return proc, port
        time.sleep(0.02)
    proc.kill()
    sys.exit("bench: socat did not start listening")


def output(argv: list[str], cwd: str) -> str:
    proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"bench: exit status {proc.returncode} from: {shlex.join(argv)}\n"
                 f"{proc.stderr.strip()}")
    return proc.stdout


def launcher_state(pid: int) -> tuple[float, int]:
    """The launcher's VmRSS in MiB and the number of sockets it has open."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line[:6] == "VmRSS:")
    fds = Path(f"/proc/{pid}/fd").iterdir()
    return rss / 1024, sum(1 for fd in fds if fd.readlink().name.startswith("socket:"))


def throughput(sandbox: list[str], tools: dict[str, str], port: int, mib: int, runs: int,
               cwd: str, socat_port: int | None) -> tuple[str, dict[str, float]]:
    """Median MiB/s per path over interleaved rounds: direct on the host, then one sandbox
    running the proxy and the transparent download, then through socat if there is one; the
    client times itself (no start-up)."""
    url = f"http://{NAME}:{port}/big"
    curl = tools.get("curl")

    def client(target: str, proxy: str) -> list[str]:
        if curl:
            route = ["-x", proxy] if proxy else ["--noproxy", "*"]
            return [curl, "-sf", "-o", "/dev/null", "-w", r"%{time_total} %{size_download}\n",
                    *route, target]
        return [tools["python3"], "-c", DOWNLOAD, target, proxy]

    direct = client(f"http://127.0.0.1:{port}/big", "")
    inside = [*sandbox, "sh", "-c",
              f"{shlex.join(client(url, PROXY))} && {shlex.join(client(url, ''))}"]
    seconds: dict[str, list[float]] = {"direct": [], "proxy": [], "transparent": []}
    peer = [] if socat_port is None else [client(f"http://127.0.0.1:{socat_port}/big", "")]
    if peer:
        seconds["socat relay"] = []
    for round_no in range(WARMUP + runs):
        lines = [line for argv in (direct, inside, *peer)
                 for line in output(argv, cwd).splitlines()]
        for mode, line in zip(seconds, lines, strict=True):
            elapsed, size = line.split()
            if int(float(size)) != mib * MIB:
                sys.exit(f"bench: {mode} download got {size} bytes, not {mib * MIB}")
            if round_no >= WARMUP:
                seconds[mode].append(float(elapsed))
    method = "curl -w %{time_total}" if curl else "perf_counter in a python3 urllib client"
    return method, {mode: mib / statistics.median(s) for mode, s in seconds.items()}


def connections(sandbox: list[str], python: str, port: int, count: int,
                cwd: str) -> dict[str, float]:
    """Median ms per new connection + GET: direct on the host, then in one sandbox."""
    direct = {"direct": ["127.0.0.1", port, "/small"]}
    inside = {"transparent": [NAME, port, "/small"],
              "proxy": ["127.0.0.1", 3128, f"http://{NAME}:{port}/small"]}
    times: dict[str, list[float]] = {}
    for argv, modes in (([python], direct), ([*sandbox, python], inside)):
        times.update(json.loads(output([*argv, "-c", CONNECT_LOOP, NAME, str(count),
                                        json.dumps(modes)], cwd)))
    return {mode: statistics.median(values) for mode, values in times.items()}


def launcher_rss(sandbox: list[str], python: str, count: int, cwd: str) -> dict[str, float]:
    """The launcher's VmRSS with the sandbox idle, and its peak while the command holds
    ``count`` idle connections to the proxy for about 2 s."""
    script = 'ulimit -n 4096 && exec "$0" -c "$1" "$2"'
    proc = subprocess.Popen([*sandbox, "sh", "-c", script, python, HOLD, str(count)],
                            cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    if proc.stdout.readline() != "idle\n":
        sys.exit("bench: the connection holder did not start")
    idle = launcher_state(proc.pid)[0]
    proc.stdin.write("go\n")
    proc.stdin.flush()
    if proc.stdout.readline() != "open\n":
        sys.exit(f"bench: could not open {count} connections to the proxy")
    peak, held = idle, 0
    for _ in range(20):
        time.sleep(0.1)
        rss, open_sockets = launcher_state(proc.pid)
        peak, held = max(peak, rss), max(held, open_sockets)
    proc.stdin.write("done\n")
    proc.stdin.close()
    if proc.wait() != 0:
        sys.exit(f"bench: connection holder exit status {proc.returncode}")
    return {"idle_mib": idle, "connections_mib": peak, "launcher_sockets": held}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="MiB per download")
    parser.add_argument("--runs", type=int, default=10,
                        help="timed rounds of the downloads and of the launches")
    parser.add_argument("--connections", type=int, default=1000,
                        help="sequential connections per path, and idle ones held")
    parser.add_argument("--agent-sandbox", dest="launcher", metavar="PATH",
                        default=str(Path(sys.executable).parent / "agent-sandbox"),
                        help="launcher to time (default: the one next to this python)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    if min(args.mib, args.runs, args.connections) < 1:
        parser.error("--mib, --runs and --connections must be at least 1")

    port = start_upstream(args.mib)
    allow = ["--allow", f"{NAME}:{port}", "--resolve", f"{NAME}=127.0.0.1"]
    sandbox = [args.launcher, "-q", *allow, "--"]
    with tempfile.TemporaryDirectory() as project:
        # The clients' paths inside (/usr is the host's), used outside too: same binaries.
        probe = "for t in python3 curl; do command -v $t; done; true"
        found = output([*sandbox, "sh", "-c", probe], project)
        tools = {Path(p).name: p for p in found.split()}
        if "python3" not in tools:
            sys.exit("bench: no python3 inside the sandbox")
        print("bench: throughput", file=sys.stderr)
        socat = start_socat(port)
        try:
            method, mib_s = throughput(sandbox, tools, port, args.mib, args.runs, project,
                                       socat[1] if socat else None)
        finally:
            if socat:
                socat[0].kill()
                socat[0].wait()
        print("bench: sequential connections", file=sys.stderr)
        conn_ms = connections(sandbox, tools["python3"], port, args.connections, project)
        print("bench: launcher RSS", file=sys.stderr)
        rss = launcher_rss(sandbox, tools["python3"], args.connections, project)
        print("bench: launch latency", file=sys.stderr)
        launch = measure({"filtered (--allow) -- true": ([*sandbox, "true"], None),
                          "none -- true": ([args.launcher, "-q", "--", "true"], None)},
                         args.runs, LAUNCH_WARMUP, cwd=project)

    ratios = {m: mib_s[m] / mib_s["direct"] for m in ("proxy", "transparent")}
    added = {m: conn_ms[m] - conn_ms["direct"] for m in ("proxy", "transparent")}
    launch_ratio = (launch["filtered (--allow) -- true"]["median_ms"]
                    / launch["none -- true"]["median_ms"])
    if args.json:
        print(json.dumps({
            "launcher": args.launcher, "mib": args.mib, "runs": args.runs,
            "connections": args.connections, "download_method": method,
            "throughput_mib_s": mib_s, "throughput_ratio": ratios,
            "throughput_target": TARGET_THROUGHPUT, "connection_median_ms": conn_ms,
            "connection_added_ms": added, "connection_target_ms": TARGET_ADDED_MS,
            "launcher_rss": rss, "launch": launch, "launch_ratio": launch_ratio,
            "launch_target": TARGET_LAUNCH}, indent=2))
        return 0

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"throughput: {args.mib} MiB from 127.0.0.1:{port}, median of {args.runs} rounds "
          f"after {WARMUP} warm-up, timed by {method} (MiB/s)")
    print(f"  {'direct':<13}{mib_s['direct']:>7.0f}")
    for mode, ratio in ratios.items():
        print(f"  {mode:<13}{mib_s[mode]:>7.0f}  {ratio:.2f}x direct, target >= "
              f"{TARGET_THROUGHPUT:g}x: {verdict(ratio >= TARGET_THROUGHPUT)}")
    if "socat relay" in mib_s:
        print(f"  {'socat relay':<13}{mib_s['socat relay']:>7.0f}  "
              f"{mib_s['socat relay'] / mib_s['direct']:.2f}x direct (a peer, for scale)")
    print(f"sequential connections: {args.connections} per path, median ms per new "
          f"connection + small GET\n  {'direct':<13}{conn_ms['direct']:>7.3f}")
    for mode, ms in added.items():
        print(f"  {mode:<13}{conn_ms[mode]:>7.3f}  {ms:+.3f} ms, target <= "
              f"+{TARGET_ADDED_MS:g} ms: {verdict(ms <= TARGET_ADDED_MS)}")
    print(f"launcher RSS: {rss['idle_mib']:.1f} MiB idle, {rss['connections_mib']:.1f} MiB "
          f"holding {args.connections} idle proxy connections "
          f"({rss['launcher_sockets']:.0f} sockets open in the launcher)")
    print(f"launch: {args.runs} rounds after {LAUNCH_WARMUP} warm-up rounds (ms)\n"
          f"  {'command':<28}{'median':>9}{'p90':>9}{'min':>9}")
    for name, t in launch.items():
        print(f"  {name:<28}{t['median_ms']:>9.1f}{t['p90_ms']:>9.1f}{t['min_ms']:>9.1f}")
    print(f"  filtered / none (median): {launch_ratio:.2f}x, target <= {TARGET_LAUNCH:g}x: "
          f"{verdict(launch_ratio <= TARGET_LAUNCH)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
