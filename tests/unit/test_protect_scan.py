"""Finding what to protect: the project, nested repositories, worktrees, core.hooksPath."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from agent_sandbox._plan.protect import created_parents, scan


def _modes(project: Path) -> dict[str, tuple[str, str]]:
    return {os.path.relpath(p.path, project): (p.mode, p.kind) for p in scan(str(project))}


def test_a_plain_directory(tmp_path: Path) -> None:
    (tmp_path / ".envrc").write_text("use flake\n")
    (tmp_path / ".vscode").mkdir()
    modes = _modes(tmp_path)
    assert modes[".envrc"] == ("ro", "file")
    assert modes[".vscode"] == ("ro", "dir")
    assert modes["flake.nix"] == ("placeholder", "file")
    assert modes[".mcp.json"] == ("placeholder", "mcp")  # a valid empty one for Claude Code
    assert ".claude/commands" not in modes  # protected only once it exists
    assert ".git" not in modes


def test_repositories_nested_worktrees_and_hooks_path(tmp_path: Path) -> None:
    project = tmp_path / "p"
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "config", "core.hooksPath", "ci/hooks"],
                   check=True)
    nested = project / "third_party" / "lib"
    subprocess.run(["git", "init", "-q", str(nested)], check=True)
    (project / "node_modules" / "x").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(project / "node_modules" / "x")], check=True)
    modes = _modes(project)
    assert modes[".git"] == ("rw", "dir")
    # The config is writable inside as a copy (_run.gitcopy), the hooks read-only.
    assert modes[".git/config"][0] == "copy" and modes[".git/hooks"][0] == "ro"
    assert modes["third_party/lib/.git/config"][0] == "copy"
    assert modes["ci/hooks"] == ("placeholder", "dir")
    assert modes["third_party/lib/.git"][0] == "rw"
    assert modes["third_party/lib/.git/hooks"][0] == "ro"
    assert modes["third_party/lib/.envrc"][0] == "placeholder"
    assert modes["third_party/lib/shell.nix"] == ("placeholder", "file")  # run on cd
    assert "third_party/lib/.husky" not in modes  # protected only once it exists
    # Parents of protected paths are pinned (a mount point's parent could be renamed away).
    assert modes["third_party"][0] == modes["third_party/lib"][0] == "pin"
    assert modes[".claude"][0] == "pin" and modes[".claude/settings.json"][0] == "placeholder"
    assert modes[".git/commondir"] == ("placeholder", "commondir")
    assert modes["third_party/lib/.git/commondir"] == ("placeholder", "commondir")
    assert not any(k.startswith("node_modules") for k in modes)  # caches are not searched


def test_a_worktree_protects_its_real_repository(tmp_path: Path) -> None:
    main = tmp_path / "main"
    subprocess.run(["git", "init", "-q", str(main)], check=True)
    subprocess.run(["git", "-C", str(main), "-c", "user.name=t", "-c", "user.email=t@t",
                    "commit", "-q", "--allow-empty", "-m", "x"], check=True)
    wt = tmp_path / "wt"
    subprocess.run(["git", "-C", str(main), "worktree", "add", "-q", str(wt)], check=True)
    protections = {p.path: p.mode for p in scan(str(wt))}
    assert protections[str(wt / ".git")] == "ro"  # the .git file cannot be redirected
    assert protections[str(main / ".git")] == "rw"  # the common dir, bound to work
    assert protections[str(main / ".git" / "hooks")] == "ro"
    assert protections[str(main / ".git" / "config")] == "copy"  # writable as a copy


def test_symlinked_protected_names_are_reported_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    project = tmp_path / "p"
    project.mkdir()
    os.symlink(outside / "envrc", project / ".envrc")
    os.symlink(outside, project / ".claude")
    modes = _modes(project)
    assert modes[".envrc"][0] == "symlink"
    assert not any(k.startswith(".claude/") for k in modes)


def test_created_parents(tmp_path: Path) -> None:
    assert created_parents(str(tmp_path / ".claude" / "commands"), str(tmp_path)) == [
        str(tmp_path / ".claude")]
    (tmp_path / ".claude").mkdir()
    assert created_parents(str(tmp_path / ".claude" / "commands"), str(tmp_path)) == []


def test_a_forged_git_file_never_exposes_a_host_directory(tmp_path: Path) -> None:
    secrets = tmp_path / "home" / ".ssh"
    secrets.mkdir(parents=True)
    (secrets / "HEAD").write_text("ref: refs/heads/main\n")  # even if it looks like git
    project = tmp_path / "p"
    (project / "vendor").mkdir(parents=True)
    (project / ".git").write_text(f"gitdir: {secrets}\n")
    (project / "vendor" / ".git").write_text(f"gitdir: {secrets}\n")
    paths = {p.path for p in scan(str(project))}
    assert not any(path.startswith(str(secrets)) for path in paths)
    assert str(project / ".git") in paths  # the .git file itself is read-only


def test_a_forged_commondir_never_exposes_a_host_directory(tmp_path: Path) -> None:
    # The .git file and the git dir it names are both project content: the git dir's
    # "gitdir" file points back and its commondir names a host directory.
    outside = tmp_path / "outside"
    outside.mkdir()
    project = tmp_path / "p"
    (project / "sub").mkdir(parents=True)
    (project / "fake").mkdir()
    (project / "sub" / ".git").write_text("gitdir: ../fake\n")
    (project / "fake" / "gitdir").write_text(f"{project}/sub/.git\n")
    (project / "fake" / "HEAD").write_text("ref: refs/heads/main\n")
    (project / "fake" / "commondir").write_text(f"{outside}\n")
    modes = _modes(project)
    assert not any(path.startswith("../") for path in modes)
    assert modes["fake/commondir"][0] == "ro"  # and it cannot be pointed elsewhere


def test_a_hooks_path_outside_the_project_is_not_bound(tmp_path: Path) -> None:
    project = tmp_path / "p"
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(["git", "-C", str(project), "config", "core.hooksPath", str(tmp_path)],
                   check=True)
    assert not any(not p.path.startswith(str(project)) for p in scan(str(project)))
