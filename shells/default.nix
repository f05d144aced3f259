# nix develop: agent-sandbox on PATH, to confine any command (agent-sandbox -- bash).
{ pkgs, mkAgentShell }:
mkAgentShell { inherit pkgs; }
