"""Timing shared by the benchmarks: interleaved rounds, median / p90 / min in ms."""

from __future__ import annotations

import shlex
import statistics
import subprocess
import sys
import time

# A command: its argv and environment (None: the benchmark's own).
Cmd = tuple[list[str], dict[str, str] | None]


def run_once(cmd: Cmd, cwd: str | None = None) -> float:
    """Wall time of one run in ms; exits loudly unless the command succeeds."""
    argv, env = cmd
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    elapsed = (time.perf_counter() - start) * 1000.0
    if proc.returncode != 0:
        sys.exit(f"bench: exit status {proc.returncode} from: {shlex.join(argv)}")
    return elapsed


def measure(commands: dict[str, Cmd], runs: int, warmup: int,
            cwd: str | None = None) -> dict[str, dict[str, float]]:
    """Median, p90 and min (ms) per command over ``runs`` rounds after ``warmup`` rounds.

    Each round runs every command once, in turn: on a shared VM the load drifts over
    seconds, and interleaving exposes all commands to the same drift.
    """
    times: dict[str, list[float]] = {name: [] for name in commands}
    for round_no in range(warmup + runs):
        for name, cmd in commands.items():
            elapsed = run_once(cmd, cwd)
            if round_no >= warmup:
                times[name].append(elapsed)
    rows = {}
    for name, values in times.items():
        values.sort()
        p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
        rows[name] = {"median_ms": statistics.median(values), "p90_ms": p90,
                      "min_ms": values[0]}
    return rows
