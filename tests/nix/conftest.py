"""The flake, evaluated offline by the host's nix against the stub nixpkgs in stub-nixpkgs/.

The flake and the stub are copied to a temporary directory once per session (the checkout
may not be a git repository, and a ``path:`` flake of the checkout would copy .venv into
the store). The stub's host.nix names this venv's Python, which the stub's
``buildPythonApplication`` runs the copied package with, and the host's bwrap.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pexpect
import pytest

from tests.conftest import IS_ROOT

REPO = Path(__file__).resolve().parents[2]
STUB = Path(__file__).resolve().parent / "stub-nixpkgs"
FLAKE_FILES = ("flake.nix", "flake.lock", "pyproject.toml", "README.md", "nix", "shells",
               "agent_sandbox", "tests", "scripts", "docs", "templates")
DAEMON_SOCKET = "/nix/var/nix/daemon-socket/socket"
SHELLS = {  # devShell -> (command, preset)
    "claude-code": ("claude", "claude"),
    "codex": ("codex", "codex"),
    "aider": ("aider", "aider"),
    "opencode": ("opencode", "opencode"),
    "gemini": ("gemini", "gemini"),
}


def _store_access() -> dict[str, str] | str:
    """Extra environment to reach a Nix store, or why none can be reached."""
    if shutil.which("nix") is None:
        return "nix is not installed (Debian: apt-get install nix-bin)"
    if IS_ROOT:
        return {}  # the local store, directly
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(DAEMON_SOCKET)
    except OSError as e:
        return (f"as a user, nix needs its daemon ({DAEMON_SOCKET}: {e.strerror}); "
                ".ci/run starts one and adds the user to nix-users")
    return {"NIX_REMOTE": "daemon"}


class Flake:
    """The copied flake and how to run nix on it offline."""

    def __init__(self, root: Path, stub: Path, access: dict[str, str]) -> None:
        self.root = root
        self.stub = stub
        self.nix_env = {
            **access,
            # Offline: no binary cache; flakes are still experimental in nix 2.8.
            "NIX_CONFIG": "experimental-features = nix-command flakes\nsubstituters =\n",
            "NO_COLOR": "1",  # plain messages on the terminals pexpect gives
        }

    def ref(self, output: str = "") -> str:
        return f"path:{self.root}" + (f"#{output}" if output else "")

    @property
    def override(self) -> list[str]:
        return ["--override-input", "nixpkgs", f"path:{self.stub}", "--no-write-lock-file"]

    def env(self, base: Mapping[str, str]) -> dict[str, str]:
        return {**base, **self.nix_env}

    def nix(self, *args: str, env: Mapping[str, str],
            cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nix", *args], env=self.env(env), cwd=cwd, capture_output=True,
                              text=True, timeout=300)

    def develop(self, shell: str, *command: str, env: Mapping[str, str],
                cwd: Path) -> tuple[int, str]:
        """``nix develop .#shell -c command`` on a terminal: (exit status, output)."""
        return self.develop_installable([self.ref(shell), *self.override], command, env=env,
                                        cwd=cwd)

    def develop_installable(self, installable: Sequence[str], command: Sequence[str], *,
                            env: Mapping[str, str], cwd: Path) -> tuple[int, str]:
        argv = ["develop", *installable, "-c", *command]
        out, status = pexpect.run("nix", args=argv, env=self.env(env), cwd=str(cwd),
                                  withexitstatus=True, timeout=120, encoding="utf-8")
        return status, out

    def spawn_shell(self, shell: str, *, env: Mapping[str, str], cwd: Path) -> pexpect.spawn:
        """An interactive ``nix develop .#shell``."""
        argv = ["develop", self.ref(shell), *self.override]
        return pexpect.spawn("nix", args=argv, env=self.env(env), cwd=str(cwd),
                             timeout=60, encoding="utf-8")


@pytest.fixture(scope="session")
def flake(tmp_path_factory: pytest.TempPathFactory) -> Flake:
    access = _store_access()
    if isinstance(access, str):
        pytest.skip(access)
    base = tmp_path_factory.mktemp("flake")
    root = base / "agent-sandbox"
    root.mkdir()
    ignore = shutil.ignore_patterns("__pycache__")
    for name in FLAKE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=ignore)
        else:
            shutil.copy2(source, root / name)
    stub = base / "stub-nixpkgs"
    shutil.copytree(STUB, stub, ignore=ignore)
    bwrap = shutil.which("bwrap") or "/usr/bin/bwrap"
    dtach = shutil.which("dtach") or "/usr/bin/dtach"
    (stub / "host.nix").write_text(
        f'{{ python = "{sys.executable}"; bwrap = "{bwrap}"; dtach = "{dtach}"; }}\n')
    # Let the store (or its daemon) read the copies when the checkout is private.
    for path in (base, root, stub):
        os.chmod(path, 0o755)
    return Flake(root, stub, access)
