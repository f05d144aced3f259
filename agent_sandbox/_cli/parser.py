"""The command line's grammar: the main parser, shared by the launch, the subcommands that
take its options (``config``, ``explain``) and the generated docs. Every parse error is one
``agent-sandbox: error:`` line and exit 2."""

from __future__ import annotations

import argparse
from typing import NoReturn

from agent_sandbox import __version__
from agent_sandbox._errors import EXIT_USAGE
from agent_sandbox._say import say

EPILOG = """\
exit status:
  the command's own; 128+N when it died of signal N
  2    usage or configuration error (nothing was started)
  124  --timeout stopped the command
  125  the sandbox itself could not start, or a limit cannot be enforced (see --check)
  126  COMMAND exists inside the sandbox but is not executable
  127  COMMAND was not found inside the sandbox

examples:
  agent-sandbox -- bash              a confined shell in the current project
  agent-sandbox claude               run an agent confined (network: see --net)
  agent-sandbox --dry-run -- make    show exactly what would run
  agent-sandbox --check              what this host can enforce
  agent-sandbox explain ~/.ssh       what the sandbox shows at a path (or lets through to a host)
  agent-sandbox --detach --name w claude
                                     run in the background; agent-sandbox attach w
  agent-sandbox ps                   running sandboxes; also: stop NAME, attach NAME,
                                     log [-f] [--session NAME]
"""


# Not an option: set by --detach for the launch it starts under dtach, the session id to
# record that launch's output as (``_run.scrollback``).
RECORD_VARIABLE = "_AGENT_SANDBOX_RECORD"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        say(f"error: {message}{self._did_you_mean(message)}")
        say("see agent-sandbox --help")
        raise SystemExit(EXIT_USAGE)

    def _did_you_mean(self, message: str) -> str:
        """For a mistyped option (``--alow``): the option it is closest to."""
        prefix = "unrecognized arguments: "
        if not message.startswith(prefix):
            return ""
        import difflib

        known = [o for o in self._option_string_actions if o.startswith("--")]
        for word in message[len(prefix):].split():
            close = difflib.get_close_matches(word.split("=", 1)[0], known, n=1) \
                if word.startswith("--") else []
            if close:
                return f" (did you mean {close[0]}?)"
        return ""


