"""The runner: the only place with side effects. Every resource sits on one ExitStack.

One launch: work dir -> bwrap spawned with a JSON status pipe -> wait for "child-pid" (no
such line means the sandbox itself failed: exit 125 with a diagnosis) -> supervise until
bwrap exits -> remove the work dir. The exit status is the command's (bwrap reports 128+N
for a signal death); a launcher killed by a signal never leaves the command behind
(``--die-with-parent``) and the next launch reaps the work dir.

bwrap starts in a session of its own: with the user's terminal, on a pty the launcher
relays (``_run.terminal``: the command never reaches the user's terminal, and what it
writes there passes the terminal firewall); without one, with no controlling terminal.

Signals: the launcher blocks the ones it handles and takes them with ``sigwaitinfo`` (no
handler races). A ^C or ^\\ the user's terminal turned into a signal is typed into the
command's pty (or, with no pty, sent to the command); one another process sent is passed
on. A resize is passed to the pty, ^Z suspends the session (``Relay.suspend``). SIGTERM
and SIGHUP are forwarded to the command; if the sandbox is still there after a grace
period, it is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from agent_sandbox._errors import (
    EXIT_SANDBOX_FAILED,
    LinksFailed,
    NoUserNamespace,
    SandboxError,
    SandboxUnavailable,
)
from agent_sandbox._net.log import DecisionLog, state_dir
from agent_sandbox._net.plan import hosts_file, resolv_conf
from agent_sandbox._plan.build import (
    BLOCK_FD,
    GIT_COPIES,
    GIT_EXCLUDES_FD,
    HOSTS_FD,
    PLACEHOLDER_SOURCES,
    RESOLV_FD,
    SECCOMP_FD,
    STARTED_FD,
    WORKDIR,
    Placeholder,
    Plan,
)
from agent_sandbox._policy.limits import EXIT_TIMEOUT, apply_rlimits, limit_processes
from agent_sandbox._run.janitor import (
    Made,
    add_exclude_blocks,
    make_dirs,
    make_files,
    placeholders_removed,
    remove_exclude_blocks,
    remove_placeholders,
)
from agent_sandbox._run.lost import Place, open_places, wait_ready, written
from agent_sandbox._run.lost import close as close_places
from agent_sandbox._run.lost import line as lost_line
from agent_sandbox._run.sessions import Session, default_base, registered
from agent_sandbox._run.workdir import placeholder_sources, work_dir
from agent_sandbox._say import home_relative, human_size, say
from agent_sandbox._seccomp.cache import seccomp_program

if TYPE_CHECKING:
    from agent_sandbox._policy.values import Policy
    from agent_sandbox._run.gitcopy import Copies
    from agent_sandbox._run.idmap import Staged
    from agent_sandbox._run.mountns import Link
    from agent_sandbox._run.quarantine import Outcome
    from agent_sandbox._run.terminal import Relay

GRACE_SECONDS = 5.0
_SI_KERNEL = 0x80  # si_code of a signal the kernel raised (e.g. the terminal's ^C)
_TERMINAL = (signal.SIGINT, signal.SIGQUIT)
_ENDING = (signal.SIGTERM, signal.SIGHUP)
_FORWARDED = (*_TERMINAL, *_ENDING)
_WAITED = frozenset({*_FORWARDED, signal.SIGCHLD})
_RELAYED = frozenset({signal.SIGWINCH, signal.SIGTSTP})  # with a pty: resizes, ^Z
# Dispositions Python changes at startup that a child must not inherit.
_RESET_TO_DEFAULT = (signal.SIGPIPE, signal.SIGXFSZ)


@contextlib.contextmanager
def _blocked_signals(ignore_terminal: bool, relay: bool) -> Iterator[None]:
    """Block what ``_supervise`` waits for; optionally ignore ^C/^\\ so bwrap inherits that.

    A signal that is blocked is queued even when ignored, so ``sigwaitinfo`` still sees it.
    """
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _WAITED | (_RELAYED if relay
                                                                   else frozenset()))
    saved = {}
    if ignore_terminal:
        for signo in _TERMINAL:
            saved[signo] = signal.signal(signo, signal.SIG_IGN)
    try:
        yield
    finally:
        for signo, handler in saved.items():
            signal.signal(signo, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _spawn(bwrap: str, args: list[str], env: dict[str, str], keep_fds: tuple[int, ...],
           keep_ignored: bool, prefix: tuple[str, ...] = (),
           moves: tuple[tuple[int, int], ...] = (),
           staged: tuple[Staged, ...] | None = None, links: tuple[Link, ...] = (),
           relay: Relay | None = None) -> int:
    """Start bwrap in a new session with a clean signal state and only stdio plus
    ``keep_fds`` open, and each ``(fd, number)`` of ``moves`` open as ``number``: by
    posix_spawn, or, with ``staged`` (a root caller), by a child that attaches them
    idmapped and drops to the command uid, or, with ``links`` (git config copies), by a
    child that mounts them first (``_run.mountns``; raises LinksFailed when it cannot).
    With ``relay``, its pty is the session's controlling terminal and the standard fds
    that were the user's terminal.

    With ``keep_ignored``, SIGINT and SIGQUIT stay ignored in bwrap (the plan's command
    prefix restores them for the command).
    """
    kept = {*keep_fds, *(number for _, number in moves)}
    # Whatever the caller left open (a shell's fds, an editor's sockets) must not reach the
    # sandbox; closing an fd listdir itself used is harmless.
    close = tuple(fd for fd in map(int, os.listdir("/proc/self/fd")) if fd > 2 and fd not in kept)
    default_signals = (*(_ENDING if keep_ignored else _FORWARDED), *_RESET_TO_DEFAULT)
    # A prefix (systemd-run for a limited cgroup scope) execs bwrap in turn, same pid.
    argv = [*prefix, bwrap, *args]
    tty = (relay.slave_path, relay.ttys) if relay is not None else None
    if staged is not None or links:
        from agent_sandbox._run.idmap import spawn_as_command_uid
        from agent_sandbox._run.mountns import LINKS_FAILED, Spawn, own_namespace, spawn_prepared

        spawn = Spawn(argv, env, moves, keep_fds, close, default_signals, tty)
        if staged is not None:
            return spawn_as_command_uid(spawn, staged, links)
        pid, why = spawn_prepared(spawn, own_namespace(links))
        if why.startswith(LINKS_FAILED):
            raise LinksFailed(why[len(LINKS_FAILED):])
        if why:
            raise SandboxUnavailable(f"cannot start {bwrap}: {why}")
        return pid
    for fd in keep_fds:
        os.set_inheritable(fd, True)
    actions: list[tuple[int, int] | tuple[int, int, int] | tuple[int, int, str, int, int]] = []
    if tty is not None:
        # Opened after the setsid, without O_NOCTTY: it becomes the controlling terminal.
        path, fds = tty
        actions.append((os.POSIX_SPAWN_OPEN, fds[0], path, os.O_RDWR, 0))
        actions += [(os.POSIX_SPAWN_DUP2, fds[0], fd) for fd in fds[1:]]
    actions += [(os.POSIX_SPAWN_DUP2, fd, number) for fd, number in moves]
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in close]
    return os.posix_spawn(argv[0], argv, env, file_actions=actions, setsigmask=(),
                          setsigdef=default_signals, setsid=True)


def _shell_fd(fd: int, taken: list[int]) -> int:
    """A number for ``fd`` that ``sh`` can redirect: dash reads only one digit. Every fd but
    the passed ones is closed in bwrap, and at most six are passed, so one is free."""
    return fd if fd < 10 else next(n for n in range(3, 10) if n not in taken)


def _read_child_pid(status_fd: int) -> int | None:
    """Read bwrap's JSON status until "child-pid"; None if bwrap exits before starting it."""
    buffer = b""
    while b"\n" not in buffer:
        chunk = os.read(status_fd, 4096)
        if not chunk:
            return None
        buffer += chunk
    record = json.loads(buffer.split(b"\n", 1)[0])
    pid = record.get("child-pid")
    return pid if isinstance(pid, int) else None


