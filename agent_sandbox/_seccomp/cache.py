"""The compiled seccomp program, cached so that a warm launch never loads libseccomp.

Key: rule-list digest + libseccomp version (from the library's file name, found without
loading it) + architecture. The cache file is written atomically with mode 0600 and used
only if it is a regular file owned by the caller and writable by nobody else; anything else
is ignored and rebuilt. A cache that cannot be written costs speed, never confinement: the
program is then handed to bwrap from memory.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator

from agent_sandbox._seccomp.rules import Rule, spec_digest

_LIB_DIRS = ("/usr/lib/{triplet}", "/lib/{triplet}", "/usr/lib64", "/lib64", "/usr/lib", "/lib")
_TRIPLETS = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}


def _libseccomp_id() -> str:
    machine = os.uname().machine
    triplet = _TRIPLETS.get(machine, f"{machine}-linux-gnu")
    for pattern in _LIB_DIRS:
        path = os.path.join(pattern.format(triplet=triplet), "libseccomp.so.2")
        with contextlib.suppress(OSError):
            real = os.path.realpath(path)
            st = os.stat(real)
            return f"{os.path.basename(real)}-{st.st_size}"
    return "libseccomp-unknown"


def cache_key(rules: tuple[Rule, ...]) -> str:
    return f"{spec_digest(rules)}-{_libseccomp_id()}-{os.uname().machine}"


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not base.startswith("/"):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "agent-sandbox", "seccomp")


def _open_trusted(path: str) -> int | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    st = os.fstat(fd)
    if (
        not stat.S_ISREG(st.st_mode)
        or st.st_uid != os.getuid()
        or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        or st.st_size == 0
        or st.st_size % 8  # whole BPF instructions only
    ):
        os.close(fd)
        return None
    return fd


def _store(path: str, program: bytes) -> None:
    import tempfile  # only on a cache miss

    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(program)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _memory_fd(program: bytes) -> int:
    fd = os.memfd_create("agent-sandbox-seccomp", os.MFD_CLOEXEC)
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


@contextlib.contextmanager
def seccomp_program(rules: tuple[Rule, ...]) -> Iterator[int]:
    """An fd, positioned at the start, holding the BPF program for ``rules``."""
    path = os.path.join(cache_dir(), cache_key(rules) + ".bpf")
    fd = _open_trusted(path)
    if fd is None:
        from agent_sandbox._seccomp.compile import compile_bpf  # loads libseccomp

        program = compile_bpf(rules)
        with contextlib.suppress(OSError):
            _store(path, program)
        fd = _memory_fd(program)
    try:
        yield fd
    finally:
        os.close(fd)
