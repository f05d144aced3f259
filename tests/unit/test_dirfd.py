"""Copying a tree the command wrote (an agent's home): what it may hold cannot hang the
launcher or fill the host disk."""

from __future__ import annotations

import os
from pathlib import Path

from agent_sandbox._run.dirfd import copy_tree


def _copy(src: Path, dst: Path) -> int:
    s, d = os.open(src, os.O_RDONLY | os.O_DIRECTORY), os.open(dst, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return copy_tree(s, d)
    finally:
        os.close(s)
        os.close(d)


def test_a_sparse_file_stays_sparse(tmp_path: Path) -> None:
    """8 GiB of apparent size, two small pieces of data: the copy costs the same blocks
    (copied as zeros it would write 8 GiB to the host disk at save)."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    with (src / "sparse").open("wb") as f:
        f.write(b"head")
        f.seek(4 << 30)
        f.write(b"middle")
        f.truncate(8 << 30)
    assert _copy(src, dst) < 1 << 20
    copied = dst / "sparse"
    assert copied.stat().st_size == 8 << 30 and copied.stat().st_blocks * 512 < 1 << 20
    with copied.open("rb") as f:
        assert f.read(4) == b"head"
        f.seek(4 << 30)
        assert f.read(6) == b"middle"
        f.seek((8 << 30) - 4)
        assert f.read() == b"\0" * 4


def test_fifos_and_sockets_are_skipped_and_links_never_followed(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    os.mkfifo(src / "fifo")
    (src / "link").symlink_to("/etc/shadow")
    (src / "file").write_bytes(b"x" * 5000)
    assert _copy(src, dst) == 5000
    assert sorted(p.name for p in dst.iterdir()) == ["file", "link"]
    assert os.readlink(dst / "link") == "/etc/shadow" and (dst / "file").read_bytes() == b"x" * 5000