def _command_pids(init_pid: int) -> list[int]:
    """The sandbox's top command: the children of bwrap's init (pid 1 inside)."""
    try:
        with open(f"/proc/{init_pid}/task/{init_pid}/children", encoding="ascii") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _exit_status(wait_status: int) -> int:
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _signal_command(init_pid: int, signo: int) -> None:
    for pid in _command_pids(init_pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signo)


def _supervise(bwrap_pid: int, init_pid: int, timeout: float | None,
               relay: Relay | None) -> tuple[int, bool]:
    """Wait for bwrap, passing signals on; returns its status and whether ``timeout`` hit.

    SIGTERM/SIGHUP (or the timeout) go to the command; if it is still there after the grace
    period, SIGKILL to the sandbox's pid 1 takes the whole pid namespace.
    """
    waited = _WAITED | _RELAYED if relay is not None else _WAITED
    timeout_at = time.monotonic() + timeout if timeout else None
    kill_at: float | None = None
    timed_out = False
    while True:
        done, wait_status = os.waitpid(bwrap_pid, os.WNOHANG)
        if done:
            return _exit_status(wait_status), timed_out
        wake = min((t for t in (timeout_at, kill_at) if t is not None), default=None)
        if wake is None:
            info: signal.struct_siginfo | None = signal.sigwaitinfo(waited)
        else:
            info = signal.sigtimedwait(waited, max(0.0, wake - time.monotonic()))
        now = time.monotonic()
        if info is None:
            if kill_at is not None and now >= kill_at:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(init_pid, signal.SIGKILL)
                kill_at = None
            elif timeout_at is not None and now >= timeout_at:
                timed_out, timeout_at = True, None
                _signal_command(init_pid, signal.SIGTERM)
                kill_at = now + GRACE_SECONDS
            continue
        signo = info.si_signo
        if signo == signal.SIGCHLD:
            continue
        if relay is not None and signo == signal.SIGWINCH:
            relay.resize()
            continue
        if relay is not None and signo == signal.SIGTSTP:
            relay.suspend(bwrap_pid)  # bwrap leads its session: its group is its pid
            continue
        if relay is not None and signo in _TERMINAL and info.si_code == _SI_KERNEL:
            relay.interrupt(signo)  # typed at the user's terminal: typed into the pty
            continue
        _signal_command(init_pid, signo)
        if signo in _ENDING and kill_at is None:
            kill_at = now + GRACE_SECONDS


