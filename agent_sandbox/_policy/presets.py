"""Agent presets: what each known agent needs, as data (``preset_data/<name>.toml``, and the
user's own in ``$XDG_CONFIG_HOME/agent-sandbox/presets/<name>.toml``, which replace a
built-in one of the same name).

A preset is chosen by the command's basename (``agent-sandbox claude``) or ``--agent NAME``
and adds a configuration layer just above the built-in one: the hosts the agent talks to
(which makes the network ``filtered``), the environment variables it may receive and those
the sandbox sets for it (``set_env``: its auto-updater off), the ports published while a
subcommand runs (``publish_when``: Codex's sign-in callback), and its state paths. Its
state lives in a home of its own per project (``_run.agent_home``): settings, history and
caches persist between runs but never touch your real home. On first use only the login is
copied in (``seed``, ``seed_json``).

Every file, built-in or the user's, is validated the same way: each error names the file,
the line and the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from agent_sandbox._errors import UsageError

PRESET_DIR = os.path.join(os.path.dirname(__file__), "preset_data")
# What a preset's name (its file's name) may be made of; "none" means no preset.
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-")


class Preset(NamedTuple):
    name: str
    description: str
    allow: tuple[str, ...]
    env: tuple[str, ...]
    state: tuple[str, ...]  # relative to $HOME
    seed: tuple[str, ...]  # files copied from the real home on first use (the login)
    seed_json: tuple[tuple[str, tuple[str, ...]], ...]  # file -> keys kept from it
    # How to run the agent when its own sandbox cannot nest here (said at launch), or "".
    inner_sandbox: str = ""
    # Variables the sandbox sets for the agent (NAME, VALUE); --env NAME=VALUE overrides.
    set_env: tuple[tuple[str, str], ...] = ()
    # Ports published while the command's arguments start with these words.
    publish_when: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    path: str = ""  # the file it was read from

    def publish_for(self, args: Sequence[str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(the words that matched, ports) for each ``publish_when`` entry ``args`` start
        with."""
        return tuple((" ".join(words), ports) for words, ports in self.publish_when
                     if tuple(args[:len(words)]) == words)


def config_dir(environ: Mapping[str, str]) -> str:
    """The user's configuration directory: ``$XDG_CONFIG_HOME/agent-sandbox``."""
    base = environ.get("XDG_CONFIG_HOME", "")
    if not base.startswith("/"):
        base = os.path.join(environ.get("HOME", os.path.expanduser("~")), ".config")
    return os.path.join(base, "agent-sandbox")


def user_dir(environ: Mapping[str, str]) -> str:
    """``$XDG_CONFIG_HOME/agent-sandbox/presets`` (beside the user's config.toml)."""
    return os.path.join(config_dir(environ), "presets")


def is_name(name: str) -> bool:
    return bool(name) and set(name) <= _NAME_CHARS and name[0] not in "._-" and \
        name != "none"


def _files(directory: str) -> list[str]:
    try:
        return [f[:-5] for f in os.listdir(directory) if f.endswith(".toml")]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise UsageError(f"{directory}: cannot list it: {e.strerror}") from None


