"""The package's check phase passes under the Nix build sandbox's conditions.

``buildPythonApplication`` runs the package's tests (pytestCheckHook, with the selection
nix/package.nix gives: ``enabledTestPaths``, ``disabledTestMarks``) in the Nix build
sandbox: no /usr, no git or util-linux unless ``nativeCheckInputs`` brings them,
``HOME=/homeless-shelter``, ``TMPDIR=/build``, a loopback-only network, uid 1000 (nixbld).
This runs exactly that selection in a bwrap of its own with those conditions: this venv's
Python and its packages, the libraries they load, ``/bin/sh``, ``/proc``, ``/dev``, an
``/etc`` with the build users, and the source copied to ``/build/source``. A test that
reads the real host, or needs a tool the build lacks, fails here as it would in Nix.

Real Nix is not needed (nor available offline here for nixpkgs): the conditions are what
nixpkgs' stdenv and the hook set up (../shared/reference/nix.md; pytest-check-hook.sh).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "nix" / "package.nix"

pytestmark = pytest.mark.integration

PASSWD = ("root:x:0:0:Nix build user:/build:/noshell\n"
          "nixbld:x:1000:100:Nix build user:/build:/noshell\n"
          "nobody:x:65534:65534:Nobody:/:/noshell\n")
GROUP = "root:x:0:\nnixbld:!:100:\nnogroup:x:65534:\n"
HOSTS = "127.0.0.1 localhost\n::1 localhost\n"


def _nix_list(text: str, name: str) -> list[str]:
    """The strings and identifiers of the list(s) ``name = ...;`` concatenates in a Nix
    file (``[ a ] ++ [ b ]``, ``with x; [ ... ]``); ``[]`` if absent."""
    found = re.search(rf"\b{name}\s*=(.*?)\];\n", text, re.S)
    if found is None:
        return []
    body = re.sub(r"#[^\n]*|with [\w.]+;|\+\+|[()\[\]]", " ", found.group(1))
    return [a or b for a, b in re.findall(r'"([^"]*)"|([\w.-]+)', body)]


def selection() -> list[str]:
    """pytest's arguments as pytestCheckHook builds them from nix/package.nix."""
    text = PACKAGE.read_text()
    marks = _nix_list(text, "disabledTestMarks")
    args = ["-m", " and ".join(f"not {m}" for m in marks)] if marks else []
    return [*args, *_nix_list(text, "pytestFlags"), *_nix_list(text, "enabledTestPaths")]


def test_test_paths_are_enabled_test_paths() -> None:
    """nixpkgs' hook takes paths as enabledTestPaths; pytestFlags are for flags."""
    text = PACKAGE.read_text()
    assert _nix_list(text, "enabledTestPaths") == ["tests/unit"]
    assert not any(not f.startswith("-") for f in _nix_list(text, "pytestFlags"))


def _bwrap() -> str:
    found = shutil.which("bwrap")
    if found is None:
        pytest.skip("bwrap is not installed (.ci/run's machine has it)")
    return found


def source_files() -> list[str]:
    """What the package's src holds: the paths its ``lib.fileset.unions`` names."""
    found = re.search(r"fileset\.unions\s*\[(.*?)\]", PACKAGE.read_text(), re.S)
    assert found is not None, "nix/package.nix narrows src with lib.fileset"
    return re.findall(r"\.\./([\w.-]+)", found.group(1))


def _source_copy(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in source_files():
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, symlinks=True,
                            ignore=shutil.ignore_patterns("__pycache__", ".venv"))
        elif src.exists():
            shutil.copy2(src, dest / name)


def _patched_pyseccomp(build: Path) -> Path:
    """pyseccomp as nix/package.nix builds it: ctypes cannot find libraries in the build
    sandbox (no ldconfig), so its postPatch writes libseccomp's path in."""
    import ctypes.util
    import importlib.util

    text = PACKAGE.read_text()
    assert "'ctypes.util.find_library(\"seccomp\")'" in text, "the model follows package.nix"
    spec = importlib.util.find_spec("pyseccomp")
    library = ctypes.util.find_library("seccomp")
    assert spec is not None and spec.origin is not None and library is not None
    source = Path(spec.origin).read_text()
    assert 'ctypes.util.find_library("seccomp")' in source
    directory = build / "pyseccomp-patched"
    directory.mkdir(exist_ok=True)
    real = next(p for p in (f"/usr/lib/{sysconfig.get_config_var('MULTIARCH')}/{library}",
                            f"/usr/lib64/{library}", f"/lib/{library}") if os.path.exists(p))
    (directory / "pyseccomp.py").write_text(
        source.replace('ctypes.util.find_library("seccomp")', repr(real)))
    return directory


