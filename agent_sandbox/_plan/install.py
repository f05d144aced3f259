"""Where the command is installed, when the sandbox does not show it: found from the layout
the installer left, never guessed from names, so that it can be shown read-only and nothing
more. Reads the filesystem, never writes.

The layouts recognised (docs/usage.md, "The command's installation"):

- npm global packages, any prefix (``~/.npm-global``, nvm's ``~/.nvm/versions/node/V``):
  the package directory (``node_modules/PKG`` or ``node_modules/@SCOPE/PKG``), which holds
  its dependencies;
- pnpm and bun global installs, which keep dependencies beside the package rather than in
  it: their global directory (the one holding ``node_modules`` and a lock file), packages
  only;
- Python venvs (pipx, ``uv tool``, any venv's console script): the venv, and the base
  interpreter's prefix its ``bin/python`` leads to when that is hidden (pyenv, uv's managed
  Pythons);
- anything under ``/opt/NAME``: ``/opt/NAME``;
- any other file (Claude Code's native installer, a single binary): its directory.

In every case also the directory that holds the command's name (the symlink on PATH), and
the interpreter a ``#!`` line asks for, found the same way when hidden.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from agent_sandbox._errors import UsageError
from agent_sandbox._policy.values import Mount, MountMode, Policy, is_under

# Paths under $HOME an installation root may never hold: keys, tokens, keyrings, browser
# profiles. The sandbox shows none of the home; a root that held one of these would.
HOME_SECRETS = (
    ".ssh", ".gnupg", ".aws", ".azure", ".config/gcloud", ".kube", ".docker", ".netrc",
    ".git-credentials", ".npmrc", ".pypirc", ".config/gh", ".config/hub", ".password-store",
    ".local/share/keyrings", ".pki", ".mozilla", ".config/google-chrome", ".config/chromium",
    ".vault-token", ".cargo/credentials", ".cargo/credentials.toml", ".terraform.d",
    ".local/share/agent-sandbox", ".local/state/agent-sandbox",
)
# Host trees whose content is live state (sockets, devices, kernel): never shown.
_LIVE_TREES = ("/proc", "/sys", "/dev", "/run")
_LOCK_FILES = ("bun.lockb", "bun.lock", "pnpm-lock.yaml")
_SHEBANG_MAX = 256


class InstallRefused(UsageError):
    """The installation found would show too much; ``program`` is the file alone, which
    the caller's fix shows instead (with the caller's own options and arguments)."""

    def __init__(self, message: str, program: str) -> None:
        super().__init__(message)
        self.program = program


class Shown(NamedTuple):
    """One directory (or file) shown read-only, and what it is."""

    path: str  # real path on the host, bound at the same place
    what: str


class Install(NamedTuple):
    """The command's installation as found from the caller's PATH."""

    found: str  # where the caller's PATH (or the command's own path) finds it
    kind: str  # "npm package @openai/codex", "Python venv", ...
    shown: tuple[Shown, ...]  # what the sandbox does not show yet, to bind read-only


def locate(name: str, cwd: str, host_path: str) -> str | None:
    """Where the caller's shell would find ``name``: the first executable file on
    ``host_path`` (absolute entries only), or ``name`` itself (made absolute) if it has a
    slash."""
    if "/" in name:
        path = posixpath.normpath(posixpath.join(cwd, name))
        return path if os.path.isfile(path) else None
    for entry in host_path.split(":"):
        candidate = posixpath.join(entry, name)
        if entry.startswith("/") and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _npm_root(real: str) -> tuple[str, str] | None:
    """(root, kind) for a file inside a ``node_modules`` tree, else None."""
    parts = real.split("/")
    if "node_modules" not in parts:
        return None
    i = parts.index("node_modules")
    prefix = "/".join(parts[:i])
    # pnpm's virtual store (node_modules/.pnpm/...) and bun's hoisting keep dependencies
    # beside the package: only their whole global directory resolves them.
    if parts[i + 1:i + 2] == [".pnpm"] or (
            os.path.isfile(posixpath.join(prefix, "package.json"))
            and any(os.path.isfile(posixpath.join(prefix, f)) for f in _LOCK_FILES)):
        return prefix, "pnpm/bun global packages"
    rest = parts[i + 1:]
    package = rest[:2 if rest and rest[0].startswith("@") else 1]
    if not package or not all(package) or len(package) < (2 if package[0][0] == "@" else 1):
        return None
    return "/".join(parts[:i + 1] + package), f"npm package {'/'.join(package)}"


def _venv_root(real: str) -> str | None:
    """The venv a ``bin/`` file belongs to (its ``pyvenv.cfg`` names the base Python)."""
    bin_dir = posixpath.dirname(real)
    venv = posixpath.dirname(bin_dir)
    if posixpath.basename(bin_dir) == "bin" and os.path.isfile(posixpath.join(venv,
                                                                              "pyvenv.cfg")):
        return venv
    return None


def _root(real: str) -> tuple[str, str]:
    """(what to show, its kind) for the real path of an installed file."""
    npm = _npm_root(real)
    if npm is not None:
        return npm
    venv = _venv_root(real)
    if venv is not None:
        return venv, "Python venv"
    parts = real.split("/")
    if len(parts) > 3 and parts[1] == "opt":
        return "/".join(parts[:3]), f"/opt/{parts[2]}"
    return posixpath.dirname(real), "its directory"


def _prefix(real: str) -> str:
    """An interpreter's install prefix: ``PREFIX`` for ``PREFIX/bin/NAME``, ``/opt/X`` under
    /opt, else its directory."""
    parts = real.split("/")
    if len(parts) > 3 and parts[1] == "opt":
        return "/".join(parts[:3])
    directory = posixpath.dirname(real)
    return posixpath.dirname(directory) if posixpath.basename(directory) == "bin" else directory


def shebang(path: str) -> list[str]:
    """The words of a ``#!`` line (empty for a binary or an unreadable file)."""
    try:
        with open(path, "rb") as f:
            first = f.readline(_SHEBANG_MAX)
    except OSError:
        return []
    if not first.startswith(b"#!"):
        return []
    return first[2:].decode(errors="replace").split()


