# An offline stand-in for nixpkgs, for agent-sandbox's flake tests only:
#   nix ... --override-input nixpkgs path:<a copy of this directory with host.nix>
# It has exactly the attributes the flake uses (tests/nix/test_flake_static.py checks that
# each is a real nixpkgs name); agents are fakes that report how they were run.
{
  description = "stub nixpkgs for agent-sandbox's offline flake tests";
  outputs = { self }: {
    lib = import ./lib.nix;
    legacyPackages = (import ./lib.nix).genAttrs [ "x86_64-linux" "aarch64-linux" ]
      (system: import ./default.nix { inherit system; });
  };
}
