"""``agent-sandbox ps | stop NAME | log | attach NAME``, and starting a detached session.

A detached session runs the launcher on a terminal that dtach serves from a socket in the
sessions directory, so ``attach`` works from any terminal of the same user, over ssh too,
and detaching (Ctrl-\\) leaves the agent running. dtach is a small, long-stable program
that does only that; it is taken from a root-owned system location, like bwrap.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NoReturn, TextIO

from agent_sandbox._cli.parser import subcommand_parser
from agent_sandbox._errors import SandboxUnavailable, UsageError
from agent_sandbox._run.sessions import (
    Session,
    alive,
    check_name,
    find,
    running,
    sessions_dir,
    socket_path,
)
from agent_sandbox._say import printable, say

STOP_WAIT = 10.0  # seconds: the launcher's own grace (5 s) before it kills, and then some
START_WAIT = 10.0
_SOCKET_MAX = 107  # bytes in sun_path




def _uptime(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def table(sessions: Iterable[Session], detached: Iterable[str], now: float) -> str:
    """What ``ps`` prints (pure)."""
    detached = set(detached)
    rows = [("NAME", "AGENT", "PID", "NET", "UPTIME", "TERMINAL", "PROJECT")]
    rows += [(printable(s.name), printable(s.agent or "-"), str(s.pid), printable(s.net),
              _uptime(now - s.started), "detached" if s.name in detached else "own",
              printable(s.project)) for s in sessions]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
                   + "  " + row[-1] + "\n" for row in rows)


def _detached_names(environ: Mapping[str, str]) -> list[str]:
    try:
        return [n[:-5] for n in os.listdir(sessions_dir(environ)) if n.endswith(".sock")]
    except FileNotFoundError:
        return []


def ps(argv: Sequence[str]) -> int:
    p = subcommand_parser("ps", "List running sandboxes.")
    p.add_argument("--json", action="store_true", help="one JSON object per session")
    args = p.parse_args(argv)
    sessions = running(os.environ)
    if args.json:
        for s in sessions:
            print(s.to_json())
    elif sessions:
        sys.stdout.write(table(sessions, _detached_names(os.environ), time.time()))
    else:
        say("no sandboxes are running")
    return 0


def stop(argv: Sequence[str]) -> int:
    p = subcommand_parser("stop", "Stop a running sandbox: SIGTERM to its command, SIGKILL 5 s "
                          "later.")
    p.add_argument("name", metavar="NAME")
    args = p.parse_args(argv)
    session = find(os.environ, args.name)
    try:
        pidfd = os.pidfd_open(session.pid)
    except ProcessLookupError:
        pidfd = -1
    try:
        # Checked after the pidfd is held, so the signal cannot reach a reused pid.
        if pidfd != -1 and alive(session):
            # The launcher forwards SIGTERM to the command and kills the sandbox after
            # its grace; the pidfd turns readable when the launcher has exited.
            signal.pidfd_send_signal(pidfd, signal.SIGTERM)
            if not select.select([pidfd], [], [], STOP_WAIT)[0]:
                say(f"{session.name} (pid {session.pid}) is still running {STOP_WAIT:g} s "
                    "later")
                return 1
    finally:
        if pidfd != -1:
            os.close(pidfd)
    say(f"stopped {session.name}")
    return 0


def describe(record: Mapping[str, Any]) -> str:
    """One human line for a decision-log record (pure)."""
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(record.get("time", 0))))
    rest = " ".join(f"{k}={_shown(v)}" for k, v in record.items()
                    if k not in ("time", "session", "decision"))
    return printable(f"{when}  {record.get('session', '?')}  {record.get('decision', '?')}  "
                     f"{rest}")


def _shown(value: object) -> str:
    if isinstance(value, list):
        value = shlex.join(str(v) for v in value)
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c == '"' for c in text) else text


def _records(lines: Iterable[str], session: str | None) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash, or not ours
        # Only our records: another program's JSON in the file must not stop the listing.
        if isinstance(record, dict) and isinstance(record.get("time"), (int, float)) \
                and session in (None, record.get("session")):
            yield record


def log(argv: Sequence[str]) -> int:
    p = subcommand_parser("log", "Show the decision log: connections allowed and denied, "
                          "bypasses, starts and exits.")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    p.add_argument("--session", metavar="NAME", help="only this session's records")
    p.add_argument("--json", action="store_true", help="the records as JSON lines")
    args = p.parse_args(argv)
    if args.session is not None:
        check_name(args.session, "--session")
    from agent_sandbox._net.log import log_path

    path = log_path()
    show: Callable[[Mapping[str, Any]], str] = json.dumps if args.json else describe
    stream = _open_log(path)
    try:
        found = False
        for record in _records(stream or (), args.session):
            found = True
            print(show(record))
        if args.session is not None and not found and not any(
                s.name == args.session for s in running(os.environ)):
            raise UsageError(f"no session named {args.session!r} in the log ({path})",
                             fix="agent-sandbox ps lists the running ones")
        while args.follow:  # until ^C
            sys.stdout.flush()
            stream = stream or _open_log(path)
            lines = stream.readlines() if stream else []
            for record in _records(lines, args.session):
                print(show(record))
            if not lines:
                time.sleep(0.25)
    finally:
        if stream:
            stream.close()
    return 0


def _open_log(path: str) -> TextIO | None:
    try:
        return open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None


def _dtach() -> str:
    from agent_sandbox._run.bwrap import trusted_tool

    found = trusted_tool("dtach", os.environ)
    if found is None:
        raise SandboxUnavailable("detached sessions need dtach, which is not installed in a "
                                 "system location",
                                 fix="install it (Debian/Ubuntu: sudo apt-get install dtach)")
    return found


def free_name(environ: Mapping[str, str], base: str) -> str:
    taken = {s.name for s in running(environ)} | set(_detached_names(environ))
    return next(f"{base}-{n}" for n in range(1, 100_000) if f"{base}-{n}" not in taken)


def detach(launcher: Sequence[str], name: str) -> int:
    """Start ``launcher`` (this launch without --detach, with --name) on a dtach terminal;
    return once its session is registered."""
    dtach = _dtach()
    sock = socket_path(os.environ, name)
    if len(os.fsencode(sock)) > _SOCKET_MAX:
        raise SandboxUnavailable(f"the session's socket path is too long for a UNIX socket: "
                                 f"{sock}", fix="set XDG_RUNTIME_DIR to a short private "
                                 "directory (e.g. /run/user/$UID)")
    if any(s.name == name for s in running(os.environ)):
        raise UsageError(f"a session named {name!r} is already running",
                         fix=f"choose another --name, or agent-sandbox stop {name}")
    if os.path.exists(sock):
        os.unlink(sock)  # its dtach is gone with its session
    since = time.time()
    pid = os.posix_spawn(dtach, [dtach, "-n", sock, *launcher], dict(os.environ))
    os.waitpid(pid, 0)  # dtach -n returns once its master runs the launcher
    deadline = time.monotonic() + START_WAIT
    while not any(s.name == name for s in running(os.environ)):
        if not os.path.exists(sock) or time.monotonic() > deadline:
            ended = _ended(name, since)
            if ended is None:
                raise SandboxUnavailable(f"the detached session {name} did not start",
                                         fix="run the same command without --detach to see "
                                         "why")
            say(f"{name} started and has already ended (status {ended}); its output went to "
                f"its own terminal; see agent-sandbox log --session {name}")
            return ended
        time.sleep(0.05)
    say(f"started {name}, detached; attach with: agent-sandbox attach {name} (detach again "
        f"with Ctrl-\\); stop with: agent-sandbox stop {name}")
    return 0


def _ended(name: str, since: float) -> int | None:
    """The exit status ``name``'s launch logged since ``since``, if it has ended already."""
    from agent_sandbox._net.log import log_path

    stream = _open_log(log_path())
    if stream is None:
        return None
    with stream:
        ends = [r.get("status") for r in _records(stream, name)
                if r.get("decision") == "exit" and r["time"] >= since - 1]
    return ends[-1] if ends and isinstance(ends[-1], int) else None


def attach(argv: Sequence[str]) -> NoReturn:
    p = subcommand_parser("attach", "Attach this terminal to a detached sandbox (detach with "
                          "Ctrl-\\).")
    p.add_argument("name", metavar="NAME")
    args = p.parse_args(argv)
    session = find(os.environ, args.name)
    sock = socket_path(os.environ, session.name)
    if not os.path.exists(sock):
        raise UsageError(f"{session.name} is not detached: it runs in the terminal it was "
                         "started from", fix="start sessions to attach to with --detach")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("attach needs a terminal (stdin and stdout)")
    dtach = _dtach()
    say(f"attached to {session.name}; detach with Ctrl-\\")
    # winch: the agent redraws for this terminal's size on attach; -z: ^Z is the agent's.
    os.execv(dtach, [dtach, "-a", sock, "-r", "winch", "-z"])
