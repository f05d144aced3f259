"""The real agents end to end, in a pseudo-terminal, through the CLI as users run it:
``agent-sandbox claude``, with the agents installed by ``npm install -g`` into
``~/.npm-global`` of the test's fake $HOME (Aider as pipx leaves it), no flag: the launcher
shows their installation read-only, picks the preset by name, so the agent gets its own home
and a network filtered to its hosts.
This machine reaches no model API (the tests run offline), so each agent is driven as far as
it goes without one: its first screens render, its request fails the way it reports a dead
network, a window resize re-lays out its screen, and its quit key ends it with the exit
status coming back through the launcher.

The strings matched are the agents' own (the versions pinned in tests/conftest.py), found by
running them. TUIs repaint with cursor moves instead of spaces, so phrases are matched with
:func:`_words`."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from agent_sandbox._policy.presets import saved_home
from tests.conftest import Env

pytestmark = [pytest.mark.integration, pytest.mark.agents]

FIRST_RENDER = 60  # s: a cold node start on a busy 2-core machine
UP, ESC, CTRL_C = "\x1b[A", "\x1b", "\x03"
# What may stand between two words on a repainted screen: spaces, cursor moves, colours.
_GAP = r"(?:\s|\x1b\[[0-9;?]*[A-Za-z])+"


def _words(text: str) -> str:
    """A regex for ``text`` however the TUI paints the gaps between its words."""
    return _GAP.join(re.escape(w) for w in text.split())


def _rule(width: int) -> str:
    """A horizontal rule ``width`` columns wide (an Ink TUI's separator): one this long
    cannot be painted on a narrower screen."""
    return f"─{{{width}}}"


@pytest.fixture
def terminal_env(env: Env) -> Env:
    env.vars["TERM"] = "xterm-256color"
    return env


def _spawn(args: list[str], cwd: Path, env: Env, size: tuple[int, int],
           **extra: str) -> pexpect.spawn:
    return pexpect.spawn(sys.executable, ["-m", "agent_sandbox", "-q", *args], cwd=str(cwd),
                         env=env.with_(**extra), encoding="utf-8", codec_errors="replace",
                         timeout=FIRST_RENDER, dimensions=size)


@pytest.fixture
def children() -> Iterator[list[pexpect.spawn]]:
    """The launchers a test started: force-closed (SIGKILL, which takes the sandbox with it)
    if the test failed before they ended."""
    started: list[pexpect.spawn] = []
    yield started
    for child in started:
        if child.isalive():
            child.close(force=True)


def _settle(child: pexpect.spawn, quiet: float = 1.5, limit: float = 30) -> None:
    """Read until the screen has been still for ``quiet`` seconds: a dialog takes keys only
    once it has finished drawing (a key sent earlier can be lost or go to the screen before)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            child.read_nonblocking(65536, timeout=quiet)
        except pexpect.TIMEOUT:
            return


def _exit_status(child: pexpect.spawn, timeout: float = 30) -> int:
    child.expect(pexpect.EOF, timeout=timeout)
    child.close()
    status: int = child.exitstatus if child.exitstatus is not None else 128 + child.signalstatus
    return status


def _agent_home(env: Env, agent: str, project: Path) -> Path:
    """The agent's saved home for ``project`` (written back when the session ends)."""
    return Path(saved_home(agent, os.path.realpath(project), env.vars))


def _decisions(env: Env) -> list[dict[str, object]]:
    log = env.home / ".local/state/agent-sandbox/decisions.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()]


def _tried(env: Env, host: str) -> bool:
    """The agent asked for ``host``: allowed by its preset, unreachable offline."""
    return any(d["decision"] == "allow" and d["host"] == host for d in _decisions(env))


# Claude Code ---------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_claude_code_first_run_reports_its_offline_api_error(
        project: Path, terminal_env: Env, npm_home: Path,
        children: list[pexpect.spawn]) -> None:
    """First run, no login: Claude Code draws its welcome screen, checks that it can reach
    its API before onboarding, says it cannot, and exits 1 on its own; the launcher returns
    that 1. (It never stays up here, so the resize and quit are in the next test.)"""
    env = terminal_env
    child = _spawn(["claude"], project, env, (40, 120))
    children.append(child)
    child.expect(_words("Welcome to Claude Code v"))
    child.expect(_words("Unable to connect to Anthropic services"))
    child.expect(_words("Failed to connect to api.anthropic.com"))
    assert _exit_status(child) == 1
    # The claude preset: its API was allowed (and unreachable), its state in its own home.
    assert _tried(env, "api.anthropic.com")
    assert (_agent_home(env, "claude", project) / ".claude.json").exists()
    assert not (env.home / ".claude.json").exists()


