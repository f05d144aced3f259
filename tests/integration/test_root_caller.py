"""A root caller's command is never host root (the root caller issue).

Only root can try these (.ci/run runs the suite as root and as a user): real root's command
runs as host uid ROOT_COMMAND_UID with the project idmapped; under sudo the launcher becomes
the user who typed it; where idmapped mounts are impossible it refuses with a fix that works
when pasted.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_sandbox._policy.identity import ROOT_COMMAND_UID
from agent_sandbox._seccomp.rules import default_rules
from tests.conftest import CLI, IS_ROOT, SECRET, Env, launched, run_cli, sandbox_sh
from tests.plans import plan_for, run_plan

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not IS_ROOT, reason="needs a root caller; .ci/run runs the "
                                 "suite as root, then as a user")]

TEST_USER = "agent-sandbox-t"


def _idmapped_mounts() -> int:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return sum("idmapped" in line for line in f)


def _processes_with(marker: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if marker.encode() in f.read().split(b"\0"):
                        found.append(int(name))
            except OSError:
                continue
    return found


def _uids(pid: int) -> list[int]:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        line = next(x for x in f if x.startswith("Uid:"))
    return [int(x) for x in line.split()[1:]]


def _wait_for(predicate: object, what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def root_project() -> Iterator[Path]:
    """A root-owned project under a directory only root may enter (/root is 0700)."""
    assert os.stat("/root").st_mode & 0o077 == 0, "/root is expected to be private"
    top = Path("/root") / f"agent-sandbox-test-{os.urandom(4).hex()}"
    project = top / "src" / "x"
    project.mkdir(parents=True)
    (project / "a.txt").write_text("a\n")
    try:
        yield project
    finally:
        shutil.rmtree(top)


def test_the_command_runs_as_an_unprivileged_host_uid_on_a_root_owned_project(
    root_project: Path, env: Env
) -> None:
    before = _idmapped_mounts()
    marker = f"{time.time():.6f}"
    with launched(["--", "sh", "-c", f"id -u > uid; echo b >> a.txt; echo new > new.txt; "
                   f"exec sleep {marker}"], cwd=root_project, env=env.vars) as proc:
        _wait_for(lambda: _processes_with(marker), "the command did not start")
        pid = _processes_with(marker)[0]
        # Checked from outside: every uid of the command is the unprivileged one.
        assert _uids(pid) == [ROOT_COMMAND_UID] * 4
        # The idmapped clones live only in the launcher's private mount namespace.
        assert _idmapped_mounts() == before
        os.kill(pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM, proc.stderr
        assert proc.stderr is not None
        assert f"as host uid {ROOT_COMMAND_UID}" in proc.stderr.read()
    assert (root_project / "uid").read_text().strip() == "65534"
    assert (root_project / "a.txt").read_text() == "a\nb\n"
    for name in ("new.txt", "uid", "a.txt"):  # files keep, and get, the project's owner
        st = (root_project / name).stat()
        assert (st.st_uid, st.st_gid) == (0, 0), name


def test_git_commit_works_in_a_root_owned_project(root_project: Path, env: Env) -> None:
    subprocess.run(["git", "init", "-q"], cwd=root_project, check=True)
    done = sandbox_sh("git add -A && git commit -qm one && git log --format=%s",
                      cwd=root_project, env=env.vars)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "one"
    assert {p.stat().st_uid for p in (root_project / ".git").rglob("*")} == {0}
    host = subprocess.run(["git", "status", "--porcelain"], cwd=root_project,
                          capture_output=True, text=True, check=True)
    assert host.stdout == ""


def test_nothing_stays_mounted_after_the_launcher_is_killed(
    root_project: Path, env: Env
) -> None:
    before = _idmapped_mounts()
    marker = f"{time.time():.6f}"
    with launched(["--", "sleep", marker], cwd=root_project, env=env.vars) as proc:
        _wait_for(lambda: _processes_with(marker), "the command did not start")
        proc.kill()
        proc.wait()
    _wait_for(lambda: not _processes_with(marker), "the command outlived its launcher")
    assert _idmapped_mounts() == before
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        assert str(root_project) not in f.read()


def test_a_root_only_file_in_a_shown_system_dir_is_unreadable(
    project: Path, env: Env
) -> None:
    secret = Path("/etc") / f"agent-sandbox-test-{os.urandom(4).hex()}.conf"
    secret.write_text(f"PrivateKey = {SECRET}\n")
    secret.chmod(0o600)
    try:
        done = sandbox_sh(f"cat {secret}", cwd=project, env=env.vars)
        assert SECRET not in done.stdout
        assert "Permission denied" in done.stderr
        # The control: the command that keeps host uid 0 reads it.
        done = sandbox_sh(f"cat {secret}", cwd=project, env=env.vars,
                          extra=["--root-stays-root"])
        assert SECRET in done.stdout, done.stderr
        assert "warning: --root-stays-root" in done.stderr
    finally:
        secret.unlink()


def test_no_setuid_file_can_be_planted_for_the_host(
    root_project: Path, env: Env, tmp_path: Path
) -> None:
    # Defence: seccomp refuses set-id mode bits to a root caller's command (what it creates
    # is root's on disk). Tried by chmod and by open(O_CREAT).
    script = ("cp /bin/true t; chmod 4755 t; chmod 2755 t; "
              "python3 -c 'import os; os.open(\"u\", os.O_CREAT | os.O_WRONLY, 0o6755)'; "
              "chmod 755 t && echo PLAIN")
    done = sandbox_sh(script, cwd=root_project, env=env.vars)
    assert done.stdout.strip() == "PLAIN", done.stderr
    assert (root_project / "t").stat().st_mode & 0o6000 == 0
    assert not (root_project / "u").exists()
    sandbox_sh("cp /bin/true s; chmod 4755 s", cwd=root_project, env=env.vars,
               extra=["--root-stays-root"])
    assert (root_project / "s").stat().st_mode & 0o4000 == 0
    # The control: the same plan with the filter of an ordinary caller plants one.
    plan = plan_for(root_project, env.vars, ["sh", "-c", "cp /bin/true v; chmod 4755 v"])
    run_plan(plan, tmp_path, rules=default_rules())
    assert (root_project / "v").stat().st_mode & 0o4000


@pytest.fixture(scope="module")
def test_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", TEST_USER],
                       check=True)
        return pwd.getpwnam(TEST_USER)


def test_under_sudo_the_launcher_becomes_the_invoking_user(
    test_user: pwd.struct_passwd, env: Env
) -> None:
    home = Path(test_user.pw_dir)
    project = home / f"proj-{os.urandom(4).hex()}"
    project.mkdir()
    os.chown(project, test_user.pw_uid, test_user.pw_gid)
    try:
        # sudo's own variables: root's HOME and places, and who typed it.
        done = sandbox_sh("id -u; echo $HOME; echo x > made", cwd=project, env=env.with_(
            SUDO_UID=str(test_user.pw_uid), SUDO_GID=str(test_user.pw_gid),
            SUDO_USER=test_user.pw_name, HOME="/root", XDG_CONFIG_HOME="/root/.config"))
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [str(test_user.pw_uid), str(home)]
        assert f"as {test_user.pw_name} (from sudo)" in done.stderr
        st = (project / "made").stat()
        assert (st.st_uid, st.st_gid) == (test_user.pw_uid, test_user.pw_gid)
        # Its state went to the user's home, not root's.
        assert (home / ".local" / "state" / "agent-sandbox").is_dir()
    finally:
        shutil.rmtree(project)


def test_without_idmapped_mounts_the_launch_is_refused_and_the_fix_works(
    tmp_path: Path, env: Env
) -> None:
    # ramfs has no idmapped mounts: a real kernel refusal of mount_setattr, in a private
    # mount namespace of the test's own.
    bindir = os.path.dirname(sys.executable)
    script = f"""
        set -u
        mount -t ramfs ramfs {tmp_path} && mkdir {tmp_path}/p && cd {tmp_path}/p || exit 99
        {" ".join(CLI)} -- sh -c 'echo ran > out' 2> err
        echo "status $?"; cat err; test -e out && echo "RAN BEFORE THE FIX"
        fix=$(sed -n 's/^agent-sandbox: fix: .*(weaker): //p' err)
        echo "pasting: $fix"
        PATH={bindir}:$PATH eval "$fix" && cat out
    """
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], env=env.vars,
                          capture_output=True, text=True, timeout=120, check=False)
    out = done.stdout
    assert "status 125" in out, out + done.stderr
    assert "cannot do idmapped mounts" in out
    assert "RAN BEFORE THE FIX" not in out
    assert "pasting: agent-sandbox --root-stays-root -- sh -c 'echo ran > out'" in out
    assert out.rstrip().endswith("ran"), out


def test_check_reports_what_a_root_caller_gets(project: Path, env: Env) -> None:
    done = run_cli(["--check"], cwd=project, env=env.vars)
    line = next(x for x in done.stdout.splitlines() if "root caller" in x)
    assert f"runs as host uid {ROOT_COMMAND_UID}" in line and line.split()[0] == "ok", line
