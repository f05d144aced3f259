"""Agents installed the way people install them start with no flag: for each layout (built in
the test's fake home) the launcher finds the installation from the caller's PATH and shows
it, read-only, and nothing more of the home. Each fake tool runs the script it is given
inside, so the checks happen in the very launch that found it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.conftest import IS_ROOT, SECRET, Env, run_cli

pytestmark = pytest.mark.integration

NODE_TOOL = """#!/usr/bin/env node
const dep = require('dep');
console.log('tool ran, ' + dep);
require('child_process').execFileSync('/bin/sh', ['-c', process.argv[2]], {stdio: 'inherit'});
"""
PYTHON_TOOL = """import subprocess, sys
print('tool ran, python ' + sys.prefix)
subprocess.run(['/bin/sh', '-c', sys.argv[1]], check=True)
"""
SH_TOOL = '#!/bin/sh\necho "tool ran, sh"\nexec /bin/sh -c "$1"\n'
# What every launch checks inside: the secrets stay out, each shown path is read-only, and
# the home holds nothing but the way to what is shown.
CHECK = """
cat ~/.ssh/id_ed25519 ~/.aws/credentials 2>/dev/null
for d in {shown}; do touch "$d/planted" 2>/dev/null && echo "WROTE $d"; done
find "$HOME" -mindepth 1 | sort | sed 's/^/home: /'
true
"""


class Layout(NamedTuple):
    name: str  # the command typed
    path: list[str]  # the caller's PATH entries before /usr/bin:/bin
    shown: list[str]  # what must be shown, read-only
    ran: str  # what the tool prints when it ran


def _exe(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)


def _link(link: Path, target: str | Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def _node_package(where: Path, dep_where: Path) -> None:
    _exe(where / "bin" / "tool.js", NODE_TOOL)
    (where / "package.json").write_text('{"name": "tool", "bin": {"tool": "bin/tool.js"}}')
    dep_where.mkdir(parents=True, exist_ok=True)
    (dep_where / "index.js").write_text("module.exports = 'with its dependency';\n")


def _needs_node() -> None:
    if shutil.which("node", path="/usr/bin:/bin") is None:
        pytest.skip("node is not installed in /usr (.ci/run's machine has it)")


def npm_prefix(home: Path) -> Layout:
    _needs_node()
    package = home / ".npm-global/lib/node_modules/@acme/tool"
    _node_package(package, package / "node_modules/dep")
    _link(home / ".npm-global/bin/tool", "../lib/node_modules/@acme/tool/bin/tool.js")
    return Layout("tool", [f"{home}/.npm-global/bin"],
                  [f"{home}/.npm-global/bin", str(package)], "with its dependency")


def nvm_with_its_own_node(home: Path) -> Layout:
    """npm's prefix for the package, nvm's node first on PATH: its prefix is shown."""
    _needs_node()
    layout = npm_prefix(home)
    node = home / ".nvm/versions/node/v20.11.1"
    _exe(node / "bin/node", '#!/bin/sh\necho "nvm node" >&2\nexec /usr/bin/node "$@"\n')
    return layout._replace(path=[*layout.path, f"{node}/bin"],
                           shown=[*layout.shown, str(node)])


def bun_global(home: Path) -> Layout:
    _needs_node()
    root = home / ".bun/install/global"
    _node_package(root / "node_modules/tool", root / "node_modules/dep")
    (root / "package.json").write_text('{"dependencies": {"tool": "1.0.0"}}')
    (root / "bun.lock").write_text("{}\n")
    _link(home / ".bun/bin/tool", "../install/global/node_modules/tool/bin/tool.js")
    return Layout("tool", [f"{home}/.bun/bin"], [f"{home}/.bun/bin", str(root)],
                  "with its dependency")


def pnpm_global(home: Path) -> Layout:
    """pnpm's bin entries are shell shims in PNPM_HOME; dependencies sit beside the package
    in its virtual store."""
    _needs_node()
    pnpm = home / ".local/share/pnpm"
    store = pnpm / "global/5/node_modules/.pnpm"
    _node_package(store / "tool@1.0.0/node_modules/tool", store / "dep@1.0.0/node_modules/dep")
    _link(store / "tool@1.0.0/node_modules/dep", "../../dep@1.0.0/node_modules/dep")
    _link(pnpm / "global/5/node_modules/tool", ".pnpm/tool@1.0.0/node_modules/tool")
    _exe(pnpm / "tool", '#!/bin/sh\nbasedir=$(dirname "$0")\n'
         'exec node "$basedir/global/5/node_modules/tool/bin/tool.js" "$@"\n')
    return Layout("tool", [str(pnpm)], [str(pnpm)], "with its dependency")


def claude_native(home: Path) -> Layout:
    """Claude Code's native installer: ~/.local/bin/claude -> a single file in versions/."""
    versions = home / ".local/share/claude/versions"
    versions.mkdir(parents=True)
    shutil.copy2("/bin/sh", versions / "2.1.197")  # a single self-contained executable
    _link(home / ".local/bin/claude", versions / "2.1.197")
    return Layout("claude", [f"{home}/.local/bin"], [f"{home}/.local/bin", str(versions)], "")


