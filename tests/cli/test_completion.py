"""`agent-sandbox completion bash|zsh|fish`, run in the real shells: what each offers at a
<TAB> after --net, --agent, a subcommand, and inside the confined command's own words."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agent_sandbox._cli import completion, docmodel
from agent_sandbox._policy import presets as _presets
from tests.conftest import Env, run_cli

PRESETS = [*_presets.names(), "none"]
# The words on the line (the last one being completed) and what must be offered for it.
CASES = [
    (["--net", ""], ["none", "filtered", "host"]),
    (["-q", "--net", "f"], ["filtered"]),
    (["--agent", ""], PRESETS),
    (["config", "--net", ""], ["none", "filtered", "host"]),
    (["completion", ""], ["bash", "zsh", "fish"]),
    (["log", "--s"], ["--session", "--since"]),
    (["--ne"], ["--net"]),
]


def _script(shell: str, project: Path, env: Env) -> str:
    done = run_cli(["completion", shell], cwd=project, env=env.vars)
    assert done.returncode == 0, done.stderr
    assert done.stdout == completion.completion(shell)
    return done.stdout


def _shell(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (scripts/setup.sh installs it)")
    return path


# --- bash: the completion function called as readline would, with COMP_WORDS/COMP_CWORD ---

_BASH_DRIVER = """
source "$1"; shift
complete -p agent-sandbox
COMP_WORDS=(agent-sandbox "$@"); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
_agent_sandbox
printf '%s\\n' "${COMPREPLY[@]}"
"""


def _bash(script: Path, words: list[str]) -> list[str]:
    done = subprocess.run([_shell("bash"), "--norc", "-c", _BASH_DRIVER, "bash", str(script),
                           *words], capture_output=True, text=True, timeout=30, check=True)
    registration, *offered = done.stdout.splitlines()
    assert registration == "complete -F _agent_sandbox agent-sandbox"
    return offered


@pytest.mark.parametrize(("words", "expected"), CASES)
def test_bash(words: list[str], expected: list[str], project: Path, env: Env,
              tmp_path: Path) -> None:
    script = tmp_path / "agent-sandbox.bash"
    script.write_text(_script("bash", project, env))
    assert sorted(_bash(script, words)) == sorted(expected)


def test_bash_value_after_equals_and_files(project: Path, env: Env, tmp_path: Path) -> None:
    script = tmp_path / "agent-sandbox.bash"
    script.write_text(_script("bash", project, env))
    # bash splits --net=f at '=' (COMP_WORDBREAKS).
    assert _bash(script, ["--net", "=", "f"]) == ["filtered"]
    (tmp_path / "a dir").mkdir()
    assert _bash(script, ["--project", str(tmp_path / "a ")]) == [str(tmp_path / "a dir")]
    # The first word: subcommands and commands; after the command, not our options.
    assert {"config", "completion"} <= set(_bash(script, ["co"]))
    assert "--net" not in _bash(script, ["ls", "--ne"])
    assert "bash" in _bash(script, ["--", "bas"])


# --- zsh: a real interactive zsh on a pty, its compadd recorded -----------------------------

_ZSH_DRIVER = r"""
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=(${(q)1} \$fpath); autoload -Uz compinit; compinit -u -D; PROMPT=''"
# compadd records what it adds (calls that only fill arrays, -O -A -D, are left alone); the
# markers are split in the source so that the pty's echo of it never matches.
zpty -w z 'compadd() {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return; fi
  local -a hits; builtin compadd -A hits "$@"
  (( $#hits )) && print -rl -- "<ma""tch>"${^hits}; builtin compadd "$@"; }'
zpty -w z '_done() { print -r -- "<do""ne>"; exit }; comppostfuncs=(_done)'
zpty -w z 'bindkey "^I" complete-word'
zpty -n -w z "$2"$'\t'
local line
while zpty -r z line; do
  [[ $line == *'<done>'* ]] && break
  [[ $line == *'<match>'* ]] && print -r -- ${${line##*<match>}%%$'\r'}
done
"""


@pytest.mark.parametrize(("words", "expected"), CASES)
def test_zsh(words: list[str], expected: list[str], project: Path, env: Env,
             tmp_path: Path) -> None:
    zsh = _shell("zsh")
    (tmp_path / "_agent-sandbox").write_text(_script("zsh", project, env))
    line = " ".join(["agent-sandbox", *words])
    done = subprocess.run([zsh, "-f", "-c", _ZSH_DRIVER, "zsh", str(tmp_path), line],
                          capture_output=True, text=True, timeout=30, check=True)
    assert sorted(set(done.stdout.split())) == sorted(expected)


# --- fish: its own `complete -C` ------------------------------------------------------------

def _fish(script: Path, line: str) -> list[str]:
    done = subprocess.run([_shell("fish"), "--no-config", "-c",
                           f"source {script}; complete -C {line!r}"],
                          capture_output=True, text=True, timeout=30, check=True)
    assert done.stderr == ""
    return [candidate.split("\t")[0] for candidate in done.stdout.splitlines()]


@pytest.mark.parametrize(("words", "expected"), CASES)
def test_fish(words: list[str], expected: list[str], project: Path, env: Env,
              tmp_path: Path) -> None:
    script = tmp_path / "agent-sandbox.fish"
    script.write_text(_script("fish", project, env))
    assert sorted(_fish(script, " ".join(["agent-sandbox", *words]))) == sorted(expected)


def test_fish_hands_the_command_its_own_completion(project: Path, env: Env,
                                                    tmp_path: Path) -> None:
    script = tmp_path / "agent-sandbox.fish"
    script.write_text(_script("fish", project, env))
    # Without a config fish loads no other completions: confine agent-sandbox itself.
    assert _fish(script, "agent-sandbox --net host agent-sandbox --ne") == ["--net"]
    assert _fish(script, "agent-sandbox -- agent-sandbox completion z") == ["zsh"]
    assert _fish(script, "agent-sandbox ls --ne") == []


# --- the subcommand itself ------------------------------------------------------------------

def test_unknown_shell_is_a_usage_error(project: Path, env: Env) -> None:
    done = run_cli(["completion", "tcsh"], cwd=project, env=env.vars)
    assert done.returncode == 2 and done.stdout == ""
    assert "invalid choice: 'tcsh'" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("sub", [s for s in docmodel.subcommands() if s.options],
                         ids=lambda s: s.name)
def test_described_options_are_the_subcommands_own(sub: docmodel.Subcommand, project: Path,
                                                   env: Env) -> None:
    """The subcommands build their parsers where they run: their --help is the reference."""
    done = run_cli([sub.name, "--help"], cwd=project, env=env.vars)
    assert done.returncode == 0, done.stderr
    for option in sub.options:
        for flag in option.flags:
            assert flag in done.stdout, f"{sub.name} {flag}"
