"""The built-in value of each configuration key, in words: for the generated reference
and ``agent-sandbox config``."""

from __future__ import annotations

from agent_sandbox._say import human_size


def defaults() -> dict[str, str]:
    """The built-in value of each key that has one other than unset, empty or false."""
    from agent_sandbox._plan.protect import GIT_PROTECTED
    from agent_sandbox._policy.limits import (
        DEFAULT_FSIZE,
        DEFAULT_NOFILE,
        DEFAULT_NPROC,
        DEFAULT_PIDS,
    )
    from agent_sandbox._policy.protected import PROTECTED
    from agent_sandbox._policy.values import (
        DEFAULT_AGENT_HOME_SIZE,
        DEFAULT_HOME_SIZE,
        DEFAULT_TMP_SIZE,
    )

    return {"net": "none; filtered when an allow-list is given", "terminal": "filtered",
            "memory": "half the RAM where cgroup v2 is usable (else not capped, said at "
                      "launch); none: no cap",
            "pids": f"{DEFAULT_PIDS} where cgroup v2 is usable; none: no cap",
            **dict.fromkeys(("cpus", "timeout"), "no limit"),
            "nofile": str(DEFAULT_NOFILE), "nproc": str(DEFAULT_NPROC),
            "fsize": human_size(DEFAULT_FSIZE),
            "home_size": human_size(DEFAULT_HOME_SIZE), "show_command_install": "true",
            "agent_home_size": human_size(DEFAULT_AGENT_HOME_SIZE),
            "tmp_size": human_size(DEFAULT_TMP_SIZE),
            "protect": "empty; protected anyway: " + ", ".join(f"`{p}`" for p in PROTECTED)
                       + "; in git directories " + ", ".join(f"`{p}`" for p in GIT_PROTECTED)}
