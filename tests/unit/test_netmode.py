"""``--net none``/``host`` win over the lists a preset, a file or a variable gave (left out,
said once); the lists typed on the command line are the user's, and stay theirs to fix."""

from __future__ import annotations

import pytest

from agent_sandbox._errors import UsageError
from agent_sandbox._policy.config import Value
from agent_sandbox._policy.netmode import drop_unused_by_net

PRESET = Value(("api.anthropic.com", "platform.claude.com", "claude.ai"), "preset:claude")


def test_filtered_or_unset_changes_nothing() -> None:
    for merged in ({"allow": PRESET}, {"allow": PRESET, "net": Value("filtered", "--net")}):
        assert drop_unused_by_net(merged) == (merged, "")


def test_net_none_typed_wins_over_a_preset_and_a_file() -> None:
    merged = {"net": Value("none", "--net"),
              "allow": Value((*PRESET.value, "pypi.org", "files.pythonhosted.org"),
                             "preset:claude + /c.toml:1",
                             (*PRESET.per_item(), "/c.toml:1 (@pypi)", "/c.toml:1 (@pypi)")),
              "resolve": Value(("a.example=10.0.0.1",), "AGENT_SANDBOX_RESOLVE"),
              "publish": Value(("1455",), "preset:codex")}
    got, note = drop_unused_by_net(merged)
    assert got["allow"].value == () and got["resolve"].value == ()
    assert got["publish"] == merged["publish"]  # --net none serves published ports
    assert note == ("--net none: the claude preset's 3 allowed hosts, 2 allowed hosts from "
                    "/c.toml:1 and 1 --resolve pin from AGENT_SANDBOX_RESOLVE are not used")


def test_net_host_from_a_file_leaves_out_forwards_and_ports_too() -> None:
    merged = {"net": Value("host", "/c.toml:3"), "publish": Value(("1455",), "preset:codex"),
              "forward_host": Value(("11434",), "/c.toml:2")}
    got, note = drop_unused_by_net(merged)
    assert got["publish"].value == () and got["forward_host"].value == ()
    assert note == ("net = 'host' (/c.toml:3): 1 forwarded port from /c.toml:2 and the codex "
                    "preset's 1 published port are not used")


def test_typed_lists_stay_for_the_policy_to_refuse() -> None:
    """--net none --allow x: both typed, the policy's own error names both flags."""
    merged = {"net": Value("none", "--net"),
              "allow": Value(("x.example", *PRESET.value), "--allow + preset:claude",
                             ("--allow", *PRESET.per_item()))}
    got, _ = drop_unused_by_net(merged)
    assert got["allow"].value == ("x.example",)


def test_typed_lists_against_a_layers_net_name_that_layer_and_the_fix() -> None:
    merged = {"net": Value("none", "/p/.agent-sandbox.toml:1"),
              "allow": Value(("x.example",), "--allow")}
    with pytest.raises(UsageError) as raised:
        drop_unused_by_net(merged, "agent-sandbox --net filtered --allow x.example -- true")
    assert raised.value.message == ("--allow x.example: the network is none (net = 'none', "
                                    "/p/.agent-sandbox.toml:1), and this needs it filtered")
    assert raised.value.fix == "agent-sandbox --net filtered --allow x.example -- true"
