"""``agent-sandbox explain PATH|HOST[:PORT] [OPTIONS] [-- COMMAND]``: what a launch with these
options would make of one path or one host, and which rule decides it.

The answer is read off the real plan (the same flags, config layers and preset as a launch) and
the real network decision (``_net.allow.decide``), never from a second copy of their rules.
Paths: bwrap mounts in order, and a later mount hides whatever an earlier one put at or under
its place, so the last mount at or above a path is what the command sees there. Symlinks are
followed the way the kernel inside would: a link seen through a bind from the host is the
host's link; the links the plan makes itself (``/var/tmp``, merged-/usr ``/bin``) are its own.

Everything up to the rendered lines is pure; the host is read only through ``HostFs`` and in
``explain`` itself.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import posixpath
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from agent_sandbox._errors import UsageError
from agent_sandbox._net.address import address_refusal
from agent_sandbox._net.allow import DEFAULT_PORTS, AllowEntry, allow_hint, decide
from agent_sandbox._net.names import is_ip_literal, is_loopback_name, normalise_name
from agent_sandbox._plan.build import PLACEHOLDER_SOURCES, PROC_MASKED, Op, Plan, Word
from agent_sandbox._plan.install import INSTALL_ORIGIN
from agent_sandbox._plan.protect import Protection
from agent_sandbox._policy.config import ENV_PREFIX, LIST_KEYS, Value
from agent_sandbox._policy.values import NetMode, Policy, is_under
from agent_sandbox._say import printable

READ_WRITE, READ_ONLY, HIDDEN, MASKED, REPLACED = (
    "read-write", "read-only", "hidden", "masked", "replaced")
# The bwrap options that put something at a place, and how many arguments they take (the
# place is the last one).
_MOUNT_ARITY = {"--bind": 2, "--ro-bind": 2, "--dev-bind": 2, "--ro-bind-data": 2,
                "--symlink": 2, "--tmpfs": 1, "--dir": 1, "--proc": 1, "--dev": 1}
_HOST_BINDS = ("--bind", "--ro-bind", "--dev-bind")
_MEANING = {HIDDEN: " (not present inside)", MASKED: " (in place, but unreadable)",
            REPLACED: " (the sandbox's own, not the host's)"}
_MAX_LINKS = 40  # as the kernel (ELOOP)


class Mounted(NamedTuple):
    """One operation of the plan that puts something at ``dest``, in bwrap's order."""

    verb: str
    source: Word | None  # a host path, a symlink's target, a launcher value, or None
    dest: str
    perms: str  # the --perms before it, or ""
    op: Op
    section: str


class HostFs(NamedTuple):
    """The two questions a path's answer asks the host (faked in the unit tests)."""

    lexists: Callable[[str], bool]
    readlink: Callable[[str], str | None]  # the target, or None: not a symlink


class Link(NamedTuple):
    path: str  # where the symlink is, inside
    target: str
    how: str


class PathAnswer(NamedTuple):
    inside: str  # where the path leads inside, every symlink followed
    links: tuple[Link, ...]
    state: str  # READ_WRITE, READ_ONLY, HIDDEN, MASKED or REPLACED
    detail: str
    mounted: Mounted | None  # the mount that decides it; None: no mount shows it
    exists: bool  # present inside (if not: what it would be, were it created on the host)


class Origins(NamedTuple):
    """What stands behind the plan's operations."""

    settings: Mapping[str, Value]  # the merged layers (``_config.effective``)
    policy: Policy
    protections: tuple[Protection, ...]
    project: str  # how the project was chosen
    home: str


# --- paths (pure) ------------------------------------------------------------------------------


def mount_table(plan: Plan) -> tuple[Mounted, ...]:
    table = []
    for section in plan.sections:
        for op in section.ops:
            verb = next((w for w in op.words if isinstance(w, str) and w in _MOUNT_ARITY), "")
            if not verb:
                continue  # namespaces, identity, seccomp...: nothing at a place
            at, arity = op.words.index(verb), _MOUNT_ARITY[verb]
            perms = op.words[op.words.index("--perms") + 1] if "--perms" in op.words else ""
            table.append(Mounted(verb, op.words[at + 1] if arity == 2 else None,
                                 str(op.words[at + arity]), str(perms), op, section.title))
    return tuple(table)


def covering(table: Sequence[Mounted], path: str) -> Mounted | None:
    """The last mount at or above ``path``: what the command sees there."""
    return next((m for m in reversed(table) if is_under(path, m.dest)), None)