def names(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The built-in presets and the user's (with ``environ``)."""
    found = set(_files(PRESET_DIR))
    if environ is not None:
        found |= {n for n in _files(user_dir(environ)) if is_name(n)}
    return tuple(sorted(found))


def find(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The file of preset ``name``: the user's, else the built-in one, else None."""
    if not is_name(name):
        return None
    places = [PRESET_DIR] if environ is None else [user_dir(environ), PRESET_DIR]
    for directory in places:
        path = os.path.join(directory, f"{name}.toml")
        if os.path.lexists(path):
            return path
    return None


def detect(command: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The preset named like the command's basename, if there is one."""
    name = os.path.basename(command)
    return name if find(name, environ) else None


def unknown(name: str, environ: Mapping[str, str] | None, origin: str = "--agent") \
        -> UsageError:
    """The error for a preset name that is none: the close one, and the known ones."""
    import difflib

    known = names(environ)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return UsageError(f"{origin} {name!r}: no such preset{hint}; known: {', '.join(known)}, "
                      "or none")


def load(name: str, environ: Mapping[str, str] | None = None) -> Preset:
    """Preset ``name``, the user's own first (``environ`` locates it; the process's
    environment by default), validated."""
    from agent_sandbox._policy import tomlfile

    environ = os.environ if environ is None else environ
    path = find(name, environ)
    read = tomlfile.read(path, follow=True) if path else None
    if read is None:
        raise unknown(name, environ)
    return parse(name, path or "", *read)


# The keys of a preset file and what each holds.
KEYS = ("description", "allow", "env", "set_env", "state", "seed", "seed_json",
        "inner_sandbox", "publish_when")


def parse(name: str, path: str, text: str, data: Mapping[str, Any]) -> Preset:
    """A preset from its file's parsed ``data``; every bad key a UsageError naming the file,
    the line and the key."""
    from agent_sandbox._policy.tomlfile import line_of

    def where(key: str, entry: str = "") -> str:
        """FILE:LINE: KEY, at the line of ``entry`` in the table ``key`` if given."""
        line = line_of(text, entry, (key,)) if entry else line_of(text, key)
        return f"{path}:{line}: {key}"

    for key in data:
        if key not in KEYS:
            import difflib

            close = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise UsageError(f"{path}:{line_of(text, key)}: unknown key {key!r}{hint}; "
                             f"a preset has: {', '.join(KEYS)}")
    allow = _strings(data, "allow", where)
    for host in allow:
        _check_host(host, where("allow"))
    env = _strings(data, "env", where)
    for variable in env:
        _check_variable(variable, where("env"))
    set_env = _table(data, "set_env", where)
    for variable, value in set_env.items():
        _check_variable(variable, where("set_env", variable))
        if not isinstance(value, str):
            raise UsageError(f"{where('set_env', variable)}: {variable} must be a string, e.g. "
                             f'{variable} = "1"')
    state = _paths(data, "state", where)
    seed = _paths(data, "seed", where)
    seed_json = _table(data, "seed_json", where)
    for file, keys in seed_json.items():
        _check_path(file, where("seed_json", file))
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise UsageError(f"{where('seed_json', file)}: {file!r} must be a list of key names")
    publish_when = _table(data, "publish_when", where)
    for words, ports in publish_when.items():
        if not words.split() or not isinstance(ports, list):
            raise UsageError(f"{where('publish_when', words)}: expected "
                             '"SUBCOMMAND" = [PORT, ...], e.g. login = ["1455"]')
        for port in ports:
            _check_port(port, where("publish_when", words))
    return Preset(
        name=name,
        description=_text(data, "description", where) or name,
        allow=allow, env=env, state=state, seed=seed,
        seed_json=tuple((k, tuple(v)) for k, v in seed_json.items()),
        inner_sandbox=_text(data, "inner_sandbox", where),
        set_env=tuple(set_env.items()),
        publish_when=tuple((tuple(w.split()), tuple(str(p) for p in ports))
                           for w, ports in publish_when.items()),
        path=path,
    )


def _text(data: Mapping[str, Any], key: str, where: Any) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise UsageError(f"{where(key)}: must be a string")
    return value


def _strings(data: Mapping[str, Any], key: str, where: Any) -> tuple[str, ...]:
    value = data.get(key, [])
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        raise UsageError(f'{where(key)}: must be a list of strings, e.g. {key} = ["..."]')
    return tuple(value)


def _table(data: Mapping[str, Any], key: str, where: Any) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{where(key)}: must be a table ([{key}], then NAME = ... lines)")
    return value


def _paths(data: Mapping[str, Any], key: str, where: Any) -> tuple[str, ...]:
    paths = _strings(data, key, where)
    for path in paths:
        _check_path(path, where(key))
    return paths


def _check_path(path: str, where: str) -> None:
    if not path or path.startswith("/") or ".." in path.split("/"):
        raise UsageError(f"{where}: {path!r}: a path relative to $HOME, without '..'")


def _check_host(host: str, where: str) -> None:
    from agent_sandbox._net.allow import parse_allow

    try:
        if host.startswith("@"):
            from agent_sandbox._policy.groups import expand

            for item in expand(host, ""):
                parse_allow(item)
        else:
            parse_allow(host)
    except UsageError as e:
        raise UsageError(f"{where}: {e.message}") from None


def _check_variable(name: str, where: str) -> None:
    from agent_sandbox._policy.env import check_request
    from agent_sandbox._policy.values import EnvRequest, is_env_name

    if not is_env_name(name):
        raise UsageError(f"{where}: {name!r} is not a variable name (letters, digits, _)")
    try:
        check_request(EnvRequest(name, origin="preset"))
    except UsageError as e:
        raise UsageError(f"{where}: {e.message}") from None


def _check_port(port: Any, where: str) -> None:
    from agent_sandbox._net.allow import parse_publish

    if isinstance(port, bool) or not isinstance(port, str | int):
        raise UsageError(f'{where}: ports are strings or numbers, e.g. ["1455"]')
    try:
        parse_publish(str(port))
    except UsageError as e:
        raise UsageError(f"{where}: {e.message}") from None


def data_dir(environ: Mapping[str, str]) -> str:
    """Where agent homes and logins live: ``$XDG_DATA_HOME/agent-sandbox``."""
    base = environ.get("XDG_DATA_HOME", "")
    if not base.startswith("/"):
        base = os.path.join(environ.get("HOME", os.path.expanduser("~")), ".local", "share")
    return os.path.join(base, "agent-sandbox")


def project_key(project: str) -> str:
    """``<base name>-<16 hex of the path's SHA-256>``: readable, and unique per path."""
    import hashlib

    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in os.path.basename(project))
    digest = hashlib.sha256(project.encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{name[:40] or 'root'}-{digest}"


def saved_home(agent: str, project: str, environ: Mapping[str, str]) -> str:
    """The agent's home for ``project`` on the host (see ``_run.agent_home``)."""
    return os.path.join(data_dir(environ), "agents", agent, project_key(project))


def login_files(preset: Preset) -> tuple[str, ...]:
    """The files that are the agent's login: shared by its projects."""
    return (*preset.seed, *(rel for rel, _ in preset.seed_json))
