"""What the launcher says: one start line, quiet with -q, colour only on a terminal."""

from __future__ import annotations

from pathlib import Path

import pexpect
import pytest

from agent_sandbox._policy.identity import ROOT_COMMAND_UID
from agent_sandbox._policy.limits import default_memory
from agent_sandbox._run.cgroup import cgroup_way
from agent_sandbox._say import human_size
from tests.conftest import CLI, IS_ROOT, Env, run_cli

CGROUP_UNAVAILABLE = cgroup_way({}).why_not

pytestmark = pytest.mark.integration


def test_one_start_line_and_quiet(project: Path, env: Env) -> None:
    done = run_cli(["--name", "w", "--", "true"], cwd=project, env=env.vars)
    assert done.returncode == 0, done.stderr
    start = [line for line in done.stderr.splitlines() if line.startswith("agent-sandbox: w:")]
    who = (f"; as host uid {ROOT_COMMAND_UID} (called as root; writable paths idmapped)"
           if IS_ROOT else "")
    memory = "" if CGROUP_UNAVAILABLE else f"memory {human_size(default_memory())}, "
    assert start == [f"agent-sandbox: w: {project} read-write; network none; "
                     f"caps {memory}4096 processes, /tmp 2G; "
                     f"log and state in ~/.local/state/agent-sandbox{who}"]
    filtered = run_cli(["--allow", "a.example", "--allow", "b.example", "--", "true"],
                       cwd=project, env=env.vars)
    assert "network filtered (2 hosts);" in filtered.stderr
    quiet = run_cli(["-q", "--", "true"], cwd=project, env=env.vars)
    assert quiet.returncode == 0 and quiet.stderr == ""


@pytest.mark.parametrize("extra, coloured", [({}, True), ({"NO_COLOR": "1"}, False),
                                             ({"TERM": "dumb"}, False)])
def test_colour_on_a_terminal_only(project: Path, env: Env, extra: dict[str, str],
                                   coloured: bool) -> None:
    out, status = pexpect.run(CLI[0], args=[*CLI[1:], "--bogus"], cwd=str(project),
                              env=env.with_(**extra), withexitstatus=True, encoding="utf-8")
    assert status == 2
    assert ("\033[1;31merror:\033[0m" in out) is coloured, repr(out)
    assert "unrecognized arguments: --bogus" in out
    piped = run_cli(["--bogus"], cwd=project, env=env.vars)  # not a terminal: plain
    assert piped.stderr.startswith("agent-sandbox: error: ") and "\033" not in piped.stderr
