"""Confinement: each test launches the real sandbox and tries the attack.

Each one fails if its defence is removed (the comment on each names the plan operation it
depends on), and the positive controls in test_positive.py show legitimate work still runs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SECRET, Env, sandbox_sh

pytestmark = pytest.mark.integration


def test_home_secrets_are_invisible(project: Path, env: Env) -> None:
    # Defence: --tmpfs $HOME. The project sits outside $HOME here, the usual case.
    done = sandbox_sh(
        "cat ~/.ssh/id_ed25519 ~/.aws/credentials 2>&1; grep -r s3cr3t ~ 2>&1; "
        "echo LISTING; ls -A ~",
        cwd=project, env=env.vars,
    )
    assert SECRET not in done.stdout
    assert "No such file" in done.stdout
    assert done.stdout.split("LISTING")[1].split() == [".gitconfig"]


def test_home_secrets_are_invisible_when_the_project_is_inside_home(env: Env) -> None:
    # Defence: the project is bound on top of the empty $HOME, nothing else of $HOME is.
    project = env.home / "src" / "proj"
    project.mkdir(parents=True)
    done = sandbox_sh("ls -A ~; ls -A ~/src; cat ~/.ssh/id_ed25519 2>&1", cwd=project,
                      env=env.vars)
    assert done.returncode != 0
    assert SECRET not in done.stdout
    assert done.stdout.split()[:2] == [".gitconfig", "src"]


def test_writes_outside_the_project_do_not_reach_the_host(
    project: Path, env: Env, tmp_path: Path
) -> None:
    # Defence: read-only system binds, tmpfs $HOME, private /tmp, nothing else writable.
    sibling = tmp_path / "sibling"
    sibling.mkdir()
    script = (
        "for f in /usr/pwned /etc/pwned ~/.bashrc ~/pwned /pwned; do "
        "  (echo x > $f) 2>/dev/null && echo wrote:$f; done; "
        f"(echo x > {sibling}/pwned) 2>/dev/null && echo wrote:sibling; true"
    )
    done = sandbox_sh(script, cwd=project, env=env.vars)
    assert done.returncode == 0, done.stderr
    assert (env.home / ".bashrc").read_text() == "echo from-bashrc\n"
    for path in ("/usr/pwned", "/etc/pwned", "/pwned", str(env.home / "pwned"),
                 str(sibling / "pwned")):
        assert not os.path.exists(path), path
    # The system binds refuse writes outright; $HOME writes land in the tmpfs only.
    assert "wrote:/usr/pwned" not in done.stdout and "wrote:/etc/pwned" not in done.stdout


def test_sibling_repos_are_invisible(project: Path, env: Env, tmp_path: Path) -> None:
    # Defence: only the project is bound; its parent directory is not.
    sibling = tmp_path / "other-repo"
    sibling.mkdir()
    (sibling / "code.py").write_text(SECRET)
    done = sandbox_sh(f"cat {sibling}/code.py 2>&1; echo LISTING; ls {tmp_path} 2>&1",
                      cwd=project, env=env.vars)
    assert SECRET not in done.stdout
    assert "No such file" in done.stdout
    # Only the mount points bwrap made on the way to the binds exist, empty but for them.
    assert done.stdout.split("LISTING")[1].split() == ["home", "project"]


@pytest.fixture
def host_tmp_victim() -> Iterator[Path]:
    victim = Path(tempfile.mkdtemp(prefix="agent-sandbox-victim-", dir="/tmp"))
    (victim / "data.txt").write_text(SECRET)
    yield victim
    subprocess.run(["rm", "-rf", "--one-file-system", str(victim)], check=True)


def test_host_tmp_and_run_user_are_invisible(
    project: Path, env: Env, host_tmp_victim: Path
) -> None:
    # Defence: /tmp is a fresh work dir, /run an empty tmpfs.
    done = sandbox_sh(
        f"cat {host_tmp_victim}/data.txt 2>&1; ls -A /run; ls /run/user 2>&1; "
        "ls /tmp/.X11-unix 2>&1",
        cwd=project, env=env.vars,
    )
    assert SECRET not in done.stdout
    assert "No such file" in done.stdout
    assert "dbus" not in done.stdout and "docker.sock" not in done.stdout


def test_no_host_devices_or_shared_memory(project: Path, env: Env) -> None:
    # Defence: --dev /dev (a minimal /dev with its own empty /dev/shm).
    marker = f"/dev/shm/agent-sandbox-{os.getpid()}"
    Path(marker).write_text(SECRET) if os.path.isdir("/dev/shm") else None
    try:
        done = sandbox_sh(f"ls /dev; cat {marker} 2>&1", cwd=project, env=env.vars)
    finally:
        if os.path.exists(marker):
            os.unlink(marker)
    devices = set(done.stdout.split())
    assert SECRET not in done.stdout
    assert not devices & {"kvm", "dri", "sda", "vda", "nvme0", "mem", "kmsg", "fuse"}
    assert {"null", "zero", "urandom", "tty", "pts", "shm"} <= devices


def test_root_only_files_are_masked(project: Path, env: Env) -> None:
    # Defence: /etc/shadow (and friends) are covered; a root caller would otherwise read them.
    if not os.path.exists("/etc/shadow"):
        pytest.skip("this host has no /etc/shadow to mask")
    done = sandbox_sh("cat /etc/shadow 2>&1 | head -c 200", cwd=project, env=env.vars)
    assert "root:" not in done.stdout


def test_host_pids_are_unreachable(project: Path, env: Env) -> None:
    # Defence: --unshare-pid with a fresh /proc.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        done = sandbox_sh(
            f"kill -0 {sleeper.pid} 2>&1 && echo reached; "
            f"cat /proc/{sleeper.pid}/environ 2>&1 | head -c 100; echo; "
            "echo COUNT; ls /proc | grep -c '^[0-9]'",
            cwd=project, env=env.vars,
        )
        assert "reached" not in done.stdout
        assert "No such process" in done.stdout
        visible_pids = int(done.stdout.split("COUNT")[1])
        assert visible_pids < 10, done.stdout
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def _connect_inside(project: Path, env: Env, family: str, address: str) -> str:
    """The exception name (or "connected") of a connect() to ``address`` from inside."""
    done = sandbox_sh(
        "python3 -c 'import socket\n"
        f"s = socket.socket(socket.{family})\n"
        "try:\n"
        f"    s.connect({address}); print(\"connected\")\n"
        "except OSError as e: print(type(e).__name__)'",
        cwd=project, env=env.vars,
    )
    return done.stdout.strip() or done.stderr


def test_host_loopback_listener_is_unreachable(project: Path, env: Env) -> None:
    # Defence: --unshare-net (own loopback).
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0)
        port = server.getsockname()[1]
        got = _connect_inside(project, env, "AF_INET", f'(\"127.0.0.1\", {port})')
        assert got == "ConnectionRefusedError"
        with pytest.raises(BlockingIOError):
            server.accept()


def test_host_abstract_unix_socket_is_unreachable(project: Path, env: Env) -> None:
    # Defence: --unshare-net (abstract UNIX sockets belong to the network namespace).
    name = f"agent-sandbox-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind("\0" + name)
        server.listen()
        server.settimeout(0)
        got = _connect_inside(project, env, "AF_UNIX", f'\"\\0{name}\"')
        assert got == "ConnectionRefusedError"
        with pytest.raises(BlockingIOError):
            server.accept()


def test_no_route_to_the_outside(project: Path, env: Env) -> None:
    # Defence: --unshare-net. 203.0.113.1 (TEST-NET-3) never leaves: there is no route.
    done = sandbox_sh(
        "python3 -c 'import socket\n"
        "try:\n"
        "    socket.create_connection((\"203.0.113.1\", 443), timeout=3)\n"
        "except OSError as e: print(e.errno)'; cat /sys/class/net/*/operstate 2>/dev/null; "
        "ls /sys/class/net 2>/dev/null",
        cwd=project, env=env.vars,
    )
    assert done.stdout.split()[0] == "101"  # ENETUNREACH


def test_sysv_ipc_is_isolated(project: Path, env: Env) -> None:
    # Defence: --unshare-ipc.
    created = subprocess.run(["ipcmk", "-M", "4096"], capture_output=True, text=True,
                             check=True)
    shm_id = created.stdout.split()[-1]
    try:
        done = sandbox_sh("ipcs -m", cwd=project, env=env.vars)
        assert done.returncode == 0, done.stderr
        assert shm_id not in done.stdout.split()
    finally:
        subprocess.run(["ipcrm", "-m", shm_id], check=True)


def test_planted_env_secrets_are_absent(project: Path, env: Env) -> None:
    # Defence: the environment is an allow-list.
    planted = {
        "AWS_SECRET_ACCESS_KEY": SECRET, "GITHUB_TOKEN": SECRET, "MY_API_TOKEN": SECRET,
        "SSH_AUTH_SOCK": "/run/user/1000/ssh", "DBUS_SESSION_BUS_ADDRESS": "unix:path=/x",
        "LD_PRELOAD": "/tmp/evil.so", "NODE_OPTIONS": "--require /tmp/evil.js",
        "PYTHONSTARTUP": "/tmp/evil.py", "BASH_ENV": "/tmp/evil.sh",
        "GIT_CONFIG_PARAMETERS": "'core.hooksPath=/tmp'", "ANTHROPIC_API_KEY": SECRET,
    }
    done = sandbox_sh("env", cwd=project, env=env.with_(**planted))
    assert done.returncode == 0, done.stderr
    names = {line.split("=", 1)[0] for line in done.stdout.splitlines()}
    assert SECRET not in done.stdout
    assert not names & set(planted)
    assert names <= {"HOME", "USER", "LOGNAME", "SHELL", "PATH", "TMPDIR", "LANG", "TERM",
                     "AGENT_SANDBOX_ACTIVE", "PWD", "SHLVL", "_", "OLDPWD",
                     # set by the sandbox: git ignores the protected-file placeholders,
                     # and says why SSH pushes fail
                     "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0",
                     "GIT_SSH_COMMAND"}


def test_no_capabilities_and_no_new_privileges(project: Path, env: Env) -> None:
    # Defence: --cap-drop ALL, a non-zero uid inside, bwrap's PR_SET_NO_NEW_PRIVS.
    done = sandbox_sh("grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs)' /proc/self/status",
                      cwd=project, env=env.vars)
    fields = dict(line.split(":\t") for line in done.stdout.splitlines())
    assert fields["CapEff"].strip() == "0000000000000000"
    assert fields["CapPrm"].strip() == "0000000000000000"
    assert fields["NoNewPrivs"].strip() == "1"


def test_setuid_binaries_do_not_raise_privileges(project: Path, env: Env) -> None:
    # Defence: no_new_privs and the user namespace: a setuid bit grants nothing.
    done = sandbox_sh("cp /bin/sh ./suid-sh && chmod u+s ./suid-sh; ./suid-sh -p -c 'id -u'",
                      cwd=project, env=env.vars)
    inside = str(65534 if os.getuid() == 0 else os.getuid())
    assert done.stdout.strip() == inside


def test_a_broad_ro_shows_no_secret_under_it_and_a_broad_rw_cannot_widen_the_next_sandbox(
        tmp_path: Path, env: Env) -> None:
    """``--ro ~/.local`` for its tools must not show the keyrings or every agent's login
    under it, and ``--rw ~/.config`` must not let the command write agent-sandbox's own
    configuration (which would widen the next launch). Defences: the hides and the
    read-only bind of ``_secrets_beneath`` and ``_kept_read_only``. Controls: the rest of
    those trees is there (and writable for --rw), and a secret named itself is shown."""
    home = env.home
    keyring = home / ".local/share/keyrings/login.keyring"
    login = home / ".local/share/agent-sandbox/logins/claude/.claude/.credentials.json"
    past_log = home / ".local/state/agent-sandbox/decisions.jsonl"  # other sessions' hosts
    for secret in (keyring, login, past_log):
        secret.parent.mkdir(parents=True)
        secret.write_text(SECRET)
    (home / ".local/bin").mkdir(parents=True)
    (home / ".local/bin/tool").write_text("tool")
    config = home / ".config/agent-sandbox/config.toml"
    config.parent.mkdir(parents=True)
    config.write_text('memory = "none"\n')
    # The project under the --rw tree: it stays the project, read-write.
    project = home / "src/proj"
    project.mkdir(parents=True)
    script = ("cat ~/.local/bin/tool; echo; grep -rs s3cr3t ~/.local; "
              "echo 'net = \"host\"' >> ~/.config/agent-sandbox/config.toml || echo cfg-ro; "
              "touch ~/.config/other && echo other-rw; touch ok && echo project-rw")
    done = sandbox_sh(script, cwd=project, env=env.vars,
                      extra=["--ro", str(home / ".local"), "--rw", str(home / ".config"),
                             "--ro", str(home / "src")])
    assert done.stdout.split() == ["tool", "cfg-ro", "other-rw", "project-rw"], \
        done.stdout + done.stderr
    assert config.read_text() == 'memory = "none"\n'
    named = sandbox_sh("cat ~/.local/share/keyrings/login.keyring", cwd=project, env=env.vars,
                       extra=["--ro", str(keyring.parent)])
    assert named.stdout == SECRET, named.stderr
