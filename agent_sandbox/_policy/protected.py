"""The names of host-executed files in a project, which the sandbox makes read-only (the
plan finds them: ``_plan.protect``). Data, so configuration can check ``unprotect``."""

# Relative to the project (and to each nested repository's work tree).
PROTECTED = (
    ".gitmodules", ".pre-commit-config.yaml", ".envrc", "flake.nix", "flake.lock",
    "shell.nix", "default.nix", ".vscode", ".idea", ".zed", ".cursor", ".mcp.json",
    ".claude/settings.json", ".claude/settings.local.json", ".claude/commands", ".codex",
    ".husky", ".githooks", ".agent-sandbox.toml",
)