def _host_path(m: Mounted, path: str) -> str | None:
    """The host path a bind from the host shows at ``path`` (at or under its place)."""
    if m.verb in _HOST_BINDS and isinstance(m.source, str):
        return m.source + path[len(m.dest):]
    return None


def _link_at(table: Sequence[Mounted], path: str, fs: HostFs) -> Link | None:
    m = covering(table, path)
    if m is None:
        return None
    if m.verb == "--symlink" and path == m.dest:
        return Link(path, str(m.source), f"made by the plan: {m.op.text()}")
    host = _host_path(m, path)
    target = fs.readlink(host) if host is not None else None
    return Link(path, target, "the host's symlink") if target is not None else None


def resolve_inside(table: Sequence[Mounted], path: str, fs: HostFs) -> tuple[str, tuple[Link, ...]]:
    """Follow the absolute ``path`` component by component, as the kernel would inside."""
    pending = list(reversed(path.split("/")))
    done: list[str] = []
    links: list[Link] = []
    while pending:
        part = pending.pop()
        if part in ("", "."):
            continue
        if part == "..":
            del done[-1:]
            continue
        link = _link_at(table, "/" + "/".join([*done, part]), fs)
        if link is None:
            done.append(part)
            continue
        if len(links) == _MAX_LINKS:
            raise UsageError(f"{path}: too many levels of symbolic links")
        links.append(link)
        if link.target.startswith("/"):
            done = []
        pending.extend(reversed(link.target.split("/")))
    return "/" + "/".join(done), tuple(links)


def _masks(m: Mounted, masked_dirs: Sequence[str]) -> bool:
    # $HOME and the secret dirs are both 0700 tmpfs: only the host view says which hides a
    # secret (``HostLayout.secret_dirs``).
    return (m.source == "/dev/null" or m.source in PLACEHOLDER_SOURCES.values()
            or m.perms == "0000" or m.dest in masked_dirs)


def _classify(m: Mounted | None, path: str, masked_dirs: Sequence[str]) -> tuple[str, str]:
    """The state of ``path`` under the mount ``m``, and one sentence saying why."""
    if m is None:
        if path == "/":
            return REPLACED, "the sandbox's own root: it holds only what the plan mounts"
        return HIDDEN, ("no mount of the plan shows it (the sandbox's root holds only the "
                        "plan's mounts and the directories on their way)")
    if m.op.when == "no-copies" and path == m.dest:
        return REPLACED, ("a symlink to a writable copy stands there (git config: remotes, "
                          "upstreams and submodules reach the host's file at exit, other "
                          "keys are quarantined); read-only instead where the copy cannot "
                          "be made (docs/usage.md, What the command sees)")
    if _masks(m, masked_dirs):
        if path != m.dest:
            return MASKED, f"it is inside {m.dest}, which is masked"
        if m.source in PLACEHOLDER_SOURCES.values():
            return MASKED, ("an empty read-only placeholder stands there while the sandbox "
                            "runs, so it cannot be created either")
        over = f"an empty mode-{m.perms} directory" if m.verb == "--tmpfs" else m.source
        return MASKED, f"{over} is mounted over it"
    host = _host_path(m, path)
    if host is not None:
        mode = READ_ONLY if m.verb == "--ro-bind" else READ_WRITE
        if host != path:
            return (REPLACED if path == m.dest else HIDDEN), (
                f"the sandbox shows the host's {host} ({mode}) at this place instead")
        what = "itself" if path == m.dest else m.dest
        return mode, f"shown from the host by a {mode} mount of {what}" + (
            " (file permissions still apply)" if mode == READ_WRITE else "")
    if path == m.dest:
        return REPLACED, "made by the sandbox, not the host's"
    if m.verb in ("--proc", "--dev"):
        return REPLACED, f"part of the sandbox's own {m.dest}"
    return HIDDEN, f"{m.dest} is the sandbox's own, so nothing the host has under it is there"


def _exists(m: Mounted | None, path: str, fs: HostFs) -> bool:
    if m is None:
        return path == "/"
    if path == m.dest or m.verb in ("--proc", "--dev"):
        return True
    host = _host_path(m, path)
    return host is not None and fs.lexists(host)


def judge_path(table: Sequence[Mounted], path: str, fs: HostFs,
               masked_dirs: Sequence[str]) -> PathAnswer:
    """What the command sees at the absolute ``path``, and the mount that decides it."""
    inside, links = resolve_inside(table, path, fs)
    m = covering(table, inside)
    state, detail = _classify(m, inside, masked_dirs)
    return PathAnswer(inside, links, state, detail, m, _exists(m, inside, fs))


