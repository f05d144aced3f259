# nix develop .#opencode: `opencode` runs OpenCode confined by agent-sandbox.
{ pkgs, mkAgentShell }:
mkAgentShell ({ inherit pkgs; } // (import ../nix/agents.nix pkgs).opencode)
