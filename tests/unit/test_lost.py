"""What the exit says was lost: new files on a sandbox filesystem against what bwrap made,
a few named, the rest counted, within a bound, never through a symlink."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_sandbox._run import lost
from agent_sandbox._run.lost import Place, line, written


def _place(root: Path, made: set[str], inside: str = "/home/u") -> Place:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    return Place(inside, fd, frozenset(made), "in the temporary $HOME")


def test_new_files_are_found_and_what_bwrap_made_is_not(tmp_path: Path) -> None:
    (tmp_path / ".gitconfig").write_text("")  # a mount point bwrap made
    (tmp_path / ".config" / "git").mkdir(parents=True)
    (tmp_path / ".config" / "git" / "config").write_text("")
    (tmp_path / ".config" / "app.toml").write_text("x")  # new, in a directory bwrap made
    (tmp_path / "todo.txt").write_text("notes")
    (tmp_path / "wt" / "src").mkdir(parents=True)
    for i in range(4):
        (tmp_path / "wt" / "src" / str(i)).write_text("")
    (tmp_path / "empty").mkdir()
    (tmp_path / ".cache" / "pip").mkdir(parents=True)
    (tmp_path / ".cache" / "pip" / "x").write_text("")
    (tmp_path / "link").symlink_to("/etc")
    place = _place(tmp_path, {".gitconfig", ".config", ".config/git", ".config/git/config"})
    try:
        found = written(place)
    finally:
        os.close(place.fd)
    assert sorted(found.roots) == [("/home/u/.config/app.toml", 1), ("/home/u/link", 1),
                                   ("/home/u/todo.txt", 1), ("/home/u/wt/", 4)]
    assert found.files == 7 and not found.more
    text = line(found, "/home/u")
    assert text.startswith("not kept: 7 files the command wrote in the temporary $HOME")
    assert "~/wt/ (4 files)" in text and ", and 1 more" in text


def test_nothing_new_says_nothing(tmp_path: Path) -> None:
    (tmp_path / ".gitconfig").write_text("")
    place = _place(tmp_path, {".gitconfig"})
    try:
        assert line(written(place), "/home/u") == ""
    finally:
        os.close(place.fd)


def test_the_walk_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(50):
        (tmp_path / f"f{i}").write_text("")
    monkeypatch.setattr(lost, "LIMIT", 10)
    place = _place(tmp_path, set())
    try:
        found = written(place)
    finally:
        os.close(place.fd)
    assert found.more and found.files == 10
    assert "at least 10 files the command wrote" in line(found, "/home/u")
