"""``agent-sandbox ps | stop NAME | log | attach NAME``, and starting a detached session.

A detached session runs the launcher on a terminal that dtach serves from a socket in the
sessions directory, so ``attach`` works from any terminal of the same user, over ssh too,
and detaching (Ctrl-\\) leaves the agent running. dtach is a small, long-stable program
that does only that; it is taken from a root-owned system location, like bwrap. What the
session prints is kept (``_run.scrollback``): ``attach`` on one that has ended shows it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from agent_sandbox._cli.parser import RECORD_VARIABLE, subcommand_parser
from agent_sandbox._errors import SandboxUnavailable, UsageError
from agent_sandbox._run.sessions import (
    Session,
    alive,
    check_name,
    find,
    new_id,
    numbered,
    running,
    sessions_dir,
    socket_path,
)
from agent_sandbox._say import printable, say

if TYPE_CHECKING:
    from agent_sandbox._run.scrollback import Ended

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
                    if k not in ("time", "session", "id", "decision"))
    return printable(f"{when}  {record.get('session', '?')}  {record.get('decision', '?')}  "
                     f"{rest}")


def _shown(value: object) -> str:
    if isinstance(value, list):
        value = shlex.join(str(v) for v in value)
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c == '"' for c in text) else text


def _records(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash, or not ours
        # Only our records: another program's JSON in the file must not stop the listing.
        if isinstance(record, dict) and isinstance(record.get("time"), (int, float)):
            yield record


SINCE_FORMS = ("a duration ago (90, 30m, 2h, 7d) or a local time (2025-06-01, "
               "2025-06-01T14:30, 14:30 for today)")


def since(raw: str, now: float) -> float:
    """``--since``'s value as a time: a duration before ``now``, or a local date and time
    (pure but for the local time zone)."""
    import datetime

    from agent_sandbox._policy.limits import parse_duration

    with contextlib.suppress(UsageError):
        return now - parse_duration(raw, "--since")
    text = raw.strip()
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        try:
            day = datetime.datetime.fromtimestamp(now).date()
            when = datetime.datetime.combine(day, datetime.time.fromisoformat(text))
        except ValueError:
            raise UsageError(f"--since {raw!r}: expected {SINCE_FORMS}") from None
    return when.timestamp()


class Selection:
    """Which records ``log`` prints: of a session (a name or an id), a verdict, a time on.

    A name several runs had (a ``--name`` given again) selects the latest of them; its id
    selects any one. Old records without an id count as one run per name.
    """

    def __init__(self, session: str | None, verdict: str | None, start: float | None) -> None:
        self.session, self.verdict, self.start = session, verdict, start
        self.run: str | None = None  # the run chosen for a name: its id ("" for no id)
        self.runs: list[str] = []  # every run of the name, in order

    def choose(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Pick the run a name means, from the records already in the log."""
        if self.session is None:
            return
        if any(r.get("id") == self.session for r in records):
            self.run = self.session
            return
        self.runs = list(dict.fromkeys(str(r.get("id", "")) for r in records
                                       if r.get("session") == self.session))
        self.run = self.runs[-1] if self.runs else None

    def of_session(self, record: Mapping[str, Any], following: bool = False) -> bool:
        if self.session is None:
            return True
        if record.get("id") == self.session:
            return True
        # Following a name: its next runs too, once they start.
        return record.get("session") == self.session and (
            following or str(record.get("id", "")) == self.run)

    def wanted(self, record: Mapping[str, Any], following: bool = False) -> bool:
        return self.of_session(record, following) \
            and self.verdict in (None, record.get("decision")) \
            and (self.start is None or record["time"] >= self.start)


def log(argv: Sequence[str]) -> int:
    p = subcommand_parser("log", "Show the decision log: connections allowed and denied, "
                          "bypasses, starts and exits.")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    p.add_argument("--session", metavar="NAME|ID",
                   help="only this session's records: its id, or its name (the latest run "
                   "of that name)")
    p.add_argument("--since", metavar="DURATION|TIME",
                   help="only records from that long ago (90, 30m, 2h, 7d) or that local "
                   "time (2025-06-01, 2025-06-01T14:30, 14:30) on")
    p.add_argument("--verdict", choices=["allow", "deny"],
                   help="only connections allowed, or only denied")
    p.add_argument("--json", action="store_true", help="the records as JSON lines")
    args = p.parse_args(argv)
    if args.session is not None:
        check_name(args.session, "--session")
    start = None if args.since is None else since(args.since, time.time())
    from agent_sandbox._net.log import log_paths

    old, path = log_paths()
    show: Callable[[Mapping[str, Any]], str] = json.dumps if args.json else describe
    selection = Selection(args.session, args.verdict, start)
    stream = _open_log(path)
    try:
        # In time order: a session that opened the log before a launch rotated it goes on
        # writing to the rotated file.
        records = sorted([*_records(_lines(old)), *_records(stream or ())],
                         key=lambda r: float(r["time"]))
        selection.choose(records)
        if args.session is not None and selection.run is None and not any(
                args.session in (s.name, s.id) for s in running(os.environ)):
            raise UsageError(f"no session named {args.session!r} in the log ({path})",
                             fix="agent-sandbox ps lists the running ones")
        for record in records:
            if selection.wanted(record):
                print(show(record))
        others = [r for r in selection.runs[:-1] if r][-3:]
        if others:
            say(f"{args.session}: {len(selection.runs)} runs had this name; shown: the latest"
                f" ({selection.run or 'no id'}); another: log --session ID ({', '.join(others)})")
        while args.follow:  # until ^C
            sys.stdout.flush()
            lines = stream.readlines() if stream else []
            for record in _records(lines):
                if selection.wanted(record, following=True):
                    print(show(record))
            if not lines:
                stream = _reopened(stream, path)
                time.sleep(0.25)
    finally:
        if stream:
            stream.close()
    return 0


