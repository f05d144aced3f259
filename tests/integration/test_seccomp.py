"""The seccomp layer inside the real sandbox: the whole syscall map, the architecture guard,
cross-process access, terminal injection, and real programs still working under the filter."""

from __future__ import annotations

import errno
import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pexpect
import pytest

from agent_sandbox._plan.build import WORKDIR, Placeholder, Section
from agent_sandbox._run.bwrap import find_bwrap
from tests.conftest import (
    CLI,
    IS_ROOT,
    Env,
    assert_nothing_injected,
    outer_shell,
    run_cli,
    sandbox_sh,
)
from tests.integration.syscall_probe import CASES
from tests.plans import drop, plan_for, run_plan

pytestmark = pytest.mark.integration

PROBE = (Path(__file__).parent / "syscall_probe.py").read_text()
E = errno

# With the filter, every case's errno (0: the call succeeded). The "ok_" cases are allowed
# controls and fail exactly as they do without a filter.
EXPECTED = {
    **{case: E.EPERM for case in CASES if not case.startswith("ok_")},
    **{case: E.ENOSYS for case in ("clone3", "open_tree", "move_mount", "fsopen", "fsconfig",
                                   "fsmount", "fspick", "mount_setattr")},
    **{case: E.EAFNOSUPPORT for case in ("socket_packet", "socket_vsock",
                                         "socket_high_bits_family", "socketpair_vsock",
                                         "socketpair_packet")},
    "ok_prctl": E.EFAULT, "ok_seccomp": E.EFAULT, "ok_listen": E.EBADF,
    "ok_personality_query": 0, "ok_personality_linux": 0, "ok_ioctl_tiocgwinsz": E.EBADF,
    "ok_socket_unix": 0, "ok_socket_inet": 0, "ok_socket_netlink_raw": 0,
    "ok_socketpair_unix": E.EFAULT, "ok_clone_invalid": E.EINVAL,
}
# These fail with EPERM even without the filter (the capability is missing): the probe
# cannot tell the rule's work apart there; the BPF golden file covers them.
CAPABILITY_GATED = {"syslog", "acct", "pivot_root", "socket_raw_inet", "reboot", "swapon",
                    "swapoff"}


def _numbers() -> str:
    import pyseccomp as sc

    numbers = {}
    for name, *_ in CASES.values():
        nr = sc.resolve_syscall(sc.Arch.NATIVE, name)
        if nr >= 0:
            numbers[name] = nr
    return json.dumps(numbers)


def _probe_map(done: subprocess.CompletedProcess[str]) -> dict[str, int]:
    assert done.returncode == 0, done.stderr
    result: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_whole_syscall_map(project: Path, env: Env) -> None:
    done = run_cli(["--", "python3", "-c", PROBE, _numbers()], cwd=project, env=env.vars)
    got = _probe_map(done)
    expected = {case: EXPECTED[case] for case in got}
    assert {k: errno.errorcode.get(v, v) for k, v in got.items()} == {
        k: errno.errorcode.get(v, v) for k, v in expected.items()}
    assert set(got) >= set(CASES) - {"modify_ldt", "iopl", "ioperm"}  # x86-only ones


def test_without_the_filter_the_probe_sees_the_difference(
    project: Path, env: Env, tmp_path: Path
) -> None:
    plan = plan_for(project, env.vars, ["python3", "-c", PROBE, _numbers()])
    without = _probe_map(run_plan(plan, tmp_path, drop("--seccomp")))
    same = {case for case, value in without.items()
            if not case.startswith("ok_") and value == EXPECTED[case]}
    assert same == CAPABILITY_GATED & set(without)


@pytest.mark.parametrize("case, syscall", [("ioctl_tiocsti", "ioctl"),
                                           ("io_uring_setup", "io_uring_setup"),
                                           ("socket_vsock", "socket"),
                                           ("personality_high_bits", "personality")])
def test_removing_one_rule_makes_its_probe_case_fail(
    project: Path, env: Env, tmp_path: Path, case: str, syscall: str
) -> None:
    plan = plan_for(project, env.vars, ["python3", "-c", PROBE, _numbers()])
    full = _probe_map(run_plan(plan, tmp_path))
    assert full[case] == EXPECTED[case]
    weaker = tuple(r for r in plan.seccomp if r.syscall != syscall)
    assert weaker != plan.seccomp
    got = _probe_map(run_plan(plan, tmp_path, rules=weaker))
    assert got[case] != EXPECTED[case]


@pytest.mark.skipif(platform.machine() != "x86_64", reason="i386 and x32 ABIs exist only on "
                    "x86_64")
