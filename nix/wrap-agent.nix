# lib.wrapAgent: an agent's package whose command runs confined by agent-sandbox.
#
#   wrapAgent {
#     pkgs;                  # any nixpkgs
#     agent = pkgs.codex;    # the agent's package
#     exe = "codex";         # the command to confine (default: the package's mainProgram)
#     preset = "codex";      # agent-sandbox preset: claude, codex, gemini, aider, opencode, none
#   }
#
# The result installs like the agent (home.packages, environment.systemPackages, nix run):
# bin/<exe> is a wrapper that runs the agent's store path through agent-sandbox, and the
# agent's share/ (man pages, shell completions) is kept. meta.mainProgram is <exe>; the
# unconfined agent is its `unwrapped` attribute.
{ pkgs
, agent
, exe ? agent.meta.mainProgram or agent.pname
, preset ? "none"
, agent-sandbox ? pkgs.agent-sandbox or (pkgs.callPackage ./package.nix { })
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
in
pkgs.runCommand "${exe}-sandboxed"
{
  meta = (agent.meta or { }) // { mainProgram = exe; };
  passthru = { unwrapped = agent; inherit preset; };
} ''
  mkdir -p $out/bin
  ln -s ${wrapper}/bin/${exe} $out/bin/${exe}
  if [ -d ${agent}/share ]; then ln -s ${agent}/share $out/share; fi
''
