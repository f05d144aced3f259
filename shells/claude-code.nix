# nix develop .#claude-code: `claude` runs Claude Code confined by agent-sandbox.
{ pkgs, mkAgentShell }:
mkAgentShell {
  inherit pkgs;
  agent = pkgs.claude-code;
  exe = "claude";
  preset = "claude";
}
