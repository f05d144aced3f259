"""The paths in a project that host tools run or trust later, as data: which tool, when,
and what the sandbox does with each (the plan finds them: ``_plan.protect``;
docs/threat-model.md's table is checked against this one by a test).

Treatments: a covered path that **exists** at launch is read-only inside, live (but a git
directory's ``config``: a writable copy, its everyday keys applied at exit, ``_run.gitcopy``). A
**missing** one marked ``placeholder`` (a tool runs or trusts it on its own: on cd, on
open, on git status, on agent start) cannot be created while the sandbox runs: a read-only
placeholder holds its place. The other missing ones are protected once they exist.
"""

from __future__ import annotations

from typing import NamedTuple


class Covered(NamedTuple):
    path: str  # relative to each work tree ("worktree") or git directory ("git")
    tool: str  # what runs or trusts it on the host
    when: str  # when that happens without a further choice of the user's
    placeholder: bool  # missing at launch: held by a read-only placeholder
    kind: str = "dir"  # the placeholder: dir, file, json ({}), mcp, commondir
    where: str = "worktree"


COVERED = (
    # Entering the directory.
    Covered(".envrc", "direnv", "on cd (once allowed)", True, "file"),
    Covered(".envrc.local", "direnv (source_env_if_exists in .envrc)", "on cd", True, "file"),
    Covered("mise.toml", "mise (env, hooks, tasks)", "on cd", True, "file"),
    Covered(".mise.toml", "mise", "on cd", True, "file"),
    Covered("mise.local.toml", "mise", "on cd", True, "file"),
    Covered(".tool-versions", "asdf, mise", "on cd", True, "file"),
    Covered("flake.nix", "nix develop, direnv's use flake", "on cd (with direnv)", True, "file"),
    Covered("flake.lock", "nix develop, direnv's use flake", "on cd (with direnv)", True,
            "file"),
    Covered("shell.nix", "nix-shell, direnv's use nix", "on cd (with direnv)", True, "file"),
    Covered("default.nix", "nix-shell, direnv's use nix", "on cd (with direnv)", True, "file"),
    # Opening it in an editor.
    Covered(".vscode", "VS Code (tasks, settings)", "on open", True),
    Covered(".idea", "JetBrains IDEs (run configurations)", "on open", True),
    Covered(".zed", "Zed (tasks, settings)", "on open", True),
    Covered(".cursor", "Cursor (MCP servers, rules)", "on open", True),
    Covered(".devcontainer", "Dev Containers (initializeCommand runs on the host)",
            "on devcontainer up, reopen in container", True),
    Covered(".devcontainer.json", "Dev Containers", "on devcontainer up", True, "file"),
    # Starting an agent there unconfined.
    Covered(".mcp.json", "Claude Code (MCP servers)", "on agent start", True, "mcp"),
    Covered(".claude/settings.json", "Claude Code (hooks)", "on agent start", True, "json"),
    Covered(".claude/settings.local.json", "Claude Code (hooks)", "on agent start", True,
            "json"),
    Covered(".claude/commands", "Claude Code (commands)", "when invoked", False),
    Covered(".gemini", "Gemini CLI (settings.json: MCP servers)", "on agent start", True),
    Covered(".codex", "Codex (config.toml: MCP servers)", "on agent start", True),
    # git.
    Covered(".gitmodules", "git", "on git submodule update", False, "file"),
    Covered(".pre-commit-config.yaml", "pre-commit", "on git commit", True, "file"),
    Covered(".husky", "husky (git hooks)", "on git commit", False),
    Covered(".githooks", "git hooks kept by convention", "on git commit", False),
    Covered(".agent-sandbox.toml", "agent-sandbox", "on the next launch", False, "file"),
    Covered("hooks", "git", "on commit, merge, checkout, push", True, where="git"),
    Covered("config", "git (core.fsmonitor, aliases, filters, ...)", "on every git command",
            True, "file", where="git"),
    Covered("info", "git (exclude, attributes)", "on git status", True, where="git"),
    Covered("objects/info/alternates", "git (another repository's objects)",
            "on every git command", True, "file", where="git"),
)

# Relative to the project (and to each nested repository's work tree).
PROTECTED = tuple(c.path for c in COVERED if c.where == "worktree")