def _started(started_fd: int) -> bool:
    """Whether the starter wrote its byte (it has, if it ran at all, before bwrap exited)."""
    os.set_blocking(started_fd, False)
    try:
        return os.read(started_fd, 1) == b"."
    except BlockingIOError:
        return False


def _failed_to_start(bwrap: str, status: int) -> SandboxUnavailable:
    from agent_sandbox._run.diagnose import explain_start_failure

    return SandboxUnavailable(*explain_start_failure(bwrap, status))


def _memory_file(stack: contextlib.ExitStack, text: str) -> int:
    fd = os.memfd_create("agent-sandbox-data", os.MFD_CLOEXEC)
    stack.callback(os.close, fd)
    os.write(fd, text.encode())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _net_label(plan: Plan) -> str:
    """The network in a few words, as ps and the start line show it: the mode and what
    else is reachable (forwarded host services, published ports)."""
    policy = plan.policy
    count = len(policy.allow)
    label = f"filtered ({count} host{'' if count == 1 else 's'})" \
        if policy.net.value == "filtered" else policy.net.value
    extras = []
    for f in policy.forwards:
        target = f"unix:{f.unix_path}" if f.unix_path else f"{f.host}:{f.port}"
        same = target == f"127.0.0.1:{f.inside_port}"
        extras.append(f"forwarded localhost:{f.inside_port}" + ("" if same else
                                                                 f" (host {target})"))
    extras += [f"published localhost:{port}" for port in policy.publish]
    shown = extras[:3] + ([f"{len(extras) - 3} more"] if len(extras) > 3 else [])
    return " + ".join([label, ", ".join(shown)]) if shown else label


@contextlib.contextmanager
def _session(plan: Plan, name: str | None,
             session_id: str | None) -> Iterator[tuple[Session, DecisionLog]]:
    """The launch's session record (for ps, stop, attach) and its start and exit in the log."""
    policy = plan.policy
    record = registered(os.environ, name, default_base(policy.agent, policy.command),
                        agent=policy.agent, project=policy.project, net=_net_label(plan),
                        command=policy.command, session_id=session_id)
    with record as session, \
            contextlib.closing(DecisionLog(session.name, session_id=session.id)) as log:
        log.record("start", pid=session.pid, agent=session.agent, project=session.project,
                   net=session.net, command=list(session.command))
        try:
            yield session, log
        except SandboxError as e:
            log.record("exit", error=e.message, status=e.exit_status)
            raise


def _check_command_uid(plan: Plan, root_fix: str) -> None:
    from agent_sandbox._run.idmap import check_command_uid

    try:
        check_command_uid()
    except SandboxUnavailable as e:
        raise SandboxUnavailable(e.message, fix=root_fix) from None
    if plan.bwrap_prefix:
        raise SandboxUnavailable(
            "a root caller's limits would take a systemd-run scope, which cannot start the "
            f"command as uid {plan.command_uid}",
            fix="name a delegated cgroup v2 directory in AGENT_SANDBOX_CGROUP_PARENT, or "
            + root_fix)