@pytest.mark.timeout(300)
def test_claude_code_tui_api_error_resize_and_ctrl_c(
        project: Path, terminal_env: Env, npm_home: Path,
        children: list[pexpect.spawn]) -> None:
    """Onboarded (``hasCompletedOnboarding`` is copied into its home from the real
    ~/.claude.json) and with an API key: past the folder-trust and use-this-key dialogs to its
    main screen. It paints its separators the full width of the window, so after a resize
    from 100 to 120 columns a 120-column rule shows it re-laid out for the new size. A prompt
    fails with its offline "API error" (it retries for minutes: Esc stops that), and
    Ctrl-C twice quits it with status 0."""
    env = terminal_env
    (env.home / ".claude.json").write_text('{"hasCompletedOnboarding": true}')
    child = _spawn(["claude"], project, env, (40, 100),
                   ANTHROPIC_API_KEY="sk-ant-api03-offline-test")
    children.append(child)
    child.expect(_words("Yes, I trust this folder"))
    _settle(child)
    child.send("\r")
    child.expect(_words("Do you want to use this API key?"))
    _settle(child)
    child.send(UP)  # from "No (recommended)" to "Yes"
    # Its pointer on "Yes" (repainted without the "1.", which did not change).
    child.expect("\u276f" + _GAP + r"(?:1\." + _GAP + ")?Yes")
    _settle(child)
    child.send("\r")
    child.expect(_words("Welcome back!"))
    _settle(child)
    child.setwinsize(40, 120)
    child.expect(_rule(120))
    child.send("say hi")
    child.expect(_words("say hi"))
    child.send("\r")
    child.expect(_words("API error"), timeout=120)
    child.send(ESC)  # stop its retries
    _settle(child)
    child.send(CTRL_C)
    child.expect(_words("Press Ctrl-C again to exit"))
    child.send(CTRL_C)
    child.expect(_words("Resume this session with:"))
    assert _exit_status(child) == 0
    assert _tried(env, "api.anthropic.com")


# Codex -----------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_codex_tui_offline_error_resize_and_ctrl_c(
        project: Path, terminal_env: Env, npm_home: Path,
        children: list[pexpect.spawn]) -> None:
    """Logged in with an API key (its ~/.codex/auth.json is copied into its own home): Codex
    draws its main screen with the working directory in its header. Narrowed from 120 to 50
    columns it redraws that header with the path shortened (``/tmp/…/project/src``), which
    it only does when the path no longer fits. A prompt fails with "Reconnecting... waiting
    for network" (then "Connection failed", and it keeps retrying). Ctrl-C then asks what
    to do with the running task; "3. Exit" stops it and quits with status 0."""
    env = terminal_env
    (env.home / ".codex").mkdir()
    (env.home / ".codex" / "auth.json").write_text('{"OPENAI_API_KEY": "sk-offline-test"}')
    cwd = project / "src"
    cwd.mkdir()
    assert 50 < len(str(cwd)) < 110, "the path must fit 120 columns and not 50"
    child = _spawn(["codex"], cwd, env, (40, 120))
    children.append(child)
    # Codex asks to trust a folder with settings of its own: the read-only, empty .codex
    # placeholder the sandbox holds in the project (so nothing can create one) is one.
    # Trusted once, the answer stays in its home for this project.
    child.expect(_words("OpenAI Codex (v"))
    child.expect(_words("Trust this folder?"))
    _settle(child)
    child.send("\r")
    child.expect_exact(str(cwd))
    child.expect(_words("Ask Codex to do anything"))
    _settle(child)
    child.setwinsize(40, 50)
    # e.g. /tmp/pytest-of-me/…/project/src
    child.expect(re.escape("…/") + r"(?:[^/\s\x1b]+/)*" + re.escape(cwd.name))
    child.setwinsize(40, 120)
    child.expect(_words("Ask Codex to do anything"))
    _settle(child)
    child.send("say hi")
    child.expect(_words("say hi"))
    child.send("\r")
    child.expect(_words("Reconnecting... waiting for network"), timeout=120)
    child.send(CTRL_C)
    child.expect(_words("Task is still running"))
    child.expect(_words("Stop the current task and exit Codex"))
    _settle(child)
    child.send("3")  # "3. Exit"
    child.expect(_words("The current turn was stopped."))
    child.expect(_words("codex resume"))
    assert _exit_status(child) == 0
    assert _tried(env, "api.openai.com")
    assert (_agent_home(env, "codex", cwd) / ".codex" / "auth.json").exists()


