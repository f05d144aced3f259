"""The network mode over the layers: ``--net none`` or ``host`` (typed, or from any layer)
wins over the lists it cannot use when a preset, a file or a variable gave them: they are
left out and the launch says so once; never an error about a flag the user did not type."""

from __future__ import annotations

from collections.abc import Mapping

from agent_sandbox._errors import UsageError
from agent_sandbox._policy.config import Value

# What each network mode other than filtered cannot use: from a preset, a file or a
# variable it is left out (said at launch); typed on the command line it is an error.
UNUSED_BY_NET = {"none": ("allow", "allow_private", "resolve"),
                 "host": ("allow", "allow_private", "resolve", "forward_host", "publish")}


def typed(source: str) -> bool:
    """Whether a value's source is the command line (the user typed it for this launch)."""
    return source.startswith("--")


def drop_unused_by_net(merged: Mapping[str, Value], fix: str = "") \
        -> tuple[dict[str, Value], str]:
    """``--net none`` or ``host`` (typed, or from any layer) wins over the lists it cannot
    use when they came from a preset, a file or a variable: they are left out, and the
    note to say at launch tells which. Typed on the command line they stay (the policy
    refuses them, naming the flags); typed while the network mode came from a layer, they
    are an error that says where it came from, with ``fix``."""
    net = merged.get("net")
    if net is None or net.value not in UNUSED_BY_NET:
        return dict(merged), ""
    out = dict(merged)
    dropped: dict[tuple[str, str], int] = {}
    for key in UNUSED_BY_NET[net.value]:
        item = merged.get(key)
        if item is None or not item.value:
            continue
        kept = [(v, s) for v, s in zip(item.value, item.per_item(), strict=True) if typed(s)]
        if kept and not typed(net.source):
            raise UsageError(
                f"--{key.replace('_', '-')} {kept[0][0]}: the network is {net.value} "
                f"(net = {net.value!r}, {net.source}), and this needs it filtered",
                fix=fix or "add --net filtered")
        for _, source in zip(item.value, item.per_item(), strict=True):
            if not typed(source):
                layer = source.split(" (@", 1)[0]
                dropped[(key, layer)] = dropped.get((key, layer), 0) + 1
        out[key] = Value(tuple(v for v, _ in kept), item.source, tuple(s for _, s in kept))
    if not dropped:
        return out, ""
    mode = f"--net {net.value}" if typed(net.source) else \
        f"net = {net.value!r} ({net.source})"
    return out, f"{mode}: {_listed(dropped)} not used"


_NOUNS = {"allow": "allowed host", "allow_private": "allowed private host",
          "resolve": "--resolve pin", "forward_host": "forwarded port",
          "publish": "published port"}


def _listed(dropped: Mapping[tuple[str, str], int]) -> str:
    """``the claude preset's 3 allowed hosts and 1 allowed host from FILE:2 are``."""
    parts = []
    for (key, layer), count in dropped.items():
        noun = _NOUNS[key] + ("s" if count > 1 else "")
        parts.append(f"the {layer[7:]} preset's {count} {noun}" if layer.startswith("preset:")
                     else f"{count} {noun} from {layer}")
    text = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return text + (" is" if len(parts) == 1 and sum(dropped.values()) == 1 else " are")
