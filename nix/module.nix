# programs.agent-sandbox, for NixOS (`import ./module.nix "nixos"`) and home-manager
# (`"home-manager"`): agent-sandbox and the chosen agents installed confined
# (lib.wrapAgent), and agent-sandbox's configuration written as TOML: system-wide
# (/etc/agent-sandbox/config.toml) or per user (~/.config/agent-sandbox/config.toml).
target:
{ config, lib, pkgs, ... }:

let
  cfg = config.programs.agent-sandbox;
  agents = import ./agents.nix pkgs;
  toml = pkgs.formats.toml { };
  confined = name: import ./wrap-agent.nix
    ({ inherit pkgs; agent-sandbox = cfg.package; } // agents.${name});
  packages = [ cfg.package ] ++ map confined cfg.agents;
  configFile = toml.generate "agent-sandbox-config.toml" cfg.settings;
in
{
  options.programs.agent-sandbox = {
    enable = lib.mkEnableOption "agent-sandbox, and the agents chosen, confined";
    package = lib.mkOption {
      type = lib.types.package;
      default = pkgs.agent-sandbox or (pkgs.callPackage ./package.nix { });
      defaultText = lib.literalExpression "pkgs.agent-sandbox";
      description = "The agent-sandbox package.";
    };
    agents = lib.mkOption {
      type = lib.types.listOf (lib.types.enum (builtins.attrNames agents));
      default = [ ];
      example = [ "claude-code" "codex" ];
      description = ''
        Agents to install confined: each one's command runs it through agent-sandbox with
        its preset (unfree ones, Claude Code, need nixpkgs to allow them).
      '';
    };
    settings = lib.mkOption {
      inherit (toml) type;
      default = { };
      example = { allow = [ "github.com" ]; memory = "4G"; };
      description = ''
        agent-sandbox's configuration (docs/config-reference.md): the same keys as its
        config.toml, written to ${if target == "nixos" then "/etc/agent-sandbox/config.toml"
        else "~/.config/agent-sandbox/config.toml"}.
      '';
    };
  };

  config = lib.mkIf cfg.enable (if target == "nixos" then {
    environment.systemPackages = packages;
    environment.etc."agent-sandbox/config.toml" = lib.mkIf (cfg.settings != { }) {
      source = configFile;
    };
  } else {
    home.packages = packages;
    xdg.configFile."agent-sandbox/config.toml" = lib.mkIf (cfg.settings != { }) {
      source = configFile;
    };
  });
}
