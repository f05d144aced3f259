"""The errors the CLI turns into one clear line and a documented exit status."""

from __future__ import annotations

# Exit statuses of the launcher itself. Anything else is the command's own status
# (128+N when it died of signal N), passed through unchanged.
EXIT_USAGE = 2
EXIT_SANDBOX_FAILED = 125
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class SandboxError(Exception):
    """Base class: a message for the user, an optional fix, and the exit status."""

    exit_status = EXIT_SANDBOX_FAILED

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix


class UsageError(SandboxError):
    """Bad flags, paths or values given by the user (exit 2)."""

    exit_status = EXIT_USAGE


class SandboxUnavailable(SandboxError):
    """A layer the policy asks for cannot be enforced here: refuse (exit 125)."""

    exit_status = EXIT_SANDBOX_FAILED


class NoUserNamespace(SandboxUnavailable):
    """The kernel refused a user namespace before bwrap ran (a root caller's command is
    started through one): diagnosed as bwrap's own failure would be."""


class CommandNotFound(SandboxError):
    """COMMAND does not exist inside the sandbox (exit 127, like a shell)."""

    exit_status = EXIT_NOT_FOUND


class CommandNotExecutable(SandboxError):
    """COMMAND exists inside the sandbox but cannot be executed (exit 126, like a shell)."""

    exit_status = EXIT_NOT_EXECUTABLE


class LinksFailed(Exception):
    """Only the git config copies' links could not be mounted (``_run.mountns``): the
    launch goes on without them, the configs read-only as bwrap binds them."""
