"""``agent-sandbox state [--json]`` and ``agent-sandbox state rm AGENT/KEY``: the agents'
homes, one per project, with their size and project; removing one never follows a symlink
(``_run.agent_home``)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence

from agent_sandbox._cli.parser import subcommand_parser
from agent_sandbox._say import home_relative, human_size, printable, say


def state(argv: Sequence[str]) -> int:
    from agent_sandbox._run.saved_homes import homes, remove_home

    if argv[:1] == ["rm"]:
        p = subcommand_parser("state rm", "Remove an agent's home for one project (its login "
                              "stays).")
        p.add_argument("name", metavar="AGENT/KEY", help="as `agent-sandbox state` lists it")
        args = p.parse_args(argv[1:])
        removed = remove_home(os.environ, args.name)
        say(f"removed {home_relative(removed)}")
        return 0
    p = subcommand_parser("state", "List the agents' homes: one per (agent, project).")
    p.add_argument("--json", action="store_true", help="one JSON object per home")
    args = p.parse_args(argv)
    found = homes(os.environ)
    if args.json:
        for h in found:
            print(json.dumps(h._asdict()))
        return 0
    if not found:
        say("no agent homes yet")
        return 0
    width = max(len(h.name) for h in found)
    for h in found:
        gone = "" if os.path.isdir(h.project) else "  (project gone or moved)"
        used = time.strftime("%Y-%m-%d", time.localtime(h.used)) if h.used else "?"
        sys.stdout.write(printable(f"{h.name:<{width}}  {human_size(h.size):>7}  used {used}  "
                                   f"{h.project or '?'}{gone}") + "\n")
    return 0

