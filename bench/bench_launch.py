"""Launch-overhead benchmark for agent-sandbox.

Why: the launcher sits in front of every agent command, so its start-up cost must stay small.
This times ``agent-sandbox -- true`` against raw bwrap with the same options (the floor the
launcher cannot beat) and ``python -c pass`` (the interpreter's own start-up), checks the
target "agent-sandbox median <= 3x python -c pass median", and lists the slowest imports.
Numbers are machine-dependent; nothing here is asserted by the test suite.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import itertools
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TypedDict

from _timing import measure

TARGET_RATIO = 3.0
WARMUP = 3
FALLBACK_BWRAP = [
    "/usr/bin/bwrap", "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-uts",
    "--unshare-cgroup", "--unshare-net", "--die-with-parent", "--ro-bind", "/usr", "/usr",
    "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64",
    "/lib64", "--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev",
]
IMPORTS = ("import agent_sandbox._cli.main, agent_sandbox._run.launch, agent_sandbox._plan.build, "
           "agent_sandbox._policy.request, agent_sandbox._plan.host")


class ImportRow(TypedDict):
    name: str
    self_ms: float
    cumulative_ms: float




def raw_bwrap_argv(launcher: str, project: str, workdir: str) -> tuple[list[str], str]:
    """The launcher's bwrap options, read from its --dry-run output (else a fixed list)."""
    proc = subprocess.run([launcher, "--dry-run", "--", "true"], cwd=project,
                          capture_output=True, text=True, check=False)
    bwrap, options = "", []
    for line in proc.stdout.splitlines():
        if line.startswith("# bwrap: /"):
            bwrap = line.removeprefix("# bwrap: ").strip()
        elif line.startswith("  --"):
            words = shlex.split(line, comments=True)
            # Skip every option holding a value only the launcher has (the seccomp fd, the
            # protected files' placeholder sources): the floor is bwrap itself.
            if words[0] != "--" and not any(w.startswith("$") and w != "$WORKDIR"
                                            for w in words):
                options += [workdir if w == "$WORKDIR" else w for w in words]
    if proc.returncode != 0 or not bwrap or not options:
        return [*FALLBACK_BWRAP, "--", "true"], "fixed list (dry-run parse failed)"
    # The directories the launcher makes in the project on the way to protected paths (and
    # binds over themselves) must exist for bwrap alone too.
    for option, source in itertools.pairwise(options):
        if option == "--bind" and source.startswith(project + "/"):
            os.makedirs(source, exist_ok=True)
    return [bwrap, *options, "--", "true"], "parsed from agent-sandbox --dry-run"


def top_imports(cwd: str, count: int = 10) -> list[ImportRow]:
    """The ``count`` largest cumulative times of a ``-X importtime`` run of the package."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", IMPORTS], cwd=cwd,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"bench: importing agent_sandbox failed:\n{proc.stderr}")
    rows: list[ImportRow] = []
    for line in proc.stderr.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[0].strip().isdigit():
            rows.append({"name": fields[2].strip(), "self_ms": int(fields[0]) / 1000.0,
                         "cumulative_ms": int(fields[1]) / 1000.0})
    return sorted(rows, key=lambda r: r["cumulative_ms"], reverse=True)[:count]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="timed runs per command")
    parser.add_argument("--agent-sandbox", dest="launcher", metavar="PATH",
                        default=str(Path(sys.executable).parent / "agent-sandbox"),
                        help="launcher to time (default: the one next to this python)")
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    # A pip install byte-compiles the package; a dev checkout run with
    # PYTHONDONTWRITEBYTECODE=1 would otherwise time the compiler, not the launcher.
    spec = importlib.util.find_spec("agent_sandbox")
    for location in (spec.submodule_search_locations or []) if spec else []:
        compileall.compile_dir(location, quiet=1)

    with tempfile.TemporaryDirectory() as project, tempfile.TemporaryDirectory() as workdir:
        bwrap_argv, bwrap_source = raw_bwrap_argv(args.launcher, project, workdir)
        commands = {
            "agent-sandbox -- true": [args.launcher, "--", "true"],
            "raw bwrap -- true": bwrap_argv,
            "python -c pass": [sys.executable, "-c", "pass"],
        }
        srt = shutil.which("srt")
        if srt:
            commands["srt -c true"] = [srt, "-c", "true"]
        rows = measure({n: (argv, None) for n, argv in commands.items()}, args.runs,
                       WARMUP, cwd=project)
        # Max over every waited-for child: launchers, bwraps, pythons (and srt, if any).
        peak_rss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        imports = top_imports(project)

    ratio = rows["agent-sandbox -- true"]["median_ms"] / rows["python -c pass"]["median_ms"]
    result = {
        "runs": args.runs, "warmup": WARMUP, "launcher": args.launcher,
        "raw_bwrap_argv": bwrap_argv, "raw_bwrap_source": bwrap_source, "timings": rows,
        "ratio_vs_python": ratio, "target_ratio": TARGET_RATIO,
        "target_met": ratio <= TARGET_RATIO, "launcher_peak_rss_kib": peak_rss_kib,
        "srt_installed": srt is not None, "top_imports": imports,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0

    print(f"launch overhead: {args.runs} interleaved rounds after {WARMUP} warm-up rounds (ms)")
    print(f"{'command':<24}{'median':>9}{'p90':>9}{'min':>9}")
    for name, t in rows.items():
        print(f"{name:<24}{t['median_ms']:>9.1f}{t['p90_ms']:>9.1f}{t['min_ms']:>9.1f}")
    if not srt:
        print("srt (sandbox-runtime): not installed, no peer row")
    print(f"raw bwrap options: {bwrap_source}")
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"agent-sandbox / python -c pass (median): {ratio:.2f}x; "
          f"target <= {TARGET_RATIO:g}x: {verdict}")
    print(f"peak RSS over all children (the largest is a Python: launcher or baseline): "
          f"{peak_rss_kib / 1024:.1f} MiB")
    print(f"\ntop {len(imports)} cumulative import times (python -X importtime, ms)")
    print(f"{'cumulative':>11}{'self':>9}  module")
    for r in imports:
        print(f"{r['cumulative_ms']:>11.2f}{r['self_ms']:>9.2f}  {r['name']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
