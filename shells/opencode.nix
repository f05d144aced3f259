# nix develop .#opencode: `opencode` runs OpenCode confined by agent-sandbox.
{ pkgs, mkAgentShell }:
mkAgentShell {
  inherit pkgs;
  agent = pkgs.opencode;
  exe = "opencode";
  preset = "opencode";
}
