"""What one launch is configured with: the agent preset it uses, and every layer merged
(the preset, the files, the variables, the flags) with the notes to say about them;
``agent-sandbox config``, which prints it all."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent_sandbox._say import home_relative

if TYPE_CHECKING:
    from agent_sandbox._policy.config import Value

# The flags that are configuration keys too.
FLAG_KEYS = ("net", "terminal", "allow", "allow_private", "resolve", "forward_host",
             "publish", "ro", "rw", "hide", "env", "allow_nested_userns", "gpu",
             "best_effort", "memory", "pids", "cpus", "timeout", "nofile", "nproc", "fsize",
             "home_size", "agent_home_size", "tmp_size", "tmp_on_disk", "git_token_file",
             "root_stays_root", "show_command_install")


def preset_name(args: argparse.Namespace, command: Sequence[str]) -> str:
    """``--agent NAME`` (checked; ``none``: ""), else the preset named like the command."""
    from agent_sandbox._policy import presets as _presets

    if args.agent is not None:
        if args.agent != "none" and not _presets.find(args.agent, os.environ):
            raise _presets.unknown(args.agent, os.environ)
        return "" if args.agent == "none" else str(args.agent)
    return (_presets.detect(command[0], os.environ) or "") if command else ""


def merged_settings(args: argparse.Namespace, project: str, agent: str,
                    command: Sequence[str],
                    argv: Sequence[str]) -> tuple[dict[str, Value], list[str]]:
    """The agent preset, config files, AGENT_SANDBOX_* variables and the flags, merged; and
    the notes to say at launch about them. ``argv``: what the user typed after
    ``agent-sandbox``, for a fix."""
    import shlex

    from agent_sandbox._policy.config import Value, effective
    from agent_sandbox._policy.netmode import drop_unused_by_net

    preset: dict[str, Value] = {}
    published: tuple[tuple[str, tuple[str, ...]], ...] = ()
    if agent:
        from agent_sandbox._policy.presets import load

        p = load(agent)
        layer = f"preset:{agent}"
        preset = {"allow": Value(p.allow, layer),
                  "env": Value((*p.env, *(f"{k}={v}" for k, v in p.set_env)), layer)}
        published = p.publish_for(command[1:])
        if published:
            preset["publish"] = Value(tuple(dict.fromkeys(
                port for _, ports in published for port in ports)), layer)
    merged = effective(project, os.environ, {k: getattr(args, k) for k in FLAG_KEYS}, preset,
                       agent)
    fix = shlex.join(["agent-sandbox", "--net", "filtered", *argv])
    settings, note = drop_unused_by_net(merged, fix)
    notes = [note] if note else []
    if published and "publish" in settings:
        ports = [v for v, source in zip(settings["publish"].value,
                                        settings["publish"].per_item(), strict=True)
                 if source == f"preset:{agent}"]
        if ports:  # (not with --net host, which shares the host's loopback anyway)
            notes.append(f"{agent} {published[0][0]}: publishing port {', '.join(ports)} "
                         f"to the host's 127.0.0.1 while it runs (the {agent} preset's "
                         "publish_when)")
    return settings, notes


def show_config(argv: Sequence[str]) -> int:
    """``agent-sandbox config [OPTIONS] [[--] COMMAND]``: every setting, its effective
    value and where it came from (``built-in`` for a default)."""
    from agent_sandbox._cli.defaults import defaults
    from agent_sandbox._cli.parser import _parser
    from agent_sandbox._policy.config import BOOL_KEYS, KEYS, LIST_KEYS
    from agent_sandbox._policy.identity import current_identity
    from agent_sandbox._policy.request import locate_project

    args = _parser().parse_args(argv)
    identity = current_identity()
    project = locate_project(args.project, identity)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    agent = preset_name(args, command)
    settings, notes = merged_settings(args, project, agent, command, ["config", *argv])
    preset = ""
    if agent:
        from agent_sandbox._policy.presets import load

        preset = f"; agent preset: {agent} ({home_relative(load(agent).path, identity.home)})"
    print(f"# project: {project}{preset}")
    for note in notes:
        print(f"# note: {note}")
    built_in = defaults()
    for key in sorted(KEYS):
        if key in settings:
            item = settings[key]
            value = item.value
            # A list's items by layer, the host group each came from shown (@pypi).
            source = " + ".join(dict.fromkeys(item.per_item())) \
                if isinstance(value, tuple) and value and item.item_sources else item.source
        elif key == "net":
            allowed = settings.get("allow") or settings.get("allow_private")
            value = "filtered" if allowed and allowed.value else "none"
            source = "built-in: filtered when an allow-list is given, else none"
        else:
            value = built_in.get(key, "false" if key in BOOL_KEYS else
                                 "" if key in LIST_KEYS else "unset")
            source = "built-in"
        shown = ", ".join(value) if isinstance(value, tuple) else \
            str(value).lower() if isinstance(value, bool) else value
        print(f"{key} = {shown}    # {source}")
    return 0