# Gemini CLI ------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_gemini_cli_tui_offline_request_resize_and_ctrl_c(
        project: Path, terminal_env: Env, npm_home: Path,
        children: list[pexpect.spawn]) -> None:
    """With GEMINI_API_KEY: Gemini CLI asks to trust the folder, to pick the API key and to
    confirm it, then shows its prompt. Its separator spans the window: a 120-column rule
    after a resize from 100 shows the re-layout. Offline, a prompt does not fail quickly:
    the CLI keeps retrying behind "Thinking..." for minutes (its request to its API is in the
    sandbox's decision log, allowed and unreachable); Esc cancels it ("Request cancelled."),
    and Ctrl-C twice quits with status 0."""
    env = terminal_env
    child = _spawn(["gemini"], project, env, (40, 100),
                   GEMINI_API_KEY="offline-test-key")
    children.append(child)
    child.expect(_words("Do you trust the files in this folder?"))
    _settle(child)
    child.send("\r")
    child.expect(_words("How would you like to authenticate"))
    child.expect(_words("Existing API key detected (GEMINI_API_KEY)"))
    _settle(child)
    child.send("\r")  # "2. Use Gemini API Key" is selected when the key is there
    child.expect(_words("Enter Gemini API Key"))
    _settle(child)
    child.send("\r")
    child.expect(_words("Type your message"))
    _settle(child)
    child.setwinsize(40, 120)
    child.expect(_rule(120))
    _settle(child)
    child.send("say hi")
    child.expect(_words("say hi"))
    child.send("\r")
    child.expect(_words("esc to cancel"))
    # Its request reaches the sandbox's proxy (allowed by the preset, unreachable here).
    for _ in range(60):
        if _tried(env, "generativelanguage.googleapis.com"):
            break
        child.expect([pexpect.TIMEOUT], timeout=1)  # reading on keeps the pty flowing
    assert _tried(env, "generativelanguage.googleapis.com")
    child.send(ESC)
    child.expect(_words("Request cancelled."))
    _settle(child)
    child.send(CTRL_C)
    child.expect(_words("Press Ctrl+C again to exit."))
    child.send(CTRL_C)
    assert _exit_status(child) == 0


# Aider -----------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_aider_starts_asks_and_exits_without_a_model(
        project: Path, terminal_env: Env, aider: Path,
        children: list[pexpect.spawn]) -> None:
    """Aider starts inside, finds no git repository and no API key. Answered "n" to each of
    its questions (the analytics one is asked only to a random share of users, the others
    always), it says it has no model and exits 1, returned by the launcher. Its update check
    is off (the preset sets AIDER_CHECK_UPDATE=false): it never asks pypi.org."""
    env = terminal_env
    child = _spawn(["aider"], project, env,
                   (40, 120))
    children.append(child)
    no_model = _words("No LLM model was specified and no API keys were provided.")
    question = r"\(Y\)es/\(N\)o[^\n]*\]: "
    asked = []
    while child.expect([no_model, question], timeout=120) == 1:
        asked.append(child.before)
        child.send("n\r")
        assert len(asked) < 6, asked
    assert any("No git repo found" in q for q in asked)
    child.expect(question)  # its offer to sign in to OpenRouter, then one for the docs
    child.send("n\r")
    child.expect(question)
    child.send("n\r")
    assert _exit_status(child) == 1
    assert not any(d.get("host") == "pypi.org" for d in _decisions(env))
