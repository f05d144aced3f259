# nix develop .#aider: `aider` runs Aider confined by agent-sandbox.
{ pkgs, mkAgentShell }:
mkAgentShell {
  inherit pkgs;
  agent = pkgs.aider-chat;
  exe = "aider";
  preset = "aider";
}
