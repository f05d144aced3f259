"""The environment inside: an allow-list, never a deny-list. Pure functions over mappings.

Nothing reaches the command unless it is in the small base set below, set by the sandbox
itself, or asked for with ``--env``. Loader and interpreter injection variables are refused
even when asked for: they run code in every process inside (or, for git, configure hooks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from agent_sandbox._errors import UsageError
from agent_sandbox._policy.identity import Identity
from agent_sandbox._policy.values import EnvRequest

MARKER = "AGENT_SANDBOX_ACTIVE"

# Terminal, locale, time zone, editor: what interactive programs need to behave as outside.
BASE_PASSTHROUGH = frozenset(
    {
        "TERM",
        "COLORTERM",
        "TERM_PROGRAM",
        "TERM_PROGRAM_VERSION",
        "NO_COLOR",
        "LANG",
        "LANGUAGE",
        "TZ",
        "EDITOR",
        "VISUAL",
    }
)
BASE_PASSTHROUGH_PREFIXES = ("LC_",)

# The certificates TLS clients trust, named by a path: behind a corporate TLS-inspecting
# proxy, Node agents, pip, curl and git fail without them. Passed in when the value is an
# absolute path; the plan shows the file (or directory) it names read-only.
CA_VARIABLES = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO",
    "PIP_CERT",
    "CARGO_HTTP_CAINFO",
    "AWS_CA_BUNDLE",
)

# Set by the sandbox from its own layout; --env may not override them.
SANDBOX_OWNED = frozenset({"HOME", "TMPDIR", MARKER})

# Variables that make a loader, interpreter or git run code or read config chosen by whoever
# sets them. Exact names and prefixes; compared case-sensitively, as the programs do.
FORBIDDEN = frozenset(
    {
        "BASH_ENV",
        "ENV",
        "PROMPT_COMMAND",
        "SHELLOPTS",
        "BASHOPTS",
        "NODE_OPTIONS",
        "NODE_PATH",
        "PYTHONSTARTUP",
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONINSPECT",
        "PYTHONBREAKPOINT",
        "PERL5OPT",
        "PERL5LIB",
        "PERLLIB",
        "RUBYOPT",
        "RUBYLIB",
        "JAVA_TOOL_OPTIONS",
        "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "DOTNET_STARTUP_HOOKS",
        "GLIBC_TUNABLES",
        "GCONV_PATH",
        "HOSTALIASES",
        "NLSPATH",
        "MALLOC_CHECK_",
        "GIT_EXEC_PATH",
        "GIT_SSH",
        "GIT_SSH_COMMAND",
        "GIT_ASKPASS",
        "GIT_TEMPLATE_DIR",
        "GIT_DIR",
        "GIT_WORK_TREE",
    }
)
FORBIDDEN_PREFIXES = ("LD_", "GIT_CONFIG", "BASH_FUNC_", "DYLD_")


def is_forbidden(name: str) -> bool:
    return name in FORBIDDEN or name.startswith(FORBIDDEN_PREFIXES)


def check_request(request: EnvRequest) -> None:
    """Refuse, with the reason, an ``--env`` the sandbox will never honour."""
    if is_forbidden(request.name):
        raise UsageError(
            f"{request.origin} {request.name}: loader/interpreter injection variables are never "
            "passed into the sandbox",
            fix="drop it; configure the tool inside the project instead",
        )
    if request.name in SANDBOX_OWNED:
        raise UsageError(f"{request.origin} {request.name}: this variable is set by the sandbox")


def sanitise_path(
    entries: Iterable[tuple[str, str]], visible: Callable[[str], bool]
) -> list[str]:
    """Keep the PATH entries that exist inside, in order, without duplicates.

    Each entry comes as ``(as written, resolved on the host)``: an entry hidden inside (for
    example ``~/.nix-profile/bin``) is replaced by its resolved target when that is visible.
    Relative and empty entries (the current directory) never survive.
    """
    out: list[str] = []
    for written, resolved in entries:
        for candidate in (written, resolved):
            if candidate.startswith("/") and visible(candidate):
                if candidate not in out:
                    out.append(candidate)
                break
    return out


def ca_paths(host_env: Mapping[str, str]) -> dict[str, str]:
    """The CA variables to pass in: name -> the absolute path it names."""
    return {name: host_env[name] for name in CA_VARIABLES
            if host_env.get(name, "").startswith("/")}


def build_env(
    host_env: Mapping[str, str],
    identity: Identity,
    path: list[str],
    shell: str,
    requests: Iterable[EnvRequest],
) -> dict[str, str]:
    """The complete environment of the command inside."""
    env = {
        name: value
        for name, value in host_env.items()
        if (name in BASE_PASSTHROUGH or name.startswith(BASE_PASSTHROUGH_PREFIXES))
        and not is_forbidden(name)
    }
    env.update(ca_paths(host_env))
    env.update(
        HOME=identity.home,
        USER=identity.user,
        LOGNAME=identity.user,
        SHELL=shell,
        PATH=":".join(path),
        TMPDIR="/tmp",
    )
    for request in requests:
        check_request(request)
        if request.value is not None:
            env[request.name] = request.value
        elif request.name in host_env:
            env[request.name] = host_env[request.name]
    env[MARKER] = "1"
    return env
