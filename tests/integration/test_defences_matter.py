"""The confinement tests can fail: with one defence taken out of the real plan, the same
attack succeeds. Each case runs bwrap directly with the launcher's plan minus (or with a
weakened) operation, so a regression that drops that operation would be caught."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from agent_sandbox._plan.build import Op
from tests.conftest import SECRET, Env, sandbox_sh
from tests.plans import drop, plan_for, run_plan

pytestmark = pytest.mark.integration

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
        plan = plan_for(project, env.vars, ["sh", "-c", script])
        done = run_plan(plan, tmp_path, drop("--unshare-net"))
        assert done.stdout.strip() == "connected", done.stderr


def test_without_unshare_pid_host_processes_are_reached(
    project: Path, env: Env, tmp_path: Path
) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        script = f"kill -0 {sleeper.pid} && echo reached"
        assert "reached" not in sandbox_sh(script, cwd=project, env=env.vars).stdout
        plan = plan_for(project, env.vars, ["sh", "-c", script])
        done = run_plan(plan, tmp_path, drop("--unshare-pid"))
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
        plan = plan_for(project, env.vars, ["ipcs", "-m"])
        assert shm_id not in sandbox_sh("ipcs -m", cwd=project, env=env.vars).stdout.split()
        done = run_plan(plan, tmp_path, drop("--unshare-ipc"))
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

    plan = plan_for(project, env.vars, ["sh", "-c", script])
    done = run_plan(plan, tmp_path, bind_home)
    assert SECRET in done.stdout, done.stderr


def test_with_the_host_environment_the_planted_secret_is_seen(
    project: Path, env: Env, tmp_path: Path
) -> None:
    planted = env.with_(GITHUB_TOKEN=SECRET)
    assert SECRET not in sandbox_sh("env", cwd=project, env=planted).stdout
    plan = plan_for(project, env.vars, ["env"])
    done = run_plan(plan, tmp_path, environ=planted)
    assert SECRET in done.stdout, done.stderr


def test_without_the_protections_a_git_hook_is_planted(project: Path, env: Env,
                                                       tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    script = "echo evil > .git/hooks/pre-commit && echo PLANTED"
    assert "PLANTED" not in sandbox_sh(script, cwd=project, env=env.vars).stdout
    plan = plan_for(project, env.vars, ["sh", "-c", script])
    done = run_plan(plan, tmp_path, lambda op: () if op.why.startswith("protected") else (op,))
    assert "PLANTED" in done.stdout, done.stderr
    assert (project / ".git" / "hooks" / "pre-commit").read_text() == "evil\n"