def build_sandbox(tmp_path: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """``command`` under the build sandbox's conditions, with ``tmp_path/build`` as
    ``/build`` (the working directory ``/build/source``)."""
    build = tmp_path / "build"
    (build / "source").mkdir(parents=True, exist_ok=True)
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    for name, text in (("passwd", PASSWD), ("group", GROUP), ("hosts", HOSTS)):
        (etc / name).write_text(text)
    venv = Path(sys.prefix)
    stdlib = sysconfig.get_paths()["stdlib"]
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    binds = ["--ro-bind", str(venv), str(venv), "--ro-bind", stdlib, stdlib,
             "--ro-bind", os.path.realpath("/bin/sh"), "/bin/sh"]
    # The venv's python links to the base interpreter, perhaps through other links
    # (python3 -> python3.11): each hop outside the venv is the interpreter itself.
    hop = sys.executable
    while os.path.islink(hop):
        hop = os.path.join(os.path.dirname(hop), os.readlink(hop))
        if not hop.startswith(str(venv) + "/"):
            binds += ["--ro-bind", os.path.realpath(hop), hop]
    # The shared libraries Python and the packages' extensions load, nothing executable.
    binds += [w for d in (f"/usr/lib/{multiarch}", "/usr/lib64") if os.path.isdir(d)
              for w in ("--ro-bind", d, d)]
    binds += [w for p, t in (("/lib", "usr/lib"), ("/lib64", "usr/lib64")) if os.path.islink(p)
              for w in ("--symlink", t, p)]
    path = [f"{venv}/bin"]
    patched = _patched_pyseccomp(build)
    if "git" in _nix_list(PACKAGE.read_text(), "nativeCheckInputs"):
        git = shutil.which("git")  # nativeCheckInputs puts git on the build's PATH
        assert git is not None, "nix/package.nix checks with git: install git here too"
        binds += ["--ro-bind", git, "/nix/check-inputs/bin/git"]
        binds += [w for d in ("/usr/lib/git-core", "/usr/share/git-core") if os.path.isdir(d)
                  for w in ("--ro-bind", d, d)]
        path.append("/nix/check-inputs/bin")
    argv = [
        _bwrap(), "--unshare-all", "--die-with-parent", "--uid", "1000", "--gid", "100",
        "--hostname", "localhost", "--proc", "/proc", "--dev", "/dev",
        "--bind", str(build), "/build",
        *[w for n in ("passwd", "group", "hosts")
          for w in ("--ro-bind", str(etc / n), f"/etc/{n}")],
        *binds, "--chdir", "/build/source", "--clearenv",
        "--setenv", "HOME", "/homeless-shelter", "--setenv", "TMPDIR", "/build",
        "--setenv", "NIX_BUILD_TOP", "/build", "--setenv", "PATH", ":".join(path),
        "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
        "--setenv", "PYTHONPATH", f"/build/{patched.name}", "--", *command,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)


def test_the_check_phase_passes_in_the_build_sandbox(tmp_path: Path) -> None:
    """On a Debian 13 machine this venv is Python 3.13: CI there runs it on 3.13."""
    _source_copy(tmp_path / "build" / "source")
    done = build_sandbox(tmp_path, [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                                    "-q", *selection()])
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-40:])
    assert done.returncode == 0, tail
    assert re.search(r"\d+ passed", done.stdout), tail


def test_the_emulation_has_the_build_sandboxs_conditions(tmp_path: Path) -> None:
    """The control: inside, uid 1000, no home, no /usr/bin, no unshare or mount."""
    probe = ("import os, shutil; print(os.getuid(), os.environ['HOME'], "
             "os.path.exists('/homeless-shelter'), shutil.which('unshare'), "
             "shutil.which('mount'), shutil.which('git', path='/usr/bin:/bin'), "
             "os.environ['TMPDIR']); "
             "print(*sorted(os.listdir('/usr/bin') if os.path.isdir('/usr/bin') else []))")
    done = build_sandbox(tmp_path, [sys.executable, "-c", probe])
    assert done.returncode == 0, done.stderr
    first, binaries = done.stdout.splitlines()
    assert first.split() == ["1000", "/homeless-shelter", "False", "None", "None", "None",
                             "/build"]
    assert all(b.startswith("python") for b in binaries.split()), binaries  # the interpreter
