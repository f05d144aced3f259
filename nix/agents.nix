# The agents the flake confines: their nixpkgs package, command and agent-sandbox preset.
# One table for packages.<system>.<name>, apps, the dev shells (shells/<name>.nix) and the
# NixOS and home-manager modules' `agents` option.
pkgs: {
  claude-code = { agent = pkgs.claude-code; exe = "claude"; preset = "claude"; };
  codex = { agent = pkgs.codex; exe = "codex"; preset = "codex"; };
  aider = { agent = pkgs.aider-chat; exe = "aider"; preset = "aider"; };
  opencode = { agent = pkgs.opencode; exe = "opencode"; preset = "opencode"; };
  gemini = { agent = pkgs.gemini-cli; exe = "gemini"; preset = "gemini"; };
}
