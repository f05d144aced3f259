"""What the Nix dev shells call: the shell hook's banner and the agent wrappers' front.

``lib.mkAgentShell`` (nix/mk-agent-shell.nix) puts a wrapper named like the agent first on
PATH. The wrapper execs ``agent-sandbox agent-wrapper --agent PRESET -- REAL ARGS``, which
confines REAL, or, with ``AGENT_SANDBOX=false``, runs it unconfined after a loud warning
that is also written to the decision log. The shell hook prints one banner line and
emits shell code that warns when the agent's name does not reach the wrapper.
"""

from __future__ import annotations

import argparse
import os
import shlex
from collections.abc import Mapping, Sequence
from typing import NoReturn

from agent_sandbox._errors import UsageError
from agent_sandbox._policy.env import MARKER
from agent_sandbox._say import say

SWITCH = "AGENT_SANDBOX"
_ON = ("", "1", "true", "yes")
_OFF = ("0", "false", "no")


def confinement_wanted(environ: Mapping[str, str]) -> bool:
    """Whether ``AGENT_SANDBOX`` asks for confinement (the default); a typo is an error,
    never a silent choice either way."""
    value = environ.get(SWITCH, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise UsageError(f"{SWITCH}={environ[SWITCH]!r}: expected true or false (also 1/0, "
                     "yes/no); nothing was started",
                     fix=f"unset {SWITCH} to run confined, or {SWITCH}=false to run "
                         "unconfined")



def _subparser(prog: str) -> argparse.ArgumentParser:
    from agent_sandbox._cli.parser import _Parser

    p = _Parser(prog=f"agent-sandbox {prog}", allow_abbrev=False)
    p.add_argument("--agent", default="none", metavar="PRESET")
    return p


def agent_wrapper(argv: Sequence[str]) -> int:
    """``agent-sandbox agent-wrapper --agent PRESET -- REAL [ARG...]``."""
    p = _subparser("agent-wrapper")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or not command[0]:
        raise UsageError("agent-wrapper: missing the agent's command")
    if confinement_wanted(os.environ):
        if MARKER in os.environ:
            # The wrapper execs the agent directly inside a sandbox (the marker and the
            # sandbox's fingerprint); the marker alone, outside one, is not believed.
            say(f"warning: {MARKER} is set but this process is not confined: confining")
        from agent_sandbox._cli.main import main

        return main(["--agent", args.agent, "--", *command])
    _bypass(args.agent, command)


def _bypass(agent: str, command: Sequence[str]) -> NoReturn:
    from agent_sandbox._net.log import DecisionLog

    say(f"WARNING: {SWITCH}=false: running {command[0]} UNCONFINED: it can read and change "
        "everything you can, and reach any host")
    log = DecisionLog(f"{os.getpid()}-bypass")
    log.record("bypass", agent=agent, command=list(command), cwd=os.getcwd())
    log.close()
    try:
        os.execv(command[0], list(command))
    except OSError as e:
        raise UsageError(f"cannot run {command[0]}: {e.strerror}") from None


def shell_hook(argv: Sequence[str]) -> int:
    """``agent-sandbox shell-hook [--agent PRESET --command NAME --wrapper PATH]``: the
    banner on stderr; on stdout, shell code for the hook to eval."""
    p = _subparser("shell-hook")
    p.add_argument("--command", metavar="NAME")
    p.add_argument("--wrapper", metavar="PATH")
    args = p.parse_args(argv)
    if not args.command:
        say("this shell has agent-sandbox; confine a command with: agent-sandbox -- COMMAND")
        return 0
    name = args.command
    try:
        if confinement_wanted(os.environ):
            say(f"`{name}` runs confined here ({_summary(args.agent)}); to run it "
                f"unconfined once: {SWITCH}=false {name}")
        else:
            say(f"WARNING: {SWITCH}=false: `{name}` runs UNCONFINED in this shell")
    except UsageError as e:
        say(f"warning: {e.message}: `{name}` refuses to start until it is fixed")
    if args.wrapper:
        q, w = shlex.quote(name), shlex.quote(args.wrapper)
        # An alias or function from ~/.bashrc, or an earlier PATH entry, would silently
        # bypass the wrapper: say so where it happens.
        # The name goes in only quoted: this is shell code the hook evals.
        message = ("agent-sandbox: WARNING: %s in this shell is not the sandbox wrapper (it is "
                   "a %s), so it would run UNCONFINED: unalias %s or unset -f %s\\n")
        print(f'if [ "$(type -t {q})" != file ] || [ "$(type -P {q})" != {w} ]; then '
              f'printf {shlex.quote(message)} {q} "$(type -t {q})" {q} {q} >&2; fi')
    return 0


def _summary(agent: str) -> str:
    from agent_sandbox._plan.host import probe_layout

    layout = probe_layout().kind.value
    if agent == "none":
        return f"project read-write, no network; {layout} host"
    from agent_sandbox._policy.presets import load

    hosts = len(load(agent).allow)
    return (f"preset {agent}: project read-write, network limited to its {hosts} hosts and "
            f"your config's; {layout} host")
