"""Host diagnosis against simulated /proc/sys trees (no AppArmor on the CI machine)."""

from __future__ import annotations

from pathlib import Path

from agent_sandbox._run.diagnose import FAIL, explain_start_failure, userns_problems


def _sysctl(root: Path, name: str, value: str) -> None:
    path = root / "proc/sys" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")


def test_healthy_host_has_no_problems(tmp_path: Path) -> None:
    _sysctl(tmp_path, "user/max_user_namespaces", "15000")
    _sysctl(tmp_path, "kernel/apparmor_restrict_unprivileged_userns", "0")
    assert userns_problems(str(tmp_path)) == []


def test_ubuntu_apparmor_restriction_gets_the_profile_fix(tmp_path: Path) -> None:
    _sysctl(tmp_path, "kernel/apparmor_restrict_unprivileged_userns", "1")
    [problem] = userns_problems(str(tmp_path))
    assert problem.status == FAIL
    assert "apparmor_restrict_unprivileged_userns is 1" in problem.detail
    assert "/etc/apparmor.d/bwrap" in problem.fix and "userns," in problem.fix
    assert "apparmor_parser -r" in problem.fix


def test_disabled_user_namespaces_get_the_sysctl_fix(tmp_path: Path) -> None:
    _sysctl(tmp_path, "kernel/unprivileged_userns_clone", "0")
    _sysctl(tmp_path, "user/max_user_namespaces", "0")
    fixes = [p.fix for p in userns_problems(str(tmp_path))]
    assert any("kernel.unprivileged_userns_clone=1" in f for f in fixes)
    assert any("user.max_user_namespaces=15000" in f for f in fixes)


def test_start_failure_without_a_known_cause_points_to_check() -> None:
    message, fix = explain_start_failure("/usr/bin/bwrap", 1)
    assert "exited with status 1" in message and "--check" in fix
