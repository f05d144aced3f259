"""Configuration files and environment variables, layered under the command-line flags.

Layers, each overriding the ones before (lists add up):

    built-in  <  /etc/agent-sandbox/config.toml  <  ~/.config/agent-sandbox/config.toml
              <  <project>/.agent-sandbox.toml  <  AGENT_SANDBOX_* variables  <  flags

Keys are the long flags' names with ``_`` for ``-`` (``allow``, ``forward_host``,
``memory``...), with the same values as the flags. The project file comes with the
repository, so anyone who can commit to it writes it: it may only **tighten** the policy
(``hide`` more, ``drop_allow`` hosts, lower limits, a stricter ``net``); any key that would
widen it is an error naming the file, the line and the key. Errors never show a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from agent_sandbox._errors import UsageError

SYSTEM_FILE = "/etc/agent-sandbox/config.toml"
PROJECT_FILE = ".agent-sandbox.toml"
ENV_PREFIX = "AGENT_SANDBOX_"

LIST_KEYS = ("allow", "allow_private", "resolve", "forward_host", "publish", "ro", "rw", "hide",
             "env", "protect", "unprotect")
BOOL_KEYS = ("allow_nested_userns", "gpu", "best_effort", "root_stays_root",
             "show_command_install", "tmp_on_disk")
PATH_KEYS = ("git_token_file",)
LIMIT_KEYS = ("memory", "pids", "cpus", "timeout", "nofile", "nproc", "fsize", "home_size",
              "agent_home_size", "tmp_size")
NET_ORDER = ("host", "filtered", "none")  # each stricter than the one before
# The lists that may name host groups (@pypi).
GROUP_KEYS = ("allow", "allow_private", "drop_allow")
TERMINAL_MODES = ("filtered", "raw")
KEYS = ("net", "terminal", *LIST_KEYS, *BOOL_KEYS, *LIMIT_KEYS, *PATH_KEYS)
# What the project file may say: only what tightens.
PROJECT_KEYS = ("net", "hide", "drop_allow", "protect", *LIMIT_KEYS)


class Value(NamedTuple):
    value: Any  # str, bool, or tuple[str, ...] for lists
    source: str  # "built-in", "FILE:LINE", "AGENT_SANDBOX_NET", "--net"
    # A list adds up over the layers: where each item came from, in order (empty: all from
    # ``source``). ``agent-sandbox explain`` names the layer behind one item.
    item_sources: tuple[str, ...] = ()

    def per_item(self) -> tuple[str, ...]:
        return self.item_sources or (self.source,) * len(self.value)

    def sources_of(self, item: str) -> list[str]:
        """The layers that gave this list ``item`` (several may give the same one)."""
        return [s for v, s in zip(self.value, self.per_item(), strict=True) if v == item]


def user_file(environ: Mapping[str, str]) -> str:
    from agent_sandbox._policy.presets import config_dir

    return os.path.join(config_dir(environ), "config.toml")


def _suggest(key: str, allowed: tuple[str, ...]) -> str:
    import difflib

    close = difflib.get_close_matches(key, allowed, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _as_text(value: Any, where: str, key: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UsageError(f"{where}: {key} must be a string or a number, not "
                         f"{type(value).__name__}")
    return str(value)


def _check_item(key: str, text: str, where: str) -> None:
    """Validate one value with the flag's own parser, so the error names the file."""
    from agent_sandbox._net import allow as _allow
    from agent_sandbox._policy import limits as _limits

    if key in GROUP_KEYS and text.startswith("@"):
        from agent_sandbox._policy.groups import expand

        try:
            expand(text, "")
        except UsageError as e:
            raise UsageError(f"{where}: {key}: {e.message}") from None
        return
    checks: dict[str, Any] = {
        "allow": _allow.parse_allow, "allow_private": _allow.parse_allow,
        "drop_allow": _allow.parse_allow, "resolve": _allow.parse_resolve,
        "forward_host": _allow.parse_forward, "publish": _allow.parse_publish,
        "memory": lambda v: _limits.is_no_cap(v, key) or _limits.parse_size(v, key),
        "fsize": lambda v: _limits.parse_size(v, key),
        "home_size": lambda v: _limits.parse_size(v, key),
        "agent_home_size": lambda v: _limits.parse_size(v, key),
        "tmp_size": lambda v: _limits.parse_size(v, key),
        "timeout": lambda v: _limits.parse_duration(v, key),
        "pids": lambda v: _limits.is_no_cap(v, key) or _limits.parse_positive(v, key, int),
        "nofile": lambda v: _limits.parse_positive(v, key, int),
        "nproc": lambda v: _limits.parse_positive(v, key, int),
        "cpus": lambda v: _limits.parse_positive(v, key, float),
    }
    if key in checks:
        try:
            checks[key](text)
        except UsageError as e:
            raise UsageError(f"{where}: {key}: {e.message}") from None
    if key == "protect" and (text.startswith("/") or ".." in text.split("/") or not text):
        raise UsageError(f"{where}: protect: {text!r}: a path relative to the project "
                         "(or to each repository in it), without '..'")
    if key == "unprotect":
        from agent_sandbox._policy.protected import PROTECTED

        if text not in PROTECTED:
            raise UsageError(f"{where}: unprotect: {text!r} is not a protected name; "
                             f"the names are: {', '.join(PROTECTED)}")


