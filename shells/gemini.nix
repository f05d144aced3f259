# nix develop .#gemini: `gemini` runs Gemini CLI confined by agent-sandbox.
{ pkgs, mkAgentShell }:
mkAgentShell {
  inherit pkgs;
  agent = pkgs.gemini-cli;
  exe = "gemini";
  preset = "gemini";
}
