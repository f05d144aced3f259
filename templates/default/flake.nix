{
  description = "a project whose dev shell runs an agent confined by agent-sandbox";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
  inputs.agent-sandbox.url = "github:OWNER/agent-sandbox"; # where you get it from
  inputs.agent-sandbox.inputs.nixpkgs.follows = "nixpkgs";

  outputs = { nixpkgs, agent-sandbox, ... }:
    let
      forAllSystems = nixpkgs.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ];
    in
    {
      # nix develop: `codex` runs confined in this project; AGENT_SANDBOX=false is the one
      # (loud, logged) way out. Other agents: claude-code (unfree: allow it in your
      # nixpkgs), aider-chat, gemini-cli, opencode, with their preset.
      devShells = forAllSystems (system:
        let pkgs = nixpkgs.legacyPackages.${system}; in {
          default = agent-sandbox.lib.mkAgentShell {
            inherit pkgs;
            agent = pkgs.codex;
            preset = "codex";
            packages = [ ]; # the project's own tools
          };
        });
    };
}
