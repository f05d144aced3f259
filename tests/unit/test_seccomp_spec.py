"""The seccomp rule list as data: what must be blocked, how arguments are judged, the
compiled program (golden), the cache, and refusing to build a weaker filter."""

from __future__ import annotations

import errno
import os
import platform
import random
import subprocess
import sys
from pathlib import Path

import pytest

from agent_sandbox._errors import SandboxUnavailable
from agent_sandbox._seccomp.cache import cache_dir, cache_key, seccomp_program
from agent_sandbox._seccomp.compile import compile_bpf, compile_pfc, libseccomp_version
from agent_sandbox._seccomp.rules import MAY_BE_MISSING, Rule, default_rules

GOLDEN = Path(__file__).parent / "golden"

MUST_BLOCK = {
    errno.EPERM: """syslog uselib acct quotactl add_key keyctl request_key move_pages mbind
        get_mempolicy set_mempolicy migrate_pages unshare setns mount umount umount2 pivot_root
        chroot modify_ldt perf_event_open ptrace io_uring_setup io_uring_enter
        io_uring_register process_vm_readv process_vm_writev kcmp pidfd_getfd bpf userfaultfd
        lookup_dcookie open_by_handle_at name_to_handle_at init_module finit_module
        delete_module kexec_load kexec_file_load reboot swapon swapoff settimeofday
        clock_settime clock_adjtime adjtimex iopl ioperm vm86 vm86old""".split(),
    errno.ENOSYS: "clone3 open_tree move_mount fsopen fsconfig fsmount fspick mount_setattr"
    .split(),
}
NEVER_BLOCKED = {"seccomp", "prctl", "landlock_create_ruleset", "landlock_add_rule",
                 "landlock_restrict_self", "read", "write", "openat", "execve"}


def _denial(rules: tuple[Rule, ...], syscall: str, *args: int) -> int | None:
    """What the rule list does to one call: the errno of the first matching rule, or None.
    (Rules for a syscall are alternatives; the comparisons inside one rule all must hold.)"""
    for rule in rules:
        if rule.syscall != syscall:
            continue
        ok = True
        for a in rule.args:
            value = args[a.arg] & 0xFFFFFFFFFFFFFFFF
            ok &= {"eq": value == a.value, "ge": value >= a.value, "gt": value > a.value,
                   "masked_eq": value & a.mask == a.value}[a.op]
        if ok:
            return rule.errno
    return None


def test_every_must_block_syscall_has_an_unconditional_rule() -> None:
    rules = default_rules()
    for err, names in MUST_BLOCK.items():
        for name in names:
            assert any(r.syscall == name and not r.args and r.errno == err for r in rules), name
    assert not {r.syscall for r in rules} & NEVER_BLOCKED


def test_argument_rules() -> None:
    rules = default_rules()
    tiocsti, tioclinux, tiocgwinsz = 0x5412, 0x541C, 0x5413
    assert _denial(rules, "ioctl", 0, tiocsti) == errno.EPERM
    assert _denial(rules, "ioctl", 0, (0xDEAD << 32) | tiocsti) == errno.EPERM  # CVE-2019-10063
    assert _denial(rules, "ioctl", 0, tioclinux) == errno.EPERM
    assert _denial(rules, "ioctl", 0, tiocgwinsz) is None
    assert _denial(rules, "clone", 0x10000000 | 0x11) == errno.EPERM  # CLONE_NEWUSER
    assert _denial(rules, "clone", 0x01200011) is None  # what fork() passes
    for family in (0, 1, 2, 10, 16):
        assert _denial(rules, "socket", family, 1) is None
        assert _denial(rules, "socketpair", family, 1) is None
    for family in (3, 9, 11, 15, 17, 40, 44, 0xFFFFFFFF, 1 << 32 | 1, -1):
        assert _denial(rules, "socket", family, 1) == errno.EAFNOSUPPORT
        assert _denial(rules, "socketpair", family, 1) == errno.EAFNOSUPPORT
    assert _denial(rules, "socket", 2, 3 | 0x80000) == errno.EPERM  # SOCK_RAW|SOCK_CLOEXEC
    assert _denial(rules, "socket", 10, 3) == errno.EPERM
    assert _denial(rules, "socket", 16, 3) is None  # netlink keeps SOCK_RAW (getifaddrs)