def _path(text: str, where: str, base: str | None) -> str:
    """Paths in files: absolute, ``~/...``, or (project file only) relative to the project."""
    if text.startswith("~/") or text == "~":
        return os.path.expanduser(text)
    if text.startswith("/"):
        return text
    if base is None:
        raise UsageError(f"{where}: {text!r}: use an absolute path or ~/... here")
    return os.path.join(base, text)


def _normalise(key: str, value: Any, where: str, base: str | None = None) -> Any:
    """A file's value in the form the flags give it (lists of strings, strings, bools),
    each item checked by the flag's own parser."""
    if key in LIST_KEYS or key == "drop_allow":
        if not isinstance(value, list):
            raise UsageError(f"{where}: {key} must be a list of strings, "
                             f'e.g. {key} = ["..."]')
        items = tuple(_as_text(item, where, key) for item in value)
        if key in ("ro", "rw", "hide"):
            items = tuple(_path(item, where, base) for item in items)
        for item in items:
            _check_item(key, item, where)
        return items
    if key in BOOL_KEYS:
        if not isinstance(value, bool):
            raise UsageError(f"{where}: {key} must be true or false")
        return value
    text = _as_text(value, where, key)
    if key in PATH_KEYS:
        return _path(text, where, None)
    if key == "net" and text not in NET_ORDER:
        raise UsageError(f"{where}: net must be one of none, filtered, host (not {text!r})")
    if key == "terminal" and text not in TERMINAL_MODES:
        raise UsageError(f"{where}: terminal must be filtered or raw (not {text!r})")
    _check_item(key, text, where)
    return text


def read_file(path: str, project: bool = False, agent: str = "",
              environ: Mapping[str, str] | None = None) -> dict[str, Value]:
    """One TOML layer; {} if the file does not exist. Any problem: a UsageError naming it.
    The project's file is anyone's to write: read without blocking or following a
    symlink, and capped (``_files.read_input``).

    A system or user file may hold per-agent sections, ``[agents.NAME]`` with the same keys:
    all are checked (NAME must be a preset; ``environ`` finds the user's), and the one of
    ``agent`` is merged over the file's top level (scalars override, lists add up)."""
    from agent_sandbox._policy import tomlfile

    read = tomlfile.read(path, follow=not project)
    if read is None:
        return {}
    text, data = read
    agents = data.pop("agents", None)
    if agents is not None and project:
        raise UsageError(
            f"{path}:{tomlfile.line_of(text, 'agents')}: agents: per-agent sections go in "
            "your own configuration, not in the project file",
            fix=f"move them to {user_file(os.environ if environ is None else environ)}")
    layer = _read_table(path, text, data, project)
    if agents is not None:
        sections = _agent_sections(path, text, agents, environ)
        if agent in sections:
            _merge(layer, sections[agent])
    return layer


