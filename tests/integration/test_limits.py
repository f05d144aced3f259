"""Limits in the real sandbox: rlimits always, --timeout, cgroup limits refused where they
cannot be enforced (this kind of machine), and enforced where they can."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from agent_sandbox._limits import find_systemd_run
from tests.conftest import Env, run_cli, sandbox_sh

pytestmark = pytest.mark.integration

_, CGROUP_UNAVAILABLE = find_systemd_run({})


def test_no_core_dumps_and_capped_open_files_and_file_size(project: Path, env: Env) -> None:
    done = sandbox_sh("ulimit -c; ulimit -n; (head -c 2000000 /dev/zero > big) 2>/dev/null;"
                      " wc -c < big", cwd=project, env=env.vars,
                      extra=["--nofile", "512", "--fsize", "1M"])
    assert done.stdout.split() == ["0", "512", "1048576"], done.stderr


def test_timeout_stops_the_command_with_124(project: Path, env: Env) -> None:
    started = time.monotonic()
    done = sandbox_sh("echo started; sleep 30", cwd=project, env=env.vars,
                      extra=["--timeout", "1"])
    assert done.returncode == 124
    assert done.stdout.strip() == "started"
    assert "--timeout 1s reached" in done.stderr
    assert time.monotonic() - started < 15


def test_timeout_also_stops_a_command_that_ignores_sigterm(project: Path, env: Env) -> None:
    done = sandbox_sh("trap '' TERM; sleep 30", cwd=project, env=env.vars,
                      extra=["--timeout", "0.5"], timeout=30)
    assert done.returncode == 124


@pytest.mark.skipif(CGROUP_UNAVAILABLE is None, reason="this host can enforce cgroup limits")
def test_cgroup_limits_are_refused_where_they_cannot_be_enforced(project: Path,
                                                                 env: Env) -> None:
    for flag, value in (("--memory", "1G"), ("--pids", "100"), ("--cpus", "1")):
        done = run_cli([flag, value, "--", "touch", "ran"], cwd=project, env=env.vars)
        assert done.returncode == 125, done.stderr
        assert f"{flag} cannot be enforced here" in done.stderr and "--best-effort" in done.stderr
        assert not (project / "ran").exists()
    done = run_cli(["--memory", "1G", "--best-effort", "--", "true"], cwd=project,
                   env=env.vars)
    assert done.returncode == 0
    assert "--memory NOT enforced" in done.stderr


@pytest.mark.skipif(CGROUP_UNAVAILABLE is not None,
                    reason=f"cgroup v2 limits cannot be enforced here ({CGROUP_UNAVAILABLE}); "
                    "the refusal is tested instead, and the systemd-run plan in unit tests")
def test_fork_bomb_and_memory_hog_are_contained(project: Path, env: Env) -> None:
    bomb = sandbox_sh("for i in $(seq 1000); do sleep 5 & done 2>/dev/null; echo survived",
                      cwd=project, env=env.vars, extra=["--pids", "64"], timeout=60)
    assert bomb.returncode == 0 and "survived" in bomb.stdout
    hog = sandbox_sh("python3 -c 'x = bytearray(2 * 1024**3)'", cwd=project, env=env.vars,
                     extra=["--memory", "256M"], timeout=60)
    assert hog.returncode != 0
