"""Interactive programs in a real pseudo-terminal: a shell, a resize, ^C, ^Z, an editor."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pexpect
import pytest

from tests.conftest import Env

pytestmark = pytest.mark.integration

PROMPT = "SANDBOX-PROMPT> "


def _spawn(args: list[str], project: Path, env: Env, **extra: str) -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-m", "agent_sandbox", "-q", *args], cwd=str(project),
                          env=env.with_(**extra), encoding="utf-8", timeout=20,
                          dimensions=(24, 80))
    return child


def _close(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    status: int = child.exitstatus if child.exitstatus is not None else 128 + child.signalstatus
    return status


def test_interactive_shell_is_a_tty_and_sees_a_resize(project: Path, env: Env) -> None:
    child = _spawn(["--env", f"PS1={PROMPT}", "--", "bash", "--norc", "--noprofile", "-i"],
                   project, env)
    child.expect_exact(PROMPT)
    # Markers are split in the command line so that its echo never matches them.
    child.sendline("test -t 0 && test -t 1 && echo IS-A-''TTY; stty size")
    child.expect_exact("IS-A-TTY")
    child.expect_exact("24 80")
    child.expect_exact(PROMPT)
    # A program that waits for SIGWINCH (blocked first: no race with the resize).
    child.sendline(
        "python3 -c 'import os,signal; signal.pthread_sigmask(signal.SIG_BLOCK, "
        "[signal.SIGWINCH]); print(\"WAIT\" \"ING\", flush=True); "
        "got = signal.sigtimedwait([signal.SIGWINCH], 15); s = os.get_terminal_size(); "
        "print(f\"RESIZED {s.lines}\" f\"x{s.columns}\" if got else \"NO-SIGWINCH\")'"
    )
    child.expect_exact("WAITING")
    child.setwinsize(40, 132)
    child.expect_exact("RESIZED 40x132")
    child.expect_exact(PROMPT)
    child.sendline("exit 42")
    assert _close(child) == 42


def test_ctrl_c_reaches_the_foreground_program(project: Path, env: Env) -> None:
    child = _spawn(["--", "python3", "-c",
                    "import time\nprint('REA' 'DY', flush=True)\n"
                    "try:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
                    "    print('CAU' 'GHT', flush=True)\n    raise SystemExit(3)"],
                   project, env)
    child.expect_exact("READY")
    child.sendintr()
    child.expect_exact("CAUGHT")
    assert _close(child) == 3  # one ^C, delivered once (the launcher does not repeat it)


def test_ctrl_c_kills_a_program_without_a_handler(project: Path, env: Env) -> None:
    child = _spawn(["--", "sh", "-c", "echo READY; exec sleep 60"], project, env)
    child.expect_exact("READY")
    child.sendintr()
    assert _close(child) == 130


def test_job_control_ctrl_z_and_fg(project: Path, env: Env) -> None:
    launcher = f"{sys.executable} -m agent_sandbox -q"
    outer = pexpect.spawn("bash", ["--norc", "--noprofile", "-i"], cwd=str(project),
                          env=env.with_(PS1=PROMPT), encoding="utf-8", timeout=20)
    outer.expect_exact(PROMPT)
    outer.sendline(f"{launcher} -- python3 -c \"import time; print('START' 'ED', flush=True); "
                   "time.sleep(3); print('FINISH' 'ED')\"")
    outer.expect_exact("STARTED")
    outer.sendcontrol("z")
    outer.expect("Stopped")
    outer.expect_exact(PROMPT)
    outer.sendline("fg")
    outer.expect_exact("FINISHED")
    outer.expect_exact(PROMPT)
    outer.sendline("echo STATUS=$?")
    outer.expect_exact("STATUS=0")
    outer.sendline("exit")
    outer.expect(pexpect.EOF)
    outer.close()


@pytest.mark.skipif(shutil.which("vi") is None, reason="no vi on this host (.ci/run installs "
                    "vim-tiny)")
def test_an_editor_works_in_the_pty(project: Path, env: Env) -> None:
    child = _spawn(["--", "vi", "notes.txt"], project, env)
    child.send("ihello from vi")
    child.send("\x1b")
    child.send(":wq\r")
    assert _close(child) == 0
    assert (project / "notes.txt").read_text() == "hello from vi\n"
