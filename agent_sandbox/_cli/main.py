"""``agent-sandbox [OPTIONS] [--] COMMAND [ARG...]``: the command-line front.

Every error ends as one ``agent-sandbox: error: ...`` line (plus a ``fix:`` line when there
is one) and a documented exit status; never a traceback, never a partial launch.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agent_sandbox import __version__
from agent_sandbox._cli.parser import RECORD_VARIABLE, _parser
from agent_sandbox._errors import SandboxError, UsageError
from agent_sandbox._say import home_relative, say

if TYPE_CHECKING:
    from agent_sandbox._plan.build import HostView, Plan
    from agent_sandbox._plan.host import HostLayout
    from agent_sandbox._plan.install import Install
    from agent_sandbox._policy.identity import Identity
    from agent_sandbox._policy.limits import CgroupWay
    from agent_sandbox._policy.values import Policy


LIMIT_KEYS = ("memory", "pids", "cpus", "timeout", "nofile", "nproc", "fsize")


def policy_from(args: argparse.Namespace, s: Mapping[str, Any], *, command: Sequence[str],
                project: str, identity: Identity, agent: str,
                limits: bool = True) -> Policy:
    """The policy from merged settings ``s``; without ``limits`` (``explain``: they decide
    no path or host, and resolving them looks for a cgroup, which could refuse)."""
    from agent_sandbox._policy.request import build_policy

    return build_policy(command=command, project=project, net=s.get("net"),
                        ro=s.get("ro", ()), rw=s.get("rw", ()), hide=s.get("hide", ()),
                        env=s.get("env", ()), identity=identity,
                        allow_nested_userns=s.get("allow_nested_userns", False),
                        allow=s.get("allow", ()), allow_private=s.get("allow_private", ()),
                        resolve=s.get("resolve", ()), forward_host=s.get("forward_host", ()),
                        publish=s.get("publish", ()),
                        limits={n: s.get(n) for n in LIMIT_KEYS} if limits else {},
                        best_effort=s.get("best_effort", False), gpu=s.get("gpu", False),
                        home_size=s.get("home_size"),
                        agent_home_size=s.get("agent_home_size"),
                        tmp_size=s.get("tmp_size"), tmp_on_disk=s.get("tmp_on_disk", False),
                        agent=agent,
                        git_token_file=s.get("git_token_file"),
                        share_agent_state=args.share_agent_state,
                        root_stays_root=s.get("root_stays_root", False),
                        cgroup_way=_cgroup_way)


def command_install(policy: Policy, s: Mapping[str, Any], layout: HostLayout, home: str,
                    argv: Sequence[str], command: Sequence[str],
                    agent: str) -> tuple[Policy, Install | None]:
    """The policy with the command's installation shown read-only when the sandbox does not
    show it (``show_command_install``, on by default), and that installation (found even
    when the setting is off: the fix for a missing command names it)."""
    from agent_sandbox._plan.build import visible_inside
    from agent_sandbox._plan.install import InstallRefused, find_install, with_install

    state: tuple[str, ...] = ()
    if agent:
        from agent_sandbox._policy.presets import load

        state = load(agent).state
    try:
        install = find_install(policy.command[0], cwd=policy.cwd, environ=os.environ,
                               home=home, state=state,
                               visible=lambda p: visible_inside(policy, layout, p))
    except InstallRefused as e:
        import shlex

        options = list(argv[:len(argv) - len(command)])
        if agent and not any(o == "--agent" or o.startswith("--agent=") for o in options):
            options += ["--agent", agent]
        fix = shlex.join(["agent-sandbox", "--ro", e.program, *options, "--", e.program,
                          *policy.command[1:]])
        raise UsageError(e.message, fix=f"show only the program file: {fix}") from None
    if install is None or not s.get("show_command_install", True):
        return policy, install
    return with_install(policy, install), install


def _missing_fix(install: Install, s: Mapping[str, Any], argv: Sequence[str]) -> str:
    """For a command the sandbox does not show because show_command_install is off: the
    same launch with its installation given as --ro."""
    import shlex

    shown = [w for x in install.shown for w in ("--ro", x.path)]
    off = s.get("show_command_install")
    where = f" (show_command_install is off: {off.source})" if off is not None else ""
    return (f"it is installed at {install.found}{where}; show it read-only: "
            + shlex.join(["agent-sandbox", *shown, *argv]))


def _cgroup_way(environ: Mapping[str, str]) -> CgroupWay:
    """The runner's probe, imported only when a cgroup limit is asked for."""
    from agent_sandbox._run import cgroup

    return cgroup.cgroup_way(environ)


# Subcommands, imported only when used. A command with one of these names runs as
# ``agent-sandbox -- NAME``.
SUBCOMMANDS = {
    "config": ("agent_sandbox._cli.settings", "show_config"),
    "explain": ("agent_sandbox._cli.explain", "explain"),
    "ps": ("agent_sandbox._cli.sessions", "ps"),
    "stop": ("agent_sandbox._cli.sessions", "stop"),
    "log": ("agent_sandbox._cli.sessions", "log"),
    "attach": ("agent_sandbox._cli.sessions", "attach"),
    "shell-hook": ("agent_sandbox._cli.devshell", "shell_hook"),
    "agent-wrapper": ("agent_sandbox._cli.devshell", "agent_wrapper"),
    "completion": ("agent_sandbox._cli.completion", "completion_main"),
    "state": ("agent_sandbox._cli.state", "state"),
    "quarantine": ("agent_sandbox._cli.quarantine", "quarantine"),
}