def _read_table(path: str, text: str, data: Mapping[str, Any], project: bool,
                table: tuple[str, ...] = ()) -> dict[str, Value]:
    from agent_sandbox._policy.tomlfile import line_of

    allowed = PROJECT_KEYS if project else KEYS
    layer = {}
    for key, value in data.items():
        where = f"{path}:{line_of(text, key, table)}"
        if key not in allowed:
            if project and key in KEYS:
                raise UsageError(
                    f"{where}: {key}: the project file may only tighten the policy, and "
                    f"{key} would widen it",
                    fix=f"put it in your own {user_file(os.environ)} (allowed here: "
                        f"{', '.join(PROJECT_KEYS)})")
            section = f"[{'.'.join(table)}]: " if table else ""
            raise UsageError(f"{where}: {section}unknown key {key!r}"
                             f"{_suggest(key, allowed)}; allowed: {', '.join(allowed)}")
        base = os.path.dirname(path) if project else None
        layer[key] = Value(_normalise(key, value, where, base), where)
    return layer


def _agent_sections(path: str, text: str, agents: Any,
                    environ: Mapping[str, str] | None) -> dict[str, dict[str, Value]]:
    """Every ``[agents.NAME]`` section of a file, checked."""
    from agent_sandbox._policy import presets
    from agent_sandbox._policy.tomlfile import line_of

    if not isinstance(agents, dict) or not all(isinstance(v, dict) for v in agents.values()):
        raise UsageError(f"{path}:{line_of(text, 'agents')}: agents: expected sections "
                         "[agents.NAME] (NAME a preset), each with keys like the top level's")
    sections = {}
    for name, table in agents.items():
        if name not in presets.names(environ):
            line = line_of(text, name, ("agents",))
            raise presets.unknown(name, environ, f"{path}:{line}: [agents.{name}]:")
        sections[name] = _read_table(path, text, table, False, ("agents", name))
    return sections


def read_environment(environ: Mapping[str, str]) -> dict[str, Value]:
    layer = {}
    for key in KEYS:
        name = ENV_PREFIX + key.upper()
        if name not in environ:
            continue
        text = environ[name]
        if key in LIST_KEYS:
            value: Any = tuple(item.strip() for item in text.split(",") if item.strip())
            for item in value:
                _check_item(key, item, name)
        elif key in BOOL_KEYS:
            if text.lower() not in ("1", "true", "yes", "0", "false", "no"):
                raise UsageError(f"{name}={text!r}: expected true or false")
            value = text.lower() in ("1", "true", "yes")
        else:
            value = _normalise(key, text, name)
        layer[key] = Value(value, name)
    return layer


def _stricter_net(new: str, old: str) -> bool:
    return NET_ORDER.index(new) >= NET_ORDER.index(old)


