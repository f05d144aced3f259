# nix develop .#codex: `codex` runs Codex confined by agent-sandbox.
{ pkgs, mkAgentShell }:
mkAgentShell {
  inherit pkgs;
  agent = pkgs.codex;
  exe = "codex";
  preset = "codex";
}
