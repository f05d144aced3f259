"""Terminal relay benchmark: what the terminal firewall costs, against the raw terminal.

Why: with a terminal, the command's output goes through the launcher (its own pty, two
relay threads, the escape-sequence filter) instead of straight to the terminal. The targets:
keystroke-to-echo latency added under 1 ms (median), and output throughput at least half of
the raw terminal's. Each workload runs both ways, side by side, in one run, with this
script's pty standing in for the terminal emulator (it reads as fast as it can):

- raw: the workload on the pty directly;
- relayed: ``agent-sandbox -q -- WORKLOAD`` on the same kind of pty (the launcher from the
  same venv as the Python that runs this script; ``--agent-sandbox PATH`` for another).

Workloads: ``cat`` of a 200 MB text file; a full-screen TUI redraw (a script painting
frames of an 80x24 screen in colours, cursor moves and line erases, as Ink-based agents
such as Claude Code do); keystroke echo (a program in raw mode writing back each byte it
reads, one byte at a time). No peer relays or filters the terminal (sandbox-runtime,
Codex's sandbox, firejail, Docker run the command on the user's terminal): the raw numbers
are theirs. Machine-dependent; nothing here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TUI = r'''
import os, sys
frames = int(sys.argv[1])
w = sys.stdout.buffer.write
for n in range(frames):
    out = [b"\x1b[?2026h\x1b[H"]
    for row in range(24):
        out.append(b"\x1b[%d;1H\x1b[38;5;%dm\xe2\x94\x82\x1b[0m \x1b[1mframe %d row %d\x1b[22m "
                   % (row + 1, 16 + (row + n) % 200, n, row))
        out.append(b"\xe2\x94\x80" * 40 + b"\x1b[K")
    out.append(b"\x1b[?2026l")
    w(b"".join(out))
sys.stdout.flush()
'''

ECHO = r'''
import os, sys, tty
tty.setraw(0)
os.write(1, b"R")
while True:
    b = os.read(0, 1)
    if not b or b == b"q":
        break
    os.write(1, b)
'''


def _spawn(argv: list[str], cwd: str) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    return proc, master


def _drain(proc: subprocess.Popen[bytes], master: int) -> tuple[int, float]:
    """Bytes read until the end, and seconds from the first one to the end."""
    total, first = 0, 0.0
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:
            break
        if not data:
            break
        if not total:
            first = time.perf_counter()
        total += len(data)
    proc.wait()
    os.close(master)
    return total, time.perf_counter() - first


def throughput(argv: list[str], cwd: str) -> tuple[float, int]:
    """MB/s the terminal receives, from the first byte to the last (the launcher's start,
    measured by bench_launch.py, is not in it), and the byte count."""
    proc, master = _spawn(argv, cwd)
    total, seconds = _drain(proc, master)
    return total / seconds / 1e6, total


def echo_latency(argv: list[str], cwd: str, keys: int) -> list[float]:
    """Microseconds from writing one byte to reading it back, ``keys`` times."""
    proc, master = _spawn(argv, cwd)
    seen = b""
    while b"R" not in seen:  # the program is up and in raw mode
        seen += os.read(master, 4096)
    samples = []
    for n in range(keys):
        key = b"abcdefghijklmnoprstuvwxyz"[n % 25:n % 25 + 1]  # not q: it quits
        start = time.perf_counter()
        os.write(master, key)
        got = b""
        while key not in got:
            select.select([master], [], [])
            got += os.read(master, 64)
        samples.append((time.perf_counter() - start) * 1e6)
    os.write(master, b"q")
    _drain(proc, master)
    return samples


def _quiet(master: int, quiet: float, limit: float = 30.0) -> tuple[int, float]:
    """Read until nothing came for ``quiet`` seconds: bytes, and when the last one came."""
    total, last = 0, time.perf_counter()
    deadline = last + limit
    while time.perf_counter() < deadline:
        ready, _, _ = select.select([master], [], [], quiet)
        if not ready:
            break
        try:
            data = os.read(master, 1 << 16)
        except OSError:
            break
        total += len(data)
        last = time.perf_counter()
    return total, last


def redraws(argv: list[str], cwd: str, env: dict[str, str], count: int) -> tuple[float, float]:
    """A real TUI's redraw on resize: the median seconds from a resize to the last byte of
    the redraw, and the MB/s of those bytes."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True,  # and the pty its controlling terminal:
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
    for key in (b"\r", b"\x1b[A", b"\r"):  # trust this folder; use this API key: Yes
        _quiet(master, 2.0, 60.0)
        os.write(master, key)
    os.close(slave)
    _quiet(master, 3.0, 60.0)  # the main screen, drawn and settled
    times, sizes = [], []
    for n in range(count):
        rows, cols = (45, 140) if n % 2 == 0 else (30, 100)
        start = time.perf_counter()
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        size, last = _quiet(master, 0.5)
        times.append(last - start)
        sizes.append(size)
    proc.kill()
    proc.wait()
    os.close(master)
    if not sum(sizes):
        sys.exit(f"bench: {argv[-1]} drew nothing on a resize (did it start?)")
    return statistics.median(times), sum(sizes) / sum(times) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent-sandbox", default=str(Path(sys.executable).parent /
                                                       "agent-sandbox"))
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--keys", type=int, default=500)
    parser.add_argument("--claude", help="Claude Code's claude, for its TUI's redraws on "
                        "resize (e.g. node_modules/.bin/claude of npm @anthropic-ai/claude-code)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    launcher = [args.agent_sandbox, "-q", "--"]
    # The system one: a shim on PATH (pyenv) may not be visible inside.
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else \
        shutil.which("python3") or "python3"
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-terminal-") as project:
        text = Path(project, "text.txt")
        line = b"The quick brown fox jumps over the lazy dog 0123456789 \xe2\x9c\x93 " * 2 + b"\n"
        with text.open("wb") as f:
            for _ in range(args.megabytes * (1 << 20) // len(line)):
                f.write(line)
        Path(project, "tui.py").write_text(TUI)
        Path(project, "echo.py").write_text(ECHO)
        for name, argv in (("cat 200 MB", ["cat", str(text)]),
                           ("TUI redraw", [python, "tui.py", str(args.frames)])):
            raw, size = throughput(argv, project)
            relayed, _ = throughput([*launcher, *argv], project)
            results[name] = {"raw_mb_s": raw, "relayed_mb_s": relayed,
                             "ratio": relayed / raw, "megabytes": size / 1e6}
        raw_keys = echo_latency([python, "echo.py"], project, args.keys)
        relayed_keys = echo_latency([*launcher, python, "echo.py"], project, args.keys)
        results["keystroke echo"] = {
            "raw_median_us": statistics.median(raw_keys),
            "relayed_median_us": statistics.median(relayed_keys),
            "added_median_us": statistics.median(relayed_keys) - statistics.median(raw_keys),
            "relayed_p90_us": statistics.quantiles(relayed_keys, n=10)[-1]}
    if args.claude:
        with tempfile.TemporaryDirectory(prefix="bench-claude-") as home:
            workdir = Path(home, "project")
            workdir.mkdir()
            # Onboarded, with an API key (offline: its main screen, no model behind it).
            Path(home, ".claude.json").write_text('{"hasCompletedOnboarding": true}')
            env = {"HOME": home, "TERM": "xterm-256color", "LANG": "C.UTF-8",
                   "PATH": f"{Path(args.claude).parent}:/usr/bin:/bin",
                   "ANTHROPIC_API_KEY": "sk-ant-api03-offline-bench",
                   # Outside the sandbox its updater would npm install -g over the host.
                   "DISABLE_AUTOUPDATER": "1"}
            raw_s, raw_rate = redraws([args.claude], str(workdir), env, 10)
            relayed_s, relayed_rate = redraws([*launcher, args.claude], str(workdir), env, 10)
            results["Claude Code redraw"] = {
                "raw_median_ms": raw_s * 1000, "relayed_median_ms": relayed_s * 1000,
                "raw_mb_s": raw_rate, "relayed_mb_s": relayed_rate,
                "ratio": relayed_rate / raw_rate}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for name in ("cat 200 MB", "TUI redraw"):
        r = results[name]
        print(f"{name:<14} raw {r['raw_mb_s']:7.1f} MB/s   relayed {r['relayed_mb_s']:7.1f} "
              f"MB/s   {r['ratio']:.2f}x of raw ({r['megabytes']:.0f} MB to the terminal)  "
              f"target >= 0.5x: {'met' if r['ratio'] >= 0.5 else 'NOT met'}")
    if "Claude Code redraw" in results:
        c = results["Claude Code redraw"]
        print(f"Claude Code redraw on resize: raw {c['raw_median_ms']:.0f} ms   relayed "
              f"{c['relayed_median_ms']:.0f} ms (median); {c['ratio']:.2f}x of raw throughput  "
              f"target >= 0.5x: {'met' if c['ratio'] >= 0.5 else 'NOT met'}")
    k = results["keystroke echo"]
    print(f"keystroke echo raw {k['raw_median_us']:.0f} us   relayed {k['relayed_median_us']:.0f}"
          f" us (p90 {k['relayed_p90_us']:.0f})   added {k['added_median_us']:.0f} us median  "
          f"target < 1000 us: {'met' if k['added_median_us'] < 1000 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
