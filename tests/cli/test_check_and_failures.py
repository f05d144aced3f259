"""--check, and refusing to run (exit 125, with the fix) when the sandbox cannot start."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent_sandbox._run.cgroup import cgroup_way
from tests.conftest import CLI, Env, run_cli

pytestmark = pytest.mark.integration


def test_check_reports_this_host_as_json(project: Path, env: Env) -> None:
    done = run_cli(["--check", "--json"], cwd=project, env=env.vars)
    assert done.returncode == 0, done.stdout
    report = json.loads(done.stdout)
    assert report["ok"] is True
    names = {c["name"]: c for c in report["checks"]}
    for name in ("bwrap", "bwrap options", "namespaces", "AppArmor", "libseccomp",
                 "seccomp filter", "layout", "kernel", "cgroup v2"):
        assert name in names
    assert names["namespaces"]["status"] == "ok"
    assert names["seccomp filter"]["status"] == "ok"


def test_check_says_which_way_cgroup_limits_take(project: Path, env: Env) -> None:
    """A delegated cgroup, else a systemd scope, else why neither (and the fix)."""
    way = cgroup_way(env.vars)
    done = run_cli(["--check", "--json"], cwd=project, env=env.vars)
    [found] = [c for c in json.loads(done.stdout)["checks"] if c["name"] == "cgroup v2"]
    if way.parent:
        assert found["status"] == "ok" and f"delegated {way.parent}; " in found["detail"]
    elif way.systemd_run:
        assert found["status"] == "ok" and "a systemd-run --user scope" in found["detail"]
    else:
        assert found["status"] == "info" and found["fix"]
        assert found["detail"].endswith(f"(and memory is not capped by default): "
                                        f"{way.why_not}")


@pytest.mark.parametrize("version, status", [("2.8.0", "warn"), ("2.24.10", "ok")])
def test_check_reports_a_nix_too_old_for_nixpkgs_in_a_nix_shell(
        project: Path, env: Env, tmp_path: Path, version: str, status: str) -> None:
    bindir = tmp_path / "fake-nix"
    bindir.mkdir()
    (bindir / "nix").write_text(f"#!/bin/sh\necho 'nix (Nix) {version}'\n")
    (bindir / "nix").chmod(0o755)
    environ = env.with_(IN_NIX_SHELL="impure", PATH=f"{bindir}:{env.vars['PATH']}")
    done = run_cli(["--check", "--json"], cwd=project, env=environ)
    [found] = [c for c in json.loads(done.stdout)["checks"] if c["name"] == "nix"]
    assert found["status"] == status, found
    assert version in found["detail"] and ">= 2.18" in found["detail"]
    # Outside Nix shells (and not run from the store), nothing is said about nix.
    plain = run_cli(["--check", "--json"], cwd=project, env=env.vars)
    assert "nix" not in [c["name"] for c in json.loads(plain.stdout)["checks"]]


def test_check_table(project: Path, env: Env) -> None:
    done = run_cli(["--check"], cwd=project, env=env.vars)
    assert done.returncode == 0
    assert "verdict: the default policy can be enforced here" in done.stdout
    assert "\x1b[" not in done.stdout  # no colour when not a terminal


def test_check_fails_without_bwrap(project: Path, env: Env) -> None:
    done = run_cli(["--check", "--json"], cwd=project,
                   env=env.with_(AGENT_SANDBOX_BWRAP="/nonexistent/bwrap"))
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["ok"] is False
    [bwrap] = [c for c in report["checks"] if c["name"] == "bwrap"]
    assert bwrap["status"] == "fail" and "apt-get install bubblewrap" in bwrap["fix"]


def test_launch_without_bwrap_refuses_with_the_fix(project: Path, env: Env) -> None:
    done = run_cli(["--", "true"], cwd=project,
                   env=env.with_(AGENT_SANDBOX_BWRAP="/nonexistent/bwrap"))
    assert done.returncode == 125
    assert "agent-sandbox: fix: install bubblewrap" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bwrap_that_fails_to_start_gives_125_and_never_runs_the_command(
    project: Path, env: Env
) -> None:
    fake = project / "failing-bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: Creating new namespace failed' >&2\nexit 1\n")
    fake.chmod(0o755)
    done = run_cli(["--", "touch", "ran"], cwd=project,
                   env=env.with_(AGENT_SANDBOX_BWRAP=str(fake)))
    assert done.returncode == 125
    assert "the sandbox could not start" in done.stderr
    assert "bwrap: Creating new namespace failed" in done.stderr
    assert not (project / "ran").exists()
    assert env.workdirs() == []


def test_no_user_namespaces_refuses_with_the_exact_fix(project: Path, env: Env) -> None:
    # Real, not simulated: in a user namespace of its own whose user.max_user_namespaces is
    # 0, the kernel refuses bwrap's namespaces (works as root and as a user).
    script = ('echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"')
    run = ["unshare", "-rU", "sh", "-c", script, "sh", *CLI]
    # Named explicitly: seen from a user namespace the caller made, root's files belong to
    # the unmapped overflow uid, which the ownership check rightly does not trust.
    environ = env.with_(AGENT_SANDBOX_BWRAP="/usr/bin/bwrap")
    done = subprocess.run([*run, "--", "touch", "ran"], cwd=project, env=environ,
                          capture_output=True, text=True, check=False)
    check = subprocess.run([*run, "--check"], cwd=project, env=environ, capture_output=True,
                           text=True, check=False)
    assert done.returncode == 125, done.stderr
    assert "user.max_user_namespaces is 0" in done.stderr
    assert "sudo sysctl -w user.max_user_namespaces=15000" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (project / "ran").exists()
    assert check.returncode == 1 and "can NOT be enforced" in check.stdout
