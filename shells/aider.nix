# nix develop .#aider: `aider` runs Aider confined by agent-sandbox.
{ pkgs, mkAgentShell }:
mkAgentShell ({ inherit pkgs; } // (import ../nix/agents.nix pkgs).aider)
