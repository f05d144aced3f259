"""Compile the seccomp rule list to BPF with libseccomp (through pyseccomp).

Imported only on a cache miss and by ``--check``: pyseccomp loads libseccomp at import
(~35 ms). The program is built for the native architecture only, keeping libseccomp's
bad-architecture action (kill): 32-bit ``int 0x80`` calls and x32 syscall numbers die with
SIGSYS instead of slipping past rules written for the native numbers.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

from agent_sandbox._errors import SandboxUnavailable
from agent_sandbox._seccomp.rules import MAY_BE_MISSING, Rule

log = logging.getLogger("agent_sandbox.seccomp")

LIBSECCOMP_HINT = (
    "install libseccomp (Debian/Ubuntu: sudo apt-get install libseccomp2; Fedora: "
    "sudo dnf install libseccomp; Arch: sudo pacman -S libseccomp) and the pyseccomp package"
)


def _pyseccomp() -> Any:
    try:
        import pyseccomp
    except (ImportError, RuntimeError, OSError) as e:
        raise SandboxUnavailable(
            f"the seccomp layer cannot be built: {e}", fix=LIBSECCOMP_HINT
        ) from None
    return pyseccomp


def _build(rules: tuple[Rule, ...]) -> Any:
    sc = _pyseccomp()
    ops = {"eq": sc.EQ, "ge": sc.GE, "gt": sc.GT, "masked_eq": sc.MASKED_EQ}
    program = sc.SyscallFilter(sc.ALLOW)
    for rule in rules:
        number = sc.resolve_syscall(sc.Arch.NATIVE, rule.syscall)
        if number < 0:
            # Negative: not a syscall of this architecture (libseccomp's pseudo numbers).
            if rule.syscall in MAY_BE_MISSING:
                log.debug("seccomp: %s does not exist on this architecture; rule skipped",
                          rule.syscall)
                continue
            raise SandboxUnavailable(
                f"seccomp rule for {rule.syscall!r}: unknown on this architecture "
                f"({os.uname().machine}); refusing to run with a weaker filter",
                fix="report this; the rule list needs updating for this architecture",
            )
        args = [
            sc.Arg(a.arg, ops[a.op], a.mask, a.value) if a.op == "masked_eq"
            else sc.Arg(a.arg, ops[a.op], a.value)
            for a in rule.args
        ]
        program.add_rule(sc.ERRNO(rule.errno), number, *args)
    return program


def _export(rules: tuple[Rule, ...], method: Callable[[Any, Any], None]) -> bytes:
    program = _build(rules)
    with tempfile.TemporaryFile() as out:
        method(program, out)
        out.seek(0)
        return out.read()


def compile_bpf(rules: tuple[Rule, ...]) -> bytes:
    """The BPF program bwrap loads with ``--seccomp FD``."""
    return _export(rules, lambda program, out: program.export_bpf(out))


def compile_pfc(rules: tuple[Rule, ...]) -> str:
    """libseccomp's readable pseudo-code of the same program (for golden tests, --check)."""
    return _export(rules, lambda program, out: program.export_pfc(out)).decode()


def libseccomp_version() -> str:
    import ctypes

    sc = _pyseccomp()
    lib = sc._libseccomp

    class _Version(ctypes.Structure):
        _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]

    lib.seccomp_version.restype = ctypes.POINTER(_Version)
    v = lib.seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"
