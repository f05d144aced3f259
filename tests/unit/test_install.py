"""Finding the command's installation from the layout its installer left (tests/integration/
test_installs.py runs each layout in the real sandbox)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_sandbox._errors import UsageError
from agent_sandbox._plan.install import (
    Install,
    InstallRefused,
    Shown,
    check_shown,
    find_install,
    shebang_interpreter,
)

SYSTEM = ("/usr", "/bin", "/lib", "/etc")


def _visible(path: str) -> bool:
    return any(path == t or path.startswith(t + "/") for t in SYSTEM)


def _exe(path: Path, text: str = "#!/bin/sh\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def _link(link: Path, target: str) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def _find(home: Path, name: str, path: str, state: tuple[str, ...] = ()) -> Install | None:
    return find_install(name, cwd=str(home), environ={"PATH": path}, home=str(home),
                        visible=_visible, state=state)


def test_an_npm_prefix_shows_the_package_and_the_bin_directory(tmp_path: Path) -> None:
    home = tmp_path / "home"
    package = home / ".npm-global/lib/node_modules/@acme/tool"
    _exe(package / "bin/tool.js", "#!/usr/bin/env node\n")
    _link(home / ".npm-global/bin/tool", "../lib/node_modules/@acme/tool/bin/tool.js")
    found = _find(home, "tool", f"{home}/.npm-global/bin:/usr/bin")
    assert found == Install(
        found=f"{home}/.npm-global/bin/tool", kind="npm package @acme/tool",
        shown=(Shown(str(package), "npm package @acme/tool"),
               Shown(f"{home}/.npm-global/bin", "the directory holding tool")))


def test_a_hidden_node_is_shown_by_its_prefix(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _exe(home / ".npm-global/lib/node_modules/tool/cli.js", "#!/usr/bin/env -S node --x\n")
    _link(home / ".npm-global/bin/tool", "../lib/node_modules/tool/cli.js")
    nvm = home / ".nvm/versions/node/v20.1.0"
    _exe(nvm / "bin/node")
    found = _find(home, "tool", f"{home}/.npm-global/bin:{nvm}/bin:/usr/bin")
    assert found is not None
    assert found.shown[-1] == Shown(str(nvm), "the interpreter node")


def test_nvm_packages_live_beside_their_node(tmp_path: Path) -> None:
    home = tmp_path / "home"
    nvm = home / ".nvm/versions/node/v20.1.0"
    _exe(nvm / "bin/node")
    _exe(nvm / "lib/node_modules/@openai/codex/bin/codex.js", "#!/usr/bin/env node\n")
    _link(nvm / "bin/codex", "../lib/node_modules/@openai/codex/bin/codex.js")
    found = _find(home, "codex", f"{nvm}/bin:/usr/bin")
    assert found is not None
    assert [s.path for s in found.shown] == [f"{nvm}/lib/node_modules/@openai/codex",
                                             f"{nvm}/bin"]


def test_bun_and_pnpm_show_their_global_directory(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bun = home / ".bun/install/global"
    (bun / "node_modules").mkdir(parents=True)
    (bun / "package.json").write_text("{}")
    (bun / "bun.lock").write_text("{}")
    _exe(bun / "node_modules/tool/bin/tool.js", "#!/usr/bin/env node\n")
    _link(home / ".bun/bin/tool", "../install/global/node_modules/tool/bin/tool.js")
    found = _find(home, "tool", f"{home}/.bun/bin:/usr/bin")
    assert found is not None and found.shown[0] == Shown(str(bun), "pnpm/bun global packages")

    store = home / ".local/share/pnpm/global/5"
    script = store / "node_modules/.pnpm/tool@1.0.0/node_modules/tool/bin/t.js"
    _exe(script, "#!/usr/bin/env node\n")
    _link(home / "pbin/tool", str(script))
    found = _find(home, "tool", f"{home}/pbin:/usr/bin")
    assert found is not None and found.shown[0] == Shown(str(store), "pnpm/bun global packages")


def test_claude_codes_native_installer_shows_its_versions(tmp_path: Path) -> None:
    home = tmp_path / "home"
    versions = home / ".local/share/claude/versions"
    (versions / "2.1.0").parent.mkdir(parents=True)
    (versions / "2.1.0").write_bytes(b"\x7fELF")
    (versions / "2.1.0").chmod(0o755)
    _link(home / ".local/bin/claude", str(versions / "2.1.0"))
    found = _find(home, "claude", f"{home}/.local/bin:/usr/bin", state=(".claude",))
    assert found is not None
    assert [s.path for s in found.shown] == [str(versions), f"{home}/.local/bin"]


def test_a_venv_and_its_hidden_base_interpreter(tmp_path: Path) -> None:
    home = tmp_path / "home"
    base = home / ".local/share/uv/python/cpython-3.12-linux/bin/python3.12"
    _exe(base)
    venv = home / ".local/share/uv/tools/aider-chat"
    (venv / "pyvenv.cfg").parent.mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(f"home = {base.parent}\n")
    _link(venv / "bin/python", str(base))
    _exe(venv / "bin/aider", f"#!{venv}/bin/python\n")
    _link(home / ".local/bin/aider", str(venv / "bin/aider"))
    found = _find(home, "aider", f"{home}/.local/bin:/usr/bin")
    assert found is not None and found.kind == "Python venv"
    assert found.shown == (Shown(str(venv), "Python venv"),
                           Shown(f"{home}/.local/bin", "the directory holding aider"),
                           Shown(str(base.parent.parent), "the venv's base Python"))


def test_nothing_is_shown_for_what_the_sandbox_shows() -> None:
    assert find_install("sh", cwd="/", environ={"PATH": "/usr/bin:/bin"}, home="/nonexistent",
                        visible=_visible) is None
    assert find_install("no-such-command-here", cwd="/", environ={"PATH": "/usr/bin"},
                        home="/nonexistent", visible=_visible) is None


@pytest.mark.parametrize("rel", ["", ".local", ".config/gh/bin"])
def test_a_root_holding_the_home_or_a_secret_is_refused(tmp_path: Path, rel: str) -> None:
    home = tmp_path / "home"
    target = home / rel / "tool" if rel != ".local" else home / ".local/tool"
    _exe(target)
    with pytest.raises(InstallRefused) as refused:
        _find(home, "tool", f"{target.parent}:/usr/bin")
    assert refused.value.program == str(target)
    assert isinstance(refused.value, UsageError)


def test_what_may_be_shown() -> None:
    home = "/home/u"
    assert check_shown("/home/u/.npm-global/bin", home, ()) is None
    assert check_shown("/home", home, ()) == "it is your home directory or holds it"
    assert check_shown("/home/u/.local/share", home, ()) is not None  # keyrings
    assert check_shown("/home/u/.claude", home, (".claude/.credentials.json",)) is not None
    assert check_shown("/run/user/1000/x", home, ()) == "it is live host state"


def test_a_directory_holding_ssh_keys_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".ssh").mkdir()
    assert check_shown(str(tmp_path), "/home/u", ()) == "it holds .ssh"


def test_the_interpreter_of_a_shebang() -> None:
    assert shebang_interpreter(["/bin/sh"], "") == "/bin/sh"
    assert shebang_interpreter(["/usr/bin/env", "-S", "sh", "-e"], "/nowhere:/bin") == "/bin/sh"
    assert shebang_interpreter(["/usr/bin/env", "nosuch"], "/bin") == "nosuch"
    assert shebang_interpreter(["node"], "/bin") is None
    assert shebang_interpreter([], "/bin") is None
    assert os.path.isfile("/bin/sh")
