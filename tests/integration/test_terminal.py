"""Interactive programs in a real pseudo-terminal: a shell, a resize, ^C, ^Z, an editor."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pexpect
import pytest

from tests.conftest import Env, assert_nothing_injected, outer_shell

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


# The terminal firewall ------------------------------------------------------------------

# Written inside, each must never reach the outer terminal (the pexpect pty here): the
# clipboard write and query, the reports that type into the input, DCS, APC, the paste end.
DANGEROUS = {
    "osc52": r"\033]52;c;ZWNobyBQV05FRAo=\007",
    "osc52-st": r"\033]52;c;ZWNobyBQV05FRAo=\033\\",
    "title-report": r"\033[21t",
    "decrqss": r"\033P$qm\033\\",
    "apc": r"\033_Gf=100;AAAA\033\\",
    "paste-end": r"\033[201~",
    "c1-csi": r"\302\23321t",
}
ALLOWED = [r"\033[1;31m", r"\033[?1049h", r"\033[?1049l", r"\033[12;3H", r"\033[?2004h",
           r"\033[?2004l", r"\033]0;a title\007", r"\033]8;;https://example.test/\033\\",
           r"\033[6n"]


def _raw_spawn(args: list[str], project: Path, env: Env) -> pexpect.spawn:
    """The launcher in a pty, its output as bytes (what the terminal would get)."""
    return pexpect.spawn(sys.executable, ["-m", "agent_sandbox", *args], cwd=str(project),
                         env=env.vars, timeout=20, dimensions=(24, 80))


def _writes(where: str, split: bool) -> str:
    """A shell script writing every sequence to ``where``, each whole or a byte per write,
    between markers, then the allowed ones."""
    def put(seq: str) -> str:
        if not split:
            return f"printf '{seq}' >{where}; "
        # printf interprets the escapes once: split the bytes it would write.
        return (f"printf '{seq}' | python3 -c 'import os,sys,time\n"
                "for b in sys.stdin.buffer.read(): os.write(1, bytes([b])); time.sleep(0.002)' "
                f">{where}; ")
    script = "".join(f"printf '<{name}>' >{where}; {put(seq)}" for name, seq in DANGEROUS.items())
    script += "printf '<allowed>'; " + "".join(put(seq) for seq in ALLOWED)
    return script + "printf '<end>'"


@pytest.mark.parametrize("where", ["/dev/stdout", "/dev/tty"])
@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
def test_dangerous_sequences_never_reach_the_terminal(project: Path, env: Env, where: str,
                                                      split: bool) -> None:
    child = _raw_spawn(["-q", "--", "sh", "-c", _writes(where, split)], project, env)
    child.expect(pexpect.EOF)
    screen = child.before
    child.close()
    assert child.exitstatus == 0, screen
    assert b"<end>" in screen
    between = screen.split(b"<allowed>")[0]
    for name in DANGEROUS:
        assert f"<{name}>".encode() in between
    assert b"\x1b" not in between and b"\xc2\x9b" not in between, between
    allowed = screen.split(b"<allowed>")[1]
    for seq in ALLOWED:
        raw = seq.encode().decode("unicode_escape").encode("latin-1")
        raw = raw.replace(b"\\033", b"\x1b")
        assert raw.replace(b"\x1b\\\\", b"\x1b\\") in allowed, (seq, allowed)


def test_the_exit_summary_names_what_was_dropped_and_raw_lets_it_through(
        project: Path, env: Env) -> None:
    script = f"printf '{DANGEROUS['osc52']}{DANGEROUS['osc52']}{DANGEROUS['title-report']}'"
    child = _raw_spawn(["--", "sh", "-c", script], project, env)
    child.expect(pexpect.EOF)
    said = child.before
    child.close()
    assert b"\x1b]52" not in said
    line = next(x for x in said.decode().splitlines() if "terminal: dropped" in x)
    assert "3 escape sequences" in line and "OSC 52 (clipboard) x2" in line
    assert "CSI 21 t (title report) x1" in line
    # The control: --terminal raw passes them (announced at launch).
    child = _raw_spawn(["--terminal", "raw", "--", "sh", "-c", script], project, env)
    child.expect(pexpect.EOF)
    said = child.before
    child.close()
    assert b"\x1b]52;c;ZWNobyBQV05FRAo=\x07" in said
    assert b"terminal raw (--terminal): escape sequences" in said


def test_a_10_mb_unterminated_osc_costs_bounded_memory_and_the_session_goes_on(
        project: Path, env: Env) -> None:
    script = ("python3 -c 'import os\n"
              "os.write(1, b\"\\x1b]52;c;\")\n"
              "for _ in range(160): os.write(1, b\"A\" * 65536)\n"
              "os.write(1, b\"\\x07\")\n"
              "print(\"AFTER\" \"WARDS\")'")
    child = _raw_spawn(["-q", "--", "sh", "-c", script + "; sleep 0.5"], project, env)
    child.expect_exact(b"AFTERWARDS", timeout=60)
    # The launcher's peak memory, read while it still runs: far below the 10 MB it saw.
    status = Path(f"/proc/{child.pid}/status").read_text()
    peak_kb = int(next(x for x in status.splitlines() if x.startswith("VmHWM")).split()[1])
    child.expect(pexpect.EOF)
    child.close()
    assert b"AAAA" not in child.before
    assert peak_kb < 80_000, peak_kb


def _tiocsti_script(rules_minus_tiocsti: bool) -> str:
    """Python that runs the real launcher on a plan pushing "echo PWNED" into its
    terminal, optionally with the seccomp rule against TIOCSTI taken out of the plan."""
    attack = ("import ctypes, os\n"
              "libc = ctypes.CDLL(None, use_errno=True)\n"
              "ok = all(libc.ioctl(0, ctypes.c_ulong(0x5412), ctypes.c_char_p(bytes([c]))) "
              "== 0 for c in b'echo PWN' b'ED\\n')\n"
              "print('INJ' 'ECTED' if ok else 'REFUSED', flush=True)\n")
    return (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from tests.plans import plan_for\n"
        "from agent_sandbox._run.bwrap import find_bwrap\n"
        "from agent_sandbox._run.launch import run\n"
        f"plan = plan_for(Path.cwd(), os.environ, ['python3', '-c', {attack!r}])\n"
        + ("plan = plan._replace(seccomp=tuple(r for r in plan.seccomp "
           "if 'TIOCSTI' not in r.why))\n" if rules_minus_tiocsti else "")
        + "sys.exit(run(plan, find_bwrap(os.environ), quiet=True))\n")


@pytest.mark.skipif(
    Path("/proc/sys/dev/tty/legacy_tiocsti").exists()
    and Path("/proc/sys/dev/tty/legacy_tiocsti").read_text().strip() == "0",
    reason="this kernel refuses TIOCSTI by itself (dev.tty.legacy_tiocsti=0): no attack",
)
def test_with_its_own_terminal_tiocsti_injects_nothing_even_without_the_seccomp_rule(
        project: Path, env: Env, tmp_path: Path) -> None:
    """Two layers: the seccomp rule refuses TIOCSTI, and, with the rule taken out, the
    command's terminal is the relay's pty: what it pushes never reaches the outer shell.
    (The control, the plan without the rule and without the relay, is
    test_seccomp.py::test_without_the_filter_tiocsti_does_inject.)"""
    script = tmp_path / "launch.py"
    script.write_text(_tiocsti_script(rules_minus_tiocsti=True))
    repo = Path(__file__).parents[2]
    shell = outer_shell(project, env, PYTHONPATH=str(repo))
    shell.sendline(f"{sys.executable} {script}")
    shell.expect_exact("INJECTED")  # the push worked: into the sandbox's own terminal
    assert_nothing_injected(shell)


def test_a_background_launch_runs_on_and_leaves_the_terminal_to_the_shell(
        project: Path, env: Env) -> None:
    """``agent-sandbox -- CMD &``: the relay neither reads the terminal nor changes its
    modes from the background (either would stop the job): the command runs to its end,
    its output shows, and the shell keeps its cooked terminal."""
    shell = outer_shell(project, env)
    shell.sendline(f"{sys.executable} -m agent_sandbox -q -- sh -c 'sleep 2; echo BG-''DONE' &")
    shell.expect_exact("OUTER> ")
    shell.sendline("stty -a | grep -o ' icanon'; echo TYPED-''LINE")
    shell.expect_exact(" icanon")  # still cooked, while the job runs
    shell.expect_exact("TYPED-LINE")
    shell.expect_exact("BG-DONE", timeout=30)
    shell.sendline("wait; echo STATUS=$?")
    shell.expect_exact("STATUS=0")
    assert "Stopped" not in shell.before
    shell.sendline("exit")
    shell.expect(pexpect.EOF)


def test_a_terminal_that_is_not_the_controlling_one_still_gets_its_keys_through(
        project: Path, env: Env) -> None:
    """A supervisor that hands the launcher a pty without making it the launcher's
    controlling terminal (no job control over it): the keys are relayed all the same."""
    import os
    import pty
    import select
    import subprocess

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "agent_sandbox", "-q", "--", "sh", "-c",
                             "read line; echo GOT-$line"], cwd=project, env=env.vars,
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        os.write(master, b"keys\r")
        seen = b""
        while b"GOT-keys" not in seen and select.select([master], [], [], 20)[0]:
            try:
                seen += os.read(master, 4096)
            except OSError:
                break
        assert b"GOT-keys" in seen, seen
    finally:
        proc.kill()  # a SIGKILL of the launcher takes the sandbox with it
        proc.wait()
        os.close(master)


def test_with_only_the_output_a_terminal_stdin_stays_a_pipe_and_lines_end_once(
        project: Path, env: Env) -> None:
    """``producer | agent-sandbox -- CMD`` in a terminal: the command reads the pipe, its
    output is a tty, and each line reaches the terminal ending in one \\r\\n (the user's
    terminal, left cooked, adds the \\r; the pty inside does not add another)."""
    import os
    import pty
    import subprocess

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "agent_sandbox", "-q", "--", "sh", "-c",
                             "cat; test -t 0 || echo stdin-is-a-pipe; test -t 1 && "
                             "echo stdout-is-a-tty"], cwd=project, env=env.vars,
                            stdin=subprocess.PIPE, stdout=slave, stderr=slave)
    os.close(slave)
    assert proc.stdin is not None
    proc.stdin.write(b"from the pipe\n")
    proc.stdin.close()
    seen = b""
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        seen += data
    assert proc.wait(timeout=20) == 0
    os.close(master)
    assert seen == b"from the pipe\r\nstdin-is-a-pipe\r\nstdout-is-a-tty\r\n", seen
