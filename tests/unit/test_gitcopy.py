"""A git config's copy settled at exit: the everyday keys' changes applied to the host's
config by host git, with odd names and values intact; everything else held back."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from agent_sandbox._policy.git_keys import EVERYDAY, everyday, split
from agent_sandbox._run.gitcopy import Copy, apply, changes, find_git, parse, settle

GIT = shutil.which("git") or "git"
DOCS = Path(__file__).parents[2] / "docs" / "usage.md"


@pytest.mark.parametrize("key", [
    "remote.origin.url", "remote.origin.fetch", "remote.up.pushurl", "branch.main.remote",
    "branch.feat/x.y.merge", "branch.main.rebase", "submodule.lib.url",
    "submodule.lib.active", "submodule.a.b.branch"])
def test_everyday_keys_are_applied(key: str) -> None:
    assert everyday(key, ("x",)) and everyday(key, ())


@pytest.mark.parametrize("key", [
    "core.fsmonitor", "core.hookspath", "core.sshcommand", "alias.st", "include.path",
    "includeif.gitdir:/x/.path", "filter.lfs.clean", "diff.x.textconv", "credential.helper",
    "url.https://evil/.insteadof", "http.proxy", "remote.origin.uploadpack",
    "remote.origin.receivepack", "remote.origin.vcs", "remote.origin.proxy",
    "user.email", "remote.pushdefault", "gpg.program", "core.pager", "merge.x.driver"])
def test_other_keys_are_held_back(key: str) -> None:
    assert not everyday(key, ("x",))


def test_a_submodule_update_command_is_held_back() -> None:
    assert everyday("submodule.lib.update", ("rebase",))
    assert not everyday("submodule.lib.update", ("!touch /tmp/x",))


def test_subsections_may_hold_dots() -> None:
    assert split("branch.feat/x.y.merge") == ("branch", "feat/x.y", "merge")
    assert split("core.bare") == ("core", None, "bare")


def test_usage_lists_the_everyday_keys() -> None:
    text = DOCS.read_text()
    for section, variable in EVERYDAY:
        assert f"`{section}.<name>.{variable}`" in text, (section, variable)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config"
    path.write_text(text)
    return path


def test_odd_names_and_values_go_through_git_intact(tmp_path: Path) -> None:
    host = _config(tmp_path, "[core]\n\tbare = false\n")
    wanted = {'remote.we"i\\rd.url': ("-v x",),
              "remote.origin.fetch": ("+refs/heads/*:refs/remotes/origin/*",
                                      "+refs/tags/*:refs/tags/*"),
              "remote.origin.mirror": (None,),
              "branch.feat/x.y.merge": ("refs/heads/a\nb",)}
    apply(GIT, str(host), wanted)
    found = parse(GIT, host.read_bytes())
    assert found['remote.we"i\\rd.url'] == ("-v x",)
    assert found["remote.origin.fetch"] == wanted["remote.origin.fetch"]
    assert found["remote.origin.mirror"] == ("true",)
    assert found["branch.feat/x.y.merge"] == ("refs/heads/a\nb",)
    apply(GIT, str(host), {"remote.origin.fetch": (), "remote.origin.mirror": ()})
    assert "remote.origin.fetch" not in parse(GIT, host.read_bytes())


def test_changes_are_per_key_in_the_copys_order() -> None:
    before = {"core.bare": ("false",), "remote.a.url": ("x",), "remote.b.url": ("y",)}
    after = {"core.bare": ("false",), "remote.c.url": ("z",), "remote.c.fetch": ("f",),
             "remote.a.url": ("x",)}
    assert list(changes(before, after).items()) == [
        ("remote.c.url", ("z",)), ("remote.c.fetch", ("f",)), ("remote.b.url", ())]


def test_settle_applies_everyday_changes_and_holds_the_rest(tmp_path: Path) -> None:
    original = b"[core]\n\tbare = false\n[remote \"old\"]\n\turl = /old\n"
    host = _config(tmp_path, original.decode())
    copy = tmp_path / "copy"
    copy.write_bytes(original + b"[remote \"origin\"]\n\turl = /up\n[alias]\n\tst = !evil\n"
                     b"[core]\n\tfsmonitor = evil\n")
    done = settle(Copy(str(host), str(copy), original), GIT)
    assert done.applied == ("remote.origin.url",)
    assert set(done.held) == {"alias.st", "core.fsmonitor"}
    text = host.read_text()
    assert "/up" in text and "evil" not in text and "/old" in text


def test_a_key_the_host_changed_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    original = b"[remote \"origin\"]\n\turl = /a\n"
    host = _config(tmp_path, "[remote \"origin\"]\n\turl = /host\n")
    copy = tmp_path / "copy"
    copy.write_bytes(b"[remote \"origin\"]\n\turl = /session\n")
    done = settle(Copy(str(host), str(copy), original), GIT)
    assert done.conflicts == ("remote.origin.url",) and not done.applied
    assert "/host" in host.read_text()


def test_nothing_is_applied_through_a_symlink_left_at_the_configs_place(
        tmp_path: Path) -> None:
    """Were the host's config a symlink at exit (to ~/.gitconfig, say), git config --file
    would write through it: the copy is then held back whole."""
    victim = tmp_path / "gitconfig"
    victim.write_text("[user]\n\tname = victim\n")
    host = tmp_path / "config"
    host.symlink_to(victim)
    copy = tmp_path / "copy"
    copy.write_bytes(b"[remote \"origin\"]\n\turl = /up\n")
    done = settle(Copy(str(host), str(copy), b""), GIT)
    assert not done.applied and "no longer a regular file" in done.problem
    assert victim.read_text() == "[user]\n\tname = victim\n"


def test_an_unchanged_copy_runs_no_git(tmp_path: Path) -> None:
    copy = _config(tmp_path, "[core]\n")
    assert settle(Copy("/nonexistent", str(copy), b"[core]\n"), None) == settle(
        Copy("/nonexistent", str(copy), b"[core]\n"), GIT)


def test_the_host_git_is_never_one_in_the_project(tmp_path: Path) -> None:
    project = tmp_path / "p"
    (project / "bin").mkdir(parents=True)
    planted = project / "bin" / "git"
    planted.write_text("#!/bin/sh\n")
    planted.chmod(0o755)
    path = f"{project}/bin:bin:{Path(GIT).parent}"
    assert find_git({"PATH": path}, str(project)) == str(Path(GIT).parent / "git")
    assert subprocess.run([GIT, "--version"], check=True, capture_output=True).returncode == 0


def test_the_printed_restore_command_survives_a_path_with_spaces() -> None:
    import shlex

    from agent_sandbox._run.quarantine import Item, Outcome, exit_lines

    item = Item("/home/a/my project/.git/config", "3-config", "held", "keys: alias.x")
    (text,) = exit_lines(Outcome([item], []), "12-ab", quiet=True)
    fix = shlex.split(text.rsplit("apply them: ", 1)[1])
    assert fix == ["agent-sandbox", "quarantine", "restore", "12-ab",
                   "/home/a/my project/.git/config"]
