# `import nixpkgs { system; overlays; config; }` of the stub. Derivations are built by the
# host's /bin/bash (Debian's nix runs builds unsandboxed); host.nix, written by the tests,
# names the host's Python (with agent-sandbox's dependencies) and bwrap.
{ system ? builtins.currentSystem, overlays ? [ ], config ? { } }:

let
  lib = import ./lib.nix;
  host = import ./host.nix;

  # The script ends on a builtin: nix 2.8 kills the builder's process group as soon as its
  # log closes, and a last command that bash execs (chmod) closes it before it exits.
  run = name: script: env: derivation ({
    inherit name system;
    builder = "/bin/bash";
    args = [ "-c" "${script}\n:" ];
    PATH = "/usr/bin:/bin";
  } // env);

  placeholder = name: run name "echo 'stub nixpkgs: ${name} is not buildable offline' >&2; exit 1" { };
  pythonPlaceholder = name: placeholder name // { pythonModule = true; };

  # A fake agent: prints how it was run, and whether it is inside agent-sandbox.
  fakeAgent = { pname, exe, free ? true }: run pname ''
    mkdir -p $out/bin
    printf '%s\n' '#!/bin/bash' \
      'echo "fake-${exe} argv: $*"' \
      'seccomp=$(grep -s "^Seccomp:" /proc/self/status | cut -f2)' \
      'echo "fake-${exe} marker=''${AGENT_SANDBOX_ACTIVE:-unset} seccomp=$seccomp home-fs=$(stat -f -c %T "$HOME") home-entries=$(ls -A "$HOME" | tr "\n" ,)"' \
      'echo "fake-${exe} env: IN_NIX_SHELL=''${IN_NIX_SHELL-unset} shellHook=''${shellHook+set} TMPDIR=''${TMPDIR-unset}"' \
      > $out/bin/${exe}
    chmod +x $out/bin/${exe}
  '' { } // {
    inherit pname;
    meta = { mainProgram = exe; license = if free then lib.licenses.mit else lib.licenses.unfree; };
  };

  allowed = drv: drv.meta.license.free
    || (config.allowUnfree or false)
    || (config.allowUnfreePredicate or (_: false)) drv;
  checkLicense = drv: if allowed drv then drv
    else throw "stub nixpkgs: ${drv.name} has an unfree license and is not allowed";

  shell = cc: { name ? "nix-shell", packages ? [ ], shellHook ? "", ... }:
    let
      closure = map (x: x.pkg) (builtins.genericClosure {
        startSet = map (p: { key = p.outPath; pkg = p; }) packages;
        operator = item: map (p: { key = p.outPath; pkg = p; })
          (item.pkg.propagatedBuildInputs or [ ]);
      });
      modules = builtins.filter (p: p.pythonModule or false) closure;
      interpreters = builtins.filter (p: p.isPythonInterpreter or false) closure;
      sitePackages = p: builtins.unsafeDiscardStringContext "${p}/lib/python3.13/site-packages";
    in
    run name "echo > $out" ({
      PATH = lib.makeBinPath (packages ++ interpreters ++ (if cc == null then [ ] else [ cc ]));
      outputs = [ "out" ]; # `nix develop` writes the environment to each of $outputs
      inherit shellHook;
    } // (if modules == [ ] then { } else {
      PYTHONPATH = builtins.concatStringsSep ":" (map sitePackages modules);
    }) // (if interpreters == [ ] then { } else {
      PYTHONHASHSEED = "0";
      PYTHONNOUSERSITE = "1";
    }));

  base = self: {
    inherit lib;

    callPackage = fn: overrides:
      let f = if builtins.isFunction fn then fn else import fn;
      in f (builtins.intersectAttrs (builtins.functionArgs f) self // overrides);

    # pkgs.formats.toml: a value type and a generator; the stub writes the flat tables
    # agent-sandbox's configuration has (TOML reads JSON's strings, numbers, booleans and
    # arrays as they are).
    formats.toml = { }: {
      type = lib.types.attrs;
      generate = name: value: run name ''printf '%s' "$text" > $out'' {
        text = builtins.concatStringsSep "" (map (k: "${k} = ${builtins.toJSON value.${k}}\n")
          (builtins.attrNames value));
      };
    };

    runCommand = name: env: script:
      run name script (removeAttrs env [ "meta" "passthru" ])
      // (env.passthru or { }) // { meta = env.meta or { }; };

    writeShellScriptBin = name: text: run name ''
      mkdir -p $out/bin
      printf '%s\n' '#!/bin/bash' "$text" > $out/bin/${name}
      chmod +x $out/bin/${name}
    '' { inherit text; };

    # Like nixpkgs' mkShell: what `nix develop` reads (PATH from packages, shellHook), and
    # what the setup hooks of the packages and everything they propagate export into the
    # shell: Python's hook puts each Python module's site-packages on PYTHONPATH and sets
    # PYTHONHASHSEED and PYTHONNOUSERSITE, and the interpreter lands on PATH
    # (pkgs/development/interpreters/python/setup-hook.sh). mkShell also brings a C
    # compiler (stdenv.cc); mkShellNoCC does not. The module paths are not built: only the
    # variables' values matter here.
    mkShell = shell self.stdenv.cc;
    mkShellNoCC = shell null;

    stdenv.cc = run "gcc-wrapper-14" "mkdir -p $out/bin" { };
    python3 = run "python3-3.13" ''
      mkdir -p $out/bin && ln -s ${host.python} $out/bin/python3.13 && ln -s python3.13 $out/bin/python3
    '' { } // { isPythonInterpreter = true; };

    bashInteractive = run "bash-interactive" "mkdir -p $out/bin && ln -s /bin/bash $out/bin/bash" { };
    bubblewrap = run "bubblewrap" "mkdir -p $out/bin && ln -s ${host.bwrap} $out/bin/bwrap" { };
    dtach = run "dtach" "mkdir -p $out/bin && ln -s ${host.dtach} $out/bin/dtach" { };
    libseccomp = placeholder "libseccomp";
    git = placeholder "git";
    nixfmt = placeholder "nixfmt";

    claude-code = checkLicense (fakeAgent { pname = "claude-code"; exe = "claude"; free = false; });
    codex = fakeAgent { pname = "codex"; exe = "codex"; };
    aider-chat = fakeAgent { pname = "aider-chat"; exe = "aider"; };
    opencode = fakeAgent { pname = "opencode"; exe = "opencode"; };
    gemini-cli = fakeAgent { pname = "gemini-cli"; exe = "gemini"; };

    python3Packages = {
      # The application runs from its store source with the host's Python; its PATH prefix
      # (makeWrapperArgs) is honoured as nixpkgs' wrapper would.
      # Like nixpkgs', both propagate the interpreter and their dependencies (which is
      # how an application in a shell's packages exports its Python environment).
      buildPythonApplication = { pname, version, src, makeWrapperArgs ? [ ], meta ? { },
                                 dependencies ? [ ], ... }:
        run "${pname}-${version}" ''
          mkdir -p $out/bin
          printf '%s\n' '#!/bin/bash' \
            'export PATH=${builtins.elemAt makeWrapperArgs 3}:$PATH' \
            'export PYTHONPATH=${src}' \
            'exec ${host.python} -m agent_sandbox "$@"' > $out/bin/agent-sandbox
          chmod +x $out/bin/agent-sandbox
        '' { } // {
          inherit pname version meta;
          pythonModule = true;
          propagatedBuildInputs = [ self.python3 ] ++ dependencies;
        };
      buildPythonPackage = { pname, version, ... }: pythonPlaceholder "python3-${pname}-${version}";
      fetchPypi = { pname, version, ... }: placeholder "${pname}-${version}.tar.gz";
      setuptools = placeholder "setuptools";
      dnslib = pythonPlaceholder "python3-dnslib";
      pytestCheckHook = placeholder "pytest-check-hook";
      pytest-timeout = placeholder "pytest-timeout";
      pexpect = placeholder "pexpect";
      hypothesis = placeholder "hypothesis";
      trustme = placeholder "trustme";
    };
  };

  extend = f: overlay: self: let super = f self; in super // overlay self super;
  fix = f: let x = f x; in x;
in
fix (builtins.foldl' extend base overlays)
