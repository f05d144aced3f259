"""The seccomp policy as data: which syscalls fail, with which errno, and why. Pure.

Default action: allow. Every rule returns an errno (EPERM unless noted) rather than killing,
so programs that probe for a feature degrade gracefully. The list is flatpak's (the list
WebKit and GNOME copy) plus what agent sandboxes add; sources and reasons are in
docs/seccomp.md. Compiling it to BPF (libseccomp, native architecture only) is done by
``_seccomp_bpf`` on a cache miss; ``_seccomp_cache`` keeps the result.
"""

from __future__ import annotations

import errno
import os
import zlib
from typing import NamedTuple

from agent_sandbox import __version__

# Syscalls that some supported architecture lacks (x86-only calls on aarch64, i386-only calls
# on x86_64). A rule for one of these is skipped where the name does not resolve; a rule for
# any other unknown name stops the launch: the filter is never silently weaker.
MAY_BE_MISSING = frozenset(
    {"uselib", "umount", "modify_ldt", "iopl", "ioperm", "vm86", "vm86old", "chmod", "creat",
     "mknod", "open"}
)

# ioctl requests compared on the low 32 bits only: the kernel ignores the high bits, so a
# plain 64-bit compare is bypassed by setting them (CVE-2019-10063).
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
CLONE_NEWUSER = 0x10000000
SOCK_TYPE_MASK = 0xF
SOCK_RAW = 3
LOW32 = 0xFFFFFFFF
PER_QUERY = 0xFFFFFFFF  # personality(0xffffffff) reads the persona without changing it

# socket()/socketpair() families that work inside: unspec, unix, inet, inet6, netlink.
AF_INET, AF_INET6 = 2, 10
ALLOWED_FAMILIES = (0, 1, AF_INET, AF_INET6, 16)


class Arg(NamedTuple):
    """A comparison on syscall argument number ``arg``: ``op`` is "eq", "ge", "gt" or
    "masked_eq" (``(value_of_arg & mask) == value``)."""

    arg: int
    op: str
    value: int
    mask: int = 0


class Rule(NamedTuple):
    syscall: str
    errno: int
    why: str
    args: tuple[Arg, ...] = ()
    # Dropped when nested user namespaces are allowed (an agent's own inner sandbox).
    nesting: bool = False


def _deny(why: str, *names: str, err: int = errno.EPERM, nesting: bool = False) -> list[Rule]:
    return [Rule(name, err, why, nesting=nesting) for name in names]


def _family_rules(syscall: str) -> list[Rule]:
    """EAFNOSUPPORT for every family outside ALLOWED_FAMILIES: each gap by equality, and
    everything above the largest (negative or high-bit values compare above it too)."""
    rules = [
        Rule(syscall, errno.EAFNOSUPPORT, "address family outside the allow-list",
             (Arg(0, "eq", family),))
        for family in range(max(ALLOWED_FAMILIES))
        if family not in ALLOWED_FAMILIES
    ]
    rules.append(Rule(syscall, errno.EAFNOSUPPORT, "address family outside the allow-list",
                      (Arg(0, "ge", max(ALLOWED_FAMILIES) + 1),)))
    return rules


def _personality_rules() -> list[Rule]:
    """Allow only PER_LINUX (0) and the query (0xffffffff), judged on the low 32 bits the
    kernel uses.

    libseccomp takes one comparison per argument and rule, so "low word is neither all
    zeros nor all ones" is written as: some bit i is set while bit i+1 (cyclically) is clear,
    one masked compare per i; plus any value with high bits set.
    """
    why = "personality flags (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, ...) weaken exploits"
    rules = [Rule("personality", errno.EPERM, why, (Arg(0, "gt", LOW32),))]
    for bit in range(32):
        mask = (1 << bit) | (1 << ((bit + 1) % 32))
        rules.append(Rule("personality", errno.EPERM, why,
                          (Arg(0, "masked_eq", 1 << bit, mask),)))
    return rules


def _clone_flags_index() -> int:
    # On s390 the clone flags are the second argument (CLONE_BACKWARDS2).
    return 1 if os.uname().machine.startswith("s390") else 0


S_ISUID, S_ISGID = 0o4000, 0o2000
O_CREAT, O_TMPFILE_BIT = 0o100, 0o20000000  # O_TMPFILE is this bit with O_DIRECTORY


