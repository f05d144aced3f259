"""The layout probe against simulated NixOS, FHS and Nix-on-FHS trees, and the real host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_sandbox._plan.host import LayoutError, LayoutKind, Symlink, probe_layout, resolve_in_root


def _tree(root: Path, dirs: list[str], links: dict[str, str], files: dict[str, str]) -> Path:
    for d in dirs:
        (root / d).mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    for link, target in links.items():
        (root / link).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / link)
    return root


def test_fhs_merged_usr(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        ["usr/bin", "usr/lib", "usr/lib64", "usr/sbin", "etc/ssh"],
        {"bin": "usr/bin", "lib": "usr/lib", "lib64": "usr/lib64", "sbin": "usr/sbin"},
        {"etc/os-release": "ID=debian\n", "etc/shadow": "root:x\n",
         "etc/ssh/ssh_host_ed25519_key": "k", "etc/ssh/ssh_host_ed25519_key.pub": "p"},
    )
    layout = probe_layout(str(root))
    assert layout.kind is LayoutKind.FHS
    assert layout.merged_usr
    assert layout.ro_dirs == ("/etc", "/usr")
    assert set(layout.symlinks) == {
        Symlink("/bin", "usr/bin"), Symlink("/lib", "usr/lib"),
        Symlink("/lib64", "usr/lib64"), Symlink("/sbin", "usr/sbin"),
    }
    assert layout.secret_files == ("/etc/shadow", "/etc/ssh/ssh_host_ed25519_key")
    assert layout.is_visible("/bin/sh") and layout.is_visible("/usr/lib/x")
    assert not layout.is_visible("/home/u/.ssh") and not layout.is_visible("/usrx")


def test_fhs_split_usr(tmp_path: Path) -> None:
    root = _tree(tmp_path, ["usr/bin", "bin", "lib", "sbin", "etc"], {}, {})
    layout = probe_layout(str(root))
    assert layout.kind is LayoutKind.FHS
    assert not layout.merged_usr
    assert layout.ro_dirs == ("/bin", "/etc", "/lib", "/sbin", "/usr")
    assert layout.symlinks == ()


def test_nixos_chains_are_recreated_hop_by_hop(tmp_path: Path) -> None:
    store = "nix/store"
    root = _tree(
        tmp_path,
        [f"{store}/aaa-nixos-system/sw/bin", f"{store}/bbb-etc/etc", f"{store}/ccc-mesa",
         "etc", "usr/bin", "bin", "run"],
        {
            "run/current-system": f"/{store}/aaa-nixos-system",
            "run/opengl-driver": f"/{store}/ccc-mesa",
            "etc/static": f"/{store}/bbb-etc/etc",
            "etc/bashrc": "/etc/static/bashrc",
            "usr/bin/env": f"/{store}/aaa-nixos-system/sw/bin/env",
            "bin/sh": f"/{store}/aaa-nixos-system/sw/bin/sh",
        },
        {"etc/NIXOS": "", "etc/os-release": 'ID=nixos\n'},
    )
    layout = probe_layout(str(root))
    assert layout.kind is LayoutKind.NIXOS
    assert layout.ro_dirs == ("/bin", "/etc", "/usr", "/nix/store")
    assert set(layout.symlinks) == {
        Symlink("/run/current-system", f"/{store}/aaa-nixos-system"),
        Symlink("/run/opengl-driver", f"/{store}/ccc-mesa"),
    }
    # /etc/static lies inside the /etc bind and resolves into the bound store.
    assert layout.is_visible("/run/current-system/sw/bin/bash")
    assert layout.is_visible("/etc/static/bashrc")


def test_nix_on_fhs_binds_store_and_profiles_not_the_daemon(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        ["usr/bin", "etc", "nix/store/ddd-profile/bin", "nix/var/nix/profiles",
         "nix/var/nix/daemon-socket"],
        {"bin": "usr/bin"},
        {},
    )
    layout = probe_layout(str(root))
    assert layout.kind is LayoutKind.NIX_ON_FHS
    assert "/nix/store" in layout.ro_dirs and "/nix/var/nix/profiles" in layout.ro_dirs
    assert not layout.is_visible("/nix/var/nix/daemon-socket/socket")


def test_resolution_never_leaves_the_root(tmp_path: Path) -> None:
    root = _tree(tmp_path / "root", ["usr/bin"], {"bin": "/../../../../usr/bin",
                                                  "up": "../../.."}, {})
    assert resolve_in_root(str(root), "/bin/sh")[0] == "/usr/bin/sh"
    assert resolve_in_root(str(root), "/up/etc")[0] == "/etc"


def test_symlink_loops_are_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path, [], {"a": "b", "b": "a", "bin": "a"}, {})
    with pytest.raises(LayoutError):
        probe_layout(str(root))


@pytest.mark.host
def test_real_host_is_understood() -> None:
    layout = probe_layout("/")
    assert layout.is_visible("/usr/bin/env")
    assert layout.is_visible(os.path.realpath("/bin/sh"))