def _describe(source: str) -> str:
    if source.startswith("--"):
        return f"{source} (command line)"
    if source.startswith(ENV_PREFIX):
        return f"{source} (environment)"
    return source


def _flag_layer(why: str, settings: Mapping[str, Value]) -> str | None:
    """The layer behind an operation whose reason names a flag ("--ro PATH", "--gpu")."""
    flag, _, rest = why.partition(" ")
    flag = flag.rstrip(":")
    if not flag.startswith("--"):
        return None
    value = settings.get(flag[2:].replace("-", "_"))
    if value is None:
        return _describe(flag)
    sources = value.sources_of(rest) if flag[2:] in LIST_KEYS else [value.source]
    return " and ".join(map(_describe, sources)) or _describe(flag)


def _protect_layer(path: str, o: Origins) -> str:
    found = next((p for p in o.protections if p.path == path), None)
    protect = o.settings.get("protect")
    if found is not None and found.why == "protect" and protect is not None:
        for rel in protect.value:
            if path.endswith("/" + posixpath.normpath(rel)):
                return f"protect {rel}: " + " and ".join(map(_describe, protect.sources_of(rel)))
    return "built-in: the protected names (docs/usage.md, What the command sees)"


def layer_of(m: Mounted, o: Origins) -> str:
    """Which layer (built-in, a config file's line, a variable, a flag, a preset) is behind
    the mount ``m``."""
    if m.op.why.startswith("protected"):
        return _protect_layer(m.dest, o)
    if m.verb == "--bind" and m.dest == m.source == o.policy.project:
        return o.project
    if m.dest == o.home and o.policy.agent_home:
        return f"the {o.policy.agent} preset (its home for this project, {o.policy.agent_home})"
    if m.op.why.startswith(INSTALL_ORIGIN):
        setting = o.settings.get("show_command_install")
        return ("show_command_install: the command's installation, found from its layout on "
                "your PATH (" + (_describe(setting.source) if setting else "on by default")
                + ")")
    return _flag_layer(m.op.why, o.settings) or f"built-in ({m.section})"


def _unprotected(path: str, o: Origins) -> list[str]:
    relaxed = o.settings.get("unprotect")
    if relaxed is None or not is_under(path, o.policy.project):
        return []
    return [f"not protected: unprotect {rel}: "
            + " and ".join(map(_describe, relaxed.sources_of(rel)))
            for rel in relaxed.value if f"/{rel}/" in path + "/"]


def render_path(shown: str, answer: PathAnswer, o: Origins) -> list[str]:
    lines = [f"{shown}: {answer.state}" + _MEANING.get(answer.state, ""),
             f"  why:     {answer.detail}"]
    lines += [f"  symlink: {link.path} -> {link.target} ({link.how})" for link in answer.links]
    if answer.links:
        lines.append(f"  inside:  it leads to {answer.inside}")
    m = answer.mounted
    if m is not None:
        lines.append(f"  mount:   {m.op.text()}" + (f"    # {m.op.why}" if m.op.why else ""))
        lines.append(f"  layer:   {layer_of(m, o)}")
    lines += [f"  note:    {note}" for note in _unprotected(answer.inside, o)]
    return lines


# --- hosts (pure) ------------------------------------------------------------------------------


def split_target(raw: str) -> tuple[str, int | None]:
    """``HOST``, ``HOST:PORT`` or ``[V6]:PORT`` -> (host, port or None), parsed as the proxy
    parses a CONNECT target; a UsageError if malformed or not a host name or address."""
    from agent_sandbox._net.wire import split_host_port

    # Port 0 is refused by the parser, so a result with it as the default had a port.
    with_port = split_host_port(raw, 0)
    bare = split_host_port(raw, DEFAULT_PORTS[0]) if with_port is None else None
    host, port = with_port or (bare[0] if bare else "", None)
    if not host or not (normalise_name(host) or is_ip_literal(host)
                        or is_loopback_name(host)):
        hint = " (a relative path starts with ./, or use --path)" if "/" in raw else ""
        raise UsageError(f"explain {raw!r}: not a host name, HOST:PORT or path{hint}")
    return host, port


