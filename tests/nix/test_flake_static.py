"""The flake names only real nixpkgs attributes, and its lock pins a real nixpkgs revision.

The offline tests evaluate the flake against a stub, which would hide a misspelt or made-up
attribute the stub happens to define. So every attribute the Nix files take from nixpkgs,
and every attribute the stub defines, must be in REAL below: names checked in nixpkgs'
tree (../shared/reference/nix.md section 2; python-modules/<name>/default.nix for Python).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STUB = REPO / "tests" / "nix" / "stub-nixpkgs"

REAL_PACKAGES = {
    "claude-code", "codex", "aider-chat", "opencode", "gemini-cli",  # pkgs/by-name
    "bubblewrap", "dtach", "libseccomp", "bashInteractive", "git", "python3", "stdenv",
    "mkShellNoCC", "runCommand", "nixfmt", "formats",
    "callPackage", "mkShell", "writeShellScriptBin", "lib", "python3Packages",
}
REAL_PYTHON = {
    "buildPythonApplication", "buildPythonPackage", "fetchPypi", "setuptools", "dnslib",
    "pytestCheckHook", "pytest-timeout", "pexpect", "hypothesis", "trustme",
}
REAL_LIB = {"genAttrs", "getName", "getLib", "makeBinPath", "licenses", "platforms",
            "nameValuePair", "mapAttrs'", "hasPrefix", "fileset", "mkOption", "mkEnableOption",
            "mkIf", "types", "literalExpression", "evalModules"}

# nixos-unstable as locked by a public flake (jhhuh/claude-code-nix-sandbox, 2026-08-22).
PINNED = {
    "owner": "NixOS", "repo": "nixpkgs", "type": "github",
    "rev": "ffb3c9b700e759be2ef13237c9d8f953b32a1e46",
    "narHash": "sha256-RD2kNWCG+Bjo6h+JVjWVNntZs2GtRoeY2xHjts/FNkA=",
    "lastModified": 1787135253,
}

IDENT = r"([A-Za-z_][A-Za-z0-9_'-]*)"


def _nix_sources() -> dict[str, str]:
    files = [REPO / "flake.nix", *(REPO / "nix").glob("*.nix"), *(REPO / "shells").glob("*.nix")]
    return {str(f.relative_to(REPO)): f.read_text() for f in files}


def _used(name: str, text: str) -> dict[str, set[str]]:
    """Attributes taken from pkgs, python3Packages and lib, as written in the source."""
    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    packages = set(re.findall(rf"\bpkgs\.{IDENT}", code)) - {"agent-sandbox"}  # our overlay
    if name == "nix/package.nix":  # callPackage fills its arguments from nixpkgs
        head = re.match(r"\s*\{([^}]*)\}\s*:", code)
        assert head, name
        # (an argument with a default is ours to give: `pyseccomp ? null`)
        packages |= {arg.strip() for arg in head.group(1).split(",") if "?" not in arg}
    python = set(re.findall(rf"python3Packages\.{IDENT}", code))
    for group in re.findall(r"with python3Packages;\s*\[([^\]]*)\]", code):
        python |= set(group.split())
    lib = set(re.findall(rf"\blib\.{IDENT}", code)) - {"mkAgentShell", "wrapAgent"}  # ours
    return {"packages": packages, "python": python, "lib": lib}


def test_nix_files_use_only_real_nixpkgs_names() -> None:
    sources = _nix_sources()
    assert "nix/package.nix" in sources and "shells/claude-code.nix" in sources
    used = [_used(name, text) for name, text in sources.items()]
    for name, names in zip(sources, used, strict=True):
        assert names["packages"] <= REAL_PACKAGES, (name, names["packages"] - REAL_PACKAGES)
        assert names["python"] <= REAL_PYTHON, (name, names["python"] - REAL_PYTHON)
        assert names["lib"] <= REAL_LIB, (name, names["lib"] - REAL_LIB)
    agents = {"claude-code", "codex", "aider-chat", "opencode", "gemini-cli"}
    assert agents | {"bubblewrap", "libseccomp"} <= set().union(*(u["packages"] for u in used))


def test_stub_defines_only_real_names() -> None:
    text = (STUB / "default.nix").read_text()
    base = text[text.index("base = self: {"):text.index("  extend =")]
    top = set(re.findall(rf"^    {IDENT} =", base, re.M))
    python = set(re.findall(rf"^      {IDENT} =", base[base.index("python3Packages = {"):],
                            re.M))
    lib = set(re.findall(rf"^  {IDENT} =", (STUB / "lib.nix").read_text(), re.M))
    lib |= {"platforms"} if "platforms.linux" in (STUB / "lib.nix").read_text() else set()
    assert top <= REAL_PACKAGES, top - REAL_PACKAGES
    assert python <= REAL_PYTHON, python - REAL_PYTHON
    assert lib <= REAL_LIB, lib - REAL_LIB
    assert {"mkShell", "claude-code", "python3Packages"} <= top and "fetchPypi" in python


def test_lock_pins_the_real_nixpkgs_revision() -> None:
    lock = json.loads((REPO / "flake.lock").read_text())
    assert lock["version"] == 7 and lock["root"] == "root"
    assert lock["nodes"]["root"]["inputs"] == {"nixpkgs": "nixpkgs"}
    node = lock["nodes"]["nixpkgs"]
    assert node["locked"] == PINNED
    assert node["original"] == {"owner": "NixOS", "repo": "nixpkgs", "type": "github",
                                "ref": "nixos-unstable"}
    assert 'inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable"' in \
        (REPO / "flake.nix").read_text()