def shebang_interpreter(words: Sequence[str], search_path: str,
                        usable: Callable[[str], bool] = lambda _: True) -> str | None:
    """The interpreter a ``#!`` line runs: its absolute path, or for ``env [-S] NAME`` the
    first usable NAME on ``search_path`` (else the name as ``env`` would try it last)."""
    if not words or not words[0].startswith("/"):
        return None
    if posixpath.basename(words[0]) != "env":
        return words[0]
    names = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    if not names:
        return None
    for entry in search_path.split(":"):
        candidate = posixpath.join(entry, names[0])
        if entry.startswith("/") and os.path.isfile(candidate) and usable(candidate):
            return candidate
    return names[0]


def check_shown(path: str, home: str, state: Sequence[str]) -> str | None:
    """Why ``path`` may not be shown as an installation, or None."""
    if path == "/" or is_under(home, path):
        return "it is your home directory or holds it"
    if any(is_under(path, t) for t in _LIVE_TREES):
        return "it is live host state"
    for rel in HOME_SECRETS:
        secret = posixpath.join(home, rel)
        if is_under(secret, path):
            return f"it holds {secret}"
        if is_under(path, secret):
            return f"it is inside {secret}"
    # The agent's state stays in the preset's home; an installer may keep the program
    # under it (Claude Code's old ~/.claude/local), which is fine as long as the root
    # holds none of the state.
    for rel in state:
        if is_under(posixpath.join(home, rel), path):
            return f"it holds {posixpath.join(home, rel)}, the agent's state"
    for rel in HOME_SECRETS:
        if "/" not in rel and os.path.lexists(posixpath.join(path, rel)):
            return f"it holds {rel}"
    return None


def find_install(name: str, *, cwd: str, environ: Mapping[str, str], home: str,
                 visible: Callable[[str], bool], state: Sequence[str] = ()) -> Install | None:
    """The installation of the command ``name`` that the sandbox does not show, or None
    (not on the caller's PATH, or already visible with its interpreter).

    ``visible`` says whether a host path is shown inside; ``state`` are the agent's state
    paths (relative to ``home``), never shown this way. An installation that would show the
    home, a secret or live host state is refused (UsageError) with the narrower way."""
    host_path = environ.get("PATH", "")
    found = locate(name, cwd, host_path)
    if found is None:
        return None
    shown: list[Shown] = []
    kind = ""

    def seen(path: str) -> bool:
        return visible(path) or any(is_under(path, s.path) for s in shown)

    def add(path: str, what: str) -> None:
        if not seen(path):
            shown.append(Shown(path, what))

    # The installation, then the directory that holds the name (a symlink on PATH,
    # usually) unless the installation holds it too (/opt/NAME/bin).
    real = os.path.realpath(found)
    if not seen(real):
        root, kind = _root(real)
        add(root, kind)
    if not seen(found):
        add(os.path.realpath(posixpath.dirname(found)),
            f"the directory holding {posixpath.basename(found)}")
    interpreter = shebang_interpreter(shebang(real), host_path)
    if interpreter is not None and interpreter.startswith("/"):
        # A venv's python is a symlink to its base interpreter: the venv, then the base.
        venv = _venv_root(interpreter)
        base = os.path.realpath(interpreter)
        if not seen(interpreter):
            add(*((venv, "Python venv") if venv else
                  (_prefix(interpreter), f"the interpreter {posixpath.basename(interpreter)}")))
        if not seen(base):
            add(_prefix(base), "the venv's base Python" if venv else
                f"the interpreter {posixpath.basename(base)}")
    if not shown:
        return None
    for s in shown:
        problem = check_shown(s.path, home, state)
        if problem is not None:
            raise InstallRefused(
                f"{name}: found at {found}, but its installation cannot be shown: {s.path} "
                f"({s.what}) would be shown read-only, and {problem}", program=real)
    return Install(found=found, kind=kind or shown[0].what, shown=tuple(shown))


INSTALL_ORIGIN = "the command's installation"


def with_install(policy: Policy, install: Install) -> Policy:
    """``policy`` with the installation's paths bound read-only (as ``--ro`` would, with
    their reason as the origin)."""
    extra = tuple(Mount(MountMode.RO, s.path, f"{INSTALL_ORIGIN}: {s.what}",
                        is_dir=os.path.isdir(s.path)) for s in install.shown)
    return policy._replace(mounts=(*extra, *policy.mounts))
