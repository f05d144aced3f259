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
# The agent is not put on PATH: a wrapper of the same name is, and it runs the agent's store
# path through agent-sandbox. A wrapper executable (not a shell function) is what `nix develop
# -c`, scripts and direnv's `use flake` all see.
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
  real = "${agent}/bin/${exe}";
  wrapper = pkgs.writeShellScriptBin exe ''
    # Already confined (the marker and a seccomp filter on this process): never nest.
    if [ -n "''${AGENT_SANDBOX_ACTIVE-}" ]; then
      while read -r key value; do
        if [ "$key" = Seccomp: ] && [ "$value" = 2 ]; then exec ${real} "$@"; fi
      done < /proc/self/status
    fi
    exec ${sandbox} agent-wrapper --agent ${preset} -- ${real} "$@"
  '';
  hookArgs = if agent == null then "" else
    "--agent ${preset} --command ${exe} --wrapper ${wrapper}/bin/${exe}";
in
pkgs.mkShell {
  inherit name;
  packages = (if agent == null then [ ] else [ wrapper ]) ++ [ agent-sandbox ] ++ packages;
  shellHook = ''
    eval "$(${sandbox} shell-hook ${hookArgs})"
  '' + shellHook;
}