def test_personality_allows_only_linux_and_the_query() -> None:
    rules = default_rules()
    assert _denial(rules, "personality", 0) is None
    assert _denial(rules, "personality", 0xFFFFFFFF) is None
    rng = random.Random(1)
    samples = [1, 8, 0x0040000, 0x0400000, 0xFFFFFFFE, 0x7FFFFFFF, 0x80000000, 1 << 32,
               (1 << 32) | 0x0400000, (1 << 64) - 1]
    samples += [rng.getrandbits(32) for _ in range(5000)] + [rng.getrandbits(64)
                                                              for _ in range(5000)]
    for value in samples:
        if value in (0, 0xFFFFFFFF):
            continue
        assert _denial(rules, "personality", value) == errno.EPERM, hex(value)


def test_nested_user_namespaces_switch_drops_only_the_nesting_rules() -> None:
    strict, nested = default_rules(), default_rules(allow_nested_userns=True)
    dropped = {r.syscall for r in set(strict) - set(nested)}
    assert dropped == {"unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot",
                       "clone"}
    assert _denial(nested, "ioctl", 0, 0x5412) == errno.EPERM


def test_golden_pfc() -> None:
    name = f"seccomp_{platform.machine()}_libseccomp-{libseccomp_version()}.pfc"
    golden = GOLDEN / name
    text = compile_pfc(default_rules())
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    if not golden.exists():
        pytest.skip(f"no golden program for {name} (the one kept is x86_64 with libseccomp "
                    "2.5.4, Debian 12's; UPDATE_GOLDEN=1 writes one for this host)")
    assert text == golden.read_text()
    # Only the native architecture is allowed through; any other is killed.
    assert text.count("# filter for arch") == 1
    assert "# invalid architecture action\naction KILL;\n" in text


def test_unknown_syscalls_refuse_unless_declared_missing(caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    with pytest.raises(SandboxUnavailable, match="no_such_call"):
        compile_bpf((Rule("no_such_call", errno.EPERM, "test"),))
    assert "vm86" in MAY_BE_MISSING  # i386 only: absent on x86_64 and aarch64
    with caplog.at_level("DEBUG", logger="agent_sandbox.seccomp"):
        program = compile_bpf((Rule("vm86", errno.EPERM, "test"),))
    assert program
    assert "vm86 does not exist on this architecture" in caplog.text


def _read(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 1 << 20)


def test_cache_is_private_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rules = default_rules()
    with seccomp_program(rules) as fd:
        first = _read(fd)
    path = Path(cache_dir()) / f"{cache_key(rules)}.bpf"
    assert path.read_bytes() == first == compile_bpf(rules)
    assert path.stat().st_mode & 0o777 == 0o600
    with seccomp_program(rules) as fd:
        assert _read(fd) == first


def test_an_untrusted_cache_file_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    rules = default_rules()
    path = Path(cache_dir()) / f"{cache_key(rules)}.bpf"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\0" * 64)  # an "allow everything"-sized forgery
    path.chmod(0o666)  # writable by others: not trusted
    with seccomp_program(rules) as fd:
        assert _read(fd) == compile_bpf(rules)
    path.unlink()
    os.symlink(tmp_path / "elsewhere", path)  # a symlink: not trusted either
    (tmp_path / "elsewhere").write_bytes(b"\0" * 64)
    with seccomp_program(rules) as fd:
        assert _read(fd) == compile_bpf(rules)


def test_an_unwritable_cache_costs_speed_not_confinement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file: no directory can be made
    with seccomp_program(default_rules()) as fd:
        assert _read(fd) == compile_bpf(default_rules())


def test_a_warm_launch_never_loads_libseccomp(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from agent_sandbox._seccomp.rules import default_rules\n"
        "from agent_sandbox._seccomp.cache import seccomp_program\n"
        "with seccomp_program(default_rules()): pass\n"
        "print('pyseccomp' in sys.modules)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, check=True).stdout.strip() for _ in range(2)]
    assert runs == ["True", "False"]


def test_the_documented_table_names_every_filtered_syscall() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "seccomp.md").read_text()
    for name in {r.syscall for r in default_rules()}:
        assert f"`{name}" in doc, name
