"""The confinement tests can fail: with one defence taken out of the real plan, the same
attack succeeds. Each case runs bwrap directly with the launcher's plan minus (or with a
weakened) operation, so a regression that drops that operation would be caught."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent_sandbox._bwrap import find_bwrap
from agent_sandbox._host import current_identity, probe_layout
from agent_sandbox._plan import SECCOMP_FD, WORKDIR, Op, Plan, Section, build_plan
from agent_sandbox._request import build_policy, gather_host_view
from agent_sandbox._seccomp_cache import seccomp_program
from tests.conftest import SECRET, Env, sandbox_sh

pytestmark = pytest.mark.integration

Mutation = Callable[[Op], tuple[Op, ...]]


def _plan(project: Path, env: Env, script: str) -> Plan:
    os.chdir(project)
    identity = current_identity(env.vars)
    policy = build_policy(command=["sh", "-c", script], project=None, net="none", ro=[],
                          rw=[], hide=[], env=[], identity=identity)
    return build_plan(policy, gather_host_view(identity, probe_layout(), env.vars))


def _run_mutated(plan: Plan, mutate: Mutation, tmp: Path,
                 environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    sections = tuple(
        Section(s.title, tuple(new for op in s.ops for new in mutate(op))) for s in plan.sections
    )
    weakened = plan._replace(sections=sections, starter=())  # no launcher, no start pipe
    workdir = tmp / "workdir"
    workdir.mkdir()
    with seccomp_program(weakened.seccomp) as fd:
        argv = weakened.bwrap_args({WORKDIR: str(workdir), SECCOMP_FD: str(fd)})
        return subprocess.run([find_bwrap(os.environ), *argv], env=environ, pass_fds=(fd,),
                              capture_output=True, text=True, timeout=60, check=False)


def _drop(flag: str) -> Mutation:
    return lambda op: () if op.words[0] == flag else (op,)


@pytest.fixture(autouse=True)
def _keep_cwd() -> Iterator[None]:
    cwd = os.getcwd()
    yield
    os.chdir(cwd)


def test_without_unshare_net_the_host_loopback_is_reached(
    project: Path, env: Env, tmp_path: Path
) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        script = (f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}),"
                  " timeout=3); print(\"connected\")'")
        assert "connected" not in sandbox_sh(script, cwd=project, env=env.vars).stdout
        plan = _plan(project, env, script)
        done = _run_mutated(plan, _drop("--unshare-net"), tmp_path, dict(plan.env))
        assert done.stdout.strip() == "connected", done.stderr


def test_without_unshare_pid_host_processes_are_reached(
    project: Path, env: Env, tmp_path: Path
) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        script = f"kill -0 {sleeper.pid} && echo reached"
        assert "reached" not in sandbox_sh(script, cwd=project, env=env.vars).stdout
        plan = _plan(project, env, script)
        done = _run_mutated(plan, _drop("--unshare-pid"), tmp_path, dict(plan.env))
        assert done.stdout.strip() == "reached", done.stderr
    finally:
        sleeper.kill()
        sleeper.wait()


def test_without_unshare_ipc_host_shared_memory_is_seen(
    project: Path, env: Env, tmp_path: Path
) -> None:
    shm_id = subprocess.run(["ipcmk", "-M", "4096"], capture_output=True, text=True,
                            check=True).stdout.split()[-1]
    try:
        plan = _plan(project, env, "ipcs -m")
        assert shm_id not in sandbox_sh("ipcs -m", cwd=project, env=env.vars).stdout.split()
        done = _run_mutated(plan, _drop("--unshare-ipc"), tmp_path, dict(plan.env))
        assert shm_id in done.stdout.split(), done.stderr
    finally:
        subprocess.run(["ipcrm", "-m", shm_id], check=True)


def test_with_home_bound_instead_of_tmpfs_the_keys_are_read(
    project: Path, env: Env, tmp_path: Path
) -> None:
    script = "cat ~/.ssh/id_ed25519"
    assert SECRET not in sandbox_sh(script, cwd=project, env=env.vars).stdout
    home = str(env.home)

    def bind_home(op: Op) -> tuple[Op, ...]:
        if op.words[-2:] == ("--tmpfs", home):
            return (Op(("--ro-bind", home, home)),)
        return (op,)

    plan = _plan(project, env, script)
    done = _run_mutated(plan, bind_home, tmp_path, dict(plan.env))
    assert SECRET in done.stdout, done.stderr


def test_with_the_host_environment_the_planted_secret_is_seen(
    project: Path, env: Env, tmp_path: Path
) -> None:
    planted = env.with_(GITHUB_TOKEN=SECRET)
    assert SECRET not in sandbox_sh("env", cwd=project, env=planted).stdout
    plan = _plan(project, env, "env")
    done = _run_mutated(plan, lambda op: (op,), tmp_path, planted)
    assert SECRET in done.stdout, done.stderr