def _apply_project(merged: dict[str, Value], project: dict[str, Value]) -> None:
    """The project layer: tighten only, checked against what the layers below said."""
    from agent_sandbox._policy.limits import (
        DEFAULT_FSIZE,
        DEFAULT_NOFILE,
        DEFAULT_NPROC,
        is_no_cap,
        parse_duration,
        parse_size,
    )
    from agent_sandbox._policy.values import (
        DEFAULT_AGENT_HOME_SIZE,
        DEFAULT_HOME_SIZE,
        DEFAULT_TMP_SIZE,
    )

    # Limits that are never unlimited: the project compares with the built-in value too.
    built_in = {"nofile": DEFAULT_NOFILE, "nproc": DEFAULT_NPROC, "fsize": DEFAULT_FSIZE,
                "home_size": DEFAULT_HOME_SIZE,
                "agent_home_size": DEFAULT_AGENT_HOME_SIZE, "tmp_size": DEFAULT_TMP_SIZE}

    for key, item in project.items():
        if key == "net":
            # Unset, the default is at most "filtered" (implied by an allow-list).
            old = merged.get("net", Value("filtered", "built-in")).value
            if not _stricter_net(item.value, old):
                raise UsageError(f"{item.source}: net = {item.value!r} would widen "
                                 f"net = {old!r}")
            merged["net"] = item
        elif key in ("hide", "protect"):
            before = merged.get(key, Value((), "built-in"))
            merged[key] = Value((*before.value, *item.value), item.source,
                                (*before.per_item(), *item.per_item()))
        elif key == "drop_allow":
            for list_key in ("allow", "allow_private"):
                if list_key in merged:
                    old_list = merged[list_key]
                    kept = [(a, s) for a, s in zip(old_list.value, old_list.per_item(),
                                                   strict=True) if a not in item.value]
                    merged[list_key] = Value(tuple(a for a, _ in kept),
                                             f"{old_list.source}, minus {item.source}",
                                             tuple(s for _, s in kept))
        else:  # a limit: may be set, or lowered, never raised
            if is_no_cap(item.value, key) and not (
                    key in merged and is_no_cap(merged[key].value, key)):
                # Its default is a cap where cgroup v2 works: none would lift it.
                raise UsageError(f"{item.source}: {key} = {item.value!r}: the project file "
                                 "may only tighten the policy, and none lifts the cap")
            if key not in merged and key in built_in:
                merged[key] = Value(str(built_in[key]), "built-in")
            if key in merged:
                parse = parse_duration if key == "timeout" else (
                    parse_size if key in ("memory", "fsize", "home_size", "agent_home_size",
                                          "tmp_size") else
                    lambda v, _f: float(v))
                try:
                    lower = is_no_cap(merged[key].value, key) or \
                        parse(item.value, key) <= parse(merged[key].value, key)
                except (UsageError, ValueError):
                    raise UsageError(f"{item.source}: {key} = {item.value!r} is not a valid "
                                     "value") from None
                if not lower:
                    raise UsageError(f"{item.source}: {key} = {item.value!r} would raise "
                                     f"{key} = {merged[key].value!r} ({merged[key].source})")
            merged[key] = item


def effective(project_dir: str, environ: Mapping[str, str], flags: Mapping[str, Any],
              preset: Mapping[str, Value] | None = None, agent: str = "") -> dict[str, Value]:
    """Every layer merged: scalars override, lists add up; the project file only tightens.

    ``flags`` holds the command-line values (None or empty where a flag was not given; a
    boolean flag's False is a value: ``--no-show-command-install``);
    ``preset`` is the agent preset's layer, just above the built-in one, and ``agent`` its
    name, whose ``[agents.NAME]`` sections apply. Host groups (``@pypi``) are expanded in
    every layer, each host remembering the group it came from."""
    merged: dict[str, Value] = _expand_groups(preset or {})
    for path in (SYSTEM_FILE, user_file(environ)):
        _merge(merged, _expand_groups(read_file(path, agent=agent, environ=environ)))
    _apply_project(merged, _expand_groups(read_file(os.path.join(project_dir, PROJECT_FILE),
                                                    project=True, environ=environ)))
    _merge(merged, _expand_groups(read_environment(environ)))
    cli = {k: Value(tuple(v) if isinstance(v, list) else v,
                    f"--{'no-' if v is False else ''}{k.replace('_', '-')}")
           for k, v in flags.items() if v is not None and v != []}
    _merge(merged, _expand_groups(cli))
    return merged


def _expand_groups(layer: Mapping[str, Value]) -> dict[str, Value]:
    """``layer`` with each ``@group`` in its host lists replaced by the group's hosts, whose
    source says the group (``FILE:3 (@pypi)``)."""
    out = dict(layer)
    for key in GROUP_KEYS:
        item = layer.get(key)
        if item is None or not any(v.startswith("@") for v in item.value):
            continue
        from agent_sandbox._policy.groups import expand

        values: list[str] = []
        sources: list[str] = []
        for value, source in zip(item.value, item.per_item(), strict=True):
            hosts = expand(value, source)
            values += hosts
            sources += [source if host == value else f"{source} ({value})" for host in hosts]
        out[key] = Value(tuple(values), item.source, tuple(sources))
    return out


def _merge(merged: dict[str, Value], layer: Mapping[str, Value]) -> None:
    for key, item in layer.items():
        if key in LIST_KEYS and key in merged:
            merged[key] = Value((*merged[key].value, *item.value),
                                f"{merged[key].source} + {item.source}",
                                (*merged[key].per_item(), *item.per_item()))
        else:
            merged[key] = item
