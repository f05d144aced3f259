# nix develop .#codex: `codex` runs Codex confined by agent-sandbox.
{ pkgs, mkAgentShell }:
mkAgentShell ({ inherit pkgs; } // (import ../nix/agents.nix pkgs).codex)
