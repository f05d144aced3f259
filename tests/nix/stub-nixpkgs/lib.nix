# The few nixpkgs `lib` functions the flake uses, with nixpkgs' semantics.
rec {
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  getName = x: x.pname or (builtins.parseDrvName x.name).name;
  getLib = drv: drv.lib or drv;
  makeBinPath = drvs: builtins.concatStringsSep ":" (map (d: "${d}/bin") drvs);
  licenses = { mit = { free = true; shortName = "mit"; }; unfree = { free = false; shortName = "unfree"; }; };
  platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
}
