# The few nixpkgs `lib` functions the flake uses, with nixpkgs' semantics.
rec {
  genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
  getName = x: x.pname or (builtins.parseDrvName x.name).name;
  getLib = drv: drv.lib or drv;
  makeBinPath = drvs: builtins.concatStringsSep ":" (map (d: "${d}/bin") drvs);
  licenses = { mit = { free = true; shortName = "mit"; }; unfree = { free = false; shortName = "unfree"; }; };
  platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
  nameValuePair = name: value: { inherit name value; };
  mapAttrs' = f: set: builtins.listToAttrs (map (n: f n set.${n}) (builtins.attrNames set));
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
  # lib.fileset, as far as `toSource { root; fileset = unions [ paths ]; }`: a source of
  # root holding those paths (and the directories on the way to them) only.
  fileset = {
    unions = paths: paths;
    toSource = { root, fileset }: builtins.path {
      path = root;
      name = "source";
      filter = path: _type: builtins.any (f: let want = toString f; in
        path == want || hasPrefix (want + "/") path || hasPrefix (path + "/") want) fileset;
    };
  };

  # The module system, as far as the flake's modules use it, with nixpkgs' semantics where
  # a module can go wrong: an undeclared option is an error, a value of the wrong type is
  # an error naming the option, mkIf is pushed down (so `config = mkIf cfg.enable {...}`
  # does not recurse), list options concatenate, defaults apply when nothing is defined.
  mkOption = attrs: attrs // { _type = "option"; };
  mkEnableOption = name: mkOption {
    type = types.bool; default = false; description = "Whether to enable ${name}.";
  };
  literalExpression = text: { _type = "literalExpression"; inherit text; };
  mkIf = condition: content: { _type = "if"; inherit condition content; };

  types = {
    bool = { name = "boolean"; check = builtins.isBool; merge = values: builtins.head values; };
    str = { name = "string"; check = builtins.isString; merge = values: builtins.head values; };
    package = { name = "package"; check = x: builtins.isAttrs x && x ? outPath;
                merge = values: builtins.head values; };
    attrs = { name = "attribute set"; check = builtins.isAttrs;
              merge = values: builtins.foldl' (a: b: a // b) { } values; };
    enum = values: { name = "one of ${builtins.concatStringsSep ", " (map builtins.toJSON values)}";
                     check = x: builtins.elem x values; merge = vs: builtins.head vs; };
    listOf = elem: { name = "list of ${elem.name}";
                     check = x: builtins.isList x && builtins.all elem.check x;
                     merge = values: builtins.concatLists values; };
  };

  evalModules = { modules, specialArgs ? { } }:
    let
      isOption = x: builtins.isAttrs x && (x._type or "") == "option";
      isIf = x: builtins.isAttrs x && (x._type or "") == "if";
      args = specialArgs // { inherit config; lib = import ./lib.nix; };
      called = map (m: if builtins.isFunction m then m args else m) modules;
      declared = builtins.foldl' recursiveUpdateUntilOption { } (map (m: m.options or { }) called);
      recursiveUpdateUntilOption = a: b: a // builtins.mapAttrs (n: v:
        if a ? ${n} && !(isOption v) && !(isOption a.${n}) then recursiveUpdateUntilOption a.${n} v else v) b;
      definitions = map (m: if m ? options || m ? config then m.config or { } else m) called;
      # mkIf c { a = x; } -> { a = mkIf c x; }: only names are read here, never c.
      pushDown = def: if isIf def
        then builtins.mapAttrs (_: v: mkIf def.condition v) (pushDown def.content)
        else def;
      keep = def: if isIf def then (if def.condition then keep def.content else null) else def;
      strip = v: if isIf v then strip (keep v)
        else if builtins.isAttrs v && !(v ? outPath) && !(v ? _type)
        then builtins.mapAttrs (_: strip)
          (filterAttrs (_: x: keep x != null) v)
        else v;
      filterAttrs = pred: set: builtins.listToAttrs (builtins.concatMap (n:
        if pred n set.${n} then [ { name = n; value = set.${n}; } ] else [ ]) (builtins.attrNames set));
      walk = path: opts: defs:
        let
          pushed = map pushDown defs;
          undeclared = builtins.concatMap (d: builtins.filter (n: !(opts ? ${n}))
            (builtins.attrNames d)) (builtins.filter builtins.isAttrs pushed);
        in
        if undeclared != [ ] then
          throw "The option `${builtins.concatStringsSep "." (path ++ [ (builtins.head undeclared) ])}' does not exist."
        else builtins.mapAttrs (n: o:
          let here = map (d: d.${n}) (builtins.filter (d: d ? ${n}) pushed); in
          if isOption o then
            let
              values = builtins.filter (v: v != null) (map (v: strip (keep v)) here);
              shown = builtins.concatStringsSep "." (path ++ [ n ]);
              value = if values == [ ] then (o.default or (throw "The option `${shown}' is used but not defined."))
                else o.type.merge values;
            in
            if o.type.check value then value
            else throw "A definition for option `${shown}' is not of type `${o.type.name}'."
          else walk (path ++ [ n ]) o here) opts;
      config = walk [ ] declared definitions;
    in
    { inherit config; options = declared; };
}