def _config_copies(plan: Plan, launch_id: str, quiet: bool) -> Copies | None:
    """The git configs' writable copies (``_run.gitcopy``), or None: none to make, or they
    cannot be (then git config is read-only inside, as bwrap binds it)."""
    if not plan.config_copies:
        return None
    from agent_sandbox._run.gitcopy import prepare
    from agent_sandbox._run.quarantine import quarantine_dir

    made = prepare(plan.config_copies, quarantine_dir(os.environ), launch_id)
    if isinstance(made, str):
        _no_copies(None, made, quiet)
        return None
    return made


def _links(copies: Copies, staged: tuple[Staged, ...] | None) -> tuple[Link, ...]:
    """The copies' links, each over its config as the mount namespace's child sees it (a
    root caller's: on the stage)."""
    if staged is None:
        return copies.links
    from agent_sandbox._run.idmap import staged_path

    links = []
    for link in copies.links:
        target = staged_path(link.target, staged)
        if target is None:
            raise LinksFailed(f"{link.target} is not under a path bwrap binds")
        links.append(link._replace(target=target))
    return tuple(links)


def _no_copies(copies: Copies | None, why: str, quiet: bool) -> None:
    if copies is not None:
        from agent_sandbox._run.gitcopy import remove

        remove(copies.directory)
    if not quiet:
        say(f"notice: git config is read-only inside this time ({why}): git remote add, "
            "git branch -u and git submodule add will fail (docs/faq.md: git config is "
            "read-only inside)")


def _caps(policy: Policy) -> str:
    """The caps in effect, for the start line (those that hold without asking)."""
    limits = policy.limits
    tasks = min(limits.nproc, limits.pids or limits.nproc)
    caps = [f"{tasks} processes", "/tmp on disk" if policy.tmp_on_disk
            else f"/tmp {human_size(policy.tmp_size)}"]
    if limits.memory is not None:
        caps.insert(0, f"memory {human_size(limits.memory)}")
    return "caps " + ", ".join(caps)


def _relay(stack: contextlib.ExitStack, filtered: bool, uid: int | None) -> Relay | None:
    """The command's own terminal when the launcher has one (imported only then)."""
    ttys = tuple(fd for fd in (0, 1, 2) if os.isatty(fd))
    if not ttys:
        return None
    from agent_sandbox._run.terminal import Relay

    relay = Relay(ttys, filtered)
    stack.callback(relay.close)
    if uid is not None:
        relay.give_to(uid)
    return relay


def _dropped_line(dropped: dict[str, int]) -> str:
    kinds = sorted(dropped.items(), key=lambda kv: -kv[1])
    total = sum(dropped.values())
    return (f"terminal: dropped {total} escape sequence{'' if total == 1 else 's'} the "
            "command wrote (they act beyond the screen): "
            + ", ".join(f"{kind} x{count}" for kind, count in kinds[:6])
            + (", ..." if len(kinds) > 6 else "") + "; --terminal raw lets them through")


