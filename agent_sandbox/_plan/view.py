"""What the plan needs to know about the host (``HostView``), gathered once per launch, and
the check that the command exists inside. Reads the filesystem, never writes."""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Mapping, Sequence

from agent_sandbox._errors import CommandNotExecutable, CommandNotFound
from agent_sandbox._plan.build import (
    PROC_MASKED,
    PROC_READ_ONLY,
    HostView,
    Plan,
    visible_inside,
)
from agent_sandbox._plan.host import HostLayout
from agent_sandbox._plan.install import HOME_SECRETS, shebang, shebang_interpreter
from agent_sandbox._plan.protect import core_value, host_excludes, scan
from agent_sandbox._policy.config import user_file
from agent_sandbox._policy.env import ca_paths
from agent_sandbox._policy.identity import Identity
from agent_sandbox._policy.presets import data_dir


def gather_host_view(identity: Identity, layout: HostLayout, environ: Mapping[str, str],
                     project: str, protect: Sequence[str] = (),
                     unprotect: Sequence[str] = ()) -> HostView:
    path_entries = []
    for entry in environ.get("PATH", "").split(":"):
        resolved = os.path.realpath(entry) if entry.startswith("/") else entry
        path_entries.append((entry, resolved))
    xdg = environ.get("XDG_CONFIG_HOME", "")
    config_home = xdg if xdg.startswith("/") else posixpath.join(identity.home, ".config")
    git_configs = []
    for inside in (posixpath.join(identity.home, ".gitconfig"),
                   posixpath.join(config_home, "git", "config")):
        real = os.path.realpath(inside)
        if os.path.isfile(real):
            git_configs.append((inside, real))
    ca_files = []
    for inside in dict.fromkeys(ca_paths(environ).values()):
        real = os.path.realpath(inside)
        if os.path.isfile(real) or os.path.isdir(real):
            ca_files.append((inside, real))
    protections = scan(project, protect, unprotect,
                       _global_core(git_configs, "hookspath"))
    return HostView(identity=identity, layout=layout, environ=tuple(sorted(environ.items())),
                    path_entries=tuple(path_entries), git_configs=tuple(git_configs),
                    ca_files=tuple(ca_files),
                    home_secrets=_home_secrets(identity.home, environ),
                    config_dir=_existing_dir(os.path.dirname(user_file(environ))),
                    signal_reset_env=_signal_reset_env(layout),
                    start_shell="/bin/sh" if layout.is_visible("/bin/sh")
                    and os.access("/bin/sh", os.X_OK) else "",
                    protections=protections,
                    gpu_devices=_gpu_devices(), proc_entries=_proc_entries(),
                    git_ignore=_git_ignore(identity.home, config_home, git_configs),
                    host_excludes=host_excludes(project, protections))


def _home_secrets(home: str, environ: Mapping[str, str]) -> tuple[tuple[str, bool], ...]:
    from agent_sandbox._net.log import state_dir

    paths = [posixpath.join(home, rel) for rel in HOME_SECRETS]
    paths += [data_dir(environ), state_dir()]
    found = {}
    for path in paths:
        real = os.path.realpath(path)  # where a --ro/--rw (a real path) would show it
        try:
            found[real] = stat.S_ISDIR(os.stat(real).st_mode)
        except OSError:
            continue
    return tuple(found.items())


def _existing_dir(path: str) -> str:
    return path if os.path.isdir(path) else ""


_IGNORE_MAX = 1 << 20


def _global_core(git_configs: list[tuple[str, str]], key: str) -> str | None:
    """``core.<key>`` as git reads it outside a repository: the system config, then the
    global ones (~/.config/git/config, then ~/.gitconfig); the last one set wins."""
    found = None
    for config in ("/etc/gitconfig", *(real for _, real in reversed(git_configs))):
        found = core_value(config, key) or found
    return found


def _git_ignore(home: str, config_home: str, git_configs: list[tuple[str, str]]) -> str:
    """The user's global git excludes, as git finds them: core.excludesFile of the system
    and global configs, else ``$XDG_CONFIG_HOME/git/ignore``."""
    path = posixpath.join(config_home, "git", "ignore")
    value = _global_core(git_configs, "excludesfile")
    if value:
        path = posixpath.join(home, value[2:]) if value.startswith("~/") else value
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(_IGNORE_MAX)
    except OSError:
        return ""


def _proc_entries() -> tuple[tuple[str, bool], ...]:
    found = []
    for path in (*PROC_READ_ONLY, *PROC_MASKED):
        try:
            found.append((path, stat.S_ISDIR(os.lstat(path).st_mode)))
        except OSError:
            continue
    return tuple(found)


def _gpu_devices() -> tuple[str, ...]:
    try:
        names = sorted(n for n in os.listdir("/dev") if n.startswith("nvidia"))
    except OSError:
        names = []
    found = [f"/dev/{n}" for n in names]
    if os.path.isdir("/dev/dri"):
        found.append("/dev/dri")
    return tuple(found)


def _signal_reset_env(layout: HostLayout) -> str:
    """The first system ``env`` that knows ``--default-signal`` (GNU coreutils >= 8.31).

    Detected by the option's name in the binary (env is ~50 KB): no process is spawned on
    the launch path. Without one, ^C in a non-raw terminal ends the whole sandbox.
    """
    for candidate in ("/usr/bin/env", "/bin/env", "/run/current-system/sw/bin/env"):
        if not layout.is_visible(candidate):
            continue
        try:
            with open(os.path.realpath(candidate), "rb") as f:
                if b"default-signal" in f.read(4 * 1024 * 1024):
                    return candidate
        except OSError:
            continue
    return ""


def check_command(plan: Plan, view: HostView, fix: str | None = None) -> str:
    """The program COMMAND runs inside; refused, before starting anything, when it does
    not exist inside (127) or cannot be executed there (126). ``fix`` is what to say when
    the caller's PATH has it (its installation, found by ``_plan.install``, given as --ro)."""
    policy = plan.policy
    name = policy.command[0]
    env = dict(plan.env)

    def visible(path: str) -> bool:
        return visible_inside(policy, view.layout, path) and visible_inside(
            policy, view.layout, os.path.realpath(path))

    if "/" in name:
        candidates = [posixpath.normpath(posixpath.join(policy.cwd, name))]
    else:
        candidates = [posixpath.join(d, name) for d in env.get("PATH", "").split(":") if d]
    for candidate in candidates:
        if not (os.path.exists(candidate) and visible(candidate)):
            continue
        if os.path.isdir(candidate) or not os.access(candidate, os.X_OK):
            raise CommandNotExecutable(f"{name}: {candidate} is not executable")
        interpreter = shebang_interpreter(shebang(os.path.realpath(candidate)),
                                          env.get("PATH", ""), visible)
        if interpreter and not (os.path.exists(interpreter) and visible(interpreter)):
            raise CommandNotFound(
                f"{name}: its interpreter {interpreter} is not visible inside the sandbox",
                fix=fix or "install it where the sandbox sees it (/usr, the Nix store, the "
                "project)")
        return candidate
    raise CommandNotFound(f"{name}: command not found inside the sandbox", fix=fix)
