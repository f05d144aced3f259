"""Seccomp-filter benchmark for agent-sandbox.

Why: inside the sandbox every system call first runs through the seccomp filter, so
syscall-heavy work (git, builds, test runners) pays for it on each call. This times the same
workload three ways, interleaved in one run: through the launcher (the sandbox with the
filter), through raw bwrap with the launcher's own plan minus ``--seccomp`` (the same sandbox
without the filter), and directly on the host. It checks the target "the filter makes the
workload at most 5% slower", with each sandboxed mode's start-up (the median of ``true`` run
the same way) subtracted first. Numbers are machine-dependent; the test suite asserts none.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TypedDict

from _timing import Cmd, measure

from agent_sandbox._plan.build import WORKDIR, Placeholder, Section, build_plan
from agent_sandbox._plan.host import probe_layout
from agent_sandbox._plan.view import gather_host_view
from agent_sandbox._policy.identity import current_identity
from agent_sandbox._policy.request import build_policy
from agent_sandbox._run.bwrap import find_bwrap

TARGET_PCT = 5.0
WARMUP = 1
WORKLOADS = {
    "syscalls": ["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=1000000"],
    "git-status": ["git", "status", "--porcelain"],
}
FILTER, NO_FILTER, OUTSIDE = "sandbox, filter", "sandbox, no filter", "outside"


class Result(TypedDict):
    argv: list[str]
    timings: dict[str, dict[str, float]]
    filter_net_ms: float  # medians minus the same mode's `true` median
    no_filter_net_ms: float
    filter_overhead_pct: float
    target_pct: float
    target_met: bool
    filter_vs_outside_pct: float
    filter_net_vs_outside_pct: float


def three_ways(launcher: str, command: list[str], workdir: str) -> dict[str, Cmd]:
    """``command`` through the launcher, through raw bwrap without the filter, and directly.

    The raw bwrap run is the launcher's plan (built in the current directory, the project)
    minus its ``--seccomp FD`` option, as the integration tests build it.
    """
    identity = current_identity(dict(os.environ))
    policy = build_policy(command=command, project=None, net="none", ro=[], rw=[], hide=[],
                          env=[], identity=identity)
    plan = build_plan(policy, gather_host_view(identity, probe_layout(), os.environ,
                                                   policy.project))
    # Without the launcher: no start pipe, and no operation needing a value only it has
    # (the seccomp fd, which is the point; the protected files' placeholders, a few binds).
    sections = tuple(Section(s.title, tuple(op for op in s.ops if not any(
        isinstance(w, Placeholder) and w is not WORKDIR for w in op.words)))
        for s in plan.sections)
    plan = plan._replace(sections=sections, starter=())
    raw = [find_bwrap(os.environ), *plan.bwrap_args({WORKDIR: workdir})]
    return {FILTER: ([launcher, "-q", "--", *command], None),
            NO_FILTER: (raw, dict(plan.env)), OUTSIDE: (command, None)}


def check_filter(launcher: str, workdir: str) -> dict[str, str]:
    """The ``Seccomp:`` mode of /proc/self/status in the two sandboxed modes; exits loudly
    unless the launcher's is 2 (filtered) and raw bwrap's is 0 (none)."""
    ways = three_ways(launcher, ["grep", "Seccomp:", "/proc/self/status"], workdir)
    seen = {}
    for mode, want in ((FILTER, "2"), (NO_FILTER, "0")):
        argv, env = ways[mode]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        seen[mode] = " ".join(proc.stdout.split())
        if proc.returncode != 0 or proc.stdout.split()[-1:] != [want]:
            sys.exit(f"bench: expected 'Seccomp: {want}' in mode {mode!r}, got "
                     f"{proc.stdout.strip() or proc.stderr.strip()!r} from: {shlex.join(argv)}")
    return seen


def build_repo(project: Path, files: int) -> None:
    """A git repository of ``files`` small files, 100 per directory, all committed."""
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    # As root the sandbox runs as nobody, so files and index disagree on the owner there, and
    # every status would re-hash all files and rewrite the index. Still one lstat per file.
    subprocess.run(["git", "config", "core.checkStat", "minimal"], cwd=project, check=True)
    for i in range(files):
        if i % 10000 == 0:
            print(f"bench: creating files: {i}/{files}", file=sys.stderr)
        if i % 100 == 0:
            (project / f"d{i // 100:04}").mkdir()
        (project / f"d{i // 100:04}" / f"f{i}.txt").write_text(f"{i}\n")
    print("bench: git add -A && git commit", file=sys.stderr)
    subprocess.run(["git", "add", "-A"], cwd=project, check=True)
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "init"],
                   cwd=project, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed rounds per workload")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), action="append",
                        help="workload to time (repeatable; default: all)")
    parser.add_argument("--files", type=int, default=50000, help="files in the git-status repo")
    parser.add_argument("--agent-sandbox", dest="launcher", metavar="PATH",
                        default=str(Path(sys.executable).parent / "agent-sandbox"),
                        help="launcher to time (default: the one next to this python)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    if args.runs < 1 or args.files < 1:
        parser.error("--runs and --files must be at least 1")
    workloads = args.workload or list(WORKLOADS)

    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory() as project, tempfile.TemporaryDirectory() as workdir:
        os.chdir(project)  # build_policy reads the cwd, and every mode runs here
        if "git-status" in workloads:
            build_repo(Path(project), args.files)
        seccomp = check_filter(args.launcher, workdir)
        for name in workloads:
            print(f"bench: timing {name}", file=sys.stderr)
            ways = three_ways(args.launcher, WORKLOADS[name], workdir)
            trues = three_ways(args.launcher, ["true"], workdir)
            rows = measure({**ways, f"true, {FILTER}": trues[FILTER],
                            f"true, {NO_FILTER}": trues[NO_FILTER]}, args.runs, WARMUP)
            med = {mode: t["median_ms"] for mode, t in rows.items()}
            net_filter = med[FILTER] - med[f"true, {FILTER}"]
            net_no_filter = med[NO_FILTER] - med[f"true, {NO_FILTER}"]
            overhead = (net_filter / net_no_filter - 1) * 100
            results[name] = {
                "argv": WORKLOADS[name], "timings": rows,
                "filter_net_ms": net_filter, "no_filter_net_ms": net_no_filter,
                "filter_overhead_pct": overhead, "target_pct": TARGET_PCT,
                "target_met": overhead <= TARGET_PCT,
                "filter_vs_outside_pct": (med[FILTER] / med[OUTSIDE] - 1) * 100,
                "filter_net_vs_outside_pct": (net_filter / med[OUTSIDE] - 1) * 100,
            }
    if args.json:
        print(json.dumps({"runs": args.runs, "warmup": WARMUP, "launcher": args.launcher,
                          "files": args.files, "seccomp_status": seccomp,
                          "workloads": results}, indent=2))
        return 0

    print(f"seccomp filter cost: {args.runs} interleaved rounds after {WARMUP} warm-up round")
    print(f"check, /proc/self/status: '{seccomp[FILTER]}' via the launcher, "
          f"'{seccomp[NO_FILTER]}' via raw bwrap minus --seccomp: ok")
    print("overhead = sandbox medians minus the same mode's `true` median (start-up; the "
          "launcher's\n  own ~60-80 ms is only in the filter mode), then with / without - 1")
    for name, r in results.items():
        label = f"{name} ({args.files} files)" if name == "git-status" else name
        print(f"\n{label}: {shlex.join(WORKLOADS[name])}  (ms)")
        print(f"{'mode':<28}{'median':>9}{'p90':>9}{'min':>9}")
        for mode, t in r["timings"].items():
            print(f"{mode:<28}{t['median_ms']:>9.1f}{t['p90_ms']:>9.1f}{t['min_ms']:>9.1f}")
        verdict = "met" if r["target_met"] else "NOT met"
        print(f"minus start-up: {r['filter_net_ms']:.1f} with the filter, "
              f"{r['no_filter_net_ms']:.1f} without; filter overhead "
              f"{r['filter_overhead_pct']:+.1f}%, target <= {TARGET_PCT:g}% slower: {verdict}")
        print(f"sandbox with filter vs outside: {r['filter_vs_outside_pct']:+.1f}% "
              f"({r['filter_net_vs_outside_pct']:+.1f}% minus the `true` median)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
