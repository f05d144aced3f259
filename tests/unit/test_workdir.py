"""Work dir removal never follows symlinks and never leaves the tree; stale dirs are reaped."""

from __future__ import annotations

import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent_sandbox._errors import SandboxUnavailable
from agent_sandbox._run.workdir import reap_stale, remove_tree, work_dir


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    v = tmp_path / "victim"
    (v / "sub").mkdir(parents=True)
    (v / "precious.txt").write_text("keep me")
    (v / "sub" / "deep.txt").write_text("keep me too")
    return v


def _snapshot(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): p.read_text() if p.is_file() else "<dir>"
            for p in sorted(path.rglob("*"))}


def _remove(tmp_path: Path, name: str) -> None:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        remove_tree(fd, name)
    finally:
        os.close(fd)


def test_symlinks_are_unlinked_never_followed(tmp_path: Path, victim: Path) -> None:
    before = _snapshot(victim)
    w = tmp_path / "w"
    (w / "a").mkdir(parents=True)
    os.symlink(victim, w / "link-to-dir")
    os.symlink(victim / "precious.txt", w / "a" / "link-to-file")
    os.symlink("../../victim", w / "a" / "relative-link")
    _remove(tmp_path, "w")
    assert not w.exists()
    assert _snapshot(victim) == before


def test_the_top_itself_may_be_a_symlink(tmp_path: Path, victim: Path) -> None:
    before = _snapshot(victim)
    os.symlink(victim, tmp_path / "w")
    _remove(tmp_path, "w")
    assert not os.path.lexists(tmp_path / "w")
    assert _snapshot(victim) == before


def test_unreadable_and_read_only_dirs_sockets_and_fifos(tmp_path: Path) -> None:
    w = tmp_path / "w"
    (w / "locked" / "inner").mkdir(parents=True)
    (w / "locked" / "inner" / "f").write_text("x")
    (w / "ro").mkdir()
    (w / "ro" / "f").write_text("x")
    os.mkfifo(w / "fifo")
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(w / "sock"))
    s.close()
    (w / "locked" / "inner").chmod(0)
    (w / "locked").chmod(0)
    (w / "ro").chmod(0o500)
    _remove(tmp_path, "w")
    assert not w.exists()


def test_ten_thousand_deep_tree(tmp_path: Path) -> None:
    w = tmp_path / "w"
    w.mkdir()
    fd = os.open(w, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(10_000):  # deeper than PATH_MAX allows by name: build it with dir fds
        os.mkdir("d", dir_fd=fd)
        nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    os.close(fd)
    _remove(tmp_path, "w")
    assert not w.exists()


def test_wide_tree(tmp_path: Path) -> None:
    w = tmp_path / "w"
    for i in range(2000):
        (w / f"d{i}").mkdir(parents=True)
        (w / f"d{i}" / "f").write_text("x")
    _remove(tmp_path, "w")
    assert not w.exists()


@pytest.mark.host  # unshare (util-linux)
def test_mount_points_are_never_entered(tmp_path: Path) -> None:
    """A filesystem mounted inside the tree (in a private mount namespace made with
    ``unshare -rm``, so this runs unprivileged) stops the removal; its files survive."""
    w = tmp_path / "w"
    (w / "mnt").mkdir(parents=True)
    (w / "file").write_text("x")
    script = (
        "import os, sys\n"
        "from agent_sandbox._run.workdir import UnsafeTree, remove_tree\n"
        "os.system(f'mount -t tmpfs none {sys.argv[1]}/w/mnt')\n"
        "open(f'{sys.argv[1]}/w/mnt/on-other-fs', 'w').write('x')\n"
        "fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n"
        "try:\n"
        "    remove_tree(fd, 'w')\n"
        "except UnsafeTree as e:\n"
        "    print('refused:', e)\n"
        "print(sorted(os.listdir(f'{sys.argv[1]}/w')), os.listdir(f'{sys.argv[1]}/w/mnt'))\n"
    )
    done = subprocess.run(["unshare", "-rm", sys.executable, "-c", script, str(tmp_path)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == [
        "refused: mnt is on another filesystem",
        "['file', 'mnt'] ['on-other-fs']",
    ]


def _base(tmp_path: Path) -> Path:
    return tmp_path / f"agent-sandbox-{os.getuid()}"


def test_work_dir_is_private_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with work_dir() as w:
        assert Path(w).is_dir()
        assert os.stat(w).st_mode & 0o777 == 0o700
        assert os.stat(_base(tmp_path)).st_mode & 0o777 == 0o700
        Path(w, "junk").write_text("x")
    assert os.listdir(_base(tmp_path)) == []


def test_stale_dirs_of_dead_launchers_are_reaped_live_ones_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, victim: Path
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    before = _snapshot(victim)
    base = _base(tmp_path)
    base.mkdir(mode=0o700)
    # A dead launcher: its lock file exists but nobody holds it.
    (base / "111-dead").mkdir()
    os.symlink(victim, base / "111-dead" / "evil")
    (base / "111-dead.lock").write_text("")
    # An orphan dir without a lock.
    (base / "222-orphan").mkdir()
    # A live launcher: another process holds its lock.
    (base / "333-live").mkdir()
    (base / "333-live.lock").write_text("")
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl,sys; f=open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); "
         "print('locked', flush=True); sys.stdin.read()", str(base / "333-live.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert reap_stale(fd) == []
        finally:
            os.close(fd)
        assert sorted(os.listdir(base)) == ["333-live", "333-live.lock"]
    finally:
        holder.communicate("")
    assert _snapshot(victim) == before


def test_own_lock_is_held_while_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with work_dir() as w:
        fd = os.open(w + ".lock", os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)


def test_a_base_dir_owned_by_someone_else_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    base = _base(tmp_path)
    base.mkdir(mode=0o777)
    base.chmod(0o777)  # as if another user had planted it world-writable
    with pytest.raises(SandboxUnavailable, match="not private"), work_dir():
        pass


def test_a_base_dir_symlink_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       victim: Path) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    os.symlink(victim, _base(tmp_path))
    with pytest.raises(SandboxUnavailable), work_dir():
        pass


def test_old_placeholder_sources_are_kept_old_unrenamed_locks_reaped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every launch shares the placeholder sources; reaping them as stale locks made a
    # concurrent launch read a half-written one or lose it mid-bind.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    base = _base(tmp_path)
    base.mkdir(mode=0o700)
    old = time.time() - 3600
    for name in (".empty-file", ".empty.json", ".git-commondir", ".444-gone.lock.tmp"):
        (base / name).write_text("")
        os.utime(base / name, (old, old))
    (base / ".empty").mkdir()
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert reap_stale(fd) == []
    finally:
        os.close(fd)
    assert sorted(os.listdir(base)) == [".empty", ".empty-file", ".empty.json",
                                        ".git-commondir"]