def subcommand_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The parser of ``agent-sandbox PROG`` (a subcommand): same error handling."""
    return _Parser(prog=f"agent-sandbox {prog}", description=description, allow_abbrev=False)


def _parser() -> _Parser:
    p = _Parser(
        prog="agent-sandbox",
        usage="agent-sandbox [OPTIONS] [--] COMMAND [ARG...]",
        description="Run COMMAND confined: own namespaces, read-only system, empty $HOME, "
        "the project read-write, no network by default.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    p.add_argument("--project", metavar="DIR",
                   help="writable project dir (default: git top-level of cwd, else cwd)")
    p.add_argument("--net", choices=["none", "filtered", "host"], default=None,
                   help="network: none (loopback only; the default without --allow), "
                   "filtered (only --allow'ed hosts; the default with --allow), host (the "
                   "host's network, with a warning)")
    p.add_argument("--terminal", choices=["filtered", "raw"], default=None,
                   help="with your terminal: the command gets its own, relayed through a "
                   "filter that drops the escape sequences acting beyond the screen "
                   "(clipboard writes, title reports...): filtered (the default), or raw "
                   "(everything passes, with a warning)")
    p.add_argument("--allow", action="append", default=[], metavar="HOST[:PORT]",
                   help="with --net filtered: allow HOST (*.DOMAIN for subdomains, @GROUP for "
                   "a host group: @pypi, @npm, @crates, @go, @github, @huggingface) on ports "
                   "443 and 80, or on PORT (repeatable)")
    p.add_argument("--allow-private", action="append", default=[], metavar="HOST[:PORT]",
                   help="like --allow, and accept private/loopback addresses for it")
    p.add_argument("--resolve", action="append", default=[], metavar="NAME=ADDR",
                   help="dial NAME at ADDR instead of looking it up (like curl --resolve)")
    p.add_argument("--forward-host", action="append", default=[],
                   metavar="PORT|HOST:PORT|unix:PATH=PORT",
                   help="show a host service on the sandbox's 127.0.0.1 (repeatable)")
    p.add_argument("--publish", action="append", default=[], metavar="PORT",
                   help="show the sandbox's 127.0.0.1:PORT on the host's 127.0.0.1:PORT")
    p.add_argument("--ro", action="append", default=[], metavar="PATH",
                   help="also show PATH read-only (repeatable)")
    p.add_argument("--rw", action="append", default=[], metavar="PATH",
                   help="also show PATH read-write (repeatable)")
    p.add_argument("--hide", action="append", default=[], metavar="PATH",
                   help="hide PATH: it stays in place but cannot be read (repeatable)")
    p.add_argument("--env", action="append", default=[], metavar="NAME[=VALUE]",
                   help="pass one variable in: its host value, or VALUE (repeatable)")
    limits = p.add_argument_group("limits")
    limits.add_argument("--memory", metavar="SIZE", help="memory cap, e.g. 4G, or none "
                        "(cgroup v2: a delegated cgroup or systemd-run --user; refused where "
                        "unavailable; default: half the RAM where available)")
    limits.add_argument("--pids", metavar="N", help="cap on processes and threads, or none "
                        "(cgroup v2; default: 4096 where available)")
    limits.add_argument("--cpus", metavar="N", help="CPU quota in CPUs, e.g. 1.5 (cgroup v2)")
    limits.add_argument("--timeout", metavar="DURATION",
                        help="stop the command after DURATION (90, 30m, 2h): exit status 124")
    limits.add_argument("--home-size", metavar="SIZE", help="size cap of the tmpfs $HOME "
                        "(default 512M)")
    limits.add_argument("--agent-home-size", metavar="SIZE", help="size cap of an agent "
                        "preset's home for this project, kept between sessions (default 1G)")
    limits.add_argument("--tmp-size", metavar="SIZE", help="size cap of /tmp, a tmpfs "
                        "(default 2G; in memory)")
    limits.add_argument("--tmp-on-disk", action="store_true", default=None,
                        help="make /tmp a work dir on the host disk instead (no size cap; "
                        "removed at exit)")
    limits.add_argument("--nofile", metavar="N", help="open files cap (default 65536)")
    limits.add_argument("--nproc", metavar="N", help="processes and threads of the sandbox, "
                        "without a cgroup (RLIMIT_NPROC in its user namespace; default 4096)")
    limits.add_argument("--fsize", metavar="SIZE", help="largest file the command may write "
                        "(default 16G); core dumps are always off")
    limits.add_argument("--best-effort", action="store_true", default=None,
                        help="run even if a cgroup limit cannot be enforced (warns)")
    p.add_argument("--agent", metavar="NAME",
                   help="use the NAME preset (claude, codex, gemini, aider, opencode, or "
                   "yours in ~/.config/agent-sandbox/presets) or none; default: the "
                   "command's name if it is one")
    p.add_argument("--share-agent-state", action="store_true",
                   help="bind the agent's real state dirs read-write instead of its own "
                   "home (warned: it could plant settings that run when used unconfined)")
    p.add_argument("--git-token-file", metavar="FILE",
                   help="let git push over HTTPS with the token in FILE (read-only inside; "
                   "a fine-grained token of a machine user)")
    p.add_argument("--gpu", action="store_true", default=None,
                   help="give the command the GPU devices (/dev/dri, /dev/nvidia*)")
    p.add_argument("--root-stays-root", action="store_true", default=None,
                   help="called as root (not through sudo): let the command keep host uid 0 "
                   "instead of running as an unprivileged uid with idmapped paths (weaker: "
                   "root-only files it can see become readable; announced at every launch)")
    p.add_argument("--no-show-command-install", dest="show_command_install",
                   action="store_false", default=None,
                   help="do not show the command's own installation when the sandbox does "
                   "not: only what /usr, the Nix store, the project and --ro show")
    p.add_argument("--allow-nested-userns", action="store_true", default=None,
                   help="let the command create user namespaces (an agent's own inner "
                   "sandbox); weaker: a nested namespace can undo read-only binds")
    p.add_argument("--name", metavar="NAME",
                   help="the session's name for ps, stop, log and attach (default: the "
                   "preset's or command's name and a number)")
    p.add_argument("--detach", action="store_true",
                   help="run in the background on a terminal of its own; attach to it with "
                   "agent-sandbox attach NAME (needs dtach)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (bwrap options, environment) and exit")
    p.add_argument("--check", action="store_true",
                   help="report what this host can enforce; exit 0 only if the default "
                   "policy can be enforced")
    p.add_argument("--json", action="store_true", help="with --check: machine-readable output")
    p.add_argument("-q", "--quiet", action="store_true", help="no notices (warnings stay)")
    p.add_argument("-v", "--verbose", action="store_true", help="say what is being set up")
    p.add_argument("--version", action="version", version=f"agent-sandbox {__version__}")
    p.add_argument("command", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return p