def _setid_rules() -> list[Rule]:
    """No setuid or setgid file from inside, for a root caller: on disk, what its command
    creates in the project belongs to the project's owner (root), and a setuid-root file
    left there runs as root for whoever on the host executes it later."""
    why = "setuid/setgid files: on disk they would belong to root"
    rules = []
    for bit in (S_ISUID, S_ISGID):
        def mode(arg: int, bit: int = bit) -> Arg:
            return Arg(arg, "masked_eq", bit, bit)

        rules += [Rule("chmod", errno.EPERM, why, (mode(1),)),
                  Rule("fchmod", errno.EPERM, why, (mode(1),)),
                  Rule("fchmodat", errno.EPERM, why, (mode(2),)),
                  Rule("fchmodat2", errno.EPERM, why, (mode(2),)),
                  Rule("creat", errno.EPERM, why, (mode(1),)),
                  Rule("mknod", errno.EPERM, why, (mode(1),)),
                  Rule("mknodat", errno.EPERM, why, (mode(2),))]
        for flag in (O_CREAT, O_TMPFILE_BIT):
            rules += [Rule("open", errno.EPERM, why, (Arg(1, "masked_eq", flag, flag), mode(2))),
                      Rule("openat", errno.EPERM, why,
                           (Arg(2, "masked_eq", flag, flag), mode(3)))]
    rules += _deny("its mode is out of seccomp's reach; ENOSYS makes programs fall back to "
                   "openat", "openat2", err=errno.ENOSYS)
    return rules


def default_rules(*, allow_nested_userns: bool = False,
                  no_setid_files: bool = False) -> tuple[Rule, ...]:
    rules: list[Rule] = []
    rules += _deny("kernel log (dmesg)", "syslog")
    rules += _deny("obsolete", "uselib")
    rules += _deny("process accounting", "acct")
    rules += _deny("quota information", "quotactl")
    rules += _deny("kernel keyring: shared with the host user", "add_key", "keyctl",
                   "request_key")
    rules += _deny("NUMA memory policy operations", "move_pages", "mbind", "get_mempolicy",
                   "set_mempolicy", "migrate_pages")
    rules += _deny(
        "no nested namespaces or mounts: a new user namespace + pivot_root can undo "
        "read-only binds",
        "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot", nesting=True,
    )
    rules.append(Rule("clone", errno.EPERM, "no new user namespace",
                      (Arg(_clone_flags_index(), "masked_eq", CLONE_NEWUSER, CLONE_NEWUSER),),
                      nesting=True))
    rules.append(Rule("ioctl", errno.EPERM, "TIOCSTI pushes input into the terminal",
                      (Arg(1, "masked_eq", TIOCSTI, LOW32),)))
    rules.append(Rule("ioctl", errno.EPERM, "TIOCLINUX pastes into a virtual console",
                      (Arg(1, "masked_eq", TIOCLINUX, LOW32),)))
    rules += _deny("its flags are out of seccomp's reach; ENOSYS makes libc fall back to "
                   "clone", "clone3", err=errno.ENOSYS)
    rules += _deny("new mount API", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
                   "fspick", "mount_setattr", err=errno.ENOSYS)
    rules += _deny("LDT: information leaks", "modify_ldt")
    rules += _deny("profiling and tracing other processes", "perf_event_open", "ptrace")
    rules += _personality_rules()
    rules += _family_rules("socket")
    rules += _family_rules("socketpair")
    # Raw IP sockets; netlink keeps SOCK_RAW (getifaddrs uses it), packet sockets are
    # refused by family above.
    rules += [
        Rule("socket", errno.EPERM, "raw IP sockets",
             (Arg(0, "eq", family), Arg(1, "masked_eq", SOCK_RAW, SOCK_TYPE_MASK)))
        for family in (AF_INET, AF_INET6)
    ]
    rules += _deny("io_uring runs operations outside per-syscall filtering", "io_uring_setup",
                   "io_uring_enter", "io_uring_register")
    rules += _deny("reading other processes' memory or fds (the agent's own API key)",
                   "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd")
    rules += _deny("exploit primitives", "bpf", "userfaultfd", "lookup_dcookie",
                   "open_by_handle_at", "name_to_handle_at")
    rules += _deny("kernel modules, kexec, reboot", "init_module", "finit_module",
                   "delete_module", "kexec_load", "kexec_file_load", "reboot")
    rules += _deny("swap", "swapon", "swapoff")
    rules += _deny("system clock", "settimeofday", "clock_settime", "clock_adjtime",
                   "adjtimex")
    rules += _deny("raw port I/O and CPU emulation", "iopl", "ioperm", "vm86", "vm86old")
    if no_setid_files:
        rules += _setid_rules()
    if allow_nested_userns:
        rules = [r for r in rules if not r.nesting]
    return tuple(rules)


def spec_digest(rules: tuple[Rule, ...]) -> str:
    """A short, stable name for a rule list (a cache key, not a security boundary)."""
    return f"{__version__}-{len(rules)}-{zlib.crc32(repr(rules).encode()):08x}"
