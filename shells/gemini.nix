# nix develop .#gemini: `gemini` runs Gemini CLI confined by agent-sandbox.
{ pkgs, mkAgentShell }:
mkAgentShell ({ inherit pkgs; } // (import ../nix/agents.nix pkgs).gemini)