def _net_layer(policy: Policy, settings: Mapping[str, Value]) -> str:
    if "net" in settings:
        return _describe(settings["net"].source)
    if policy.net is NetMode.FILTERED:
        return "built-in: filtered, because the allow-list is not empty"
    return "built-in default"


def _entry_layer(entry: AllowEntry, settings: Mapping[str, Value]) -> str:
    flag, _, raw = entry.origin.partition(" ")
    value = settings.get(flag[2:].replace("-", "_"))
    sources = value.sources_of(raw) if value is not None else []
    return " and ".join(map(_describe, sources)) or _describe(flag)


def _is_loopback(host: str) -> bool:
    if is_loopback_name(host):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _loopback(policy: Policy, shown: str, port: int | None) -> list[str]:
    forward = next((f for f in policy.forwards if f.inside_port == port), None)
    if forward is not None:
        return [f"{shown}: reachable: the sandbox's own loopback, where {forward.origin} "
                "relays it to the host"]
    return [f"{shown}: the sandbox's own loopback, not the host's: only what runs inside "
            f"listens there (to reach the host's service: --forward-host {port or 'PORT'})"]


def _at_connection(policy: Policy, name: str, entry: AllowEntry) -> list[str]:
    lines = [f"  then:    the TLS server name (SNI) or HTTP Host must be {name}"]
    pinned = dict(policy.pins).get(name)
    if pinned is not None:
        refusal = address_refusal(pinned, entry.allow_private)
        verdict = "accepted" if refusal is None else f"refused at connection time: {refusal}"
        if refusal is not None and address_refusal(pinned, True) is None:
            verdict += f" (--allow-private {name} would accept it)"
        return [*lines, f"  address: {pinned}, pinned by --resolve (no lookup): {verdict}"]
    if entry.allow_private:
        kind = "private, loopback, link-local and CGNAT answers are accepted (--allow-private)"
    else:
        kind = ("loopback, private, link-local and CGNAT answers are refused (--allow-private "
                f"{name} would accept them)")
    return [*lines, f"  address: looked up when the command connects (explain does no DNS): "
                    f"{kind}; cloud metadata, multicast and unspecified answers always are"]


def _candidate_ports(entries: Sequence[AllowEntry]) -> tuple[int, ...]:
    others = sorted({p for e in entries for p in e.ports} - set(DEFAULT_PORTS))
    return (*DEFAULT_PORTS, *others)


def judge_host(policy: Policy, settings: Mapping[str, Value], host: str,
               port: int | None) -> list[str]:
    """Whether the filtered network lets ``host`` (on ``port``, or on which ports) through,
    by the real decision (``_net.allow.decide``), and which allow entry and layer say so."""
    shown = host if port is None else f"{host}:{port}"
    net = f"  network: {policy.net.value}    layer: {_net_layer(policy, settings)}"
    if policy.net is NetMode.HOST:
        return [f"{shown}: allowed (--net host: the host's own network, nothing filtered)", net]
    if _is_loopback(host):
        return [*_loopback(policy, shown, port), net]
    hint = allow_hint(host, port or DEFAULT_PORTS[0])
    if policy.net is NetMode.NONE:
        return [f"{shown}: denied (--net none: the sandbox has only its own loopback)", net,
                f"  to allow it: {hint} (which selects --net filtered)"]
    ports = (port,) if port is not None else _candidate_ports(policy.allow)
    verdicts = [(p, decide(policy.allow, host, p)) for p in ports]
    allowed = [(p, v.entry) for p, v in verdicts if v.allowed and v.entry is not None]
    if not allowed:
        denied = verdicts[0][1]
        lines = [f"{shown}: denied ({denied.reason})", net]
        if denied.entry is not None:
            lines.append(f"  entry:   {denied.entry.origin}    layer: "
                         f"{_entry_layer(denied.entry, settings)}")
        return [*lines, f"  to allow it: {hint}"]
    names = ", ".join(str(p) for p, _ in allowed)
    lines = [f"{shown}: allowed on port{'s' if len(allowed) > 1 else ''} {names}", net]
    lines += [f"  port {p}: {e.origin}    layer: {_entry_layer(e, settings)}"
              for p, e in allowed]
    return lines + _at_connection(policy, normalise_name(host) or host, allowed[0][1])


# --- the command -------------------------------------------------------------------------------


def is_path(text: str) -> bool:
    """The syntax: what starts with /, . or ~ is a path; anything else a host."""
    return text.startswith(("/", ".", "~"))