def run(plan: Plan, bwrap: str, quiet: bool = False, name: str | None = None,
        caller: str = "", root_fix: str = "", session_id: str | None = None,
        terminal_filtered: bool = True) -> int:
    """Run ``plan`` under ``bwrap`` as session ``name`` (default: the preset's or command's
    name and a number) with ``session_id`` (default: a new one); return the exit status
    for the launcher to exit with. ``caller``
    says who the command runs as when that is not simply the caller (the start line says
    it); ``root_fix`` is the fix for a root caller whose command cannot drop to its uid."""
    if plan.command_uid is not None:
        _check_command_uid(plan, root_fix)
    with contextlib.ExitStack() as stack:
        relay = _relay(stack, terminal_filtered, plan.command_uid)
        stack.enter_context(_blocked_signals(plan.shield_terminal_signals, relay is not None))
        session, log = stack.enter_context(_session(plan, name, session_id))
        if not quiet:
            say(f"{session.name}: {plan.policy.project} read-write; network {session.net}; "
                f"{_caps(plan.policy)}; log and state in {home_relative(state_dir())}"
                + (f"; {caller}" if caller else ""))
        values: dict[Placeholder, str] = {}
        if plan.policy.tmp_on_disk:
            values[WORKDIR] = stack.enter_context(work_dir())
        launch_id = f"{os.getpid()}-{os.urandom(6).hex()}"
        seccomp_fd = stack.enter_context(seccomp_program(plan.seccomp))
        # Both pipes are close-on-exec; _spawn passes the write ends, which are closed here
        # right after, so bwrap and the sandbox hold the only copies.
        status_read, status_write = os.pipe()
        started_read, started_write = os.pipe()
        for fd in (status_read, started_read):
            stack.callback(os.close, fd)
        values[SECCOMP_FD] = str(seccomp_fd)
        made: dict[str, Made] = {}
        if plan.placeholders:
            stack.callback(remove_placeholders, plan.policy.project, plan.placeholders, made)
            make_dirs(plan.policy.project, plan.dirs_to_make)
            made.update(make_files(plan.policy.project, plan.files_to_make))
            stack.callback(remove_exclude_blocks, plan.host_excludes, launch_id)
            add_exclude_blocks(plan.host_excludes, launch_id)
            sources = placeholder_sources()
            values.update({PLACEHOLDER_SOURCES[kind]: path for kind, path in sources.items()})
        if plan.protections:
            from agent_sandbox._run.quarantine import snapshot

            before = snapshot(plan.policy.project, plan.protections)
        copies = _config_copies(plan, launch_id, quiet)
        if copies is not None:
            values[GIT_COPIES] = copies.directory
        passed_extra = []
        if plan.git_excludes:
            excludes = _memory_file(stack, plan.git_excludes)
            values[GIT_EXCLUDES_FD] = str(excludes)
            passed_extra.append(excludes)
        passed = [status_write, seccomp_fd, *passed_extra]
        cgroup = None
        if plan.policy.cgroup_parent:
            from agent_sandbox._run.cgroup import add_process, sandbox_cgroup

            cgroup = stack.enter_context(sandbox_cgroup(plan.policy.limits, os.environ,
                                                        launch_id))
        home = None
        if plan.policy.agent_home:
            from agent_sandbox._policy.presets import load
            from agent_sandbox._run.agent_home import AgentHome

            home = AgentHome(load(plan.policy.agent), plan.policy.project,
                             plan.policy.agent_home_size, dict(plan.env)["HOME"], os.environ,
                             plan.command_uid)
            for note in home.prepare():
                if not quiet:
                    say(f"{plan.policy.agent}: {note}")
            stack.callback(home.close)
        own_options = ["--json-status-fd", str(status_write)]
        # bwrap waits on the block pipe, after its setup and before the command, until
        # the launcher has capped its processes, moved it into its cgroup, serves the
        # network and filled the agent's home (or dies: then the sandbox dies with it).
        block_read, block_write = os.pipe()
        stack.callback(os.close, block_write)
        values[BLOCK_FD] = str(block_read)
        passed.append(block_read)
        if plan.net is None:
            own_options += ["--block-fd", str(block_read)]  # the plan's is the network's
        elif plan.net.filtered:
            values[HOSTS_FD] = str(_memory_file(stack, hosts_file(plan.net.entries)))
            values[RESOLV_FD] = str(_memory_file(stack, resolv_conf()))
            passed += [int(values[HOSTS_FD]), int(values[RESOLV_FD])]
        # The start script writes to this one from sh (a caller such as `nix develop` may
        # leave so many fds open that ours get two digits).
        started_inside = _shell_fd(started_write, passed)
        values[STARTED_FD] = str(started_inside)
        moves = ((started_write, started_inside),) if started_inside != started_write else ()
        if not moves:
            passed.append(started_write)
        staged = None
        renamed: dict[str, str] = {}
        if plan.command_uid is not None:
            from agent_sandbox._run.idmap import stage_map

            staged, renamed = stage_map([values[w] if isinstance(w, Placeholder) else w
                                         for w in plan.staged_sources
                                         if w is not GIT_COPIES or copies is not None])
        apply_rlimits(plan.policy.limits, processes=plan.command_uid is not None)
        pid = 0
        try:
            try:
                links = () if copies is None else _links(copies, staged)
                args = [*own_options, *plan.bwrap_args(values, renamed, copies=bool(links))]
                pid = _spawn(bwrap, args, dict(plan.env), tuple(passed),
                             keep_ignored=plan.shield_terminal_signals,
                             prefix=plan.bwrap_prefix, moves=moves, staged=staged, links=links,
                             relay=relay)
            except LinksFailed as e:
                # Never less confined: the configs are read-only, as bwrap binds them.
                _no_copies(copies, str(e), quiet)
                copies = None
                args = [*own_options, *plan.bwrap_args(values, renamed)]
                pid = _spawn(bwrap, args, dict(plan.env), tuple(passed),
                             keep_ignored=plan.shield_terminal_signals,
                             prefix=plan.bwrap_prefix, moves=moves, staged=staged,
                             relay=relay)
        except OSError as e:
            raise SandboxUnavailable(f"cannot run {bwrap}: {e.strerror}") from None
        except NoUserNamespace:
            raise _failed_to_start(bwrap, EXIT_SANDBOX_FAILED) from None
        except SandboxUnavailable as e:
            raise SandboxUnavailable(e.message, fix=root_fix) from None
        finally:
            os.close(status_write)
            os.close(started_write)
            os.close(block_read)
            if not pid and copies is not None:
                _no_copies(copies, "", quiet=True)
        if relay is not None:
            relay.start()  # bwrap's own messages come through it too
        after = None
        if plan.protections:
            from agent_sandbox._run.quarantine import run as quarantine

            environ = dict(os.environ)
            before = before._replace(copies=copies)

            def after() -> Outcome:
                return quarantine(plan.policy.project, before, launch_id, environ)
        stack.enter_context(placeholders_removed(plan.policy.project, plan.placeholders,
                                                 made, pid, plan.host_excludes, launch_id,
                                                 after))
        if plan.net is not None:
            # Import the network modules (a few ms) while bwrap sets the sandbox up.
            from agent_sandbox._net.up import network
        init_pid = _read_child_pid(status_read)
        if init_pid is None:
            _, wait_status = os.waitpid(pid, 0)
            raise _failed_to_start(bwrap, _exit_status(wait_status))
        net = None
        places: list[Place] = []
        try:
            if plan.command_uid is None:
                limit_processes(init_pid, plan.policy.limits)
            if cgroup is not None:
                add_process(cgroup, init_pid)
            if home is not None:
                # Before the network's thread starts: a root caller's fill forks a child.
                home.fill(init_pid, dict(plan.env)["HOME"])
            if plan.net is not None:
                from agent_sandbox._policy.groups import group_of

                # A fix for a refused host names its group (@pypi) when one holds it.
                net = stack.enter_context(network(plan.net, init_pid, log, group_of))
            # What the command writes outside the project is gone with the sandbox:
            # its filesystems are held open from now on, to say what that was.
            if wait_ready(init_pid):
                places = open_places(init_pid, plan.temporary_home(), plan.made_paths())
                stack.callback(close_places, places)
        except BaseException:
            # Never let the command run unserved or unlimited. The sandbox's first
            # process goes first: it waits on the block pipe, and reads the end of it,
            # once the pipe closes, as leave to go on, even with bwrap itself killed.
            for target in (init_pid, pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(target, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        offline = None
        if plan.policy.net.value == "none" and not quiet:
            from agent_sandbox._net.offline import Attempts

            offline = Attempts(init_pid)
            stack.callback(offline.close)
        os.write(block_write, b"x")
        status, timed_out = _supervise(pid, init_pid, plan.policy.limits.timeout, relay)
        if relay is not None:
            relay.close()  # the user's terminal modes back before anything is said
            if relay.dropped and not quiet:
                say(_dropped_line(relay.dropped))
        if home is not None:
            for note in home.save():
                if not quiet:
                    say(f"{plan.policy.agent}: {note}")
        if timed_out:
            say(f"stopped: --timeout {plan.policy.limits.timeout:g}s reached")
            status = EXIT_TIMEOUT
        summary = net.summary() if net is not None else None
        if summary and not quiet:
            say(summary)
        tried = offline.count() if offline is not None and status != 0 else 0
        if tried:
            # Tools say only "Could not resolve host": the failure may well be this.
            say(f"network: none (loopback only): the command tried to reach the network "
                f"{tried} time(s) (name lookups or connections) and could not; to let it "
                "reach a host, launch with --allow HOST")
        if after is not None:
            from agent_sandbox._run.quarantine import exit_lines

            for text in exit_lines(after(), launch_id, quiet):
                say(text)
        for place in places:
            text = lost_line(written(place), dict(plan.env)["HOME"])
            if text:
                say(text)
        if plan.reports_start and not _started(started_read):
            raise _failed_to_start(bwrap, status)
        log.record("exit", status=status)
    return status