# -q and -v may come before any subcommand (``agent-sandbox -q ps``, ``-qv``); the launch's
# other options before ``config`` and ``explain`` only, which take them.
_GLOBAL_FLAG = re.compile(r"--quiet|--verbose|-[qv]+")
TAKE_LAUNCH_OPTIONS = ("config", "explain")


def _subcommand(name: str, options: Sequence[str], rest: Sequence[str]) -> int:
    """Run subcommand ``name`` with ``rest``, the words after it, and ``options``, the
    options before it."""
    import importlib

    if name in TAKE_LAUNCH_OPTIONS:
        # explain's target is its first word: the options go after it.
        first = 1 if name == "explain" and rest[:1] and not rest[0].startswith("-") else 0
        rest = [*rest[:first], *options, *rest[first:]]
    else:
        for word in options:
            if not _GLOBAL_FLAG.fullmatch(word):
                raise UsageError(f"{word.split('=', 1)[0]} is an option of a launch, which "
                                 f"{name} does not take",
                                 fix=f"agent-sandbox {name} --help lists what it takes")
        if any(w == "--quiet" or (w[:2] != "--" and "q" in w) for w in options):
            from agent_sandbox._say import hush

            hush()
    module, function = SUBCOMMANDS[name]
    front: Callable[[list[str]], int] = getattr(importlib.import_module(module), function)
    return front(list(rest))


def _relaunch(argv: Sequence[str], command: Sequence[str], name: str) -> list[str]:
    """This launch as a new process: same interpreter and entry, same options minus
    --detach, with --name, same command."""
    entry = sys.orig_argv[:len(sys.orig_argv) - len(sys.argv) + 1]
    options = [a for a in argv[:len(argv) - len(command)] if a != "--detach"]
    named = [] if "--name" in options or any(a.startswith("--name=") for a in options) \
        else ["--name", name]
    return [*entry, *options, *named, *command]


def _check_command(plan: Plan, view: HostView, fix: str | None) -> str:
    """``check_command`` (the program that runs inside); a command not found whose name is
    close to a preset's says so (looked for only then: nothing on the launch path)."""
    from agent_sandbox._errors import CommandNotFound
    from agent_sandbox._plan.view import check_command

    try:
        return check_command(plan, view, fix)
    except CommandNotFound as e:
        name = plan.policy.command[0]
        if "/" not in name and e.message.endswith("command not found inside the sandbox"):
            import difflib

            from agent_sandbox._policy.presets import names

            close = difflib.get_close_matches(name, names(os.environ), n=1)
            if close:
                e.message += f" (did you mean {close[0]!r}?)"
        raise


def _who(identity: Identity, policy: Policy, sudo_user: str) -> str:
    """Who the command runs as, for the start line, when that is not simply the caller."""
    if sudo_user:
        return f"as {sudo_user} (from sudo)"
    if identity.uid != 0:
        return ""
    if policy.root_stays_root:
        return "as host root (--root-stays-root)"
    from agent_sandbox._policy.identity import ROOT_COMMAND_UID

    return f"as host uid {ROOT_COMMAND_UID} (called as root; writable paths idmapped)"