def _parse(argv: Sequence[str]) -> tuple[argparse.Namespace, str, bool]:
    """(options, target, whether it is a path). The target comes first, or as --path/--host
    anywhere; the other options are the launch's."""
    from agent_sandbox._cli.parser import _parser

    p = _parser()
    p.usage = "agent-sandbox explain PATH|HOST[:PORT] [OPTIONS] [-- COMMAND]"
    forced = p.add_mutually_exclusive_group()
    forced.add_argument("--path", help="explain this path (whatever it looks like)")
    forced.add_argument("--host", help="explain this host (whatever it looks like)")
    first = 1 if argv and not argv[0].startswith("-") else 0
    args = p.parse_args(argv[first:])
    for flag in ("dry_run", "check", "json"):
        if getattr(args, flag):
            raise UsageError(f"--{flag.replace('_', '-')} does not go with explain")
    given = [t for t in (argv[0] if first else None, args.path, args.host) if t is not None]
    if len(given) != 1:
        raise UsageError("explain takes one PATH or HOST[:PORT]",
                         fix="agent-sandbox explain PATH|HOST[:PORT] [OPTIONS] [-- COMMAND]")
    target = given[0]
    return args, target, args.path is not None or (args.host is None and is_path(target))


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:  # not a symlink, or not there
        return None


HOST_FS = HostFs(os.path.lexists, _readlink)


def explain(argv: Sequence[str]) -> int:
    from agent_sandbox._cli.main import command_install, policy_from
    from agent_sandbox._cli.settings import merged_settings, preset_name
    from agent_sandbox._plan.build import build_plan
    from agent_sandbox._plan.host import probe_layout
    from agent_sandbox._plan.view import gather_host_view
    from agent_sandbox._policy.identity import current_identity
    from agent_sandbox._policy.request import current_dir, locate_project

    args, target, path_wanted = _parse(argv)
    command = list(args.command[1:] if args.command[:1] == ["--"] else args.command)
    host = None if path_wanted else split_target(target)  # bad input fails before any work
    identity = current_identity()
    project = locate_project(args.project, identity)
    agent = preset_name(args, command)
    settings, _ = merged_settings(args, project, agent, command, ["explain", *argv])
    s = {k: v.value for k, v in settings.items()}
    # The command changes nothing here.
    policy = policy_from(args, s, command=command or ["true"], project=project,
                         identity=identity, agent=agent, limits=False)
    layout = probe_layout()
    if command:
        policy, _ = command_install(policy, s, layout, identity.home, argv, args.command, agent)
    if host is not None:
        lines = judge_host(policy, settings, *host)
        if os.path.lexists(target):
            lines.append(f"  note:    taken as a host; for the file, write ./{target} or "
                         f"--path {target}")
        print("\n".join(map(printable, lines)))
        return 0
    view = gather_host_view(identity, layout, os.environ, policy.project,
                            protect=s.get("protect", ()), unprotect=s.get("unprotect", ()))
    origins = Origins(settings, policy, view.protections,
                      "--project (command line)" if args.project else
                      "the project: the current directory's git top-level, else itself",
                      identity.home)
    raw = os.path.expanduser(target)
    path = raw if raw.startswith("/") else posixpath.join(current_dir(), raw)
    masked_dirs = (*view.layout.secret_dirs,
                   *(p for p, is_dir in view.proc_entries if is_dir and p in PROC_MASKED))
    print("\n".join(map(printable, _explain_path(path, build_plan(policy, view), origins,
                                                 masked_dirs))))
    return 0


def _explain_path(path: str, plan: Plan, o: Origins, masked_dirs: Sequence[str]) -> list[str]:
    table = mount_table(plan)
    shown = posixpath.normpath(path)
    answer = judge_path(table, path, HOST_FS, masked_dirs)
    on_host = os.path.lexists(path)
    if not answer.exists and not on_host:
        raise UsageError(f"{shown}: no such file or directory on the host; created there, it "
                         f"would be {answer.state} inside ({answer.detail})")
    lines = render_path(shown, answer, o)
    if not on_host:
        lines.append("  note:    not on the host: the sandbox makes it")
    # A symlink whose place the sandbox does not show (one in $HOME to the project) leads
    # nowhere inside, while its target may well be there: say so.
    real = os.path.realpath(path)
    other = judge_path(table, real, HOST_FS, masked_dirs)
    if real != answer.inside and other.state != answer.state:
        lines.append(f"  note:    on the host it resolves to {real}, which is {other.state} "
                     "inside (explain that path for why)")
    return lines
