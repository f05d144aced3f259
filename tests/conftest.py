"""Shared fixtures: a fake $HOME full of secrets, a project, and a way to run the real CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pexpect
import pytest

IS_ROOT = os.getuid() == 0
INSIDE_UID = 65534 if IS_ROOT else os.getuid()
CLI = [sys.executable, "-m", "agent_sandbox"]
SECRET = "s3cr3t-" + os.urandom(4).hex()


class Env:
    """A controlled environment for the launcher: fake HOME, private TMPDIR, plain PATH."""

    def __init__(self, home: Path, tmpdir: Path) -> None:
        self.home = home
        self.tmpdir = tmpdir
        self.vars = {
            "HOME": str(home),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "TMPDIR": str(tmpdir),
            "LANG": "C.UTF-8",
            "TERM": "xterm",
            "USER": "tester",
        }

    @property
    def workdir_base(self) -> Path:
        return self.tmpdir / f"agent-sandbox-{os.getuid()}"

    def workdirs(self) -> list[str]:
        """The launches' work dirs and locks (not the shared placeholder sources)."""
        base = self.workdir_base
        return sorted(n for n in os.listdir(base) if not n.startswith(".")) if base.exists() \
            else []

    def with_(self, **extra: str) -> dict[str, str]:
        return {**self.vars, **extra}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    (h / ".ssh").mkdir(parents=True)
    (h / ".ssh" / "id_ed25519").write_text(f"PRIVATE KEY {SECRET}\n")
    (h / ".aws").mkdir()
    (h / ".aws" / "credentials").write_text(f"aws_secret_access_key={SECRET}\n")
    (h / ".bashrc").write_text("echo from-bashrc\n")
    (h / ".gitconfig").write_text("[user]\n\tname = Sandbox Tester\n\temail = t@example.invalid\n")
    return h


@pytest.fixture
def env(home: Path, tmp_path: Path) -> Env:
    tmpdir = tmp_path / "hosttmp"
    tmpdir.mkdir()
    return Env(home, tmpdir)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    p = tmp_path / "project"
    p.mkdir()
    return p


def run_cli(
    args: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float = 60,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=dict(env), capture_output=True, text=True,
        timeout=timeout, input=input, check=False,
    )


def sandbox_sh(script: str, *, cwd: Path, env: Mapping[str, str],
               extra: Sequence[str] = (), timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``sh -c script`` in the real sandbox."""
    return run_cli([*extra, "--", "sh", "-c", script], cwd=cwd, env=env, timeout=timeout)


@contextlib.contextmanager
def launched(args: Sequence[str], *, cwd: Path, env: Mapping[str, str],
             stdout: int | None = subprocess.PIPE,
             stderr: int | None = subprocess.PIPE) -> Iterator[subprocess.Popen[str]]:
    """The real CLI as a running child. It is SIGKILLed on the way out if still running, so
    a failed assertion never leaves a sandbox behind (Popen's own context manager would wait
    for it forever)."""
    with subprocess.Popen([*CLI, *args], cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                          stdout=stdout, stderr=stderr, text=True) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()


@contextlib.contextmanager
def loopback_server(handle: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server on the host's 127.0.0.1 that runs ``handle`` on each connection in
    turn (one thread), closing it after; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                handle(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


# A git identity for the commits tests make, inside and out.
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}


def host_git(env: Env, *args: str, cwd: Path) -> str:
    """Host git, as the user runs it after a session (its output; failing is an error)."""
    return subprocess.run(["git", *args], cwd=cwd, env=env.with_(**GIT_ENV), check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def repo(project: Path, env: Env) -> Path:
    """The project as a git repository with one commit, made by host git."""
    host_git(env, "init", "-q", "-b", "main", cwd=project)
    (project / "a.txt").write_text("a\n")
    host_git(env, "add", "a.txt", cwd=project)
    host_git(env, "commit", "-qm", "one", cwd=project)
    return project


def outer_shell(project: Path, env: Env, **extra: str) -> pexpect.spawn:
    """An interactive bash the user typed the launcher into (prompt ``OUTER> ``)."""
    shell = pexpect.spawn("bash", ["--norc", "--noprofile", "-i"], cwd=str(project),
                          env=env.with_(PS1="OUTER> ", **extra), encoding="utf-8", timeout=30)
    shell.expect_exact("OUTER> ")
    return shell


def assert_nothing_injected(shell: pexpect.spawn) -> None:
    """After the launch: back at the outer prompt, which ran nothing the sandbox pushed."""
    shell.expect_exact("OUTER> ")
    shell.sendline("echo DONE")
    shell.expect_exact("DONE\r\n")
    assert "PWNED" not in shell.before
    shell.sendline("exit")
    shell.expect(pexpect.EOF)


# The agents' versions, pinned: tests/agents match the strings their screens show, and
# tests/agents/test_preset_sources.py checks each preset's hosts and variables against their
# files. Update them together with those tests.
NPM_AGENTS = ["@anthropic-ai/claude-code@2.1.197", "@openai/codex@0.169.0",
              "@google/gemini-cli@0.61.0", "opencode-ai@1.18.33"]
AIDER = "aider-chat==0.86.2"


@pytest.fixture(scope="session")
def npm_agents(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Claude Code, Codex and Gemini CLI from the npm registry, installed once per test run
    the way npm documents installing without sudo: ``npm install -g`` into a per-user
    prefix (their --version needs no network). npm's cache is used without asking the
    registry again, so a rerun installs in seconds. Tests get their own copy (hard links)
    in their fake home: :func:`npm_home`."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed (.ci/run's machine has it)")
    prefix = tmp_path_factory.mktemp("npm-agents") / ".npm-global"
    subprocess.run([npm, "install", "--global", "--no-audit", "--no-fund", "--prefer-offline",
                    "--prefix", str(prefix), *NPM_AGENTS],
                   check=True, capture_output=True, timeout=900)
    return prefix


@pytest.fixture
def npm_home(env: Env, npm_agents: Path) -> Path:
    """The agents' npm prefix at ``~/.npm-global`` in the test's home, its ``bin`` first on
    PATH, as after ``npm config set prefix ~/.npm-global``."""
    prefix = env.home / ".npm-global"
    shutil.copytree(npm_agents, prefix, symlinks=True, copy_function=os.link)
    env.vars["PATH"] = f"{prefix}/bin:{env.vars['PATH']}"
    return prefix


@pytest.fixture(scope="session")
def aider_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Aider from PyPI, in a venv of the system Python; pip's wheel cache makes a rerun
    quick."""
    venv = tmp_path_factory.mktemp("aider") / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
                    AIDER], check=True, capture_output=True, timeout=1200)
    return venv


@pytest.fixture
def aider(env: Env, aider_venv: Path) -> Path:
    """Aider as pipx and ``uv tool`` leave it: ``~/.local/bin/aider`` links to the venv's
    console script, and ``~/.local/bin`` is on PATH."""
    bindir = env.home / ".local" / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    (bindir / "aider").symlink_to(aider_venv / "bin" / "aider")
    env.vars["PATH"] = f"{bindir}:{env.vars['PATH']}"
    return aider_venv
