"""``agent-sandbox quarantine list|show ID|restore ID [PATH...]|drop ID``: what sessions
made that host git would run, set aside at their end (``_run.quarantine``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from agent_sandbox._cli.parser import subcommand_parser
from agent_sandbox._say import printable, say


def quarantine(argv: Sequence[str]) -> int:
    from agent_sandbox._run.quarantine import drop, load, quarantine_dir, restore, sessions

    p = subcommand_parser("quarantine", "What sessions made that host git would run, set "
                          "aside at their end: list them, show one, restore or drop it.")
    p.add_argument("action", choices=["list", "show", "restore", "drop"], nargs="?",
                   default="list")
    p.add_argument("id", nargs="?", metavar="ID", help="as `agent-sandbox quarantine` lists")
    p.add_argument("paths", nargs="*", metavar="PATH", help="restore only these")
    args = p.parse_args(argv)
    if args.action == "list":
        found = sessions(os.environ)
        if not found:
            say("nothing is quarantined")
        for session in found:
            project, items = load(os.environ, session)
            sys.stdout.write(printable(f"{session}  {len(items)} item(s)  {project}") + "\n")
        return 0
    if args.id is None:
        p.error(f"{args.action} needs an ID (agent-sandbox quarantine list shows them)")
    if args.action == "show":
        project, items = load(os.environ, args.id)
        where = os.path.join(quarantine_dir(os.environ), args.id)
        print(printable(f"# {args.id}: {project}; kept in {where}"))
        for item in items:
            print(printable(f"{item.path}  ({item.action}: {item.why}) -> {item.stored}"))
        return 0
    if args.action == "restore":
        for path in restore(os.environ, args.id, args.paths):
            say(f"restored {path}")
        return 0
    drop(os.environ, args.id)
    say(f"dropped {args.id}")
    return 0
