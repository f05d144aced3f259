"""What the host looks like: who is calling, and which system paths the sandbox must show.

``probe_layout`` only reads (lstat, readlink, a few small files) and takes a root prefix, so
tests run it against simulated NixOS and FHS trees as well as the real host. Everything it
returns is a frozen value; the plan is built from those values without touching the OS.
"""

from __future__ import annotations

import enum
import os
import posixpath
import stat
from typing import NamedTuple

from agent_sandbox._errors import SandboxUnavailable

_MAX_SYMLINK_HOPS = 40

# Top-level FHS entries that hold programs and libraries; each is a directory or a symlink
# (merged /usr: /bin -> usr/bin, /lib64 -> usr/lib64, ...).
_FHS_TOP = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

# Files under /etc that only root may read. A root caller keeps root's file ownership
# outside the user namespace, so they are masked for every caller, uniformly.
_ETC_SECRETS = ("etc/shadow", "etc/shadow-", "etc/gshadow", "etc/gshadow-")
_ETC_SECRET_DIRS = ("etc/ssl/private",)


class LayoutKind(enum.Enum):
    NIXOS = "nixos"
    FHS = "fhs"
    NIX_ON_FHS = "nix-on-fhs"


class Symlink(NamedTuple):
    """A symlink recreated inside at ``path`` pointing at ``target`` (as read on the host)."""

    path: str
    target: str


class HostLayout(NamedTuple):
    """The read-only system view a command needs on this host."""

    kind: LayoutKind
    merged_usr: bool
    ro_dirs: tuple[str, ...]
    symlinks: tuple[Symlink, ...]
    secret_files: tuple[str, ...]
    secret_dirs: tuple[str, ...]
    # Where /etc/hosts and /etc/resolv.conf really are (systemd-resolved links the latter
    # into /run): the filtered network binds its own files there.
    hosts_path: str = "/etc/hosts"
    resolv_path: str = "/etc/resolv.conf"

    def is_visible(self, path: str) -> bool:
        """Whether ``path`` (absolute) lies under something this layout shows inside."""
        return any(_is_under(path, d) for d in self.ro_dirs) or any(
            path == s.path or _is_under(path, s.path) for s in self.symlinks
        )


class LayoutError(SandboxUnavailable):
    """The host tree cannot be understood safely (e.g. a symlink loop in a system path)."""


def _is_under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def resolve_in_root(root: str, path: str) -> tuple[str, list[Symlink]]:
    """Resolve ``path`` component by component as if ``root`` were ``/``.

    Returns the final path (as seen inside ``root``) and every symlink met on the way.
    Absolute link targets restart at ``root``, ``..`` never climbs above it, and a chain
    longer than 40 hops raises ``LayoutError``: nothing here can escape the prefix.
    """
    pending = [c for c in path.split("/") if c]
    pending.reverse()
    resolved: list[str] = []
    met: list[Symlink] = []
    hops = 0
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        inside = "/" + "/".join([*resolved, part])
        host = posixpath.join(root, inside.lstrip("/"))
        try:
            st = os.lstat(host)
        except OSError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        hops += 1
        if hops > _MAX_SYMLINK_HOPS:
            raise LayoutError(f"too many levels of symbolic links resolving {path}")
        target = os.readlink(host)
        met.append(Symlink(path=inside, target=target))
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed([c for c in target.split("/") if c]))
    return "/" + "/".join(resolved), met


def _read_os_release_id(root: str) -> str:
    for rel in ("etc/os-release", "usr/lib/os-release"):
        try:
            with open(posixpath.join(root, rel), encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("ID="):
                        return line[3:].strip().strip("\"'")
        except OSError:
            continue
    return ""


def probe_layout(root: str = "/") -> HostLayout:
    """Classify the host (NixOS, FHS, Nix-on-FHS) and list what to bind read-only."""

    def host(rel: str) -> str:
        return posixpath.join(root, rel)

    has_store = os.path.isdir(host("nix/store"))
    nixos = (
        os.path.lexists(host("etc/NIXOS"))
        or _read_os_release_id(root) == "nixos"
        or os.path.islink(host("run/current-system"))
    )
    ro_dirs: list[str] = []
    symlinks: list[Symlink] = []

    def add_dir(path: str) -> None:
        if path not in ro_dirs:
            ro_dirs.append(path)

    def add_entry(path: str) -> None:
        """Show ``path`` inside: a directory as a read-only bind, a symlink as itself plus
        whatever its chain needs (each hop recreated, the final directory bound)."""
        host_path = host(path.lstrip("/"))
        if not os.path.lexists(host_path):
            return
        if not os.path.islink(host_path):
            if os.path.isdir(host_path):
                add_dir(path)
            return
        final, chain = resolve_in_root(root, path)
        for link in chain:
            if link not in symlinks and not any(_is_under(link.path, d) for d in ro_dirs):
                symlinks.append(link)
        if os.path.isdir(host(final.lstrip("/"))) and not any(
            _is_under(final, d) for d in ro_dirs
        ):
            add_dir(final)

    if has_store:
        add_dir("/nix/store")
    add_entry("/usr")
    for top in _FHS_TOP:
        add_entry("/" + top)
    add_entry("/etc")
    if nixos:
        # /etc entries point into /etc/static -> /nix/store/...-etc; /run holds the system
        # profile and the graphics driver links. Recreate each chain hop by hop.
        for extra in ("/etc/static", "/run/current-system", "/run/opengl-driver"):
            add_entry(extra)
    elif has_store:
        # Nix on an FHS host: the profiles are symlink farms into the store (no daemon socket).
        add_entry("/nix/var/nix/profiles")

    # Merged /usr: the top-level program dirs are symlinks into /usr.
    merged = (
        os.path.islink(host("bin"))
        and resolve_in_root(root, "/bin")[0] == resolve_in_root(root, "/usr/bin")[0]
    )
    # Keep the mount order stable: parents before children, symlinks after the dirs they use.
    ro_dirs.sort(key=lambda p: (p.count("/"), p))
    secret_files = tuple("/" + rel for rel in _ETC_SECRETS if os.path.isfile(host(rel)))
    secret_files += _ssh_host_keys(root)
    secret_dirs = tuple("/" + rel for rel in _ETC_SECRET_DIRS if os.path.isdir(host(rel)))
    if nixos:
        kind = LayoutKind.NIXOS
    elif has_store:
        kind = LayoutKind.NIX_ON_FHS
    else:
        kind = LayoutKind.FHS
    return HostLayout(
        hosts_path=resolve_in_root(root, "/etc/hosts")[0],
        resolv_path=resolve_in_root(root, "/etc/resolv.conf")[0],
        kind=kind,
        merged_usr=merged,
        ro_dirs=tuple(ro_dirs),
        symlinks=tuple(symlinks),
        secret_files=secret_files,
        secret_dirs=secret_dirs,
    )


def _ssh_host_keys(root: str) -> tuple[str, ...]:
    try:
        names = sorted(os.listdir(posixpath.join(root, "etc/ssh")))
    except OSError:
        return ()
    return tuple(
        f"/etc/ssh/{n}"
        for n in names
        if n.startswith("ssh_host_")
        and n.endswith("_key")
        and os.path.isfile(posixpath.join(root, "etc/ssh", n))
    )
