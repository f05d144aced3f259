# agent-sandbox as a Python application, with bubblewrap and dtach on its PATH.
# Used by the flake's overlay and by lib.mkAgentShell for other flakes' nixpkgs.
# pyseccomp: null builds ours (below); `agent-sandbox.override { pyseccomp = ...; }` takes
# another build of it. nixpkgs' own libseccomp bindings (python3Packages.libseccomp) would
# not fit: they are the `seccomp` module, built with Cython from libseccomp's source,
# while agent-sandbox uses pyseccomp's ctypes module only on a cold cache (it compiles the
# filter once, then loads the cached program without libseccomp).
{ lib, python3Packages, bubblewrap, dtach, libseccomp, git, pyseccomp ? null }:

let
  project = (builtins.fromTOML (builtins.readFile ../pyproject.toml)).project;

  # pyseccomp is not in nixpkgs. It finds libseccomp with ctypes.util.find_library, which
  # nixpkgs' Python cannot do at run time (no ldconfig), so the library's store path is
  # patched in.
  ourPyseccomp = python3Packages.buildPythonPackage rec {
    pname = "pyseccomp";
    version = "0.1.2";
    pyproject = true;
    src = python3Packages.fetchPypi {
      inherit pname version;
      hash = "sha256-DVTvrPcb2kvf0hIz9URLcwy+z1k9YC95bmQSqGgiWL0=";
    };
    build-system = [ python3Packages.setuptools ];
    postPatch = ''
      substituteInPlace pyseccomp.py --replace-fail \
        'ctypes.util.find_library("seccomp")' \
        '"${lib.getLib libseccomp}/lib/libseccomp.so.2"'
    '';
    pythonImportsCheck = [ "pyseccomp" ];
  };
in
python3Packages.buildPythonApplication {
  pname = project.name;
  inherit (project) version;
  pyproject = true;
  # Only what the build and its check phase read: a change to the flake, the shells or
  # the docs' prose does not rebuild the package.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../pyproject.toml
      ../README.md
      ../agent_sandbox
      ../tests
      ../scripts
      ../docs
    ];
  };

  build-system = [ python3Packages.setuptools ];
  dependencies = [
    (if pyseccomp == null then ourPyseccomp else pyseccomp)
    python3Packages.dnslib
  ];
  # dtach serves detached sessions (--detach, attach).
  makeWrapperArgs = [ "--prefix" "PATH" ":" (lib.makeBinPath [ bubblewrap dtach ]) ];

  # The unit tests run in the build. Tests that launch bwrap or real agents need user
  # namespaces, which the Nix build sandbox does not give, and "host" tests read the real
  # host or need util-linux: they run in CI instead (tests/nix/test_check_phase.py runs
  # this selection under the build sandbox's conditions). git: the protection scan's
  # tests make repositories.
  nativeCheckInputs = (with python3Packages; [
    pytestCheckHook
    pytest-timeout
    pexpect
    hypothesis
    trustme
  ]) ++ [ git ];
  enabledTestPaths = [ "tests/unit" ];
  disabledTestMarks = [ "integration" "agents" "host" ];
  pythonImportsCheck = [ "agent_sandbox" ];

  meta = {
    description = project.description;
    license = lib.licenses.mit;
    platforms = lib.platforms.linux;
    mainProgram = "agent-sandbox";
  };
}
