"""Why the sandbox cannot start: host settings that stop user namespaces, each with its fix.
Used by the launcher after a failed start and by ``--check``."""

from __future__ import annotations

import os
from typing import NamedTuple

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"

APPARMOR_FIX = (
    "Ubuntu restricts unprivileged user namespaces through AppArmor. Allow bwrap with a "
    "profile: printf 'abi <abi/4.0>,\\ninclude <tunables/global>\\nprofile bwrap /usr/bin/bwrap "
    "flags=(unconfined) {\\n  userns,\\n}\\n' | sudo tee /etc/apparmor.d/bwrap && "
    "sudo apparmor_parser -r /etc/apparmor.d/bwrap   (or, system-wide and weaker: "
    "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)"
)


class Finding(NamedTuple):
    name: str
    status: str
    detail: str
    fix: str = ""


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def userns_problems(root: str = "/") -> list[Finding]:
    """Host settings that stop unprivileged user namespaces, each with its fix.

    ``root`` lets tests point it at a simulated /proc/sys (e.g. Ubuntu's AppArmor switch).
    """
    found = []
    sysctl = os.path.join(root, "proc/sys")
    if _read_int(f"{sysctl}/kernel/unprivileged_userns_clone") == 0:
        found.append(Finding(
            "user namespaces", FAIL, "kernel.unprivileged_userns_clone is 0",
            "sudo sysctl -w kernel.unprivileged_userns_clone=1 (persist it in /etc/sysctl.d/)",
        ))
    if _read_int(f"{sysctl}/user/max_user_namespaces") == 0:
        found.append(Finding(
            "user namespaces", FAIL, "user.max_user_namespaces is 0",
            "sudo sysctl -w user.max_user_namespaces=15000 (persist it in /etc/sysctl.d/)",
        ))
    if _read_int(f"{sysctl}/kernel/apparmor_restrict_unprivileged_userns") == 1:
        found.append(Finding(
            "AppArmor", FAIL, "kernel.apparmor_restrict_unprivileged_userns is 1", APPARMOR_FIX
        ))
    return found


def explain_start_failure(bwrap: str, status: int) -> tuple[str, str]:
    """Message and fix for a bwrap that exited before starting the command."""
    problems = userns_problems()
    if problems:
        first = problems[0]
        return (f"the sandbox could not start: {first.detail}", first.fix)
    return (
        f"the sandbox could not start: {bwrap} exited with status {status} before running "
        "the command (its message is above)",
        "run `agent-sandbox --check` for a report of what this host can enforce",
    )
