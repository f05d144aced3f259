"""The command line as data for the generated docs: every option (from the argparse parser
itself) and every subcommand, so that completion, the man page and the configuration
reference cannot drift from what the program accepts. Never on the launch path."""

from __future__ import annotations

import argparse
from typing import NamedTuple

from agent_sandbox._cli.main import SUBCOMMANDS
from agent_sandbox._cli.parser import _parser
from agent_sandbox._policy import presets as _presets

SHELLS = ("bash", "zsh", "fish")

# What to offer for an option's free value, by its metavar.
_FILE_KINDS = {"DIR": "dir", "PATH": "file", "FILE": "file"}


class Option(NamedTuple):
    flags: tuple[str, ...]  # ("-q", "--quiet")
    help: str
    metavar: str = ""  # "" for a switch
    values: tuple[str, ...] = ()  # the only values it accepts, when they are a closed set
    complete: str = ""  # for a free value: "dir", "file", or "" (nothing to offer)
    repeatable: bool = False
    group: str = "options"


class Subcommand(NamedTuple):
    name: str
    summary: str
    usage: str  # what follows "agent-sandbox NAME"
    options: tuple[Option, ...]
    # What its other words are: "command" (the confined command, as at the top level), "path"
    # (a path; then -- COMMAND, as explain), or "" (only ``args``, or nothing to offer).
    operand: str = ""
    args: tuple[str, ...] = ()  # the values of its first word, if a closed set


def _option(action: argparse.Action, group: str) -> Option:
    takes_value = action.nargs != 0
    metavar = str(action.metavar or action.dest.upper()) if takes_value else ""
    # --agent is checked against the preset files by the CLI, not by argparse.
    values = _preset_values() if action.dest == "agent" else tuple(action.choices or ())
    return Option(tuple(action.option_strings), action.help or "", metavar, values,
                  _FILE_KINDS.get(metavar, ""), isinstance(action, argparse._AppendAction),
                  group)


def _preset_values() -> tuple[str, ...]:
    return (*_presets.names(), "none")


def options(parser: argparse.ArgumentParser | None = None) -> tuple[Option, ...]:
    """Every option of ``parser`` (the CLI's by default), in its groups' order."""
    parser = parser or _parser()
    return tuple(_option(action, group.title or "options")
                 for group in parser._action_groups for action in group._group_actions
                 if action.option_strings)


def _described() -> tuple[Subcommand, ...]:
    """What each subcommand takes. Their parsers are built where they run, so these are
    written out; tests/cli/test_completion.py checks them against each one's --help."""
    main = options()
    agent = Option(("--agent",), "the agent preset", "PRESET", _preset_values())
    as_json = Option(("--json",), "machine-readable output")
    # explain takes the launch's options, but not those that do not launch.
    launch = tuple(o for o in main if o.flags[-1] not in ("--dry-run", "--check", "--json"))
    return (
        Subcommand("config", "print every effective setting and where it came from (the "
                   "files, AGENT_SANDBOX_* variables, the agent preset, the flags)",
                   "[OPTIONS] [[--] COMMAND]", main, "command"),
        Subcommand("explain", "say what a launch with these options would make of PATH or "
                   "HOST, and which rule and which layer decide it",
                   "PATH|HOST[:PORT] [OPTIONS] [-- COMMAND]",
                   (*launch, Option(("--path",), "explain this path (whatever it looks like)",
                                    "PATH", complete="file"),
                    Option(("--host",), "explain this host (whatever it looks like)", "HOST")),
                   "path"),
        Subcommand("ps", "list the running sandboxes", "[--json]", (as_json,)),
        Subcommand("stop", "stop a running sandbox: SIGTERM to its command, SIGKILL 5 s later",
                   "NAME", ()),
        Subcommand("log", "show the decision log: connections allowed and denied, bypasses, "
                   "starts and exits", "[-f] [--session NAME|ID] [--since DURATION|TIME] "
                   "[--verdict allow|deny] [--json]",
                   (Option(("-f", "--follow"), "keep printing new records"),
                    Option(("--session",), "only this session's records: its id, or its name "
                           "(the latest run of that name)", "NAME|ID"),
                    Option(("--since",), "only records from that long ago (90, 30m, 2h, 7d) "
                           "or that local time (2025-06-01, 2025-06-01T14:30, 14:30) on",
                           "DURATION|TIME"),
                    Option(("--verdict",), "only connections allowed, or only denied",
                           "VERDICT", ("allow", "deny")),
                    as_json)),
        Subcommand("attach", "attach this terminal to a detached sandbox (detach again with "
                   "Ctrl-\\); for one that has ended, print its last output and exit status",
                   "NAME|ID", ()),
        Subcommand("shell-hook", "what a Nix dev shell's hook runs: a banner, and a check "
                   "that COMMAND reaches the sandbox wrapper",
                   "[--agent PRESET] [--command NAME] [--wrapper PATH]",
                   (agent, Option(("--command",), "the confined command's name", "NAME"),
                    Option(("--wrapper",), "the wrapper it must resolve to", "PATH",
                           complete="file"))),
        Subcommand("agent-wrapper", "what a Nix dev shell's agent wrapper runs: COMMAND "
                   "confined with PRESET, or unconfined (warned, logged) with "
                   "AGENT_SANDBOX=false", "--agent PRESET -- COMMAND [ARG...]", (agent,),
                   "command"),
        Subcommand("completion", "print the completion script for SHELL", "bash|zsh|fish",
                   (), args=SHELLS),
        Subcommand("state", "list the agents' homes (one per agent and project) with their "
                   "size and project; `state rm AGENT/KEY` removes one", "[--json] | rm "
                   "AGENT/KEY", (as_json,)),
        Subcommand("quarantine", "what sessions made that host git would run, set aside at "
                   "their end: list, show ID, restore ID [PATH...], drop ID",
                   "[list | show ID | restore ID [PATH...] | drop ID]", (),
                   args=("list", "show", "restore", "drop")),
    )


def subcommands() -> tuple[Subcommand, ...]:
    """The words ``_cli.SUBCOMMANDS`` dispatches, in its order. Rendering fails (and with it
    the tests) while one there is not described here, or one described here is gone."""
    described = {s.name: s for s in _described()}
    if described.keys() != SUBCOMMANDS.keys():
        raise LookupError("agent_sandbox/_docgen.py describes the subcommands "
                          f"{sorted(described)}, _cli.SUBCOMMANDS has {sorted(SUBCOMMANDS)}")
    return tuple(described[name] for name in SUBCOMMANDS)
