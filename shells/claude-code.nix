# nix develop .#claude-code: `claude` runs Claude Code confined by agent-sandbox.
{ pkgs, mkAgentShell }:
mkAgentShell ({ inherit pkgs; } // (import ../nix/agents.nix pkgs).claude-code)