def test_32_bit_and_x32_syscalls_kill_only_the_calling_child(project: Path, env: Env) -> None:
    # int 0x80 with eax=20 (i386 getpid); syscall with nr 39|0x40000000 (x32 getpid).
    child = r"""
import ctypes, mmap, sys
if sys.argv[1] == "int80":
    code = bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3])  # mov eax,20; int 0x80; ret
    buf = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    buf.write(code)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    print("returned", ctypes.CFUNCTYPE(ctypes.c_int)(addr)(), flush=True)
else:
    libc = ctypes.CDLL(None, use_errno=True)
    print("returned", libc.syscall(39 | 0x40000000), ctypes.get_errno(), flush=True)
"""
    parent = f"""
import subprocess, sys
for mode in ("int80", "x32"):
    done = subprocess.run([sys.executable, "-c", {child!r}, mode], capture_output=True,
                          text=True)
    print(mode, done.returncode, done.stdout.strip() or "-")
print("parent alive")
"""
    done = run_cli(["--", "python3", "-c", parent], cwd=project, env=env.vars)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == ["int80 -31 -", "x32 -31 -", "parent alive"]  # -31: killed by SIGSYS


def test_ptrace_and_process_vm_readv_of_a_sibling_are_refused(project: Path, env: Env,
                                                              tmp_path: Path) -> None:
    script = r"""
import ctypes, os, signal, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.restype = ctypes.c_long
victim = subprocess.Popen(["sleep", "30"])
r = libc.ptrace(16, victim.pid, None, None)  # PTRACE_ATTACH
print("ptrace", "ok" if r == 0 else os.strerror(ctypes.get_errno()))
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(8)
local = iovec(ctypes.addressof(buf), 8)
remote = iovec(0x400000, 8)
libc.process_vm_readv.restype = ctypes.c_ssize_t
r = libc.process_vm_readv(victim.pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
print("process_vm_readv", "ok" if r >= 0 else os.strerror(ctypes.get_errno()))
victim.kill()
"""
    done = run_cli(["--", "python3", "-c", script], cwd=project, env=env.vars)
    assert done.stdout.split("\n")[:2] == ["ptrace Operation not permitted",
                                           "process_vm_readv Operation not permitted"]
    # The control: without the filter, the same user may trace its own child.
    plan = plan_for(project, env.vars, ["python3", "-c", script])
    without = run_plan(plan, tmp_path, drop("--seccomp"))
    assert without.stdout.splitlines()[0] == "ptrace ok", without.stderr


def test_nested_user_namespaces_only_with_the_switch(project: Path, env: Env) -> None:
    script = "unshare -r id -u 2>&1; echo status=$?"
    refused = sandbox_sh(script, cwd=project, env=env.vars)
    assert "status=1" in refused.stdout and "Operation not permitted" in refused.stdout
    allowed = sandbox_sh(script, cwd=project, env=env.vars, extra=["--allow-nested-userns"])
    assert allowed.stdout.split() == ["0", "status=0"], allowed.stderr
    assert "--allow-nested-userns" in allowed.stderr  # the trade-off is said at launch


def _tiocsti_attack(variant: str) -> str:
    """Python that pushes "echo PWNED" (+ newline) into its terminal, one byte at a time."""
    request = "0x5412" if variant == "plain" else "(1 << 32) | 0x5412"
    return (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "for ch in b'echo PWN' b'ED\\n':\n"
        f"    r = libc.ioctl(0, ctypes.c_ulong({request}), ctypes.c_char_p(bytes([ch])))\n"
        "    if r != 0:\n"
        "        print('TIOCSTI', os.strerror(ctypes.get_errno())); break\n"
        "else:\n"
        "    print('INJ' 'ECTED')\n"
    )


@pytest.mark.parametrize("variant", ["plain", "high-bits"])
def test_tiocsti_cannot_inject_into_the_outer_shell(project: Path, env: Env,
                                                    variant: str) -> None:
    shell = outer_shell(project, env)
    attack = _tiocsti_attack(variant)
    shell.sendline(f"{sys.executable} -m agent_sandbox -q -- python3 -c {_sh_quote(attack)}")
    shell.expect_exact("TIOCSTI Operation not permitted")
    assert_nothing_injected(shell)


