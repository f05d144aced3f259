"""The command's own terminal: a pseudo-terminal the launcher owns and relays.

When the launcher's stdin, stdout or stderr is a terminal, the command gets a new session
whose controlling terminal is a fresh pty (so ``/dev/tty``, ``TIOCSTI`` and ``TIOCLINUX``
reach that one, never the user's); each standard fd that was the user's terminal is that
pty inside, the others (a pipe, a file) pass as they are. Two threads relay:

- output: the pty -> ``ttyfilter.OutputFilter`` (unless ``--terminal raw``) -> the user's
  terminal; what it dropped is counted for the exit summary;
- input: the user's terminal (put in raw mode while the session runs) -> the pty,
  unchanged. Its line discipline then does what the user's would have: ^C and ^\\ signal
  the program inside if its terminal is cooked, and are keys if it made it raw.

A launch in the background (``agent-sandbox -- CMD &``) leaves the user's terminal to the
shell: the relay reads it and makes it raw only while the launcher is its foreground job
(checked every ``_RECHECK_MS``), so the job never stops on SIGTTIN/SIGTTOU, and ``fg``
gives the keys to the command.

^Z with a cooked terminal inside suspends the whole session, as it would without the
relay: the launcher stops the sandbox's foreground process groups, gives the user's
terminal its modes back and stops itself (``SIGTSTP``: the shell says "Stopped"); ``fg``
restores the raw mode, continues the sandbox and makes its program redraw. A window resize
of the user's terminal is passed on (``TIOCSWINSZ``, which signals ``SIGWINCH`` inside).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import termios
import threading
import tty

from agent_sandbox._run.ttyfilter import OutputFilter

_CHUNK = 65536
_DRAIN_SECONDS = 2.0  # after the sandbox ended: the output still in the pty
_RECHECK_MS = 250  # how often the input relay checks it is still the foreground job


class Relay:
    """One session's pty and its two relay threads: made before the sandbox starts (bwrap
    gets ``slave_path`` on ``ttys`` in a new session), ``start`` once bwrap holds it,
    ``close`` when it ended."""

    def __init__(self, ttys: tuple[int, ...], filtered: bool) -> None:
        self.ttys = ttys
        self._in = 0 if 0 in ttys else None  # what the user types, if a terminal
        self._out = next(fd for fd in (1, 2, 0) if fd in ttys)  # where the screen is
        self._filter = OutputFilter() if filtered else None
        # The user's modes while the relay has its terminal raw, else None.
        self._saved: list[int | list[bytes | int]] | None = None
        self._modes = threading.Lock()
        self._stop_r, self._stop_w = os.pipe()
        self._threads: list[threading.Thread] = []
        self._closed = False
        master, slave = os.openpty()
        self.master = master
        self._slave = slave
        self.slave_path = os.ttyname(slave)
        with contextlib.suppress(termios.error):
            # The program inside starts with the user's modes (echo, erase, ^C...).
            modes = termios.tcgetattr(self._out)
            if self._in is None:
                # The user's terminal stays as it is (the launcher does not read it), so
                # it turns \n into \r\n itself: once is enough.
                modes[1] &= ~termios.OPOST
            termios.tcsetattr(slave, termios.TCSANOW, modes)
        self.resize()

    def give_to(self, uid: int) -> None:
        """The pty to the uid a root caller's command runs as: it can reopen it (``>
        /dev/stdout``) as any command can its own terminal."""
        os.fchown(self._slave, uid, -1)

    @property
    def dropped(self) -> dict[str, int]:
        return self._filter.dropped if self._filter is not None else {}

    def resize(self) -> None:
        """The user's window size, passed on (the kernel signals SIGWINCH inside)."""
        with contextlib.suppress(OSError):
            size = fcntl.ioctl(self._out, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)

    def start(self) -> None:
        """The sandbox holds the pty now: drop the launcher's copy (its end is the end of
        the output) and relay."""
        os.close(self._slave)
        self._raw()
        self._threads = [threading.Thread(target=self._relay_output, daemon=True,
                                          name="terminal output")]
        if self._in is not None:
            self._threads.append(threading.Thread(target=self._relay_input, args=(self._in,),
                                                  daemon=True, name="terminal input"))
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        """After the sandbox: the rest of its output, then the user's modes back (once;
        again is a no-op)."""
        if self._closed:
            return
        self._closed = True
        if self._threads:
            self._threads[0].join(_DRAIN_SECONDS)
            os.write(self._stop_w, b"x")
            for thread in self._threads[1:]:
                thread.join(_DRAIN_SECONDS)
        else:
            os.close(self._slave)
        self._restore()
        for fd in (self.master, self._stop_r, self._stop_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def interrupt(self, signo: int) -> None:
        """A ^C or ^\\ the user's terminal turned into a signal (when the launcher does not
        read it: stdin is not the terminal): typed into the pty instead."""
        key = termios.VINTR if signo == signal.SIGINT else termios.VQUIT
        with contextlib.suppress(OSError, termios.error):
            char = termios.tcgetattr(self.master)[6][key]
            os.write(self.master, char if isinstance(char, bytes) else bytes([char]))

    def suspend(self, leader: int) -> None:
        """^Z: stop the sandbox's foreground (and ``leader``'s) process group, give the user
        the terminal back, stop the launcher; on ``fg``, undo it all and redraw."""
        groups = {leader, *self._foreground()}
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGSTOP)
        self._restore()
        # Stopped by a SIGTSTP of its own (the shell says "Stopped"), the only thread
        # that has it unblocked: until the shell sends SIGCONT.
        os.kill(os.getpid(), signal.SIGTSTP)
        previous = signal.signal(signal.SIGTSTP, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTSTP])
        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTSTP])
        signal.signal(signal.SIGTSTP, previous)
        self._raw()
        self.resize()
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGCONT)
        for group in self._foreground():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGWINCH)  # a TUI redraws its screen

    def _foreground(self) -> tuple[int, ...]:
        with contextlib.suppress(OSError):
            return (os.tcgetpgrp(self.master),)
        return ()

    def _in_foreground(self) -> bool:
        """Whether the launcher is the terminal's foreground job (``cmd &`` is not: the
        terminal is the shell's, and reading or changing it would stop the launcher)."""
        if self._in is None:
            return False
        try:
            return os.tcgetpgrp(self._in) == os.getpgrp()
        except OSError:  # not the launcher's controlling terminal: no job control over it
            return True

    def _raw(self) -> None:
        """The user's terminal passes every key to the relay: once the launcher reads it
        in the foreground (a no-op when it is raw already, or in the background)."""
        with self._modes:
            if self._in is None or self._saved is not None or not self._in_foreground():
                return
            with contextlib.suppress(termios.error):
                saved = termios.tcgetattr(self._in)
                tty.setraw(self._in, termios.TCSADRAIN)
                self._saved = saved

    def _restore(self) -> None:
        """The user's modes back, if the relay changed them."""
        with self._modes:
            if self._in is not None and self._saved is not None:
                with contextlib.suppress(termios.error):
                    termios.tcsetattr(self._in, termios.TCSADRAIN, self._saved)
                self._saved = None

    def _relay_output(self) -> None:
        while True:
            try:
                data = os.read(self.master, _CHUNK)
            except OSError as e:  # EIO: the last holder of the pty is gone
                if e.errno == errno.EINTR:
                    continue
                data = b""
            if not data:
                if self._filter is not None:
                    _write_all(self._out, self._filter.flush())
                return
            _write_all(self._out, self._filter.feed(data) if self._filter is not None
                       else data)

    def _relay_input(self, fd: int) -> None:
        stopper = select.poll()
        stopper.register(self._stop_r, select.POLLIN)
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            if not self._in_foreground():
                # A background job (or one put there by bg): the keys are the shell's.
                if stopper.poll(_RECHECK_MS):
                    return
                continue
            self._raw()
            ready = {f for f, _ in poller.poll(_RECHECK_MS)}
            if self._stop_r in ready:
                return
            if fd not in ready:
                continue
            try:
                data = os.read(fd, _CHUNK)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not data:
                return
            key = self._suspend_key(data)
            if key:
                before, _, after = data.partition(key)
                _write_all(self.master, before)
                os.kill(os.getpid(), signal.SIGTSTP)  # the main thread suspends
                data = after
            _write_all(self.master, data)

    def _suspend_key(self, data: bytes) -> bytes:
        """The pty's suspend character if it is in ``data`` and the pty would act on it
        (its program left it cooked), else b""."""
        try:
            attrs = termios.tcgetattr(self.master)
        except termios.error:
            return b""
        char = attrs[6][termios.VSUSP]
        char = char if isinstance(char, bytes) else bytes([char])
        return char if attrs[3] & termios.ISIG and char != b"\0" and char in data else b""


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:  # a terminal someone set non-blocking: wait until it drains
            select.select([], [fd], [])
        except OSError:
            return  # the terminal is gone: nothing left to show
