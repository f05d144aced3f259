"""Limit values and how they are enforced (pure parts; the live parts are integration)."""

from __future__ import annotations

import pytest

from agent_sandbox._errors import UsageError
from agent_sandbox._limits import (
    Limits,
    parse_duration,
    parse_positive,
    parse_size,
    systemd_scope_argv,
)


@pytest.mark.parametrize("text, value", [("512M", 512 * 1024**2), ("4G", 4 * 1024**3),
                                         ("1.5g", int(1.5 * 1024**3)), ("1048576", 1048576),
                                         ("64KiB", 65536), ("2T", 2 * 1024**4)])
def test_sizes(text: str, value: int) -> None:
    assert parse_size(text, "--memory") == value


@pytest.mark.parametrize("text, value", [("90", 90.0), ("90s", 90.0), ("30m", 1800.0),
                                         ("2h", 7200.0), ("1d", 86400.0), ("0.5", 0.5)])
def test_durations(text: str, value: float) -> None:
    assert parse_duration(text, "--timeout") == value


@pytest.mark.parametrize("call", [
    lambda: parse_size("lots", "--memory"), lambda: parse_size("0", "--memory"),
    lambda: parse_size("-1G", "--memory"), lambda: parse_duration("soon", "--timeout"),
    lambda: parse_duration("0s", "--timeout"), lambda: parse_positive("1.5", "--pids", int),
    lambda: parse_positive("0", "--cpus", float), lambda: parse_positive("x", "--cpus", float),
])
def test_bad_values_name_the_flag(call: object) -> None:
    with pytest.raises(UsageError, match=r"^--"):
        call()  # type: ignore[operator]


def test_the_systemd_scope_carries_every_asked_limit() -> None:
    argv = systemd_scope_argv("/usr/bin/systemd-run",
                              Limits(memory=1024**3, pids=512, cpus=1.5))
    assert argv == ("/usr/bin/systemd-run", "--user", "--scope", "--quiet", "--collect",
                    "-p", "MemoryMax=1073741824", "-p", "MemorySwapMax=0",
                    "-p", "TasksMax=512", "-p", "CPUQuota=150%", "--")
    assert Limits(timeout=5).cgroup is False and Limits(pids=1).cgroup is True