def _venv(venv: Path, python: str) -> None:
    subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True,
                   capture_output=True, timeout=120)
    _exe(venv / "bin/tool", f"#!{venv}/bin/python\n{PYTHON_TOOL}")


def pipx_venv(home: Path) -> Layout:
    venv = home / ".local/share/pipx/venvs/tool"
    _venv(venv, "/usr/bin/python3")
    _link(home / ".local/bin/tool", venv / "bin/tool")
    return Layout("tool", [f"{home}/.local/bin"], [f"{home}/.local/bin", str(venv)],
                  f"python {venv}")


def uv_tool_hidden_python(home: Path) -> Layout:
    """uv tool: the venv's base interpreter is one of uv's managed Pythons, in the home."""
    real = os.path.realpath("/usr/bin/python3")
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.path.basename(real).startswith("python3."):
        pytest.skip(f"/usr/bin/python3 is {real}: no versioned interpreter to copy")
    base = home / ".local/share/uv/python/cpython-3-linux-x86_64-gnu"
    (base / "bin").mkdir(parents=True)
    shutil.copy2(real, base / "bin" / os.path.basename(real))
    (base / "lib").mkdir()
    # The standard library, where a managed Python keeps it (found from the binary).
    stdlib = f"/usr/lib/{os.path.basename(real)}"
    (base / "lib" / os.path.basename(real)).symlink_to(stdlib if os.path.isdir(stdlib)
                                                       else f"/usr/lib/{version}")
    venv = home / ".local/share/uv/tools/tool"
    _venv(venv, str(base / "bin" / os.path.basename(real)))
    _link(home / ".local/bin/tool", venv / "bin/tool")
    return Layout("tool", [f"{home}/.local/bin"],
                  [f"{home}/.local/bin", str(venv), str(base)], f"python {venv}")


LAYOUTS = [npm_prefix, nvm_with_its_own_node, bun_global, pnpm_global, claude_native,
           pipx_venv, uv_tool_hidden_python]


def _launch(layout: Layout, env: Env, project: Path, *extra: str,
            ) -> subprocess.CompletedProcess[str]:
    shown = " ".join(f"'{s}'" for s in layout.shown)
    script = CHECK.format(shown=shown)
    args = [*extra, layout.name, script] if layout.name != "claude" else \
        [*extra, layout.name, "-c", 'echo "tool ran, "\n' + script]
    return run_cli(args, cwd=project, env=env.with_(
        PATH=":".join([*layout.path, "/usr/bin", "/bin"])))


def _home_listing(out: str) -> list[str]:
    return [line[len("home: "):] for line in out.splitlines() if line.startswith("home: ")]


@pytest.mark.parametrize("make", LAYOUTS, ids=[f.__name__ for f in LAYOUTS])
def test_an_installed_agent_starts_with_no_flag_and_sees_only_its_install(
    make: object, env: Env, project: Path
) -> None:
    layout = make(env.home)  # type: ignore[operator]
    done = _launch(layout, env, project)
    assert done.returncode == 0, done.stderr
    assert "tool ran, " + layout.ran in done.stdout, done.stdout
    assert SECRET not in done.stdout
    assert "WROTE" not in done.stdout  # every shown path is read-only
    # The start line says what was shown.
    said = next(x for x in done.stderr.splitlines() if "showing its installation" in x)
    for path in layout.shown:
        assert "~" + path[len(str(env.home)):] in said, said
    # Nothing of the home but the way to what is shown, the git identity (read-only, as
    # always) and a preset's own state.
    state = (f"{env.home}/.claude", f"{env.home}/.claude.json", f"{env.home}/.gitconfig")
    for path in _home_listing(done.stdout):
        assert any(path == s or path.startswith(s + "/") or s.startswith(path + "/")
                   for s in (*layout.shown, *state)), path
    # The control: with the finding turned off, the same launch does not find it.
    off = _launch(layout, env, project, "--no-show-command-install")
    assert off.returncode == 127, off.stderr


def test_an_install_under_opt(env: Env, project: Path) -> None:
    if not IS_ROOT:
        pytest.skip("creating /opt/NAME needs root; CI's root run covers it")
    opt = Path(f"/opt/agent-sandbox-test-{os.urandom(4).hex()}")
    try:
        _exe(opt / "bin/tool", '#!/bin/sh\n. "${0%/bin/tool}/lib/greeting"\n'
             'exec /bin/sh -c "$1"\n')
        (opt / "lib").mkdir()
        (opt / "lib/greeting").write_text('echo "tool ran, from opt"\n')
        layout = Layout("tool", [f"{opt}/bin"], [str(opt)], "from opt")
        done = _launch(layout, env, project)
        assert done.returncode == 0, done.stderr
        assert "tool ran, from opt" in done.stdout and "WROTE" not in done.stdout
        assert _home_listing(done.stdout) == [f"{env.home}/.gitconfig"]  # as always
    finally:
        shutil.rmtree(opt)


