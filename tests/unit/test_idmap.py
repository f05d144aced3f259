"""The pure parts of a root caller's launch: what is staged where, and who owns the uid."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_sandbox._errors import SandboxUnavailable
from agent_sandbox._policy.identity import ROOT_COMMAND_UID
from agent_sandbox._run.idmap import Staged, check_command_uid, stage_map


def test_stage_map_clones_each_tree_once_and_renames_every_source() -> None:
    sources = ["/root/src/x", "/root/src/x/.git/hooks", "/tmp/agent-sandbox-0/1-ab",
               "/root/.gitconfig", "/root/src/x-other", "/root/src/x/.envrc"]
    staged, renamed = stage_map(sources)
    assert staged == (Staged("/root/.gitconfig", "/tmp/0"), Staged("/root/src/x", "/tmp/1"),
                      Staged("/root/src/x-other", "/tmp/2"),
                      Staged("/tmp/agent-sandbox-0/1-ab", "/tmp/3"))
    assert renamed == {"/root/src/x": "/tmp/1", "/root/src/x/.git/hooks": "/tmp/1/.git/hooks",
                       "/tmp/agent-sandbox-0/1-ab": "/tmp/3", "/root/.gitconfig": "/tmp/0",
                       "/root/src/x-other": "/tmp/2", "/root/src/x/.envrc": "/tmp/1/.envrc"}


@pytest.mark.parametrize("which", ["subuid", "subgid"])
def test_the_command_uid_is_refused_when_a_subordinate_range_holds_it(
        tmp_path: Path, which: str) -> None:
    ranges = {name: tmp_path / name for name in ("subuid", "subgid")}
    for path in ranges.values():
        path.write_text("alice:100000:65536\n")
    check_command_uid(**{k: str(v) for k, v in ranges.items()})
    ranges[which].write_text(f"alice:100000:65536\nbob:{ROOT_COMMAND_UID - 10}:65536\n")
    with pytest.raises(SandboxUnavailable, match=f"bob's subordinate ids .*{which}"):
        check_command_uid(**{k: str(v) for k, v in ranges.items()})