def _run(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    from agent_sandbox._run.caller import drop_sudo

    sudo_user = drop_sudo(os.environ)
    session_id = os.environ.pop(RECORD_VARIABLE, None)
    if session_id:
        # A detached launch: run it on a terminal whose output is kept (this process relays
        # and returns the status once it ended; the launch goes on in its child).
        from agent_sandbox._run.scrollback import recorded

        status = recorded(session_id)
        if status is not None:
            return status
    if argv[:1] and argv[0] in SUBCOMMANDS:
        return _subcommand(argv[0], (), argv[1:])
    args = _parser().parse_args(argv)
    if args.command[:1] and args.command[0] in SUBCOMMANDS:
        # Options, then a subcommand's name (not after --, which marks a command).
        options = argv[:len(argv) - len(args.command)]
        return _subcommand(args.command[0], options, args.command[1:])
    if args.name is not None:
        from agent_sandbox._run.sessions import check_name

        check_name(args.name)
    if args.json and not args.check:
        raise UsageError("--json goes with --check")
    if args.check:
        from agent_sandbox._cli.check import report

        return report(args.json)
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]

    if not command or not command[0]:
        raise UsageError("missing COMMAND", fix="for example: agent-sandbox -- bash")
    from agent_sandbox._plan.build import build_plan
    from agent_sandbox._plan.host import probe_layout
    from agent_sandbox._plan.view import gather_host_view
    from agent_sandbox._policy.identity import current_identity
    from agent_sandbox._policy.request import locate_project

    identity = current_identity()
    project = locate_project(args.project, identity)
    from agent_sandbox._cli.settings import merged_settings, preset_name

    agent = preset_name(args, command)
    settings, notes = merged_settings(args, project, agent, command, argv)
    s = {k: v.value for k, v in settings.items()}
    policy = policy_from(args, s, command=command, project=project, identity=identity,
                         agent=agent)
    layout = probe_layout()
    policy, install = command_install(policy, s, layout, identity.home, argv, args.command,
                                      agent)
    view = gather_host_view(identity, layout, os.environ, policy.project,
                            protect=s.get("protect", ()), unprotect=s.get("unprotect", ()))
    plan = build_plan(policy, view)
    missing_fix = _missing_fix(install, settings, argv) if install else None

    if args.dry_run:
        from agent_sandbox._run.bwrap import find_bwrap

        try:
            where = find_bwrap(os.environ)
        except SandboxError as e:
            where = f"(not usable: {e.message})"
        print(f"# agent-sandbox {__version__} plan (dry run: nothing was started)")
        print(f"# bwrap: {where}")
        try:
            _check_command(plan, view, missing_fix)
        except SandboxError as e:
            print(f"# note: {e.message}")
        sys.stdout.write(plan.describe())
        return 0

    inside = _check_command(plan, view, missing_fix)
    if missing_fix is not None and not s.get("show_command_install", True):
        # Another program of that name is visible: it runs, not the one the caller's
        # shell would, which must not go unsaid.
        say(f"warning: {command[0]}: the sandbox runs {inside}, not the one your shell "
            f"runs; {missing_fix}")
    from agent_sandbox._run.bwrap import find_bwrap
    from agent_sandbox._run.launch import run

    bwrap = find_bwrap(os.environ)
    if policy.net.value == "host":
        say("warning: --net host shares the host network: every service listening on host "
            "loopback and every abstract UNIX socket (X11, D-Bus, IDE helpers) is reachable "
            "from inside")
    if agent and not policy.allow_nested_userns and not args.quiet:
        from agent_sandbox._policy.presets import load

        note = load(agent).inner_sandbox
        if note and "danger-full-access" not in command:
            say(f"note: {note}")
    if not args.quiet:
        for note in notes:
            say(f"note: {note}")
    if policy.shared_state:
        say(f"warning: --share-agent-state: {', '.join(policy.shared_state)} are writable "
            "inside: the agent could plant settings or hooks there that run when you use it "
            "outside the sandbox")
    if policy.allow_nested_userns:
        say("warning: --allow-nested-userns: the command may create user namespaces; inside "
            "one it can mount over or pivot away from the read-only binds it sees (the host "
            "files stay protected by their permissions, not by the sandbox's view)")
    for p in view.protections:
        if p.mode == "symlink":
            say(f"warning: {p.path} is a symlink, so it cannot be made read-only: the command "
                "could replace it, and host tools would then run what it wrote")
    if identity.uid == 0 and policy.root_stays_root:
        say("warning: --root-stays-root: the command is host uid 0 to file permissions: "
            "root-only files it can see are readable, root's files in writable paths "
            "writable (it still has no capabilities, /proc/sys is read-only)")
    if install is not None and s.get("show_command_install", True) and not args.quiet:
        say(f"{command[0]}: showing its installation read-only ({install.kind}, found at "
            f"{home_relative(install.found, identity.home)}): "
            + ", ".join(home_relative(x.path, identity.home) for x in install.shown))
    if policy.limits.uncapped and not args.quiet:
        from agent_sandbox._policy.config import user_file
        from agent_sandbox._run.cgroup import how_to_cap

        say(f"note: memory is not capped: {policy.limits.uncapped}; to cap it, "
            f"{how_to_cap(policy.limits.uncapped)}; to run uncapped without this note, "
            f"put memory = \"none\" in {home_relative(user_file(os.environ), identity.home)}"
            " (or set AGENT_SANDBOX_MEMORY=none)")
    if args.verbose:
        say(f"layout {view.layout.kind.value}, bwrap {bwrap}")
    if args.detach:
        from agent_sandbox._cli.sessions import detach, free_name
        from agent_sandbox._run.sessions import default_base

        name = args.name or free_name(os.environ, default_base(agent, command))
        return detach(_relaunch(argv, args.command, name), name)
    root_fix = ""
    if identity.uid == 0:
        import shlex

        root_fix = ("run agent-sandbox as an ordinary user, or let the command keep host uid "
                    f"0 (weaker): agent-sandbox --root-stays-root {shlex.join(argv)}")
    raw = s.get("terminal") == "raw"
    if raw:
        say(f"warning: terminal raw ({settings['terminal'].source}): escape sequences the "
            "command writes reach your terminal unfiltered: it can set your clipboard "
            "(OSC 52) and make some terminals type into your input")
    return run(plan, bwrap, quiet=args.quiet, name=args.name,
               caller=_who(identity, policy, sudo_user), root_fix=root_fix,
               session_id=session_id, terminal_filtered=not raw)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _run(argv)
    except SandboxError as e:
        say(f"error: {e.message}")
        if e.fix:
            say(f"fix: {e.fix}")
        return e.exit_status
    except KeyboardInterrupt:
        return 130