def _paste(fix_line: str, project: Path, env: Env, path: str) -> subprocess.CompletedProcess[str]:
    """Run a printed fix as a user pasting it would: the agent-sandbox on their PATH."""
    command = re.search(r"(agent-sandbox --.*)$", fix_line)
    assert command is not None, fix_line
    return subprocess.run(["sh", "-c", command.group(1)], cwd=project, capture_output=True,
                          text=True, timeout=120, check=False, env=env.with_(
                              PATH=f"{os.path.dirname(sys.executable)}:{path}"))


@pytest.mark.parametrize("where", ["home", "beside .ssh"])
def test_an_install_that_would_show_too_much_is_refused_and_the_fix_works(
    where: str, env: Env, project: Path
) -> None:
    tool = env.home / "tool" if where == "home" else env.home / "apps" / "tool"
    _exe(tool, SH_TOOL)
    if where != "home":
        (tool.parent / ".ssh").mkdir()
        (tool.parent / ".ssh" / "id_rsa").write_text(SECRET)
    path = f"{tool.parent}:/usr/bin:/bin"
    script = f"echo inside; cat {tool.parent}/.ssh/id_rsa 2>/dev/null; true"
    done = run_cli(["--net", "none", "tool", script], cwd=project, env=env.with_(PATH=path))
    assert done.returncode == 2, done.stderr
    assert "its installation cannot be shown" in done.stderr
    fix = next(x for x in done.stderr.splitlines() if x.startswith("agent-sandbox: fix:"))
    pasted = _paste(fix, project, env, path)
    assert pasted.returncode == 0, pasted.stderr
    assert pasted.stdout.split() == ["tool", "ran,", "sh", "inside"]  # and no key


def test_a_missing_command_gets_a_fix_that_works(env: Env, project: Path) -> None:
    layout = npm_prefix(env.home)
    path = ":".join([*layout.path, "/usr/bin", "/bin"])
    done = run_cli(["--no-show-command-install", "tool", "echo fixed"], cwd=project,
                   env=env.with_(PATH=path))
    assert done.returncode == 127, done.stderr
    fix = next(x for x in done.stderr.splitlines() if x.startswith("agent-sandbox: fix:"))
    assert "(show_command_install is off: --no-show-command-install)" in fix
    pasted = _paste(fix, project, env, path)
    assert pasted.returncode == 0, pasted.stderr
    assert pasted.stdout.split() == ["tool", "ran,", "with", "its", "dependency", "fixed"]


def test_explain_and_dry_run_name_the_rule(env: Env, project: Path) -> None:
    layout = npm_prefix(env.home)
    environ = env.with_(PATH=":".join([*layout.path, "/usr/bin", "/bin"]))
    explained = run_cli(["explain", f"{layout.shown[1]}/bin/tool.js", "--", "tool"],
                        cwd=project, env=environ)
    assert explained.returncode == 0, explained.stderr
    assert ": read-only" in explained.stdout
    assert "layer:   show_command_install" in explained.stdout
    dry = run_cli(["--dry-run", "tool"], cwd=project, env=environ)
    assert f"--ro-bind {layout.shown[1]} {layout.shown[1]}    # the command's installation: " \
           "npm package @acme/tool" in dry.stdout


def test_another_program_of_the_name_inside_is_never_run_silently(
        env: Env, project: Path, tmp_path: Path) -> None:
    """The caller's shell runs ~/.local/bin/claude (the native installer); an older claude
    later on PATH is visible inside. With show_command_install off the sandbox would run
    that one: it says so, with the fix, and the pasted fix runs the caller's one."""
    native = env.home / ".local/share/claude/versions/2.1.197"
    _exe(native, "#!/bin/sh\necho native claude\n")
    _link(env.home / ".local/bin/claude", native)
    old = tmp_path / "old-prefix/bin/claude"
    _exe(old, "#!/bin/sh\necho old claude\n")
    path = f"{env.home}/.local/bin:{old.parent}:/usr/bin:/bin"
    done = run_cli(["--no-show-command-install", "--ro", str(old.parent), "claude"],
                   cwd=project, env=env.with_(PATH=path))
    assert done.stdout == "old claude\n", done.stderr
    warning = next(x for x in done.stderr.splitlines() if "warning: claude" in x)
    assert f"the sandbox runs {old}, not the one your shell runs" in warning
    pasted = _paste(warning, project, env, path)
    assert pasted.stdout == "native claude\n", pasted.stderr
    assert "warning: claude" not in pasted.stderr
    # Control: by default the caller's one is shown and runs, without a warning.
    default = run_cli(["--ro", str(old.parent), "claude"], cwd=project,
                      env=env.with_(PATH=path))
    assert default.stdout == "native claude\n" and "warning" not in default.stderr