@pytest.mark.skipif(
    Path("/proc/sys/dev/tty/legacy_tiocsti").exists()
    and Path("/proc/sys/dev/tty/legacy_tiocsti").read_text().strip() == "0",
    reason="this kernel refuses TIOCSTI by itself (dev.tty.legacy_tiocsti=0): no control",
)
def test_without_the_filter_tiocsti_does_inject(project: Path, env: Env,
                                                tmp_path: Path) -> None:
    # The control for the test above: the same attack, the plan minus --seccomp.
    plan = plan_for(project, env.vars, ["python3", "-c", _tiocsti_attack("plain")])
    workdir = tmp_path / "w"
    workdir.mkdir()
    # Without the launcher: no start pipe, and no operation needing a value or a directory
    # only the launcher provides (the seccomp fd; the protected files, irrelevant here).
    plan = plan._replace(starter=(), sections=tuple(
        Section(s.title, tuple(op for op in s.ops if not op.why.startswith("protected") and not
                               any(isinstance(w, Placeholder) and w is not WORKDIR
                                   for w in op.words)))
        for s in plan.sections))
    argv = plan.bwrap_args({WORKDIR: str(workdir)})
    script = tmp_path / "raw.sh"
    script.write_text(f"exec {find_bwrap(os.environ)} " + " ".join(_sh_quote(a) for a in argv))
    shell = outer_shell(project, env)
    shell.sendline(f"env -i {' '.join(_sh_quote(f'{k}={v}') for k, v in plan.env)} "
                   f"bash {script}")
    shell.expect_exact("INJECTED")
    shell.expect_exact("PWNED")  # the outer shell ran the injected command
    shell.sendline("exit")
    shell.expect(pexpect.EOF)


def _sh_quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def test_git_python_and_node_work_under_the_filter(project: Path, env: Env) -> None:
    subprocess.run(["git", "init", "-q", str(project)], check=True, env=env.vars)
    script = (
        "git status --short && echo x > f && git add f && git commit -qm m && "
        "git log --oneline | wc -l && python3 -c 'import ssl, sqlite3, multiprocessing as m; "
        "print(m.Pool(2).map(abs, [-1, -2]))'"
    )
    if shutil.which("node"):
        script += " && node -e 'require(\"os\").networkInterfaces(); console.log(6*7)'"
    done = sandbox_sh(script, cwd=project, env=env.vars)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:2] == ["1", "[1,"]
    if shutil.which("node"):
        assert done.stdout.split()[-1] == "42"


def _wheel(directory: Path) -> Path:
    wheel = directory / "tinypkg-1.0-py3-none-any.whl"
    files = {
        "tinypkg/__init__.py": "VALUE = 42\n",
        "tinypkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
        "tinypkg-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                                       "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(wheel, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr("tinypkg-1.0.dist-info/RECORD",
                   "".join(f"{n},,\n" for n in files) + "tinypkg-1.0.dist-info/RECORD,,\n")
    return wheel


def test_pip_installs_a_local_wheel_under_the_filter(project: Path, env: Env) -> None:
    wheel = _wheel(project)
    done = sandbox_sh(
        f"python3 -m venv venv && venv/bin/python -m pip install -q --no-index {wheel.name} "
        "&& venv/bin/python -c 'import tinypkg; print(tinypkg.VALUE)'",
        cwd=project, env=env.vars, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "42"


def test_fail_closed_when_libseccomp_cannot_be_loaded(project: Path, env: Env,
                                                      tmp_path: Path) -> None:
    # A cold cache and a pyseccomp that cannot find libseccomp (as on a host without it).
    fake = tmp_path / "fakemods"
    fake.mkdir()
    (fake / "pyseccomp.py").write_text("raise RuntimeError('Unable to find libseccomp')\n")
    done = subprocess.run(
        [*CLI, "--", "touch", "ran"], cwd=project, capture_output=True, text=True,
        env=env.with_(PYTHONPATH=str(fake), XDG_CACHE_HOME=str(tmp_path / "cache")),
        check=False,
    )
    assert done.returncode == 125
    assert "the seccomp layer cannot be built: Unable to find libseccomp" in done.stderr
    assert "apt-get install libseccomp2" in done.stderr
    assert not (project / "ran").exists()


def test_real_claude_code_runs_under_the_filter(project: Path, env: Env,
                                                npm_home: Path) -> None:
    done = run_cli(["claude", "--version"], cwd=project, env=env.vars, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "(Claude Code)" in done.stdout


def test_a_filter_the_kernel_rejects_stops_the_launch(project: Path, env: Env,
                                                      tmp_path: Path) -> None:
    # A cached program that passes the ownership checks but is not valid BPF (one
    # instruction with an unknown opcode): bwrap cannot load it, and nothing runs.
    from agent_sandbox._seccomp.cache import cache_key
    from agent_sandbox._seccomp.rules import default_rules

    cache = tmp_path / "cache"
    rules = default_rules(no_setid_files=IS_ROOT)  # the launch's own rules
    program = cache / "agent-sandbox" / "seccomp" / f"{cache_key(rules)}.bpf"
    program.parent.mkdir(parents=True)
    program.write_bytes(b"\xff\xff\0\0\0\0\0\0")
    program.chmod(0o600)
    done = run_cli(["--", "touch", "ran"], cwd=project,
                   env=env.with_(XDG_CACHE_HOME=str(cache)))
    assert done.returncode == 125, done.stderr
    assert "the sandbox could not start" in done.stderr
    assert not (project / "ran").exists()
