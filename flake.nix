{
  description = "agent-sandbox: run LLM coding agents confined (bubblewrap, seccomp, namespaces, allow-list network)";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = nixpkgs.lib.genAttrs systems;
      # One nixpkgs per system, shared by every output below.
      pkgsBySystem = forAllSystems (system: import nixpkgs {
        inherit system;
        overlays = [ self.overlays.default ];
        # Claude Code is the only unfree package a shell here needs.
        config.allowUnfreePredicate = pkg: builtins.elem (nixpkgs.lib.getName pkg) [ "claude-code" ];
      });
      shellNames = [ "default" "claude-code" "codex" "aider" "opencode" "gemini" ];
    in
    {
      lib.mkAgentShell = import ./nix/mk-agent-shell.nix;
      lib.wrapAgent = import ./nix/wrap-agent.nix;

      overlays.default = final: prev: {
        agent-sandbox = final.callPackage ./nix/package.nix { };
      };

      # programs.agent-sandbox = { enable; package; agents; settings; } (nix/module.nix).
      nixosModules.default = import ./nix/module.nix "nixos";
      homeManagerModules.default = import ./nix/module.nix "home-manager";

      templates.default = {
        path = ./templates/default;
        description = "a project whose dev shell runs an agent confined by agent-sandbox";
      };

      # Each agent confined (lib.wrapAgent): `nix run .#claude-code`, or installed with
      # home.packages / environment.systemPackages (see the modules).
      packages = forAllSystems (system:
        let pkgs = pkgsBySystem.${system}; in {
          default = pkgs.agent-sandbox;
          agent-sandbox = pkgs.agent-sandbox;
        } // builtins.mapAttrs (_: a: self.lib.wrapAgent ({ inherit pkgs; } // a))
          (import ./nix/agents.nix pkgs));

      apps = forAllSystems (system:
        builtins.mapAttrs (_: drv: {
          type = "app";
          program = "${drv}/bin/${drv.meta.mainProgram}";
        }) self.packages.${system});

      devShells = forAllSystems (system:
        let
          mkShell = shell: import (./shells + "/${shell}.nix") {
            pkgs = pkgsBySystem.${system};
            inherit (self.lib) mkAgentShell;
          };
        in
        nixpkgs.lib.genAttrs shellNames mkShell);

      formatter = forAllSystems (system: pkgsBySystem.${system}.nixfmt);

      # The package (whose build runs the unit tests, see nix/package.nix) and every dev
      # shell: `nix flake check` builds them all.
      checks = forAllSystems (system: {
        agent-sandbox = self.packages.${system}.default;
      } // nixpkgs.lib.mapAttrs' (name: shell: nixpkgs.lib.nameValuePair "devShell-${name}" shell)
        self.devShells.${system});
    };
}
