"""From what the user typed to a validated Policy and a HostView. Reads the filesystem
(stat, realpath), never writes, and turns every bad input into a UsageError that names it."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent_sandbox._errors import (
    SandboxUnavailable,
    UsageError,
)
from agent_sandbox._policy.env import check_request
from agent_sandbox._policy.identity import Identity
from agent_sandbox._policy.limits import (
    CAPPED_BY_DEFAULT,
    DEFAULT_PIDS,
    CgroupWay,
    Limits,
    default_memory,
    is_no_cap,
    parse_duration,
    parse_positive,
    parse_size,
)
from agent_sandbox._policy.values import (
    DEFAULT_AGENT_HOME_SIZE,
    DEFAULT_HOME_SIZE,
    DEFAULT_TMP_SIZE,
    EnvRequest,
    Mount,
    MountMode,
    NetMode,
    Policy,
    is_env_name,
    is_under,
)
from agent_sandbox._say import say

# Never a project: they would expose the system, every home, or the shared temp dirs.
_NOT_A_PROJECT = ("/", "/tmp", "/var/tmp", "/home", "/root")
_SYSTEM_TREES = ("/usr", "/etc", "/nix", "/proc", "/sys", "/dev", "/run", "/boot", "/bin",
                 "/sbin", "/lib", "/lib64", "/var/run")


def current_dir() -> str:
    try:
        cwd = os.getcwd()
    except FileNotFoundError:
        raise UsageError("the current directory no longer exists",
                         fix="cd to an existing directory") from None
    except PermissionError:
        raise UsageError("the current directory is not accessible to you",
                         fix="cd to a directory you can read") from None
    if not os.access(cwd, os.R_OK | os.X_OK):
        raise UsageError(f"the current directory {cwd} is not readable by you",
                         fix="cd to a directory you can read, or pass --project DIR")
    return os.path.realpath(cwd)


def default_project(cwd: str, home: str) -> str:
    """The git top-level of ``cwd`` (a ``.git`` dir or file), else ``cwd`` itself.

    A repository at or above $HOME (a dotfiles repo) is not taken: that would expose the
    whole home directory.
    """
    current = cwd
    while True:
        if os.path.lexists(os.path.join(current, ".git")):
            if not is_under(home, current):
                return current
            break
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return cwd


def check_project(path: str, home: str, origin: str) -> str:
    if not os.path.exists(path):
        raise UsageError(f"{origin} {path}: no such directory")
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        raise UsageError(f"{origin} {path}: not a directory")
    if real in _NOT_A_PROJECT or any(is_under(real, t) for t in _SYSTEM_TREES):
        raise UsageError(f"{origin} {real}: a system or shared directory cannot be the project",
                         fix="cd into a project directory or pass --project DIR")
    if is_under(home, real):
        raise UsageError(
            f"{origin} {real}: your home directory (or a parent of it) cannot be the project: "
            "it holds ~/.ssh, credentials and shell startup files",
            fix="cd into a project directory or pass --project DIR",
        )
    if not os.access(real, os.R_OK | os.W_OK | os.X_OK):
        raise UsageError(f"{origin} {real}: not readable and writable by you")
    return real


def _mount(mode: MountMode, raw: str, cwd: str, home: str) -> Mount:
    flag = f"--{mode.value}"
    path = raw if raw.startswith("/") else os.path.join(cwd, raw)
    if not os.path.lexists(path):
        raise UsageError(f"{flag} {raw}: no such file or directory")
    real = os.path.realpath(path)
    if real == "/":
        raise UsageError(f"{flag} {raw}: the whole root cannot be bound")
    if mode is not MountMode.HIDE and is_under(home, real):
        # It would cover the sandbox's own $HOME and show every key and login in it.
        raise UsageError(
            f"{flag} {raw}: your home directory (or a parent of it) cannot be shown: it "
            "holds ~/.ssh, credentials and every agent's login, and the sandbox's own $HOME "
            "goes there",
            fix=f"name only what the command needs, for example {flag} ~/.local/bin (keys "
                "and logins under a path you name stay hidden)")
    return Mount(mode=mode, path=real, origin=f"{flag} {raw}", is_dir=os.path.isdir(real))


def _env_request(raw: str) -> EnvRequest:
    name, sep, value = raw.partition("=")
    if not is_env_name(name):
        raise UsageError(f"--env {raw!r}: expected NAME or NAME=VALUE with a valid "
                         "variable name (letters, digits, _; not starting with a digit)")
    request = EnvRequest(name=name, value=value if sep else None, origin="--env")
    check_request(request)
    return request


def locate_project(project: str | None, identity: Identity) -> str:
    """--project DIR, else the git top-level of the current directory, else the current
    directory; checked (not $HOME, not a system or shared directory)."""
    cwd = current_dir()
    if project is None:
        return check_project(default_project(cwd, identity.home), identity.home, "project")
    return check_project(project if project.startswith("/") else os.path.join(cwd, project),
                         identity.home, "--project")


def build_policy(
    *,
    command: Sequence[str],
    project: str | None,
    net: str | None,
    ro: Sequence[str],
    rw: Sequence[str],
    hide: Sequence[str],
    env: Sequence[str],
    identity: Identity,
    allow_nested_userns: bool = False,
    allow: Sequence[str] = (),
    allow_private: Sequence[str] = (),
    resolve: Sequence[str] = (),
    forward_host: Sequence[str] = (),
    publish: Sequence[str] = (),
    limits: Mapping[str, str | None] | None = None,
    best_effort: bool = False,
    gpu: bool = False,
    home_size: str | None = None,
    agent_home_size: str | None = None,
    tmp_size: str | None = None,
    tmp_on_disk: bool = False,
    environ: Mapping[str, str] | None = None,
    agent: str = "",
    share_agent_state: bool = False,
    git_token_file: str | None = None,
    root_stays_root: bool = False,
    cgroup_way: Callable[[Mapping[str, str]], CgroupWay] | None = None,
) -> Policy:
    """The validated policy. ``cgroup_way`` is the runner's probe of how memory/pids/CPU
    limits can be enforced here, asked only when such a limit is (the policy records its
    answer, or refuses)."""
    if not command or not command[0]:
        raise UsageError("missing COMMAND", fix="for example: agent-sandbox -- bash")
    net_mode = _net_mode(net, bool(allow or allow_private))
    network = _network(net_mode, allow, allow_private, resolve, forward_host, publish)
    cwd = current_dir()
    project_dir = locate_project(project, identity)
    mounts = [_mount(MountMode.RO, p, cwd, identity.home) for p in ro]
    mounts += [_mount(MountMode.RW, p, cwd, identity.home) for p in rw]
    mounts += [_mount(MountMode.HIDE, p, cwd, identity.home) for p in hide]
    return Policy(
        project=project_dir,
        cwd=cwd if is_under(cwd, project_dir) else project_dir,
        command=tuple(command),
        net=net_mode,
        mounts=tuple(mounts),
        env=tuple(_env_request(e) for e in env),
        allow_nested_userns=allow_nested_userns,
        **network,
        **_limits(limits or {}, best_effort, os.environ if environ is None else environ,
                  cgroup_way, identity.uid == 0 and not root_stays_root),
        gpu=gpu,
        home_size=parse_size(home_size, "--home-size") if home_size else DEFAULT_HOME_SIZE,
        agent_home_size=parse_size(agent_home_size, "--agent-home-size") if agent_home_size
        else DEFAULT_AGENT_HOME_SIZE,
        tmp_size=parse_size(tmp_size, "--tmp-size") if tmp_size else DEFAULT_TMP_SIZE,
        tmp_on_disk=tmp_on_disk,
        git_token_file=_token_file(git_token_file, cwd) if git_token_file else "",
        **_agent_state(agent, share_agent_state, identity,
                       os.environ if environ is None else environ, project_dir),
        root_stays_root=root_stays_root,
    )


def _token_file(raw: str, cwd: str) -> str:
    path = os.path.realpath(raw if raw.startswith("/") else os.path.join(cwd, raw))
    if not os.path.isfile(path):
        raise UsageError(f"--git-token-file {raw}: not a file")
    if os.stat(path).st_mode & 0o077:
        say(f"warning: --git-token-file {raw} is readable by others "
            "(chmod 600 it)")
    return path


def _agent_state(agent: str, share: bool, identity: Identity,
                 environ: Mapping[str, str], project: str) -> dict[str, Any]:
    if not agent:
        if share:
            raise UsageError("--share-agent-state needs an agent preset (--agent NAME)")
        return {}
    from agent_sandbox._policy.presets import load, saved_home

    if share:
        paths = [os.path.join(identity.home, rel) for rel in load(agent).state]
        return {"agent": agent, "shared_state": tuple(p for p in paths if os.path.exists(p))}
    return {"agent": agent, "agent_home": saved_home(agent, project, environ)}


def _limits(raw: Mapping[str, str | None], best_effort: bool, environ: Mapping[str, str],
            cgroup_way: Callable[[Mapping[str, str]], CgroupWay] | None,
            root_caller: bool) -> dict[str, Any]:
    """Parse the limit flags; find how to enforce memory/pids/CPU or refuse (fail closed).
    Memory and pids not given get their default caps where a way works (for a root caller,
    only a delegated cgroup: its command cannot start in a systemd scope)."""
    values: dict[str, Any] = {"best_effort": best_effort}
    parsers: dict[str, Callable[[str], float]] = {
        "memory": lambda v: parse_size(v, "--memory"),
        "pids": lambda v: int(parse_positive(v, "--pids", int)),
        "cpus": lambda v: parse_positive(v, "--cpus", float),
        "timeout": lambda v: parse_duration(v, "--timeout"),
        "nofile": lambda v: int(parse_positive(v, "--nofile", int)),
        "nproc": lambda v: int(parse_positive(v, "--nproc", int)),
        "fsize": lambda v: parse_size(v, "--fsize"),
    }
    for name, text in raw.items():
        if text is not None and not is_no_cap(text, name):
            values[name] = parsers[name](text)
    limits = Limits(**values)
    unset = tuple(n for n in CAPPED_BY_DEFAULT if n in raw and raw[n] is None)
    if not limits.cgroup and not unset:
        return {"limits": limits}
    way = cgroup_way(environ) if cgroup_way else CgroupWay(why_not="no way was probed")
    if limits.cgroup and not (way.parent or way.systemd_run):
        asked = ", ".join(f"--{n}" for n in ("memory", "pids", "cpus") if values.get(n))
        if not best_effort:
            raise SandboxUnavailable(
                f"{asked} cannot be enforced here: {way.why_not}",
                fix="delegate a cgroup v2 directory to yourself (docs/configuration.md), or "
                    "run where systemd --user manages a cgroup v2 tree; else drop the limit, "
                    "or add --best-effort to run without it (with a warning)")
        say(f"warning: --best-effort: {asked} NOT enforced: {way.why_not}")
        limits = limits._replace(memory=None, pids=None, cpus=None)
    if unset:
        why_not = way.why_not or ("a root caller's command cannot start in a systemd-run "
                                  "scope, and no delegated cgroup was found"
                                  if root_caller and not way.parent else "")
        if why_not:
            limits = limits._replace(uncapped=why_not if "memory" in unset else "")
        else:
            limits = limits._replace(
                memory=default_memory() if "memory" in unset else limits.memory,
                pids=DEFAULT_PIDS if "pids" in unset else limits.pids)
    if way.parent:
        return {"limits": limits, "cgroup_parent": way.parent}
    if way.systemd_run and limits.cgroup:
        return {"limits": limits, "systemd_run": way.systemd_run}
    return {"limits": limits}


def _net_mode(net: str | None, has_allow_list: bool) -> NetMode:
    """--allow alone implies --net filtered; with --net none or host it is a mistake."""
    if net is None:
        return NetMode.FILTERED if has_allow_list else NetMode.NONE
    mode = NetMode(net)
    if has_allow_list and mode is not NetMode.FILTERED:
        raise UsageError(f"--allow needs --net filtered (not --net {net})",
                         fix="drop --net, or use --net filtered")
    return mode


def _network(mode: NetMode, allow: Sequence[str], allow_private: Sequence[str],
             resolve: Sequence[str], forward_host: Sequence[str],
             publish: Sequence[str]) -> dict[str, Any]:
    if mode is NetMode.FILTERED and not (allow or allow_private):
        raise UsageError("--net filtered needs at least one --allow HOST[:PORT]",
                         fix="for example: --allow api.anthropic.com")
    if resolve and mode is not NetMode.FILTERED:
        raise UsageError("--resolve goes with --net filtered")
    if (forward_host or publish) and mode is NetMode.HOST:
        raise UsageError("--forward-host and --publish are for --net none or filtered; "
                         "with --net host the host's loopback is shared already")
    if not (allow or allow_private or resolve or forward_host or publish):
        return {}  # the common --net none launch: no ipaddress import
    from agent_sandbox._net.allow import parse_allow, parse_forward, parse_publish, parse_resolve

    entries = [parse_allow(a) for a in allow]
    entries += [parse_allow(a, private=True, origin="--allow-private") for a in allow_private]
    forwards = [parse_forward(f) for f in forward_host]
    # Once each: a preset's (codex login) and the same --publish typed are one port.
    ports = list(dict.fromkeys(parse_publish(p) for p in publish))
    taken = [f.inside_port for f in forwards]
    if mode is NetMode.FILTERED:
        taken += [443, 80, 3128]
    clash = sorted({p for p in taken if taken.count(p) > 1})
    if clash:
        raise UsageError(f"--forward-host: port {clash[0]} inside is already taken "
                         "(443, 80 and 3128 serve the filtered network)")
    return {
        "allow": tuple(entries),
        "pins": tuple(parse_resolve(r) for r in resolve),
        "forwards": tuple(forwards),
        "publish": tuple(ports),
    }
