"""/proc as container runtimes leave it: no sysctl is writable, kernel internals are masked.

Run as root and as a user (.ci/run does both). The write tried is always a same-value write
of a harmless sysctl: no global value is ever changed, whatever the outcome.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_sandbox._plan.build import PROC_MASKED, Op
from tests.conftest import IS_ROOT, Env, sandbox_sh
from tests.plans import plan_for, run_plan

pytestmark = pytest.mark.integration

SYSCTL = "/proc/sys/vm/overcommit_ratio"
SAME_VALUE_WRITE = f"v=$(cat {SYSCTL}) && echo \"$v\" > {SYSCTL} && echo WROTE"


def test_no_sysctl_is_writable_and_the_sandbox_network_sysctls_stay_readable(
    project: Path, env: Env
) -> None:
    # Defence: --ro-bind /proc/sys /proc/sys.
    done = sandbox_sh(f"{SAME_VALUE_WRITE}; cat /proc/sys/net/ipv4/ip_forward; "
                      "ls /proc/sys/net/ipv4/conf", cwd=project, env=env.vars)
    assert "WROTE" not in done.stdout
    assert "Read-only file system" in done.stderr, done.stderr
    # Positive control: reading works, and the network sysctls are the sandbox's own
    # namespace's (only lo in it).
    assert done.stdout.split()[1:] == ["all", "default", "lo"], done.stdout


def test_sysrq_trigger_cannot_be_opened_for_writing(project: Path, env: Env) -> None:
    # Defence: --ro-bind /proc/sysrq-trigger (where the kernel has one). Opening for writing
    # writes nothing, and fails on a read-only mount before any write could happen.
    script = ("if [ -e /proc/sysrq-trigger ]; then "
              "python3 -c 'import os; os.close(os.open(\"/proc/sysrq-trigger\", os.O_WRONLY))'"
              " && echo OPENED; else echo ABSENT; fi")
    done = sandbox_sh(script, cwd=project, env=env.vars)
    assert "OPENED" not in done.stdout, done.stderr
    if os.path.exists("/proc/sysrq-trigger"):
        assert "Read-only file system" in done.stderr, done.stderr
    else:
        assert done.stdout.strip() == "ABSENT"


def test_masked_kernel_files_read_empty(project: Path, env: Env) -> None:
    # Defence: --dev-bind /dev/null over each file, an empty read-only tmpfs over each dir.
    present = [p for p in PROC_MASKED if os.path.exists(p)]
    assert present, "this kernel has none of the masked /proc entries"
    script = "; ".join(
        f"echo {p}: $(ls -A {p} | wc -l)" if os.path.isdir(p) else f"echo {p}: $(wc -c < {p})"
        for p in present)
    done = sandbox_sh(script, cwd=project, env=env.vars)
    assert done.stdout.splitlines() == [f"{p}: 0" for p in present], done.stderr


@pytest.mark.skipif(not IS_ROOT, reason="--root-stays-root is for root callers; .ci/run runs "
                    "the suite as root too")
def test_a_command_that_stays_host_root_cannot_write_a_sysctl_either(
    project: Path, env: Env
) -> None:
    # The command is host uid 0 to permission checks here: only the read-only bind holds.
    done = sandbox_sh(SAME_VALUE_WRITE, cwd=project, env=env.vars,
                      extra=["--root-stays-root"])
    assert "WROTE" not in done.stdout
    assert "Read-only file system" in done.stderr, done.stderr


@pytest.mark.skipif(not IS_ROOT, reason="only host uid 0 passes /proc/sys's permission check "
                    "without the read-only bind; .ci/run runs the suite as root too")
def test_without_the_read_only_proc_sys_a_root_caller_writes_a_sysctl(
    project: Path, env: Env, tmp_path: Path
) -> None:
    # The control: the launcher's plan for a root caller, with bwrap started directly as
    # root (the command's uid 65534 maps to host uid 0), minus the /proc operations.
    def without_proc(op: Op) -> tuple[Op, ...]:
        return () if any(isinstance(w, str) and w.startswith("/proc/") for w in op.words) \
            else (op,)

    plan = plan_for(project, env.vars, ["sh", "-c", SAME_VALUE_WRITE])
    assert "WROTE" not in run_plan(plan, tmp_path).stdout
    done = run_plan(plan, tmp_path, without_proc)
    assert done.stdout.strip() == "WROTE", done.stderr
