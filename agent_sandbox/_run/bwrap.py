"""Finding bubblewrap without trusting anything the sandboxed agent could have written.

A ``bwrap`` earlier on PATH (a project's ``node_modules/.bin``, a ``~/.local/bin`` an agent
wrote last session) would run every later launch unconfined. So bwrap is taken from a fixed
system location whose every directory is root-owned and not writable by others, or from PATH
only when it resolves into the read-only Nix store; anything else is refused unless named
explicitly with ``AGENT_SANDBOX_BWRAP``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from agent_sandbox._errors import SandboxUnavailable, UsageError

ENV_OVERRIDE = "AGENT_SANDBOX_BWRAP"

# System locations first: the distribution's package, then NixOS and Nix profiles.
SYSTEM_DIRS = (
    "/usr/bin",
    "/run/current-system/sw/bin",
    "/nix/var/nix/profiles/default/bin",
    "/usr/local/bin",
)
SYSTEM_CANDIDATES = tuple(f"{d}/bwrap" for d in SYSTEM_DIRS)

INSTALL_HINT = (
    "install bubblewrap >= 0.8 (Debian/Ubuntu: sudo apt-get install bubblewrap; "
    "Fedora: sudo dnf install bubblewrap; Arch: sudo pacman -S bubblewrap; "
    f"Nix: nix profile install nixpkgs#bubblewrap), or set {ENV_OVERRIDE}=/path/to/bwrap"
)


def trusted_tool(name: str, environ: Mapping[str, str]) -> str | None:
    """``name`` from the first system location that has it and that only root could have
    written, else from a ``PATH`` entry resolving into the Nix store (the package's own
    wrapper puts it there), for the other host programs the launcher runs (dtach)."""
    for directory in SYSTEM_DIRS:
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK) and untrusted_reason(path) is None:
            return path
    for entry in environ.get("PATH", "").split(":"):
        real = os.path.realpath(os.path.join(entry, name)) if entry.startswith("/") else ""
        if real.startswith("/nix/store/") and os.access(real, os.X_OK):
            return real
    return None


def untrusted_reason(path: str) -> str | None:
    """Why ``path`` (after resolving symlinks) is not a safe bwrap, or None when it is."""
    real = os.path.realpath(path)
    if real.startswith("/nix/store/"):
        return None  # the store is read-only and root-owned
    current = real
    while True:
        try:
            st = os.stat(current)
        except OSError as e:
            return f"{current}: {e.strerror}"
        if st.st_uid != 0:
            return f"{current} is owned by uid {st.st_uid}, not root"
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not (
            stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        ):
            return f"{current} is writable by group or others"
        if current == "/":
            return None
        current = os.path.dirname(current)


def find_bwrap(environ: Mapping[str, str]) -> str:
    """The absolute path of a trustworthy bwrap, or a refusal that says how to fix it."""
    explicit = environ.get(ENV_OVERRIDE, "")
    if explicit:
        if not explicit.startswith("/"):
            raise UsageError(f"{ENV_OVERRIDE}={explicit!r}: must be an absolute path")
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise SandboxUnavailable(
                f"{ENV_OVERRIDE}={explicit}: not an executable file", fix=INSTALL_HINT
            )
        return explicit
    refused: list[str] = []
    for candidate in SYSTEM_CANDIDATES:
        if not (os.path.isfile(candidate) and os.access(candidate, os.X_OK)):
            continue
        reason = untrusted_reason(candidate)
        if reason is None:
            return candidate
        refused.append(f"{candidate} ({reason})")
    # A bwrap on PATH is taken only when it is a Nix store file (a `nix profile install`):
    # ownership alone proves nothing when the caller is root.
    for entry in environ.get("PATH", "").split(":"):
        candidate = os.path.join(entry, "bwrap")
        if entry.startswith("/") and os.path.isfile(candidate):
            real = os.path.realpath(candidate)
            if real.startswith("/nix/store/") and os.access(real, os.X_OK):
                return real
    if refused:
        raise SandboxUnavailable(
            "refusing bwrap from a location others or you could have replaced: "
            + "; ".join(refused),
            fix=f"install bwrap system-wide, or name it explicitly with {ENV_OVERRIDE}=/path",
        )
    raise SandboxUnavailable("bubblewrap (bwrap) was not found", fix=INSTALL_HINT)
