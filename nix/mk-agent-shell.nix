# lib.mkAgentShell: a dev shell in which an agent's command runs confined.
#
#   mkAgentShell {
#     pkgs;                  # any nixpkgs
#     agent = pkgs.codex;    # the agent's package; null for a shell with only agent-sandbox
#     exe = "codex";         # the command to confine (default: the package's mainProgram)
#     preset = "codex";      # agent-sandbox preset: claude, codex, gemini, aider, opencode, none
#     packages = [ ];        # more tools for the shell
#     shellHook = "";        # appended to ours
#   }
#
# The agent is not put on PATH: its confined package (lib.wrapAgent) is, whose command of
# the same name runs the agent's store path through agent-sandbox. A wrapper executable
# (not a shell function) is what `nix develop -c`, scripts and direnv's `use flake` all see.
{ pkgs
, agent ? null
, exe ? if agent == null then null else agent.meta.mainProgram or agent.pname
, preset ? "none"
, name ? if agent == null then "agent-sandbox" else "${exe}-sandboxed"
, agent-sandbox ? pkgs.agent-sandbox or (pkgs.callPackage ./package.nix { })
, packages ? [ ]
, shellHook ? ""
}:

let
  sandbox = "${agent-sandbox}/bin/agent-sandbox";
  wrapper = import ./wrap-agent.nix { inherit pkgs agent exe preset agent-sandbox; };
  hookArgs = if agent == null then "" else
    "--agent ${preset} --command ${exe} --wrapper ${wrapper}/bin/${exe}";
  # agent-sandbox is a Python application: in `packages` itself, the Python setup hook
  # would export its PYTHONPATH, PYTHONHASHSEED, PYTHONNOUSERSITE and interpreter into the
  # user's shell. A link to its command propagates nothing.
  command = pkgs.runCommand "agent-sandbox-command" { } ''
    mkdir -p $out/bin
    ln -s ${sandbox} $out/bin/agent-sandbox
  '';
in
pkgs.mkShellNoCC {
  inherit name;
  packages = (if agent == null then [ ] else [ wrapper ]) ++ [ command ] ++ packages;
  shellHook = ''
    eval "$(${sandbox} shell-hook ${hookArgs})"
  '' + shellHook;
}
