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
  # Inside agent-sandbox already, never nest. The marker is a variable anyone can set, and
  # a seccomp filter alone is common (containers, systemd services): the wrapper wants all
  # of what agent-sandbox makes together: the marker, a seccomp filter with no_new_privs,
  # a user namespace mapping one uid, and the hostname agent-sandbox.
  wrapper = pkgs.writeShellScriptBin exe ''
    inside() {
      [ -n "''${AGENT_SANDBOX_ACTIVE-}" ] || return 1
      local key value seccomp= nnp= maps=0 count= line= host=
      while read -r key value; do
        case $key in Seccomp:) seccomp=$value ;; NoNewPrivs:) nnp=$value ;; esac
      done < /proc/self/status
      while read -r _ _ line; do maps=$((maps + 1)); count=$line; done < /proc/self/uid_map
      read -r host < /proc/sys/kernel/hostname
      [ "$seccomp" = 2 ] && [ "$nnp" = 1 ] && [ "$maps" = 1 ] && [ "$count" = 1 ] &&
        [ "$host" = agent-sandbox ]
    }
    if inside; then exec ${real} "$@"; fi
    exec ${sandbox} agent-wrapper --agent ${preset} -- ${real} "$@"
  '';
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
