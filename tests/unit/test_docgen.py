"""The generated documentation is current, and rendered from the real definitions."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent_sandbox._cli import docgen as _docgen
from agent_sandbox._cli import docmodel, manpage, reference
from agent_sandbox._cli import main as _cli
from agent_sandbox._policy import config as _config
from agent_sandbox._policy import presets as _presets

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("relative", sorted(_docgen.GENERATED))
def test_committed_file_is_current(relative: str) -> None:
    """Regenerated in memory: a flag, key or subcommand changed without running
    scripts/gen-docs.py fails here."""
    committed = (ROOT / relative).read_text(encoding="utf-8")
    assert committed == _docgen.GENERATED[relative](), (
        f"{relative} is stale: run .venv/bin/python scripts/gen-docs.py")


def test_the_script_checks_staleness_too() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen-docs.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_every_subcommand_the_cli_dispatches_is_described() -> None:
    assert [s.name for s in docmodel.subcommands()] == list(_cli.SUBCOMMANDS)


def test_every_option_of_the_parser_is_rendered() -> None:
    flags = {f for action in _cli._parser()._actions for f in action.option_strings}
    assert {f for o in docmodel.options() for f in o.flags} == flags
    page = manpage.man_page()
    for flag in flags:
        assert f"\\fB{flag.replace('-', chr(92) + '-')}\\fR" in page, flag


def test_closed_value_sets_come_from_the_definitions() -> None:
    by_flag = {o.flags[-1]: o for o in docmodel.options()}
    assert by_flag["--net"].values == ("none", "filtered", "host")
    assert by_flag["--agent"].values == (*_presets.names(), "none")
    assert by_flag["--project"].complete == "dir"


def test_config_reference_has_every_key_and_variable() -> None:
    text = reference.config_reference()
    for key in (*_config.KEYS, *_config.PROJECT_KEYS):
        assert f"| `{key}` |" in text, key
    for key in _config.KEYS:
        assert f"`{_config.ENV_PREFIX}{key.upper()}`" in text
    project_rows = [line for line in text.splitlines() if "| yes |" in line]
    assert {line.split("`")[1] for line in project_rows} == set(_config.PROJECT_KEYS) - {
        "drop_allow"}


def test_man_page_renders_without_warnings() -> None:
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed (apt-get install groff-base)")
    done = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=manpage.man_page(),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0 and done.stderr == ""


def test_docgen_stays_off_the_launch_path() -> None:
    """Only the completion subcommand imports it (a lazy import in _cli)."""
    tree = ast.parse((ROOT / "agent_sandbox" / "_cli" / "main.py").read_text(encoding="utf-8"))
    top_level = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert not any("_docgen" in ast.dump(n) for n in top_level)
    code = ("import sys, agent_sandbox._cli.main; print(any(m in sys.modules for m in "
            "('agent_sandbox._cli.docgen', 'agent_sandbox._cli.docmodel')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    assert done.stdout.strip() == "False"