def _lines(path: str) -> list[str]:
    stream = _open_log(path)
    if stream is None:
        return []
    with stream:
        return stream.readlines()


def _open_log(path: str) -> TextIO | None:
    try:
        return open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None


def _reopened(stream: TextIO | None, path: str) -> TextIO | None:
    """``stream``, read to its end, or the file now at ``path`` if that is another one (a
    launch rotated the log, or created it)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return stream
    if stream is not None:
        held = os.fstat(stream.fileno())
        if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
            return stream
        stream.close()
    return _open_log(path)


def _dtach() -> str:
    from agent_sandbox._run.bwrap import trusted_tool

    found = trusted_tool("dtach", os.environ)
    if found is None:
        raise SandboxUnavailable("detached sessions need dtach, which is not installed in a "
                                 "system location",
                                 fix="install it (Debian/Ubuntu: sudo apt-get install dtach)")
    return found


def free_name(environ: Mapping[str, str], base: str) -> str:
    """The next ``base-N`` (counted as launches count them) no session holds."""
    taken = {s.name for s in running(environ)} | set(_detached_names(environ))
    return numbered(base, lambda name: name not in taken)


def detach(launcher: Sequence[str], name: str) -> int:
    """Start ``launcher`` (this launch without --detach, with --name) on a dtach terminal,
    recorded; return once its session is registered."""
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
    from agent_sandbox._run.scrollback import private_dir

    private_dir()  # refused here, in the caller's terminal, rather than in the session's
    session_id = new_id(name)
    environ = {**os.environ, RECORD_VARIABLE: session_id}
    pid = os.posix_spawn(dtach, [dtach, "-n", sock, *launcher], environ)
    os.waitpid(pid, 0)  # dtach -n returns once its master runs the launcher
    deadline = time.monotonic() + START_WAIT
    while not any(s.id == session_id for s in running(os.environ)):
        if not os.path.exists(sock) or time.monotonic() > deadline:
            from agent_sandbox._run.scrollback import find_ended

            ended = find_ended(session_id)
            if ended is None or ended.status is None:
                raise SandboxUnavailable(f"the detached session {name} did not start",
                                         fix="run the same command without --detach to see "
                                         "why")
            say(f"{name} started and has already ended (status {ended.status}); its output: "
                f"agent-sandbox attach {name}")
            return ended.status
        time.sleep(0.05)
    say(f"started {name}, detached; attach with: agent-sandbox attach {name} (detach again "
        f"with Ctrl-\\); stop with: agent-sandbox stop {name}")
    return 0


def attach(argv: Sequence[str]) -> int:
    p = subcommand_parser("attach", "Attach this terminal to a detached sandbox (detach with "
                          "Ctrl-\\); for one that has ended, print its last output and its "
                          "exit status.")
    p.add_argument("name", metavar="NAME|ID")
    args = p.parse_args(argv)
    try:
        session = find(os.environ, args.name)
    except UsageError:
        from agent_sandbox._run.scrollback import find_ended

        ended = find_ended(args.name)
        if ended is None:
            raise
        return _replay(ended)
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


def _replay(ended: Ended) -> int:
    """A detached session that has ended: its last output, then how it ended; its status."""
    from agent_sandbox._run.scrollback import SEGMENT, show

    show(ended)
    if ended.status is None or ended.ended is None:
        say(f"{ended.name} ({ended.id}) is not running, and how it ended was not recorded "
            "(its recorder was killed); above: the last of its output")
        return 1
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ended.ended))
    say(f"{ended.name} ({ended.id}) ended at {when} with status {ended.status}; above: the "
        f"last of its output (up to {SEGMENT >> 20} MiB)")
    return int(ended.status)
